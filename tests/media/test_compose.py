"""The compositor (media/compose.py): the brief's presenter and packshot on screen at master size, moved by
the model's own small frames — and the model stays the source of sync: the same composition held still
fails the lip-sync gate that the model's motion passes. Offline; small frames, a few seconds of clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from syncreel.media.compose import (
    Composition,
    FaceMotion,
    Layout,
    ObjectTrack,
    SceneReferences,
    compose_scene,
    face_motion,
    fitted_model_picture,
    keyed,
    laplacian_variance,
    object_track,
    packshot_psnr,
    read_image,
    scaled,
    video_track,
)
from syncreel.media.consistency import appearance
from syncreel.media.encode import write_master
from syncreel.media.faces import FaceDetector
from syncreel.media.speech import EspeakEngine, Voice, dialogue_track
from syncreel.media.syncqa import SyncExpectation, SyncReport, score_sync
from syncreel.model.generator import GenerationRequest, ReferenceInput
from syncreel.model.world import bounce, face, loudness_envelope, mouth_mask, thump
from syncreel.schemas.clips import MasterClip
from syncreel.tasks.generate import with_references_on_screen

ASSETS = Path(__file__).resolve().parents[2] / "examples" / "briefs" / "assets"
FPS, RATE = 24.0, 48_000
NATIVE = 48  # the built-in model's picture size
HEIGHT, WIDTH = 216, 384  # a small 16:9 master: the face is found and measured at this size
DURATION_S = 4.0
# Words with pauses between them, over most of the clip: speech the mouth can be seen to follow.
WORDS = ((0.25, "Summer"), (1.0, "tastes lighter,"), (2.0, "with Lumen"), (3.05, "Fizz."))
LIPS = np.array((0.22, 0.04, 0.05), np.float32)  # the world's open-mouth colour


def _talking_face(speech: np.ndarray, frames: int) -> np.ndarray:
    """What the built-in model draws for a talking scene (model/world.py's rule, which it was trained
    on): its face at 48 px, the mouth opening with the loudness of the speech, frame by frame; uint8."""
    times = (np.arange(frames) + 0.5) / FPS
    opening = np.clip(loudness_envelope(speech, RATE, times) * 1.3 - 0.1, 0.0, 1.0)
    photo = face(NATIVE)
    pictures = [(1 - m) * photo + m * LIPS for m in (mouth_mask(NATIVE, o)[..., None] for o in opening)]
    return np.round(np.stack(pictures) * 255).astype(np.uint8)


@dataclass
class Presented:
    photo: np.ndarray
    speech: np.ndarray
    driven: Composition
    still: Composition
    driven_path: Path
    still_path: Path


def _sync(path: Path) -> SyncReport:
    return score_sync(path, SyncExpectation(speaker_expected=True, speech_expected=True))


@pytest.fixture(scope="module")
def presented(tmp_path_factory: pytest.TempPathFactory) -> Presented:
    folder = tmp_path_factory.mktemp("presenter")
    engine, voice = EspeakEngine(), Voice("en", "en")
    speech, _ = dialogue_track([(at, engine.speak(text, voice, RATE)) for at, text in WORDS], DURATION_S, RATE)
    frames = round(DURATION_S * FPS)
    native = _talking_face(speech, frames)
    layout = Layout(HEIGHT, WIDTH)
    model_frames = np.stack([fitted_model_picture(picture, layout) for picture in native])
    photo = read_image(ASSETS / "presenter.png")
    references = SceneReferences(character=photo)
    driven = compose_scene(model_frames, native, references)
    still = compose_scene(model_frames, native, references, face=FaceMotion.still(frames))
    paths = []
    for name, composition in (("driven", driven), ("still", still)):
        paths.append(folder / f"{name}.mp4")
        write_master(composition.frames, speech[None], FPS, RATE, paths[-1])
    return Presented(photo, speech, driven, still, *paths)


def test_the_mouth_motion_is_read_from_the_model_frames_not_the_sound(presented: Presented) -> None:
    frames = presented.driven.frames.shape[0]
    native = _talking_face(presented.speech, frames)
    motion = face_motion(native)
    times = (np.arange(frames) + 0.5) / FPS
    drawn = np.clip(loudness_envelope(presented.speech, RATE, times) * 1.3 - 0.1, 0.0, 1.0)
    assert np.corrcoef(motion.opening, drawn)[0, 1] > 0.9
    assert np.abs(motion.shift).max() < 0.005 and np.abs(motion.scale - 1).max() < 0.005  # the face holds still
    # a model picture with the mouth shut throughout: nothing to open, whatever the sound says
    assert face_motion(np.repeat(native[:1], frames, axis=0)).opening.max() == 0.0
    assert presented.driven.report["character"]["face_found"] is True


def test_held_still_fails_the_lipsync_gate_and_the_model_motion_passes_it(presented: Presented) -> None:
    driven, still = _sync(presented.driven_path), _sync(presented.still_path)
    assert driven.lipsync_verdict.verdict == "pass", driven.lipsync_verdict.message
    assert abs(driven.lipsync.offset_ms) <= 45.0
    assert driven.lipsync.face_share >= 0.95
    assert still.lipsync_verdict.verdict == "fail", still.lipsync_verdict.message
    assert still.lipsync_verdict.status in {"static_mouth", "unsynced"}


def _decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def test_the_presenter_is_the_photo_sharp_in_every_frame(presented: Presented) -> None:
    detector = FaceDetector()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(presented.photo[..., :3]), format="rgb24")
    reference, found = appearance(frame, detector)
    assert found
    similarities = []
    for picture in _decoded(presented.driven_path):
        signature, found = appearance(picture, detector)
        if found:
            similarities.append(float(np.minimum(signature, reference).sum()))
    assert len(similarities) >= 0.95 * presented.driven.frames.shape[0]
    assert np.mean(np.array(similarities) >= 0.85) >= 0.95, np.percentile(similarities, [0, 5, 50])
    # sharpness: the placed photo against the photo resampled to the same scale
    placement = presented.driven.placements["character"][0]
    at_scale = scaled(presented.photo, placement.scale)[..., :3]
    frames = [p.to_ndarray(format="rgb24") for p in _decoded(presented.driven_path)]
    ratios = [
        laplacian_variance(f[placement.y : placement.y + placement.h, placement.x : placement.x + placement.w])
        / laplacian_variance(at_scale)
        for f in frames[:: max(1, len(frames) // 8)]
    ]
    assert min(ratios) >= 0.5, ratios


@pytest.fixture(scope="module")
def bouncing() -> tuple[np.ndarray, np.ndarray]:
    """A ball bouncing in the model's world (48 px) and its frames as the backend lays them out."""
    clip = bounce(np.random.default_rng(5), 3.0, FPS, NATIVE, 16_000)
    native = np.round((clip.frames + 1) * 127.5).astype(np.uint8)
    return native, np.stack([fitted_model_picture(picture, Layout(HEIGHT, WIDTH)) for picture in native])


