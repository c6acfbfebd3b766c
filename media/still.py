"""One picture out of a clip, as a small JPEG: thumbnails for reports."""

from __future__ import annotations

import io
from pathlib import Path

import av

from syncreel.media.errors import MediaError
from syncreel.media.probe import open_input


def still_jpeg(path: str | Path, at_s: float | None = None, max_side: int = 320, quality: int = 80) -> bytes:
    """The first picture at or after ``at_s`` (default: the middle of the clip), scaled to at most
    ``max_side`` on its long side, as JPEG bytes."""
    try:
        with open_input(Path(path)) as container:
            stream = container.streams.video[0]
            duration = float(stream.duration * stream.time_base) if stream.duration else None
            if duration is None and container.duration:
                duration = container.duration / 1e6
            target = at_s if at_s is not None else (duration or 0.0) / 2
            if target > 0:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time + 1e-6 >= target:
                    break
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise MediaError(path, f"cannot take a still ({getattr(exc, 'strerror', None) or 'no picture'})") from None
    if chosen is None:
        raise MediaError(path, "no picture to take a still from")
    image = chosen.to_image()
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
