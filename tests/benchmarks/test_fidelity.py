"""benchmarks/fidelity.py's measures on small synthetic inputs (no campaign run): a presenter unlike its
photo scores below 0.85 and its own photo above; a pixel-exact packshot keeps ≥ 32 dB where a shifted one
does not; a blurred reference loses its sharpness; a line placed at its start_s passes, a late or cut one
fails."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from syncreel.media.compose import Placement, SceneReferences, compose_scene, packshot_at, read_image, scaled
from syncreel.media.faces import FaceDetector

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "examples" / "briefs" / "assets"
HEIGHT, WIDTH = 216, 384
RATE, FPS = 48_000, 24.0


@pytest.fixture(scope="module")
def fidelity() -> ModuleType:
    """benchmarks/fidelity.py (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("syncreel_fidelity", ROOT / "benchmarks" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _presented(photo: np.ndarray, frames: int = 4) -> list[av.VideoFrame]:
    """The photo composed still over a grey set, as master frames."""
    grey = np.full((frames, HEIGHT, WIDTH, 3), 90, np.uint8)
    composed = compose_scene(grey, np.zeros((frames, 1, 1, 3), np.uint8), SceneReferences(character=photo))
    return [av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24") for f in composed.frames]


def test_a_presenter_unlike_its_photo_scores_below_the_threshold(fidelity) -> None:
    astronaut, hopper = read_image(ASSETS / "presenter.png"), read_image(ASSETS / "hopper.png")
    detector = FaceDetector()
    same = fidelity.identity(_presented(hopper), hopper, detector)
    assert same["with_face"] == same["frames"] == 4
    assert same["pass"] and same["median"] >= 0.85
    other = fidelity.identity(_presented(astronaut), hopper, detector)  # the model's training face instead
    assert other["with_face"] == 4 and other["median"] < 0.85 and not other["pass"]


def test_a_pixel_exact_packshot_keeps_32_db_and_a_shifted_one_does_not(fidelity) -> None:
    packshot = read_image(ASSETS / "cup.png")
    frame = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    scale = 0.4
    image = packshot_at(packshot, scale)
    h, w = image.shape[:2]
    placement = Placement(0, 100, 20, w, h, scale)
    alpha = image[..., 3:4].astype(np.float32) / 255
    region = frame[20 : 20 + h, 100 : 100 + w].astype(np.float32)
    frame[20 : 20 + h, 100 : 100 + w] = np.round(image[..., :3] * alpha + region * (1 - alpha)).astype(np.uint8)
    exact = fidelity.packshot_fidelity([frame], packshot, [placement])
    assert exact["pass"] and exact["shown"] == 1 and exact["median_db"] == "inf"  # pixel for pixel
    moved = Placement(0, 104, 23, w, h, scale)  # the region read 4 px right, 3 px down of where it is
    assert not fidelity.packshot_fidelity([frame], packshot, [moved])["pass"]
    gone = Placement(0, WIDTH + 10, 0, w, h, scale)  # outside the frame: not shown, nothing to judge
    assert fidelity.packshot_fidelity([frame], packshot, [gone])["shown"] == 0


def test_a_blurred_reference_loses_half_its_sharpness(fidelity) -> None:
    photo = read_image(ASSETS / "hopper.png")
    scale = HEIGHT / photo.shape[0]
    at_scale = scaled(photo, scale)
    h, w = at_scale.shape[:2]
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    x = (WIDTH - w) // 2
    frame[:, x : x + w] = at_scale[..., :3]
    placement = Placement(0, x, 0, w, h, scale)
    assert fidelity.sharpness(frame, at_scale, placement) == pytest.approx(1.0)
    soft = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(2)))
    assert fidelity.sharpness(soft, at_scale, placement) < 0.5


def _babble(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of noise (120 ms on, 80 ms off): speech to an energy detector."""
    t = np.arange(round(seconds * RATE)) / RATE
    gate = ((t % 0.2) < 0.12).astype(np.float32)
    return (0.5 * gate * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def test_a_line_at_its_start_passes_and_a_late_or_cut_one_fails(fidelity) -> None:
    line = _babble(1.5)
    stem = np.zeros(4 * RATE, np.float32)

    def placed(start_s: float, wave: np.ndarray) -> np.ndarray:
        out = stem.copy()
        begin = round(start_s * RATE)
        out[begin : begin + wave.size] = wave
        return out

    on_time = fidelity.line_timing(placed(0.5, line), RATE, 0.5, None, line, FPS)
    assert on_time["pass"] and abs(on_time["delay_ms"]) <= 1000 / FPS and on_time["share"] >= 0.9
    late = fidelity.line_timing(placed(0.7, line), RATE, 0.5, None, line, FPS)
    assert not late["pass"] and late["delay_ms"] == pytest.approx(200, abs=25)
    cut = fidelity.line_timing(placed(0.5, line[: line.size // 2]), RATE, 0.5, None, line, FPS)
    assert not cut["pass"] and cut["share"] < 0.6
    silent = fidelity.line_timing(stem, RATE, 0.5, None, line, FPS)
    assert not silent["pass"] and silent["onset_s"] is None
