"""generate_scene: one scene in one language through the configured `Generator`, stored as a master MP4."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from syncreel.media.compose import SceneReferences, compose_scene, read_image, video_track
from syncreel.media.encode import write_master_clip, write_stems
from syncreel.media.mix import RATE as STEMS_RATE
from syncreel.media.mix import read_stems
from syncreel.media.speech import with_stem
from syncreel.model.backends import get_generator
from syncreel.model.generator import GenerationRequest, Generator, ReferenceInput
from syncreel.schemas.brief import Brief, Scene
from syncreel.schemas.clips import MasterClip
from syncreel.schemas.records import CampaignPlan, IngestedReference, MasterRecord
from syncreel.schemas.settings import Settings
from syncreel.store import runs
from syncreel.store.models import SceneStatus
from syncreel.tasks.progress import emit
from syncreel.tasks.runtime import (
    Runtime,
    cache_key,
    code_fingerprint,
    get_runtime,
    memoized,
    owner_id,
    store_asset,
    to_record,
)
from syncreel.tasks.speak import dialogue_id, voice_id

from syncreel import media

# A prime stride: each regeneration attempt gets an unrelated seed, and the same one on every re-run.
_SEED_STRIDE = 1_000_003
# A scene job already past generation: a cached re-run leaves it as it is.
SETTLED = (SceneStatus.generated, SceneStatus.passed, SceneStatus.needs_review)


def scene_seed(brief: Brief, scene: Scene, language: str, attempt: int) -> int:
    base = scene.seed
    if base is None:
        digest = hashlib.sha256(f"{brief.campaign_id}/{scene.id}/{language}".encode()).digest()
        base = int.from_bytes(digest[:4], "big")
    return (base + attempt * _SEED_STRIDE) % 2**31


def fault_shift_ms(settings: Settings, attempt: int) -> float:
    """The test hook's audio shift for this attempt (schemas.settings: ``fault_audio_shift_*``)."""
    limit = settings.fault_audio_shift_attempts
    return settings.fault_audio_shift_ms if limit == 0 or attempt < limit else 0.0


def shifted_audio(clip: MasterClip, shift_ms: float) -> MasterClip:
    """The clip with its sound (mix and stems) moved ``shift_ms`` later, silence filling the gap; the
    reported event times stay where the picture has them."""
    shift = int(round(shift_ms / 1000 * clip.sample_rate))

    def moved(audio: np.ndarray) -> np.ndarray:
        out = np.zeros_like(audio)
        if shift >= 0:
            out[:, shift:] = audio[:, : audio.shape[1] - shift]
        else:
            out[:, :shift] = audio[:, -shift:]
        return out

    return replace(
        clip,
        audio=moved(clip.audio),
        stems=None if clip.stems is None else moved(clip.stems),
        parameters={**clip.parameters, "fault_audio_shift_ms": shift_ms},
    )


def continuation_of(master: MasterRecord) -> IngestedReference:
    """The previous scene's master as the ``continue`` reference of the scene that extends it (an id no
    brief reference can have: brief ids allow no ':')."""
    return IngestedReference(
        id=f"{master.scene_id}:last-frames",
        kind="video",
        role="continue",
        uri=master.uri,
        sha256=master.sha256,
        source_sha256=master.sha256,
        media_info={},
    )


def takes_voice(generator: Generator) -> bool:
    """Whether the backend is driven by a spoken voice (audio-to-video). One that speaks the dialogue's
    text itself says so with ``speaks_text`` (or takes no ``voice`` role) and gets the text alone."""
    return "voice" in generator.supported_roles and not getattr(generator, "speaks_text", False)


def build_request(
    rt: Runtime,
    plan: CampaignPlan,
    scene: Scene,
    language: str,
    references: list[IngestedReference],
    attempt: int,
    voice: bool = True,
) -> GenerationRequest:
    """The scene's request. ``references``: the brief's, plus the previous master to continue and the
    scene's spoken lines (tasks/speak.py) where there are: its on-screen ``voice`` drives the picture;
    ``voice=False`` leaves it out (a backend that speaks the text itself). The whole ``dialogue`` track
    is not the backend's: it becomes the master's dialogue stem (`with_dialogue_stem`)."""
    brief = plan.brief
    brand = brief.brand
    prompt = f"{scene.prompt} Brand: {brand.name}."
    if brand.tone:
        prompt += f" Tone: {brand.tone}."
    spoken = voice_id(scene.id, language)
    used = [
        ref
        for ref in references
        if ref.id in scene.references
        or (scene.continue_previous and ref.role == "continue" and ":" in ref.id)
        or (voice and ref.id == spoken)
    ]
    return GenerationRequest(
        scene_id=scene.id,
        language=language,
        prompt=prompt,
        duration_s=scene.duration_s,
        width=brief.master.width,
        height=brief.master.height,
        fps=brief.master.fps,
        sample_rate=brief.master.sample_rate,
        seed=scene_seed(brief, scene, language, attempt),
        dialogue=tuple((line.speaker, line.text[language]) for line in scene.dialogue),
        sound_cues=tuple((cue.at_s, cue.description) for cue in scene.sound_cues),
        references=tuple(
            ReferenceInput(id=ref.id, kind=ref.kind, role=ref.role, path=rt.store.fetch(ref.uri)) for ref in used
        ),
        negative_prompt=brief.generation.negative_prompt,
        steps=brief.generation.steps,
        video_guidance=brief.generation.video_guidance,
        audio_guidance=brief.generation.audio_guidance,
        sync_guidance=brief.generation.sync_guidance,
    )


