"""Probe a media file once with PyAV into a frozen record (the imageio-ffmpeg wheel has no ffprobe)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from media.errors import MediaError

IMAGE_CODECS = {"png", "mjpeg", "webp", "bmp", "tiff", "gif", "jpegls"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif"}


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    pix_fmt: str | None
    profile: str | None
    duration_s: float


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format: str
    duration_s: float
    size_bytes: int
    video: VideoInfo | None
    audio: AudioInfo | None
    is_image: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stream_duration(stream: Any, container_duration: float) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container_duration


def probe(path: str | Path, *, count_frames: bool = False) -> MediaInfo:
    """What is in the file. Frame counts come from the container; ``count_frames`` decodes to count."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file")
    try:
        with av.open(str(path)) as container:
            duration = float(container.duration / av.time_base) if container.duration else 0.0
            video = audio = None
            is_image = container.format.name in IMAGE_FORMATS
            if container.streams.video:
                stream = container.streams.video[0]
                ctx = stream.codec_context
                is_image = is_image or ctx.name in IMAGE_CODECS and not stream.frames and duration <= 0.05
                rate = stream.average_rate or stream.guessed_rate or 0
                frames = stream.frames
                if count_frames or (not frames and not is_image):
                    frames = sum(1 for _ in container.decode(stream))
                    container.seek(0)
                video = VideoInfo(
                    codec=ctx.name,
                    width=ctx.width,
                    height=ctx.height,
                    fps=float(rate),
                    frames=int(frames or (1 if is_image else 0)),
                    pix_fmt=ctx.pix_fmt,
                    profile=ctx.profile,
                    duration_s=_stream_duration(stream, duration),
                )
            if container.streams.audio:
                stream = container.streams.audio[0]
                ctx = stream.codec_context
                audio = AudioInfo(
                    codec=ctx.name,
                    sample_rate=ctx.sample_rate,
                    channels=ctx.channels,
                    duration_s=_stream_duration(stream, duration),
                )
            format_name = container.format.name
    except av.FFmpegError as exc:
        raise MediaError(path, f"not a readable media file ({exc})") from None
    if video is None and audio is None:
        raise MediaError(path, "no audio or video stream")
    if video is not None and (video.width <= 0 or video.height <= 0):
        raise MediaError(path, "video stream has no picture size (truncated or unsupported codec)")
    return MediaInfo(
        path=str(path),
        format=format_name,
        duration_s=duration,
        size_bytes=path.stat().st_size,
        video=video,
        audio=audio,
        is_image=is_image,
    )
