"""The brief as the libraries take it: the generation request and its seed, the spoken lines and their
voices, the mix, the captions' dialogue, and what QA expects of a master or a deliverable.

Pure functions of the brief and the records the tasks pass around: no Prefect, no database, no I/O
(reference files come in as paths the caller fetched), so every mapping is tested on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from syncreel.media.captions import DialogueTiming
from syncreel.media.mix import MixSettings
from syncreel.media.qc import Expectation
from syncreel.media.speech import Voice, default_voice_name, line_starts
from syncreel.media.syncqa import SyncExpectation
from syncreel.model.generator import GenerationRequest, ReferenceInput
from syncreel.schemas.brief import Brief, Music, Scene
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import IngestedReference, MasterRecord

# A prime stride: each regeneration attempt gets an unrelated seed, and the same one on every re-run.
SEED_STRIDE = 1_000_003


# --- the ids of references the pipeline makes itself (no brief id can hold a ':') ----------------------


def voice_id(scene_id: str, language: str) -> str:
    """A scene's on-screen lines as a reference; the language is in it, so one list carries every scene's."""
    return f"{scene_id}:voice:{language}"


def dialogue_id(scene_id: str, language: str) -> str:
    """A scene's whole dialogue (voice-overs included) as a reference."""
    return f"{scene_id}:dialogue:{language}"


def continuation_of(master: MasterRecord) -> IngestedReference:
    """The previous scene's master as the ``continue`` reference of the scene that extends it."""
    return IngestedReference(
        id=f"{master.scene_id}:last-frames",
        kind="video",
        role="continue",
        uri=master.uri,
        sha256=master.sha256,
        source_sha256=master.sha256,
        media_info={},
    )


# --- generation ---------------------------------------------------------------------------------------


def scene_seed(brief: Brief, scene: Scene, language: str, attempt: int) -> int:
    """The scene's own seed, or one drawn from its campaign, id and language; each attempt moves it on."""
    base = scene.seed
    if base is None:
        digest = hashlib.sha256(f"{brief.campaign_id}/{scene.id}/{language}".encode()).digest()
        base = int.from_bytes(digest[:4], "big")
    return (base + attempt * SEED_STRIDE) % 2**31


def scene_prompt(brief: Brief, scene: Scene) -> str:
    prompt = f"{scene.prompt} Brand: {brief.brand.name}."
    return prompt + (f" Tone: {brief.brand.tone}." if brief.brand.tone else "")


def scene_references(
    scene: Scene, language: str, references: Sequence[IngestedReference], voice: bool = True
) -> list[IngestedReference]:
    """The references a scene's generation takes: those it names, the previous master it continues, and
    (``voice``) its on-screen lines in ``language`` (tasks/speak.py), which drive the picture."""
    spoken = voice_id(scene.id, language)
    return [
        ref
        for ref in references
        if ref.id in scene.references
        or (scene.continue_previous and ref.role == "continue" and ":" in ref.id)
        or (voice and ref.id == spoken)
    ]


def generation_request(
    brief: Brief, scene: Scene, language: str, references: Sequence[tuple[IngestedReference, Path]], attempt: int
) -> GenerationRequest:
    """The scene's request: ``references`` are those `scene_references` chose, each with its local file."""
    master, generation = brief.master, brief.generation
    return GenerationRequest(
        scene_id=scene.id,
        language=language,
        prompt=scene_prompt(brief, scene),
        duration_s=scene.duration_s,
        width=master.width,
        height=master.height,
        fps=master.fps,
        sample_rate=master.sample_rate,
        seed=scene_seed(brief, scene, language, attempt),
        dialogue=tuple((line.speaker, line.text[language]) for line in scene.dialogue),
        sound_cues=tuple((cue.at_s, cue.description) for cue in scene.sound_cues),
        references=tuple(
            ReferenceInput(id=ref.id, kind=ref.kind, role=ref.role, path=path) for ref, path in references
        ),
        negative_prompt=generation.negative_prompt,
        steps=generation.steps,
        video_guidance=generation.video_guidance,
        audio_guidance=generation.audio_guidance,
        sync_guidance=generation.sync_guidance,
    )


def request_identity(request: GenerationRequest, references: Sequence[IngestedReference]) -> dict[str, Any]:
    """The request as it affects the output (its cache identity): references by content, not by path."""
    shas = {ref.id: ref.sha256 for ref in references}
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__ if name != "references"}
    fields["references"] = [(ref.id, ref.kind, ref.role, shas[ref.id]) for ref in request.references]
    return fields


def generation_parameters(request: GenerationRequest, attempt: int) -> dict[str, Any]:
    """What a generation's database row records of how it was made."""
    names = ("steps", "video_guidance", "audio_guidance", "sync_guidance", "width", "height", "fps", "duration_s")
    return {**{name: getattr(request, name) for name in names}, "attempt": attempt}


