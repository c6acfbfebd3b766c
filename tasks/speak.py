"""speak_lines: a scene's dialogue in one language, spoken (media/speech.py) into a scene-long voice track.

Each line starts at its ``start_s`` (voice-overs included), in its speaker's voice from the brief's
``voices`` (espeak-ng, or the operator's Piper voice for that language, ``SYNCREEL_PIPER_VOICES``). The
track is stored in the asset store and becomes the scene's ``voice`` reference: the generator's
audio-to-video mode is driven by it and its dialogue stem is the track itself (tasks/generate.py). A
scene without dialogue, or with a voice reference of its own, is left as it is.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE

import media.speech
import model.speech
from media.encode import write_stems
from media.speech import Voice, default_voice_name, dialogue_track, engine_for, line_starts
from schemas.brief import Brief, Scene
from schemas.records import CampaignPlan, IngestedReference
from tasks.progress import emit
from tasks.runtime import cache_key, code_fingerprint, get_runtime, memoized, store_asset


def voice_id(scene_id: str, language: str) -> str:
    """The id of a scene's spoken lines as a reference: no brief id can hold a ':' (continuation_of
    does the same), and the language is in it, so one list can carry every scene's voices."""
    return f"{scene_id}:voice:{language}"


def is_spoken(ref_id: str) -> bool:
    """Whether a reference id is spoken lines made by this stage (not a brief's voice reference)."""
    return ":voice:" in ref_id


def has_own_voice(brief: Brief, scene: Scene) -> bool:
    """Whether the scene names a voice reference of the brief (which it keeps, and nothing is spoken)."""
    return any(brief.reference(ref_id).role == "voice" for ref_id in scene.references)


def line_voice(brief: Brief, speaker: str, language: str) -> Voice:
    """How ``speaker`` sounds in ``language``: the brief's voices entry over the language's defaults."""
    given = brief.voice_of(speaker)
    name = given.voice.get(language) or default_voice_name(language)
    return Voice(language=language, name=name, variant=given.variant, rate_wpm=given.rate_wpm, pitch=given.pitch)


@task(name="speak_lines", cache_policy=NO_CACHE, task_run_name="speak-{scene_id}-{language}")
def speak_lines(plan: CampaignPlan, scene_id: str, language: str) -> IngestedReference | None:
    """The scene's voice track in ``language`` as a ``voice`` reference, or None when there is nothing to
    speak (no dialogue, or the scene's own voice reference)."""
    brief = plan.brief
    scene = next(s for s in brief.scenes if s.id == scene_id)
    item = f"{scene_id}/{language}"
    if not scene.dialogue or has_own_voice(brief, scene):
        emit("speak", item, "done", "no dialogue" if not scene.dialogue else "the scene's own voice reference")
        return None
    rt = get_runtime()
    emit("speak", item, "started")
    engine = engine_for(language, rt.settings.piper_voices)
    starts = line_starts([line.start_s for line in scene.dialogue], scene.duration_s)
    lines = [
        (start, line.text[language], line_voice(brief, line.speaker, language))
        for start, line in zip(starts, scene.dialogue, strict=True)
    ]
    sample_rate = brief.master.sample_rate
    key = cache_key(
        "speak",
        [(start, text, asdict(voice)) for start, text, voice in lines],
        scene.duration_s,
        sample_rate,
        engine.identity,
        code_fingerprint(media.speech, model.speech),
    )

    def produce() -> tuple[dict, int]:
        spoken = [(start, engine.speak(text, voice, sample_rate)) for start, text, voice in lines]
        track, cut = dialogue_track(spoken, scene.duration_s, sample_rate)
        with rt.scratch(f"voice-{scene_id}-{language}") as scratch:
            write_stems(track[None], sample_rate, scratch / "voice.wav")
            info = {"sample_rate": sample_rate, "channels": 1, "duration_s": scene.duration_s}
            stored, asset_id = store_asset(rt, scratch / "voice.wav", "voice", info)
        record = {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "engine": engine.identity,
            "lines": [
                {"start_s": start, "seconds": round(wave.size / sample_rate, 3), "cut_s": cut_s}
                for (start, wave), cut_s in zip(spoken, cut, strict=True)
            ],
        }
        return record, asset_id

    record, cached = memoized(rt, "speak", key, produce)
    seconds = ", ".join(f"{line['seconds']:.2f} s at {line['start_s']:g} s" for line in record["lines"])
    emit("speak", item, "cached" if cached else "done", seconds)
    return IngestedReference(
        id=voice_id(scene_id, language),
        kind="audio",
        role="voice",
        uri=record["uri"],
        sha256=record["sha256"],
        source_sha256=record["sha256"],
        media_info={"sample_rate": sample_rate, "channels": 1},
        analysis={"engine": record["engine"], "lines": record["lines"]},
    )
