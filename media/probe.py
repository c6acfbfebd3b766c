"""Probe a media file once with PyAV into a frozen record (the imageio-ffmpeg wheel has no ffprobe).

Files are opened under the same protocol and demuxer whitelists as every ffmpeg input (media/ffmpeg.py):
a playlist, concat list, manifest or image sequence is refused before it can open anything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import ACCEPTED_CONTAINERS, INPUT_OPTIONS, REFUSED_CONTAINER

# Demuxers that only ever hold one still picture.
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif_pipe", "jpegls_pipe"}
# Still-picture codecs; a stream of these that lasts at most one frame is an image, not a clip.
IMAGE_CODECS = {"png", "mjpeg", "webp", "bmp", "tiff", "gif", "jpegls"}
SINGLE_FRAME_S = 0.05
# Text formats whose demuxers open other files or URLs, told apart by how they start (after any
# byte-order mark and blank space), for a refusal that says what the file is.
_MULTI_FILE_KINDS = (
    (b"#EXTM3U", "an HLS playlist (it opens other files)"),
    (b"ffconcat version", "a concat list (it opens other files)"),
    (b"<?xml", "an XML document (such as a DASH manifest, which opens other files)"),
    (b"<MPD", "a DASH manifest (it opens other files)"),
    (b"v=0", "an SDP session description (it opens network streams)"),
    (b"[playlist]", "a PLS playlist (it opens other files)"),
    (b"<?wpl", "a WPL playlist (it opens other files)"),
)


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


def _seconds(stream: Any) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _count_frames(container: Any, stream: Any) -> int:
    """Decode the stream and count its pictures: the only exact count when the container keeps none (WebM)."""
    stream.thread_type = "AUTO"
    return sum(1 for _ in container.decode(stream))


def _video_info(container: Any, stream: Any, duration: float, *, count_frames: bool) -> tuple[VideoInfo, bool]:
    ctx = stream.codec_context
    codec = stream.codec_context.codec.canonical_name
    seconds = _seconds(stream)
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    is_image = container.format.name in IMAGE_FORMATS or (
        codec in IMAGE_CODECS and (seconds or duration) <= SINGLE_FRAME_S
    )
    frames = stream.frames
    if is_image:
        frames = 1
    elif count_frames or not frames:
        frames = _count_frames(container, stream)
    if seconds is None:
        seconds = frames / rate if rate and frames else duration
    info = VideoInfo(
        codec=codec,
        width=ctx.width,
        height=ctx.height,
        fps=0.0 if is_image else rate,
        frames=int(frames),
        pix_fmt=ctx.pix_fmt,
        profile=ctx.profile,
        duration_s=0.0 if is_image else seconds,
    )
    return info, is_image


def _audio_info(stream: Any, duration: float) -> AudioInfo:
    ctx = stream.codec_context
    return AudioInfo(
        codec=ctx.codec.canonical_name,
        sample_rate=ctx.sample_rate,
        channels=ctx.channels,
        duration_s=_seconds(stream) or duration,
    )


def refuse_multi_file(path: Path) -> None:
    """Raise MediaError saying what the file is when it is a playlist, list or manifest that would open
    other files (told from how it starts; the whitelists refuse the rest when the file is opened)."""
    with Path(path).open("rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf").lstrip()
    for start, kind in _MULTI_FILE_KINDS:
        if head.startswith(start):
            raise MediaError(path, f"is {kind}; accepted: {ACCEPTED_CONTAINERS}")


def open_input(path: Path) -> Any:
    """An untrusted file opened for reading with PyAV under the whitelists: a playlist, list or
    manifest (or any container kind that is not a single file) raises MediaError saying so."""
    refuse_multi_file(path)
    try:
        return av.open(str(Path(path).absolute()), container_options=INPUT_OPTIONS)
    except av.ArgumentError:
        # The format whitelist's answer (ffmpeg does not say which demuxer it refused).
        raise MediaError(path, REFUSED_CONTAINER) from None
    except av.FFmpegError as exc:
        raise MediaError(path, f"not a readable media file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise MediaError(path, "not a readable media file (its metadata is not UTF-8 text)") from None


def probe(path: str | Path, *, count_frames: bool = False) -> MediaInfo:
    """What is in the file: the first picture stream (cover art excluded) and the first audio stream.

    Frame counts come from the container when it keeps them; otherwise (or with ``count_frames``) the
    picture stream is decoded and counted. Raises MediaError for a missing, empty or unreadable file,
    and for a container kind that opens other files (the message names what is accepted).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    container = open_input(path)
    try:
        with container:
            format_name = container.format.name
            duration = float(container.duration / av.time_base) if container.duration else 0.0
            pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            video, is_image = (None, False)
            if pictures:
                video, is_image = _video_info(container, pictures[0], duration, count_frames=count_frames)
            audio = _audio_info(container.streams.audio[0], duration) if container.streams.audio else None
    except av.FFmpegError as exc:
        raise MediaError(path, f"not a readable media file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise MediaError(path, "not a readable media file (its metadata is not UTF-8 text)") from None
    if video is None and audio is None:
        raise MediaError(path, "no audio or video stream")
    if video is not None and (video.width <= 0 or video.height <= 0):
        raise MediaError(path, "picture stream has no frame size (truncated, or a codec this build cannot read)")
    if not duration:
        duration = max(video.duration_s if video else 0.0, audio.duration_s if audio else 0.0)
    return MediaInfo(
        path=str(path),
        format=format_name,
        duration_s=duration,
        size_bytes=size,
        video=video,
        audio=audio,
        is_image=is_image,
    )