# --- speech -------------------------------------------------------------------------------------------


class SpokenLine(NamedTuple):
    start_s: float  # on the scene's clock
    text: str  # in the line's language
    voice: Voice
    on_screen: bool


def has_own_voice(brief: Brief, scene: Scene) -> bool:
    """Whether the scene names a voice reference of the brief (which it keeps, and nothing is spoken)."""
    return any(brief.reference(ref_id).role == "voice" for ref_id in scene.references)


def line_voice(brief: Brief, speaker: str, language: str) -> Voice:
    """How ``speaker`` sounds in ``language``: the brief's voices entry over the language's defaults."""
    given = brief.voice_of(speaker)
    name = given.voice.get(language) or default_voice_name(language)
    return Voice(language=language, name=name, variant=given.variant, rate_wpm=given.rate_wpm, pitch=given.pitch)


def spoken_lines(brief: Brief, scene: Scene, language: str) -> list[SpokenLine]:
    """The scene's dialogue in ``language``, each line where it starts and in its speaker's voice."""
    starts = line_starts([line.start_s for line in scene.dialogue], scene.duration_s)
    return [
        SpokenLine(start, line.text[language], line_voice(brief, line.speaker, language), line.on_screen)
        for start, line in zip(starts, scene.dialogue, strict=True)
    ]


# --- the edit -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpotEdit:
    """How a language's scenes become its spot: the music track under them (None: no music layer),
    whether the cuts move onto its beats and how far they may, and the layered mix."""

    music: IngestedReference | None
    beat_sync: bool
    snap_tolerance_s: float
    mix: MixSettings


def spot_edit(brief: Brief, references: Sequence[IngestedReference]) -> SpotEdit:
    """The brief's music settings (the defaults when it has none) over the ingested ``references``."""
    music = brief.music or Music.model_validate({})
    track = next((ref for ref in references if ref.id == music.reference and ref.role == "music"), None)
    return SpotEdit(track, track is not None and music.beat_sync, music.snap_tolerance_s, mix_settings(music))


def mix_settings(music: Music) -> MixSettings:
    """The layered mix's levels: the brief's per-layer gains, the music's gain and its ducking."""
    layers = music.layers
    return MixSettings(
        dialogue_db=layers.dialogue_db,
        effects_db=layers.effects_db,
        ambience_db=layers.ambience_db,
        music_db=music.gain_db,
        duck_db=music.duck_db,
    )


def caption_lines(brief: Brief, language: str, scene_starts_s: Sequence[float]) -> list[DialogueTiming]:
    """The brief's dialogue on the spot's clock: each scene where the edit put it (``scene_starts_s``, one
    per scene), or end to end by the scenes' durations when the edit did not say."""
    scenes = brief.scenes
    starts = list(scene_starts_s) if len(scene_starts_s) == len(scenes) else None
    lines, offset = [], 0.0
    for index, scene in enumerate(scenes):
        start = starts[index] if starts else offset
        end = starts[index + 1] if starts and index + 1 < len(starts) else start + scene.duration_s
        lines += [
            DialogueTiming(line.text[language], start, end, line.start_s)
            for line in scene.dialogue
            if language in line.text
        ]
        offset += scene.duration_s
    return lines


# --- QA -----------------------------------------------------------------------------------------------


def master_expectation(brief: Brief, scene: Scene) -> Expectation:
    """A master: the brief's master format and the scene's length; a music bed goes under it later."""
    master = brief.master
    bed_under = brief.music is not None and brief.music.reference is not None
    return Expectation.for_master(master.width, master.height, master.fps, scene.duration_s, bed_under=bed_under)


def deliverable_expectation(brief: Brief, spec: PlatformSpec, duration_s: float) -> Expectation:
    """A deliverable: its platform's spec, the spot's length, the brief's loudness tolerance."""
    return Expectation.for_platform(spec, duration_s, loudness_tolerance_lu=brief.qa.loudness_tolerance_lu)


def sync_expectation(brief: Brief, scene: Scene, master: MasterRecord) -> SyncExpectation | None:
    """What one master's sync is judged against, from the brief's ``qa`` thresholds and what the scene
    holds (None when the brief turns sync checks off)."""
    qa = brief.qa
    if not qa.sync_checks:
        return None
    return SyncExpectation(
        max_audio_early_ms=qa.max_audio_early_ms,
        max_audio_late_ms=qa.max_audio_late_ms,
        min_lipsync_confidence=qa.min_lipsync_confidence,
        min_sfx_confidence=qa.min_sfx_confidence,
        speaker_expected=any(line.on_screen for line in scene.dialogue),
        speech_expected=bool(scene.dialogue),
        effects_expected=bool(scene.sound_cues),
        events_s=tuple(master.event_times_s),
    )
