"""Subject-aware reframing: shot boundaries, faces and motion found, a smooth crop path that keeps the
subject inside every 9:16 and 4:5 frame, and the padded fallback when two subjects cannot both fit.

The synthetic masters come from tests/fixtures/subjects.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from syncreel.media.reframe import CropPath, SubjectHint, analyse_subjects, draw_crop_path, plan_crop_path
from syncreel.media.shots import Shot, shot_boundaries, shots_from_boundaries
from syncreel.schemas.platforms import PLATFORMS
from tests.fixtures.subjects import FPS, HEIGHT, WIDTH, Box, subject_master

MAX_STEP_PX = 0.02 * WIDTH  # the bound the crop path's frame-to-frame move stays under (2 % of the width)
TARGET_SIZES = {
    name: (PLATFORMS[name].width, PLATFORMS[name].height)
    for name in ("tiktok", "instagram_reels", "youtube_shorts", "instagram_feed", "facebook_feed")
}


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[list[Box]]]]:
    folder = tmp_path_factory.mktemp("subjects")
    return {layout: subject_master(folder / f"{layout}.mp4", layout) for layout in ("moving", "two", "box", "cut")}


def inside_share(path: CropPath, boxes: list[list[Box]], source_fps: float = FPS) -> float:
    """Share of output frames whose window shows every subject box whole (pad frames show all)."""
    hits = []
    for k in range(len(path.modes)):
        source = min(len(boxes) - 1, int((k + 0.5) / path.fps * source_fps))
        hits.append(path.modes[k] == "pad" or all(path.contains(k, box) for box in boxes[source]))
    return float(np.mean(hits))


# --- shots -----------------------------------------------------------------------------------------


def test_shot_boundaries_find_cuts_but_not_motion_or_a_flash() -> None:
    rng = np.random.default_rng(3)
    dark, bright = rng.integers(20, 80, (36, 64)), rng.integers(150, 230, (36, 64))
    lumas = []
    for i in range(60):
        base = dark if i < 30 else bright
        lumas.append(np.roll(base, i, axis=1).astype(np.uint8))  # a pan: pixels move, the histogram stays
    lumas[45] = np.full((36, 64), 255, np.uint8)  # a one-frame flash right after... far from the cut
    boundaries = shot_boundaries(lumas)
    assert 30 in boundaries
    assert all(b in (30, 45, 46) for b in boundaries)  # nothing inside the pan
    assert shots_from_boundaries([30], 60) == [Shot(0, 30), Shot(30, 60)]
    assert shots_from_boundaries([], 10) == [Shot(0, 10)]


def test_analysis_finds_the_cut_the_faces_and_the_moving_box(masters) -> None:
    cut = analyse_subjects(masters["cut"][0])
    assert [(s.start, s.end) for s in cut.shots] == [(0, 37), (37, 75)]
    assert cut.face_detector == "blazeface"
    assert all(len(faces) == 1 for faces in cut.faces[:37])
    assert sum(len(faces) == 2 for faces in cut.faces[37:]) >= 0.9 * 38
    box = analyse_subjects(masters["box"][0], faces=False)
    assert sum(m is not None for m in box.motion) >= 0.9 * box.frame_count


# --- the crop path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["moving", "box"])
def test_a_moving_subject_stays_inside_every_vertical_and_4_5_frame(masters, layout: str) -> None:
    src, boxes = masters[layout]
    analysis = analyse_subjects(src, faces=layout == "moving")
    for name, size in TARGET_SIZES.items():
        path = plan_crop_path(analysis, size, 30.0, 90)
        assert path.pad_share == 0, name
        assert inside_share(path, boxes) >= 0.98, name
        assert path.max_step_px <= MAX_STEP_PX, (name, path.max_step_px)
        assert path.max_accel_px <= 3, (name, path.max_accel_px)
        assert path.windows[:, 2:].tolist() == [list(path.crop_size)] * 90  # one window size throughout
        assert np.ptp(path.windows[:, 0]) > WIDTH / 3  # it really travels with the subject


def test_two_subjects_far_apart_take_the_padded_fallback(masters) -> None:
    src, boxes = masters["two"]
    analysis = analyse_subjects(src)
    for name, size in TARGET_SIZES.items():
        path = plan_crop_path(analysis, size, 30.0, 90)
        assert path.summary()["mode"] == "pad", name
        assert "does not fit" in path.shots[0].reason
        assert path.windows[0].tolist() == [0, 0, WIDTH, HEIGHT]
        assert inside_share(path, boxes) == 1.0
    wide = plan_crop_path(analysis, (1920, 1080), 30.0, 90)  # same aspect: nothing to decide
    assert wide.summary()["mode"] == "crop" and wide.crop_size == (WIDTH, HEIGHT)


def test_a_still_subject_holds_the_window_still_and_a_cut_may_change_mode(masters) -> None:
    analysis = analyse_subjects(masters["cut"][0])
    path = plan_crop_path(analysis, TARGET_SIZES["tiktok"], 30.0, 90)
    first, second = path.shots
    assert (first.mode, first.reason, second.mode) == ("crop", "holds still", "pad")
    assert len({tuple(w) for w in path.windows[first.start : first.end]}) == 1
    assert path.summary()["mode"] == "mixed" and 0.4 < path.pad_share < 0.6
    assert inside_share(path, masters["cut"][1]) >= 0.98


def test_snap_to_centre_and_policies(masters) -> None:
    analysis = analyse_subjects(masters["moving"][0], faces=False)
    analysis.motion = [None] * analysis.frame_count  # nothing found: a centred, still window
    centred = plan_crop_path(analysis, TARGET_SIZES["tiktok"], 25.0, 75)
    crop_w = centred.crop_size[0]
    assert set(centred.windows[:, 0].tolist()) == {(WIDTH - crop_w) // 2}
    assert plan_crop_path(analysis, TARGET_SIZES["tiktok"], 25.0, 75, policy="fit").pad_share == 1
    assert plan_crop_path(analysis, TARGET_SIZES["tiktok"], 25.0, 75, policy="centre").pad_share == 0


def test_generator_hints_steer_the_crop(masters) -> None:
    src, _ = masters["two"]
    right = SubjectHint.from_dict({"start_s": 0, "end_s": 10, "box": [0.78, 0.2, 0.98, 0.7]})
    analysis = analyse_subjects(src, faces=False, hints=[right])
    path = plan_crop_path(analysis, TARGET_SIZES["tiktok"], 25.0, 75)
    assert path.pad_share == 0 and all(path.contains(k, (0.78 * WIDTH, 72, 0.98 * WIDTH, 252)) for k in range(75))
    with pytest.raises(ValueError, match="fractions of the frame"):
        SubjectHint.from_dict({"start_s": 0, "end_s": 1, "box": [10, 10, 200, 200]})


def test_crop_path_json_and_drawing(masters, tmp_path: Path) -> None:
    analysis = analyse_subjects(masters["moving"][0])
    path = plan_crop_path(analysis, TARGET_SIZES["tiktok"], 30.0, 90)
    data = path.to_dict()
    assert len(data["frames"]) == 90 and data["frames"][0][4] == "crop"
    x, y, w, h, _ = data["frames"][45]
    assert 0 <= x <= WIDTH - w and y == 0 and h == HEIGHT
    samples = path.samples(30)  # inline in the deliverable's record, for the run report's plot
    assert len(samples) == 30 and samples[1]["t"] == pytest.approx(0.1) and set(samples[1]) == set("txywh") | {"mode"}
    picture = draw_crop_path(analysis, path, tmp_path / "crop.png")
    assert Image.open(picture).size[0] >= 4 * 320
