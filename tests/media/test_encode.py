"""Master encoding from numpy arrays and spot assembly: codecs, sizes, durations, click-free joins."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from syncreel.media.assemble import assemble_spot
from syncreel.media.encode import write_master, write_master_clip
from syncreel.media.errors import MediaError
from syncreel.media.normalize import read_audio
from syncreel.media.probe import probe
from syncreel.schemas.clips import MasterClip
from tests.fixtures.synth import synth_media

FPS = 24.0
FRAMES = 30  # 1.25 s


def _frames(count: int = FRAMES, height: int = 64, width: int = 96) -> np.ndarray:
    """A left-to-right sweep over a fixed colour: motion plus a colour we can read back."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[...] = (200, 40, 60)
    for index in range(count):
        column = index * (width - 8) // max(1, count - 1)
        frames[index, :, column : column + 8] = 255
    return frames


def _tone(seconds: float, rate: int, channels: int = 1, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.repeat((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None], channels, axis=0)


def test_write_master_encodes_h264_and_aac_of_equal_length(tmp_path: Path) -> None:
    # 24 kHz mono sound that is 0.15 s longer than the pictures: resampled, upmixed and trimmed.
    info = write_master(_frames(), _tone(1.4, 24_000), FPS, 24_000, tmp_path / "master.mp4")
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.pix_fmt, info.video.profile) == ("h264", "yuv420p", "High")
    assert (info.video.width, info.video.height, info.video.frames) == (96, 64, FRAMES)
    assert info.video.fps == pytest.approx(FPS)
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48_000, 2)
    assert info.video.duration_s == pytest.approx(FRAMES / FPS, abs=1e-6)
    assert info.audio.duration_s == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    with av.open(str(tmp_path / "master.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first[:, 20:].astype(int) - (200, 40, 60)).mean() < 6  # colours survive the round trip


def test_write_master_pads_short_audio_with_silence(tmp_path: Path) -> None:
    info = write_master(_frames(), _tone(0.5, 48_000, channels=2), FPS, 48_000, tmp_path / "short.mp4")
    assert info.audio is not None and info.audio.duration_s == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    samples, rate = read_audio(tmp_path / "short.mp4")
    tail = samples[0, int(0.8 * rate) : int(1.2 * rate)]
    assert np.abs(tail).max() < 1e-3


def test_write_master_is_deterministic_and_faststart(tmp_path: Path) -> None:
    frames, audio = _frames(), _tone(1.25, 48_000)
    write_master(frames, audio, FPS, 48_000, tmp_path / "a.mp4")
    write_master(frames, audio, FPS, 48_000, tmp_path / "b.mp4")
    data = (tmp_path / "a.mp4").read_bytes()
    assert data == (tmp_path / "b.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_write_master_clip_wraps_a_generator_clip(tmp_path: Path) -> None:
    clip = MasterClip(
        frames=_frames(12),
        audio=_tone(0.5, 16_000),
        fps=FPS,
        sample_rate=16_000,
        backend="test",
        model_version="0",
        seed=1,
    )
    info = write_master_clip(clip, tmp_path / "clip.mp4")
    assert info.video is not None and info.video.frames == 12
    assert info.audio is not None and info.audio.sample_rate == 48_000


def test_write_master_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"bad\.mp4: frames must be"):
        write_master(np.zeros((4, 64, 64), np.uint8), _tone(1, 48_000), FPS, 48_000, tmp_path / "bad.mp4")
    with pytest.raises(MediaError, match="even size"):
        write_master(np.zeros((4, 63, 64, 3), np.uint8), _tone(1, 48_000), FPS, 48_000, tmp_path / "bad.mp4")


# --- assembly ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scenes")
    return [
        synth_media(folder / "s1.mp4", duration_s=1.0, size=(320, 180), fps=25, tone_hz=440),
        synth_media(folder / "s2.mp4", duration_s=1.2, size=(320, 180), fps=25, tone_hz=660),
        # A scene at another size and rate: scaled and rate-converted to the first.
        synth_media(folder / "s3.webm", duration_s=0.8, size=(640, 360), fps=30, tone_hz=550, sample_rate=44_100),
    ]


def test_assemble_joins_scenes_at_the_first_clips_format(scenes: list[Path], tmp_path: Path) -> None:
    info = assemble_spot(scenes, tmp_path / "spot.mp4")
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 320, 180)
    assert info.video.fps == pytest.approx(25.0)
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48_000, 2)
    total = sum(probe(scene).video.duration_s for scene in scenes)  # type: ignore[union-attr]
    assert info.video.duration_s == pytest.approx(total, abs=1 / 25)
    assert info.video.frames == pytest.approx(total * 25, abs=1)
    assert info.audio.duration_s == pytest.approx(total, abs=1 / 25)


def test_assemble_fades_the_sound_at_each_join(scenes: list[Path], tmp_path: Path) -> None:
    assemble_spot(scenes[:2], tmp_path / "spot.mp4", audio_crossfade_s=0.04)
    samples, rate = read_audio(tmp_path / "spot.mp4")
    envelope = np.abs(samples[0])

    def level(start: float, end: float) -> float:
        return float(envelope[int(start * rate) : int(end * rate)].max())

    assert level(0.997, 1.003) < 0.25 * level(0.5, 0.9)  # the join at 1.0 s dips instead of clicking
    assert level(1.5, 1.9) > 0.1  # and the second scene plays at full level


def test_assemble_needs_clips(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no scene clips"):
        assemble_spot([], tmp_path / "spot.mp4")
