"""Normalize a reference to its canonical form, or reject it with a reason that names the file.

Canonical forms: images → RGB PNG with the long side capped; video → H.264 yuv420p (limited range) MP4 at a fixed
frame rate, long side capped, even size, no audio; audio → FLAC at a fixed rate and channel layout.
Outputs are byte-reproducible (bitexact muxing, no metadata, single-threaded x264), so identical
uploads get identical content addresses.
"""

from __future__ import annotations

import codecs
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import av
import numpy as np

from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import BITEXACT, run
from syncreel.media.probe import MediaInfo, open_input, probe, refuse_multi_file

ReferenceKind = Literal["image", "video", "audio"]
OUTPUT_SUFFIX = {"image": ".png", "video": ".mp4", "audio": ".flac"}


@dataclass(frozen=True)
class ReferenceLimits:
    max_pixels: int = 40_000_000  # decompression-bomb guard, checked from the file header before decoding
    max_image_side: int = 1024  # appearance references need no more; keeps conditioning cheap
    max_video_side: int = 640  # motion references: enough to read motion, small enough to decode fast
    video_fps: int = 24
    max_clip_s: float = 60.0  # longest video or audio reference (an ad is at most a minute)
    audio_rate: int = 48_000
    audio_channels: int = 2
    min_audio_peak_dbfs: float = -60.0  # quieter than this everywhere is silence, not a voice or music


def _png_size(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    handle.seek(2)
    while True:
        marker = handle.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind, length = marker[1], struct.unpack(">H", marker[2:])[0]
        # Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">xHH", frame)
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)