def test_the_packshot_follows_the_model_object_pixel_for_pixel(bouncing, tmp_path: Path) -> None:
    native, model_frames = bouncing
    packshot = read_image(ASSETS / "can.png")
    assert packshot.shape[-1] == 4 and (packshot[..., 3] == 0).any()  # the example packshot has a matte
    composition = compose_scene(model_frames, native, SceneReferences(product=packshot))
    placements = composition.placements["product"]
    assert len(placements) == native.shape[0]
    assert len({p.scale for p in placements}) == 1  # one scale for the shot: one resample
    track = object_track(native)
    assert track.found.all()
    top, left = Layout(HEIGHT, WIDTH).origin
    side = Layout(HEIGHT, WIDTH).side
    for placement, bottom, centre in zip(placements, track.bottom_y, track.centre_x, strict=True):
        assert abs(placement.y + placement.h - (top + bottom * side)) <= 1
        assert abs(placement.x + placement.w / 2 - (left + centre * side)) <= 1
    assert np.ptp([p.y for p in placements]) > 0.2 * side  # it bounces
    assert all(packshot_psnr(composition.frames[p.frame], packshot, p) == float("inf") for p in placements)


def test_the_packshot_keeps_32_db_through_the_master_encode(bouncing, tmp_path: Path) -> None:
    """At the default master size (1280×720), one second: the H.264 master keeps the packshot's region
    within 32 dB of the reference under the recorded placement on at least 95% of the frames."""
    native = bouncing[0][: round(FPS)]
    layout = Layout(720, 1280)
    model_frames = np.stack([fitted_model_picture(picture, layout) for picture in native])
    packshot = read_image(ASSETS / "can.png")
    composition = compose_scene(model_frames, native, SceneReferences(product=packshot))
    placements = composition.placements["product"]
    write_master(composition.frames, np.zeros((1, RATE), np.float32), FPS, RATE, tmp_path / "p.mp4")
    decoded = [frame.to_ndarray(format="rgb24") for frame in _decoded(tmp_path / "p.mp4")]
    scores = [packshot_psnr(decoded[p.frame], packshot, p) for p in placements]
    shown = [s for s in scores if s is not None]
    assert len(shown) >= 0.95 * len(placements)
    assert np.mean(np.array(shown) >= 32.0) >= 0.95, np.percentile(shown, [0, 5, 50])


