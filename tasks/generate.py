"""generate_scene: one scene in one language through the configured `Generator`, stored as a master MP4."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from syncreel import audio, media
from syncreel.audio import resample
from syncreel.media.compose import SceneReferences, compose_scene, read_image, video_track
from syncreel.media.encode import write_master_clip, write_stems
from syncreel.media.mix import RATE as STEMS_RATE
from syncreel.media.mix import read_stems
from syncreel.media.speech import with_stem
from syncreel.model.backends import get_generator
from syncreel.model.generator import GenerationRequest, Generator
from syncreel.schemas.brief import Scene
from syncreel.schemas.clips import MasterClip
from syncreel.schemas.records import CampaignPlan, IngestedReference, MasterRecord
from syncreel.schemas.settings import Settings
from syncreel.store import runs
from syncreel.tasks.inputs import (
    dialogue_id,
    generation_parameters,
    generation_request,
    request_identity,
    scene_references,
)
from syncreel.tasks.stage import (
    CONNECTION_DELAYS,
    CONNECTION_RETRIES,
    Runtime,
    Stage,
    cache_key,
    clip_fields,
    code_fingerprint,
    connection_dropped,
    recall,
    remember,
    store_asset,
    to_record,
)


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
    """The scene's request (tasks/inputs.py), its references fetched from the store. ``references``: the
    brief's, plus the previous master to continue and the scene's spoken lines where there are: its
    on-screen ``voice`` drives the picture; ``voice=False`` leaves it out (a backend that speaks the text
    itself). The whole ``dialogue`` track is not the backend's: it becomes the master's dialogue stem
    (`with_dialogue_stem`)."""
    used = scene_references(scene, language, references, voice)
    return generation_request(plan.brief, scene, language, [(ref, rt.store.fetch(ref.uri)) for ref in used], attempt)


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
            track = resample(track, STEMS_RATE, clip.sample_rate)
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


@dataclass(frozen=True)
class Take:
    """One attempt at a scene, ready to generate: the backend and its request, the spoken dialogue that
    becomes the master's dialogue stem, the test hook's audio shift, and the output's cache key."""

    run_id: str
    attempt: int
    generator: Generator
    request: GenerationRequest
    spoken: Path | None
    shift_ms: float
    key: str


def _prepare(
    rt: Runtime, plan: CampaignPlan, scene_id: str, language: str, references: list[IngestedReference], attempt: int
) -> Take:
    generator = get_generator(rt.settings.backend, rt.settings.generator_options())
    driven = takes_voice(generator)
    request = build_request(rt, plan, plan.scene(scene_id), language, references, attempt, voice=driven)
    dialogue = spoken_dialogue(scene_id, language, references) if driven else None
    spoken = rt.store.fetch(dialogue.uri) if dialogue is not None else None
    shift_ms = fault_shift_ms(rt.settings, attempt)
    key = cache_key(
        "generate",
        request_identity(request, references),
        generator.name,
        generator.model_version,
        code_fingerprint(media.encode, media.speech, media.compose, audio),  # audio: the one resampler
        {"dialogue_stem": dialogue_stem(request, spoken), "dialogue": dialogue.sha256 if dialogue else None},
        *([{"fault_audio_shift_ms": shift_ms}] if shift_ms else []),
    )
    return Take(plan.run_id, attempt, generator, request, spoken, shift_ms, key)


# No Prefect tag: a tagged task asks the server for a tag concurrency slot before every run (one write,
# and a 2 s back-off whenever a SQLite-backed server is busy) even when no such limit exists. GPUs are
# bounded by the global limit that generate-scene holds (flows/scene.py, GPU_LIMIT); in-process
# generation runs one scene at a time in its campaign.
@task(
    name="generate_scene",
    cache_policy=NO_CACHE,
    timeout_seconds=3600,
    task_run_name="generate-{scene_id}-{language}-a{attempt}",
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def generate_scene(
    plan: CampaignPlan, scene_id: str, language: str, references: list[IngestedReference], attempt: int = 0
) -> MasterRecord:
    stage = Stage("generate", f"{scene_id}/{language}", plan=plan, scene=scene_id, language=language)
    stage.start(f"attempt {attempt}")
    take = _prepare(stage.rt, plan, scene_id, language, references, attempt)
    record = recall(stage.rt, take.key)
    cached = record is not None
    if record is None:
        record = _generate(stage, take)
    with stage.rt.session() as session:
        runs.settle_scene_job(session, plan.run_id, scene_id, language, record["generation_id"])
    stage.finish(cached, f"seed {record['seed']}")
    return to_record(
        MasterRecord,
        record,
        scene_id=scene_id,
        language=language,
        generation_key=take.key,
        cached=cached,
        attempt=attempt,
    )


def _generate(stage: Stage, take: Take) -> dict[str, Any]:
    """Generate the master and store it; its generation row is marked succeeded in the same transaction
    that remembers the output (a crash leaves neither), or failed when it raises."""
    rt, request = stage.rt, take.request
    with rt.session() as session:
        job_id, generation_id = runs.begin_generation(
            session,
            run_id=take.run_id,
            scene_id=request.scene_id,
            language=request.language,
            cache_key=take.key,
            backend=take.generator.name,
            model_version=take.generator.model_version,
            seed=request.seed,
            parameters=generation_parameters(request, take.attempt),
        )
    started = time.perf_counter()
    try:
        clip = _master_clip(take)
        stored = _store_master(rt, clip, f"master-{request.scene_id}-{request.language}")
        record = {**stored, "generation_id": generation_id}
    except Exception as exc:
        with rt.session() as session:
            runs.fail_generation(session, job_id, generation_id, error=exc, seconds=time.perf_counter() - started)
        stage.fail(str(exc))
        raise
    seconds = time.perf_counter() - started
    made = {
        **clip.parameters,
        "unused_reference_roles": list(clip.unused_reference_roles),
        "event_times_s": list(clip.event_times_s),
    }

    def succeeded(session: Session) -> None:
        runs.finish_generation(
            session, generation_id, asset_id=record["asset_id"], seconds=seconds, parameters_update=made
        )

    return remember(rt, take.key, record, settle=succeeded)


def _master_clip(take: Take) -> MasterClip:
    """The backend's clip with the scene's dialogue as its dialogue stem and its references on screen."""
    request = take.request
    clip = take.generator.generate(request)
    clip = with_references_on_screen(with_dialogue_stem(clip, request, take.spoken), request)
    return shifted_audio(clip, take.shift_ms) if take.shift_ms else clip


def _store_master(rt: Runtime, clip: MasterClip, name: str) -> dict[str, Any]:
    """The master MP4 and, when the backend makes them, its stems (one channel each, for the mix) in the
    store; the master's output record."""
    with rt.scratch(name) as scratch:
        info = write_master_clip(clip, scratch / "master.mp4")
        stored = store_asset(rt, scratch / "master.mp4", "master", info.to_dict())
        stems_uri = None
        if clip.stems is not None:
            write_stems(clip.stems, clip.sample_rate, scratch / "stems.wav")
            meta = {"channels": list(clip.stem_names), "sample_rate": clip.sample_rate}
            stems_uri = store_asset(rt, scratch / "stems.wav", "stems", meta).uri
    return {
        **stored.fields(),
        **clip_fields(info),
        "backend": clip.backend,
        "model_version": clip.model_version,
        "seed": clip.seed,
        "unused_reference_roles": list(clip.unused_reference_roles),
        "event_times_s": list(clip.event_times_s),
        "stems_uri": stems_uri,
        "stem_names": list(clip.stem_names),
    }
