"""Probing and reference normalization on synthetic media: real properties, real rejections."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest

from syncreel.media import normalize as normalize_module
from syncreel.media.errors import MediaError
from syncreel.media.normalize import ReferenceLimits, image_size_from_header, normalize_reference, read_audio
from syncreel.media.probe import probe
from tests.fixtures.synth import synth_media


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip_mp4(media_dir: Path) -> Path:
    return synth_media(media_dir / "clip.mp4", duration_s=2.0, size=(320, 180), fps=25, sample_rate=44_100)


@pytest.fixture(scope="module")
def clip_webm(media_dir: Path) -> Path:
    return synth_media(media_dir / "clip.webm", duration_s=2.0, size=(800, 450), fps=30)


@pytest.fixture(scope="module")
def tone_wav(media_dir: Path) -> Path:
    return synth_media(media_dir / "tone.wav", duration_s=1.0, sample_rate=44_100, channels=1)


@pytest.fixture(scope="module")
def photo_png(media_dir: Path) -> Path:
    return synth_media(media_dir / "photo.png", size=(2000, 1000))


def _png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of one colour: tiny on disk, ``width × height`` once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


# --- probe ---------------------------------------------------------------------------------------


def test_probe_mp4_reports_streams(clip_mp4: Path) -> None:
    info = probe(clip_mp4)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 320, 180)
    assert info.video.fps == pytest.approx(25.0)
    assert info.video.frames == 50
    assert info.video.pix_fmt == "yuv420p"
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 44_100, 2)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert not info.is_image
    assert json.loads(json.dumps(info.to_dict()))["video"]["frames"] == 50


def test_probe_counts_frames_when_the_container_does_not(clip_webm: Path) -> None:
    with av.open(str(clip_webm)) as container:
        assert container.streams.video[0].frames == 0  # WebM keeps no frame count
    info = probe(clip_webm)
    assert info.video is not None and info.video.codec == "vp9"
    assert info.video.frames == 60
    assert info.audio is not None and info.audio.codec == "opus"


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".m4a", ".mp3"])
def test_probe_audio_files(media_dir: Path, suffix: str) -> None:
    path = synth_media(media_dir / f"probe{suffix}", duration_s=1.0, sample_rate=44_100, channels=1)
    info = probe(path)
    assert info.video is None and info.audio is not None
    assert (info.audio.sample_rate, info.audio.channels) == (44_100, 1)
    assert info.duration_s == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_probe_images(media_dir: Path, suffix: str) -> None:
    info = probe(synth_media(media_dir / f"still{suffix}", size=(64, 48)))
    assert info.is_image and info.audio is None
    assert info.video is not None and (info.video.width, info.video.height, info.video.frames) == (64, 48, 1)


def test_probe_rejects_empty_and_non_media_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4.*empty"):
        probe(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n" * 20)
    with pytest.raises(MediaError, match=r"notes\.png"):
        probe(text)
    with pytest.raises(MediaError, match=r"missing\.wav: no such file"):
        probe(tmp_path / "missing.wav")


# --- normalize: images ---------------------------------------------------------------------------


def test_normalize_image_caps_long_side_as_rgb_png(photo_png: Path, tmp_path: Path) -> None:
    out, info = normalize_reference(photo_png, "image", tmp_path)
    assert out.suffix == ".png" and info.path == str(out)
    assert info.video is not None
    assert (info.video.codec, info.video.pix_fmt) == ("png", "rgb24")
    assert (info.video.width, info.video.height) == (1024, 512)


def test_normalize_image_keeps_odd_sizes_and_never_upscales(media_dir: Path, tmp_path: Path) -> None:
    small = synth_media(media_dir / "small.png", size=(301, 201), picture="still")
    _, info = normalize_reference(small, "image", tmp_path)
    assert info.video is not None and (info.video.width, info.video.height) == (301, 201)


def test_pixel_bomb_rejected_from_header_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _png(tmp_path / "bomb.png", 20_000, 20_000)
    assert bomb.stat().st_size < 200_000  # 400 MP decoded, kilobytes on disk
    assert image_size_from_header(bomb) == (20_000, 20_000)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bomb must be refused before any demuxing or decoding")

    monkeypatch.setattr(normalize_module, "probe", no_decoding)
    monkeypatch.setattr(normalize_module, "run", no_decoding)
    with pytest.raises(MediaError, match=r"bomb\.png: image is 20000×20000 = 400 MP"):
        normalize_reference(bomb, "image", tmp_path / "out")


def test_pixel_cap_applies_to_real_images(photo_png: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"photo\.png.*2000×1000"):
        normalize_reference(photo_png, "image", tmp_path, ReferenceLimits(max_pixels=1_000_000))


def test_text_file_renamed_png_is_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "logo.png"
    fake.write_text("<html>not an image</html>\n")
    with pytest.raises(MediaError, match=r"logo\.png"):
        normalize_reference(fake, "image", tmp_path / "out")


# --- normalize: video and audio ------------------------------------------------------------------


def test_normalize_video_to_h264_at_fixed_rate_without_audio(clip_webm: Path, tmp_path: Path) -> None:
    out, info = normalize_reference(clip_webm, "video", tmp_path)
    assert out.suffix == ".mp4"
    assert info.audio is None and info.video is not None
    assert (info.video.codec, info.video.pix_fmt) == ("h264", "yuv420p")
    assert (info.video.width, info.video.height) == (640, 360)
    assert info.video.fps == pytest.approx(24.0)
    assert info.video.frames == 48  # 2 s at 24 fps
    with out.open("rb") as handle:
        head = handle.read(64)
    assert head.index(b"moov") < 64  # faststart: the index comes first


def test_normalize_video_makes_odd_sizes_even(media_dir: Path, tmp_path: Path) -> None:
    odd = synth_media(media_dir / "odd.mp4", duration_s=0.5, size=(642, 362), sound=None)
    _, info = normalize_reference(odd, "video", tmp_path)
    assert info.video is not None
    assert info.video.width == 640 and info.video.height % 2 == 0
    assert abs(info.video.height - 640 * 362 / 642) <= 2


def test_normalize_audio_to_flac_at_fixed_rate_and_layout(tone_wav: Path, tmp_path: Path) -> None:
    out, info = normalize_reference(tone_wav, "audio", tmp_path)
    assert out.suffix == ".flac" and info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("flac", 48_000, 2)
    samples, rate = read_audio(out)
    assert rate == 48_000 and samples.shape[1] == pytest.approx(48_000, abs=48)
    assert 20 * np.log10(np.abs(samples).max()) == pytest.approx(-18.0, abs=0.3)


def test_normalize_audio_from_a_video_file_takes_its_soundtrack(clip_mp4: Path, tmp_path: Path) -> None:
    _, info = normalize_reference(clip_mp4, "audio", tmp_path)
    assert info.video is None and info.audio is not None and info.audio.codec == "flac"


@pytest.mark.parametrize(
    ("name", "kind", "found"),
    [("photo.png", "audio", "an image"), ("tone.wav", "video", "audio only"), ("clip.mp4", "image", "a video")],
)
def test_kind_mismatch_is_rejected(
    media_dir: Path, photo_png: Path, tone_wav: Path, clip_mp4: Path, tmp_path: Path, name: str, kind: str, found: str
) -> None:
    with pytest.raises(MediaError, match=rf"{name.replace('.', '[.]')}: given as an? {kind} reference.*{found}"):
        normalize_reference(media_dir / name, kind, tmp_path)  # type: ignore[arg-type]


def test_silent_audio_is_rejected(media_dir: Path, tmp_path: Path) -> None:
    silent = synth_media(media_dir / "silent.wav", duration_s=1.0, sound="silence")
    with pytest.raises(MediaError, match=r"silent\.wav: no audible signal"):
        normalize_reference(silent, "audio", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind


def test_clip_over_the_duration_cap_is_rejected(clip_mp4: Path, tone_wav: Path, tmp_path: Path) -> None:
    limits = ReferenceLimits(max_clip_s=0.5)
    with pytest.raises(MediaError, match=r"clip\.mp4: lasts 2\.0 s; accepted: at most 0\.5 s"):
        normalize_reference(clip_mp4, "video", tmp_path, limits)
    with pytest.raises(MediaError, match=r"tone\.wav: lasts 1\.0 s"):
        normalize_reference(tone_wav, "audio", tmp_path, limits)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4_is_rejected_naming_the_file(media_dir: Path, tmp_path: Path, faststart: bool) -> None:
    whole = synth_media(media_dir / f"whole{int(faststart)}.mp4", duration_s=2.0, faststart=faststart)
    half = tmp_path / "half.mp4"
    data = whole.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"half\.mp4"):
        normalize_reference(half, "video", tmp_path / "out")


@pytest.mark.parametrize(("fixture", "kind"), [("photo_png", "image"), ("clip_webm", "video"), ("tone_wav", "audio")])
def test_normalize_is_byte_deterministic(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str, kind: str
) -> None:
    src = request.getfixturevalue(fixture)
    first, _ = normalize_reference(src, kind, tmp_path / "a")
    second, _ = normalize_reference(src, kind, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