def spoken_dialogue(scene_id: str, language: str, references: list[IngestedReference]) -> IngestedReference | None:
    """The scene's whole spoken dialogue in ``language`` (tasks/speak.py), when it has one."""
    return next((ref for ref in references if ref.id == dialogue_id(scene_id, language)), None)


def dialogue_stem(request: GenerationRequest, spoken: Path | None) -> str:
    """What the master's dialogue stem is: the scene's spoken lines ("spoken", ``spoken`` their track),
    silence for a scene with no dialogue and no voice ("silent"), or what the backend made of a brief's
    voice reference or of the dialogue's text ("generated")."""
    if spoken is not None:
        return "spoken"
    if not request.dialogue and not any(ref.role == "voice" for ref in request.references):
        return "silent"
    return "generated"


def with_dialogue_stem(clip: MasterClip, request: GenerationRequest, spoken: Path | None = None) -> MasterClip:
    """The clip whose dialogue stem is ``spoken``, the scene's whole dialogue as spoken (the backend's
    rendering of its on-screen lines is replaced by the track it was driven by; voice-overs are laid in
    here), or silence for a scene with no dialogue: no babble. A backend without stems is left as it is."""
    kind = dialogue_stem(request, spoken)
    if clip.stems is None or "dialogue" not in clip.stem_names or kind == "generated":
        return clip
    track = None
    if spoken is not None:
        track = read_stems(spoken)[0]
        if clip.sample_rate != STEMS_RATE:
            track = media.speech.resample(track, STEMS_RATE, clip.sample_rate)
    stems, mix = with_stem(clip.stems, clip.stem_names, "dialogue", track)
    return replace(clip, stems=stems, audio=mix[None], parameters={**clip.parameters, "dialogue_stem": kind})


# Image roles the compositor puts on screen (media/compose.py), and those it sets them over.
COMPOSED_ROLES = ("character", "product")
SET_ROLES = ("background", "style")


def with_references_on_screen(clip: MasterClip, request: GenerationRequest) -> MasterClip:
    """The clip with the scene's presenter photo and product packshot composed at master size over its
    picture, moved by the backend's own frames (``native_frames``): media.compose. The composition (what
    was placed where, frame by frame) goes into the clip's parameters, and the composed roles are no
    longer unused. A backend that renders at master size itself, or a scene with neither image, is left
    as it is."""
    images = {ref.role: ref for ref in request.references if ref.kind == "image"}
    if clip.native_frames is None or not any(role in images for role in COMPOSED_ROLES):
        return clip
    backdrop = next((images[role] for role in SET_ROLES if role in images), None)
    references = SceneReferences(
        character=read_image(images["character"].path) if "character" in images else None,
        product=read_image(images["product"].path) if "product" in images else None,
        background=read_image(backdrop.path) if backdrop is not None else None,
    )
    motion = next((ref for ref in request.references if ref.role == "motion" and ref.kind == "video"), None)
    hopping = None
    if references.character is None and motion is not None:  # a product moved as its motion clip moves
        hopping = video_track(motion.path, clip.frames.shape[0], clip.fps)
    composition = compose_scene(
        clip.frames,
        clip.native_frames,
        references,
        motion_track=hopping,
        events_s=clip.event_times_s,
        fps=clip.fps,
        inplace=True,
    )
    composed = set(COMPOSED_ROLES) | ({backdrop.role} if backdrop is not None else set())
    return replace(
        clip,
        frames=composition.frames,
        unused_reference_roles=tuple(role for role in clip.unused_reference_roles if role not in composed),
        parameters={**clip.parameters, "composition": composition.to_dict()},
    )


def _request_identity(request: GenerationRequest, references: list[IngestedReference]) -> dict:
    """The request as it affects the output: references by content, not by local path."""
    shas = {ref.id: ref.sha256 for ref in references}
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__ if name != "references"}
    fields["references"] = [(ref.id, ref.kind, ref.role, shas[ref.id]) for ref in request.references]
    return fields


