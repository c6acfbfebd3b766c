"""Face landmarks offline (MediaPipe's models, shipped in media/models, run by LiteRT) and
the analysis decoder: pictures on the 25 fps clock, regions as RGB, the sound on the same clock."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest
from skimage import data

from syncreel.media import faces
from syncreel.media.encode import write_master
from syncreel.media.errors import MediaError
from syncreel.media.faces import FaceModelError, FaceTracker, model_path
from syncreel.media.frames import Picture, audio_track, pictures
from syncreel.media.tracks import analyse, mouth_opening

# The astronaut's face in the 512×512 photo (rows 20–240, columns 115–335 hold it, model/world.py's crop)
FACE_ROWS, FACE_COLUMNS = (20, 240), (115, 335)
MOUTH_ROW = 146  # the line between her lips


def picture_of(rgb: np.ndarray) -> Picture:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    return Picture(frame)


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    return FaceTracker()


def test_models_ship_with_the_package() -> None:
    for name in (faces.DETECTOR_MODEL, faces.LANDMARK_MODEL):
        path = model_path(name)
        assert path.is_file() and path.suffix == ".tflite" and path.stat().st_size > 100_000


def test_missing_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(faces, "MODELS", tmp_path)
    with pytest.raises(FaceModelError, match="face_landmark.tflite is missing .*pip install"):
        model_path(faces.LANDMARK_MODEL)


def test_detector_tensor_layout_matches_the_anchors(tracker: FaceTracker) -> None:
    net = tracker.detector._net
    assert list(net.get_input_details()[0]["shape"]) == [1, 192, 192, 3]
    shapes = sorted(tuple(o["shape"]) for o in net.get_output_details())
    assert shapes == [(1, 2304, 1), (1, 2304, 16)]
    assert faces._anchors().shape == (2304, 2)


def test_detects_the_astronaut_and_her_features(tracker: FaceTracker) -> None:
    photo = data.astronaut()
    found = tracker.detector.detect(picture_of(photo))
    assert len(found) == 1 and found[0].score > 0.8
    x0, y0, x1, y1 = found[0].box
    assert FACE_COLUMNS[0] < x0 < x1 < FACE_COLUMNS[1] and FACE_ROWS[0] < y0 < y1 < FACE_ROWS[1]
    eye_a, eye_b, nose, mouth = found[0].keypoints[:4]
    assert eye_a[1] < nose[1] < mouth[1]  # eyes above the nose above the mouth
    assert abs(mouth[1] - MOUTH_ROW) < 15


def test_small_face_in_a_large_frame_is_found_by_tiles(tracker: FaceTracker) -> None:
    frame = np.full((1080, 1920, 3), 150, np.uint8)
    small = np.asarray(
        av.VideoFrame.from_ndarray(data.astronaut(), format="rgb24").reformat(width=256, height=256).to_ndarray()
    )
    frame[600:856, 1500:1756] = small  # a face of about 50 px in a 1920 px frame
    picture = picture_of(frame)
    assert tracker.detector.detect(picture, tiles=False) == []
    found = tracker.detector.detect(picture)
    assert found, "tiled detection should find the small face"
    x0, y0, x1, y1 = found[0].box
    assert 1500 < x0 < x1 < 1756 and 600 < y0 < y1 < 856


def test_landmarks_follow_the_face_and_measure_an_open_mouth(tracker: FaceTracker, calibration: ModuleType) -> None:
    talking_face = calibration.talking_face
    tracker.reset()
    closed = tracker(picture_of(talking_face(0)))
    tracker.reset()
    opened = tracker(picture_of(talking_face(40)))
    assert closed is not None and opened is not None and closed.points.shape == (468, 2)
    # the inner lip centre (13 / 14) sits on her mouth, in frame pixels
    assert np.abs(closed.points[[13, 14], 1] - MOUTH_ROW).max() < 12
    assert mouth_opening(opened) > mouth_opening(closed) + 0.05


def test_tracking_keeps_the_face_without_detecting_again(tracker: FaceTracker, monkeypatch) -> None:
    picture = picture_of(data.astronaut())
    tracker.reset()
    assert tracker(picture) is not None
    monkeypatch.setattr(tracker.detector, "detect", lambda *a, **k: pytest.fail("detected again while tracking"))
    for _ in range(3):
        assert tracker(picture) is not None


def test_no_face_in_a_plain_picture(tracker: FaceTracker) -> None:
    tracker.reset()
    assert tracker(picture_of(np.asarray(data.coffee()))) is None


def test_resized_region_is_rgb(tracker: FaceTracker) -> None:
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[:, :48] = (200, 40, 40)
    rgb[:, 48:] = (40, 40, 200)
    out = picture_of(rgb).resized((0, 0, 96, 64), (48, 32))
    assert out.shape == (32, 48, 3)
    assert np.abs(out[16, 10].astype(int) - (200, 40, 40)).max() < 12
    assert np.abs(out[16, 38].astype(int) - (40, 40, 200)).max() < 12


@pytest.fixture(scope="module")
def clip_24fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 24 fps: picture i shows the number i as its grey level; a click at 1.0 s."""
    frames = np.repeat(np.arange(48, dtype=np.uint8)[:, None, None, None] * 5, 64, axis=1)
    frames = np.repeat(np.repeat(frames, 64, axis=2), 3, axis=3)
    audio = np.zeros((1, 96_000), np.float32)
    audio[0, 48_000:48_480] = 0.5
    path = tmp_path_factory.mktemp("frames") / "count.mp4"
    write_master(frames, audio, 24.0, 48_000, path)
    return path


def test_pictures_are_resampled_to_25_fps(clip_24fps: Path) -> None:
    shown = list(pictures(clip_24fps))
    assert len(shown) == 50  # 2 s on the 25 fps clock
    sources = [p.source_index for p in shown]
    assert sources[0] == 0 and sources[-1] == 47
    assert len(set(sources)) == 48  # every picture shown, one of them twice a second
    # slot k shows the picture on screen at its centre (k + 0.5) / 25
    for p in shown:
        assert p.source_index == int((p.index + 0.5) / 25 * 24)
        assert p.source_centre_s == pytest.approx((p.source_index + 0.5) / 24, abs=1e-3)


def test_audio_is_on_the_video_clock(clip_24fps: Path) -> None:
    track = audio_track(clip_24fps)
    assert track is not None and track.rate == 16_000 and abs(track.start_s) < 0.03
    loud = np.flatnonzero(np.abs(track.at(0.0, 2.0)) > 0.1)
    assert loud[0] / 16_000 == pytest.approx(1.0, abs=0.005)


def test_analyse_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="missing.mp4: no such file"):
        analyse(tmp_path / "missing.mp4", faces=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="broken.mp4: not a readable media file"):
        analyse(broken, faces=False)