def _webp_size(head: bytes, handle: BinaryIO) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def image_size_from_header(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, WebP, GIF or BMP header without decoding pixels; None if unknown."""
    with path.open("rb") as handle:
        head = handle.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return _png_size(head, handle)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head, handle)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head, handle)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", head[6:10])
            return width, height
        if head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
    return None


def _fit(side: int, pix_fmt: str, *, video: bool) -> str:
    """Scale to ``pix_fmt`` with the long side at most ``side``, aspect kept, never upscaled. The scaler
    does the pixel-format conversion too, with swscale's bit-exact C paths, so the bytes do not depend
    on which SIMD code the CPU runs. Video gets even sizes (4:2:0) and limited (tv) range: full-range
    sources such as MJPEG would otherwise stay full range and come out as yuvj420p."""
    other = -2 if video else -1
    out_range = ":out_range=tv" if video else ""
    return (
        f"scale=w='if(gte(iw,ih),min(iw,{side}),{other})':h='if(gte(iw,ih),{other},min(ih,{side}))'"
        f":flags=bicubic+accurate_rnd+full_chroma_int+bitexact{out_range},format={pix_fmt}"
    )


def _describe(info: MediaInfo) -> str:
    if info.is_image:
        return f"an image ({info.video.codec if info.video else info.format})"
    if info.video is not None:
        return f"a video ({info.video.codec})"
    return f"audio only ({info.audio.codec if info.audio else info.format})"


def _check_kind(src: Path, kind: ReferenceKind, info: MediaInfo) -> None:
    fits = {
        "image": info.is_image,
        "video": info.video is not None and not info.is_image,
        "audio": info.audio is not None,
    }[kind]
    if not fits:
        article = "an" if kind[0] in "aeiou" else "a"
        raise MediaError(src, f"given as {article} {kind} reference but the file is {_describe(info)}")


def _check_image_header(src: Path, limits: ReferenceLimits) -> None:
    """Refuse a decompression bomb from its header alone: the pixels are never decoded."""
    size = image_size_from_header(src)
    if size is None:
        return
    width, height = size
    if width == 0 or height == 0:
        raise MediaError(src, f"image header says {width}×{height}: no picture")
    if width * height > limits.max_pixels:
        raise MediaError(
            src,
            f"image is {width}×{height} = {width * height / 1e6:.0f} MP; "
            f"accepted: at most {limits.max_pixels / 1e6:.0f} MP",
        )


def _check_not_text(src: Path, kind: ReferenceKind) -> None:
    """A text file given a media name (an HTML error page saved as .png, notes renamed .mp4): say so,
    without quoting it (a reference may be a file its owner never meant to show)."""
    with src.open("rb") as handle:
        head = handle.read(512)
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    if not head or (encoding == "utf-8" and b"\x00" in head):
        return
    try:
        # Not final: the 512 bytes may end inside a character.
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return
    if text and all(ch.isprintable() or ch in "\r\n\t\ufeff" for ch in text):
        article = "an" if kind[0] in "aeiou" else "a"
        raise MediaError(src, f"is a text file, not {article} {kind} file")


def _check_duration(src: Path, info: MediaInfo, limits: ReferenceLimits) -> None:
    if info.duration_s > limits.max_clip_s:
        raise MediaError(src, f"lasts {info.duration_s:.1f} s; accepted: at most {limits.max_clip_s:g} s")


def _convert_args(kind: ReferenceKind, limits: ReferenceLimits) -> list[str]:
    if kind == "image":
        scale = _fit(limits.max_image_side, "rgb24", video=False)
        return ["-frames:v", "1", "-vf", scale, "-c:v", "png", "-f", "image2pipe"]
    if kind == "video":
        scale = _fit(limits.max_video_side, "yuv420p", video=True)
        encoder = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
        # One encoder thread: x264's output depends on its thread count, and so would the content address.
        encoder += ["-threads", "1", "-movflags", "+faststart", "-f", "mp4"]
        return ["-an", "-sn", "-dn", "-vf", f"fps={limits.video_fps},{scale}", *encoder]
    layout = ["-ar", str(limits.audio_rate), "-ac", str(limits.audio_channels)]
    return ["-vn", "-sn", "-dn", *layout, "-c:a", "flac", "-f", "flac"]


def normalize_reference(
    src: Path, kind: ReferenceKind, out_dir: Path, limits: ReferenceLimits = ReferenceLimits()
) -> tuple[Path, MediaInfo]:
    """Check and convert one reference; returns the canonical file (``out_dir/<stem>.<png|mp4|flac>``)
    and its probe. Raises MediaError naming ``src`` when the file cannot be a ``kind`` reference."""
    src = Path(src)
    if kind not in OUTPUT_SUFFIX:
        raise MediaError(src, f"unknown reference kind {kind!r}; accepted: image, video, audio")
    if src.is_file():
        refuse_multi_file(src)
        _check_not_text(src, kind)
    if src.is_file() and kind == "image":
        _check_image_header(src, limits)
    info = probe(src)
    _check_kind(src, kind, info)
    if kind == "image" and info.video is not None and info.video.width * info.video.height > limits.max_pixels:
        raise MediaError(
            src, f"image is {info.video.width}×{info.video.height}; accepted: at most {limits.max_pixels / 1e6:.0f} MP"
        )
    if kind != "image":
        _check_duration(src, info, limits)
    out = Path(out_dir) / f"{src.stem}{OUTPUT_SUFFIX[kind]}"
    if out.resolve() == src.resolve():
        raise MediaError(src, "the normalized file would overwrite the source; choose another out_dir")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    run(
        ["-xerror", "-i", str(src), *_convert_args(kind, limits), *BITEXACT, "-y", str(partial.absolute())],
        what=f"{kind} conversion",
        path=src,
    )
    try:
        result = _check_output(src, kind, partial, limits)
    except MediaError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return out, replace(result, path=str(out))


def _check_output(src: Path, kind: ReferenceKind, out: Path, limits: ReferenceLimits) -> MediaInfo:
    """The converted file must hold what the source promised: frames, samples, an audible signal."""
    try:
        result = probe(out, count_frames=kind == "video")
    except MediaError as exc:
        raise MediaError(src, f"conversion produced no readable {kind} ({exc.problem})") from None
    if kind == "video" and (result.video is None or result.video.frames == 0):
        raise MediaError(src, "zero-length video: no decodable frames")
    if kind == "audio":
        audio, _ = read_audio(out)
        if audio.shape[1] == 0:
            raise MediaError(src, "zero-length audio: no decodable samples")
        peak = peak_dbfs(audio)
        if peak < limits.min_audio_peak_dbfs:
            raise MediaError(
                src, f"no audible signal: peak {peak:.1f} dBFS, accepted: above {limits.min_audio_peak_dbfs:g} dBFS"
            )
    return result


def read_audio(path: Path, rate: int | None = None, layout: str = "mono") -> tuple[np.ndarray, int]:
    """Decode the first audio stream to float32 (channels, samples), downmixed to ``layout`` and
    resampled to ``rate`` when given; returns the samples and their rate."""
    try:
        with open_input(path) as container:
            if not container.streams.audio:
                raise MediaError(path, "no audio stream")
            stream = container.streams.audio[0]
            rate = rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = [
                resampled.to_ndarray()
                for decoded in container.decode(stream)
                for resampled in resampler.resample(decoded)
            ]
            chunks += [resampled.to_ndarray() for resampled in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot decode audio ({exc.strerror})") from None
    channels = av.AudioLayout(layout).nb_channels
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return audio.astype(np.float32, copy=False), rate


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak of float audio in dBFS (−inf for digital silence)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")