# No Prefect tag: a tagged task asks the server for a tag concurrency slot before every run (one write,
# and a 2 s back-off whenever a SQLite-backed server is busy) even when no such limit exists. GPUs are
# bounded by the global limit that generate-scene holds (flows/scene.py, GPU_LIMIT); in-process
# generation runs one scene at a time in its campaign.
@task(
    name="generate_scene",
    cache_policy=NO_CACHE,
    timeout_seconds=3600,
    task_run_name="generate-{scene_id}-{language}-a{attempt}",
)
def generate_scene(
    plan: CampaignPlan, scene_id: str, language: str, references: list[IngestedReference], attempt: int = 0
) -> MasterRecord:
    rt = get_runtime()
    item = f"{scene_id}/{language}"
    emit("generate", item, "started", f"attempt {attempt}")
    scene = next(s for s in plan.brief.scenes if s.id == scene_id)
    generator = get_generator(rt.settings.backend, rt.settings.generator_options())
    driven = takes_voice(generator)
    request = build_request(rt, plan, scene, language, references, attempt, voice=driven)
    dialogue = spoken_dialogue(scene_id, language, references) if driven else None
    spoken = rt.store.fetch(dialogue.uri) if dialogue is not None else None
    shift_ms = fault_shift_ms(rt.settings, attempt)
    key = cache_key(
        "generate",
        _request_identity(request, references),
        generator.name,
        generator.model_version,
        code_fingerprint(media.encode, media.speech, media.compose),
        {"dialogue_stem": dialogue_stem(request, spoken), "dialogue": dialogue.sha256 if dialogue else None},
        *([{"fault_audio_shift_ms": shift_ms}] if shift_ms else []),
    )
    with rt.session() as session:
        runs.heartbeat(session, plan.run_id, owner_id())
        job_id = runs.ensure_scene_job(session, plan.run_id, scene_id, language).id

    finish: dict = {}

    def produce() -> tuple[dict, int]:
        with rt.session() as session:
            runs.set_scene_status(session, job_id, SceneStatus.generating)
            generation = runs.start_generation(
                session,
                cache_key=key,
                run_id=plan.run_id,
                scene_id=scene_id,
                language=language,
                backend=generator.name,
                model_version=generator.model_version,
                seed=request.seed,
                parameters={
                    "steps": request.steps,
                    "video_guidance": request.video_guidance,
                    "audio_guidance": request.audio_guidance,
                    "sync_guidance": request.sync_guidance,
                    "width": request.width,
                    "height": request.height,
                    "fps": request.fps,
                    "duration_s": request.duration_s,
                    "attempt": attempt,
                },
            )
            generation_id = generation.id
        started = time.perf_counter()
        try:
            clip = with_references_on_screen(with_dialogue_stem(generator.generate(request), request, spoken), request)
            if shift_ms:
                clip = shifted_audio(clip, shift_ms)
            with rt.scratch(f"master-{scene_id}-{language}") as scratch:
                info = write_master_clip(clip, scratch / "master.mp4")
                stored, asset_id = store_asset(rt, scratch / "master.mp4", "master", info.to_dict())
                stems_uri = None
                if clip.stems is not None:  # the mix's parts, one channel each, for later mixing
                    write_stems(clip.stems, clip.sample_rate, scratch / "stems.wav")
                    meta = {"channels": list(clip.stem_names), "sample_rate": clip.sample_rate}
                    stems_uri = store_asset(rt, scratch / "stems.wav", "stems", meta)[0].uri
        except Exception as exc:
            with rt.session() as session:
                runs.finish_generation(
                    session, generation_id, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - started
                )
                runs.set_scene_status(session, job_id, SceneStatus.failed, error=str(exc))
            emit("generate", item, "failed", str(exc))
            raise
        finish.update(  # committed with the output record (see memoized): succeeded means remembered
            generation_id=generation_id,
            asset_id=asset_id,
            seconds=time.perf_counter() - started,
            parameters_update={
                **clip.parameters,
                "unused_reference_roles": list(clip.unused_reference_roles),
                "event_times_s": list(clip.event_times_s),
            },
        )
        record = {
            "uri": stored.uri,
            "sha256": stored.sha256,
            "asset_id": asset_id,
            "generation_id": generation_id,
            "backend": clip.backend,
            "model_version": clip.model_version,
            "seed": clip.seed,
            "duration_s": info.duration_s,
            "width": info.video.width,
            "height": info.video.height,
            "fps": info.video.fps,
            "unused_reference_roles": list(clip.unused_reference_roles),
            "event_times_s": list(clip.event_times_s),
            "stems_uri": stems_uri,
            "stem_names": list(clip.stem_names),
        }
        return record, asset_id

    record, cached = memoized(rt, "generate", key, produce, lambda session: runs.finish_generation(session, **finish))
    with rt.session() as session:
        job = runs.ensure_scene_job(session, plan.run_id, scene_id, language)
        if job.status not in SETTLED or job.generation_id != record["generation_id"]:
            runs.set_scene_status(session, job_id, SceneStatus.generated, generation_id=record["generation_id"])
    emit("generate", item, "cached" if cached else "done", f"seed {record['seed']}")
    return to_record(
        MasterRecord, record, scene_id=scene_id, language=language, generation_key=key, cached=cached, attempt=attempt
    )
