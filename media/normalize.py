"""Normalize a reference to its canonical form, or reject it with a reason that names the file.

Canonical forms: images → RGB PNG with the long side capped; video → H.264 yuv420p MP4 at a fixed
frame rate, long side capped, no audio; audio → FLAC at a fixed rate and channel layout. Outputs are
byte-reproducible (bitexact, no metadata), so identical uploads get identical content addresses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from media.errors import MediaError
from media.ffmpeg import BITEXACT, run
from media.probe import MediaInfo, probe


@dataclass(frozen=True)
class ReferenceLimits:
    max_pixels: int = 40_000_000  # decompression-bomb guard, checked from the header before decoding
    max_image_side: int = 1024
    max_video_side: int = 640
    video_fps: int = 24
    max_clip_s: float = 60.0
    audio_rate: int = 48_000
    audio_channels: int = 2
    min_audio_peak_dbfs: float = -60.0


def image_size_from_header(path: Path) -> tuple[int, int] | None:
    """(width, height) read from a PNG, JPEG, GIF or BMP header without decoding pixels; None if unknown."""
    with path.open("rb") as handle:
        head = handle.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head[:2] == b"\xff\xd8":
            handle.seek(2)
            while True:
                marker = handle.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    return None
                kind, length = marker[1], struct.unpack(">H", marker[2:])[0]
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">xHH", handle.read(5))
                    return width, height
                handle.seek(length - 2, 1)
    return None


def _fit(side: int) -> str:
    """An ffmpeg scale expression: long side at most ``side``, aspect kept, even dimensions, never upscaled."""
    return f"scale=w='if(gte(iw,ih),min(iw,{side}),-2)':h='if(gte(iw,ih),-2,min(ih,{side}))':flags=bicubic"


def _check_kind(src: Path, kind: str, info: MediaInfo) -> None:
    found = "image" if info.is_image else "video" if info.video else "audio"
    if kind == "audio" and info.audio is None:
        raise MediaError(src, f"given as an audio reference but has no audio stream (it is {found})")
    if kind == "image" and not info.is_image:
        raise MediaError(src, f"given as an image reference but it is {found} ({info.format})")
    if kind == "video" and (info.video is None or info.is_image):
        raise MediaError(src, f"given as a video reference but it is {found} ({info.format})")


def normalize_reference(
    src: Path, kind: str, out_dir: Path, limits: ReferenceLimits = ReferenceLimits()
) -> tuple[Path, MediaInfo]:
    """Check and convert one reference; returns the canonical file and its probe."""
    src = Path(src)
    if kind not in ("image", "video", "audio"):
        raise MediaError(src, f"unknown reference kind {kind!r}; accepted: image, video, audio")
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        size = image_size_from_header(src)
        if size and size[0] * size[1] > limits.max_pixels:
            raise MediaError(
                src,
                f"image is {size[0]}×{size[1]} = {size[0] * size[1] / 1e6:.0f} MP; "
                f"accepted: at most {limits.max_pixels / 1e6:.0f} MP",
            )
    info = probe(src)
    _check_kind(src, kind, info)
    if kind == "image":
        width, height = info.video.width, info.video.height
        if width * height > limits.max_pixels:
            raise MediaError(src, f"image is {width}×{height}; accepted: at most {limits.max_pixels / 1e6:.0f} MP")
        out = out_dir / "reference.png"
        run(
            [
                "-xerror",
                "-i",
                str(src),
                "-frames:v",
                "1",
                "-vf",
                _fit(limits.max_image_side),
                "-pix_fmt",
                "rgb24",
                *BITEXACT,
                "-y",
                str(out),
            ],
            what="image conversion",
            path=src,
        )
    elif kind == "video":
        if info.duration_s > limits.max_clip_s:
            raise MediaError(src, f"clip is {info.duration_s:.1f} s; accepted: at most {limits.max_clip_s:g} s")
        out = out_dir / "reference.mp4"
        run(
            [
                "-xerror",
                "-i",
                str(src),
                "-an",
                "-vf",
                f"fps={limits.video_fps},{_fit(limits.max_video_side)}",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-threads",
                "1",
                *BITEXACT,
                "-movflags",
                "+faststart",
                "-y",
                str(out),
            ],
            what="video conversion",
            path=src,
        )
    else:
        if info.duration_s > limits.max_clip_s:
            raise MediaError(src, f"audio is {info.duration_s:.1f} s; accepted: at most {limits.max_clip_s:g} s")
        out = out_dir / "reference.flac"
        run(
            [
                "-xerror",
                "-i",
                str(src),
                "-vn",
                "-ar",
                str(limits.audio_rate),
                "-ac",
                str(limits.audio_channels),
                "-c:a",
                "flac",
                *BITEXACT,
                "-y",
                str(out),
            ],
            what="audio conversion",
            path=src,
        )
    result = probe(out, count_frames=kind == "video")
    if kind == "video" and (result.video is None or result.video.frames == 0):
        raise MediaError(src, "video stream has no decodable frames")
    if kind == "audio":
        peak = peak_dbfs(out)
        if peak < limits.min_audio_peak_dbfs:
            raise MediaError(
                src, f"no audible signal (peak {peak:.1f} dBFS; accepted: above {limits.min_audio_peak_dbfs:g} dBFS)"
            )
    return out, result


def read_audio(path: Path, rate: int | None = None, layout: str = "mono") -> tuple[np.ndarray, int]:
    """Decode the first audio stream to float32 (channels, samples), resampled if ``rate`` is given."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate = rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = [
                frame.to_ndarray()
                for packet in container.demux(stream)
                for decoded in packet.decode()
                for frame in resampler.resample(decoded)
            ]
            chunks += [frame.to_ndarray() for frame in resampler.resample(None)]
    except (av.FFmpegError, IndexError) as exc:
        raise MediaError(path, f"cannot decode audio ({exc})") from None
    channels = 1 if layout == "mono" else 2
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return audio.astype(np.float32), rate


def peak_dbfs(path: Path) -> float:
    audio, _ = read_audio(path)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else -np.inf