def test_a_packshot_whose_alpha_was_flattened_is_keyed_from_its_plain_border() -> None:
    packshot = read_image(ASSETS / "can.png")
    flattened = packshot.copy()
    flattened[..., 3] = 255  # what an RGB conversion keeps: the can on the white stored under the matte
    matte = keyed(flattened)[..., 3]
    assert (matte[packshot[..., 3] == 0] == 0).mean() > 0.99
    assert (matte[packshot[..., 3] == 255] == 255).mean() > 0.99


def _landings(bottom: np.ndarray, fps: float, min_fall: float = 0.0) -> np.ndarray:
    """Times (s) an object lands: frames its bottom reached falling by more than ``min_fall`` (not a
    take-off from rest, nor a slow settle) and leaves going up or stays, in the lowest fifth of its travel."""
    floor = np.max(bottom) - 0.2 * np.ptp(bottom)
    inner = np.arange(1, len(bottom) - 1)
    fell = (bottom[inner] > bottom[inner - 1] + min_fall) & (bottom[inner] >= bottom[inner + 1])
    return (inner[fell & (bottom[inner] >= floor)] + 0.5) / fps


def test_a_motion_reference_makes_the_product_hop_onto_the_model_sounds_and_nowhere_else(bouncing) -> None:
    """The packshot hops as the motion clip does, landing on the sounds the model made — close ones
    hop straight into the next, a lone one rebounds and settles — and lands nowhere else."""
    native, model_frames = bouncing
    texture = np.random.default_rng(1).integers(0, 256, native.shape, dtype=np.uint8)
    assert not object_track(texture).found.any()
    hopping = video_track(ASSETS / "bounce.mp4", len(native), FPS)
    assert len(_landings(hopping.bottom_y, FPS)) >= 4  # the example clip hops twice a second
    events = (0.9, 1.6, 2.5)
    composition = compose_scene(
        model_frames, texture, SceneReferences(product=read_image(ASSETS / "can.png")),
        motion_track=hopping, events_s=events, fps=FPS,
    )  # fmt: skip
    assert composition.report["product"]["motion"] == "motion reference, landings on the model's sounds"
    bottoms = np.array([p.y + p.h for p in composition.placements["product"]], float)
    landed = _landings(bottoms, FPS, min_fall=2)  # pixels: a settle creeps down 1-2 px a frame
    assert np.abs(landed - np.array(events)[:, None]).min(1).max() <= 1.5 / FPS  # a landing on each sound
    assert np.abs(landed[:, None] - np.array(events)).min(1).max() <= 1.5 / FPS  # ... and none elsewhere
    assert bottoms[-1] == bottoms.max()  # at rest on the floor after the last


def _hopping_clip(folder: Path, name: str, landings: tuple[float, ...], sounds: tuple[float, ...]) -> Path:
    """A packshot hopping onto ``landings`` over a still set, with a thump at each of ``sounds``."""
    frames = round(DURATION_S * FPS)
    rng = np.random.default_rng(3)
    native = np.repeat(rng.integers(0, 256, (1, NATIVE, NATIVE, 3), dtype=np.uint8), frames, axis=0)
    model_frames = np.stack([fitted_model_picture(picture, Layout(HEIGHT, WIDTH)) for picture in native])
    composition = compose_scene(
        model_frames, native, SceneReferences(product=read_image(ASSETS / "can.png")),
        motion_track=video_track(ASSETS / "bounce.mp4", frames, FPS), events_s=landings, fps=FPS, inplace=True,
    )  # fmt: skip
    audio = (rng.standard_normal(round(DURATION_S * RATE)) * 0.002).astype(np.float32)
    for at in sounds:
        sound = thump(RATE, rng)
        start = round(at * RATE)
        audio[start : start + sound.size] += sound[: audio.size - start]
    write_master(composition.frames, audio[None], FPS, RATE, folder / f"{name}.mp4")
    return folder / f"{name}.mp4"


def test_hops_on_the_model_sounds_pass_the_sfx_gate_and_others_fail_it(tmp_path: Path) -> None:
    """The QA judges what the compositor made: landings on the thumps pass; the thumps 200 ms late, or
    at other times, fail."""
    events = (0.9, 1.6, 2.5, 3.3)
    cases = {"synced": events, "late": tuple(e + 0.2 for e in events), "other": (0.4, 1.25, 2.05, 2.9)}
    verdicts = {}
    for name, sounds in cases.items():
        report = score_sync(_hopping_clip(tmp_path, name, events, sounds), SyncExpectation(events_s=tuple(events)))
        verdicts[name] = (report.sfx_verdict.verdict, report.sfx_verdict.status, report.sfx.offset_ms)
    assert verdicts["synced"][:2] == ("pass", "in_sync") and abs(verdicts["synced"][2]) <= 20, verdicts
    assert verdicts["late"][:2] == ("fail", "audio_late") and 160 <= verdicts["late"][2] <= 240, verdicts
    assert verdicts["other"][0] == "fail", verdicts


def test_the_held_still_product_and_text_only_scenes(bouncing) -> None:
    native, model_frames = bouncing
    packshot = read_image(ASSETS / "can.png")
    still = compose_scene(model_frames, native, SceneReferences(product=packshot), track=ObjectTrack.still(len(native)))
    assert len({(p.x, p.y) for p in still.placements["product"]}) == 1
    untouched = compose_scene(model_frames, native, SceneReferences())
    assert untouched.frames is model_frames and not untouched.placements


def test_the_generate_task_composes_only_where_the_backend_made_small_frames(bouncing, tmp_path: Path) -> None:
    native, model_frames = bouncing
    request = GenerationRequest(
        scene_id="open",
        language="en",
        prompt="a ball bouncing",
        duration_s=3.0,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        sample_rate=RATE,
        seed=1,
        references=(ReferenceInput("can", "image", "product", ASSETS / "can.png"),),
    )
    audio = np.zeros((1, RATE * 3), np.float32)

    def clip(with_native: bool) -> MasterClip:
        return MasterClip(
            frames=model_frames.copy(),
            audio=audio,
            fps=FPS,
            sample_rate=RATE,
            backend="builtin",
            model_version="test",
            seed=1,
            unused_reference_roles=("product",),
            native_frames=native if with_native else None,
        )

    composed = with_references_on_screen(clip(True), request)
    assert composed.unused_reference_roles == ()
    assert len(composed.parameters["composition"]["placements"]["product"]) == native.shape[0]
    assert not np.array_equal(composed.frames, model_frames)
    full_size = with_references_on_screen(clip(False), request)  # LTX-2: its own full-resolution picture
    assert np.array_equal(full_size.frames, model_frames) and full_size.unused_reference_roles == ("product",)
