"""Decoding for analysis: pictures resampled to a fixed rate, kept as YUV planes, and the sound as mono.

The sync scores look at every picture of a clip at 25 fps, usually only at a face-sized part of it, so
a `Picture` keeps the decoder's 4:2:0 planes (no full-frame RGB conversion) and converts only the
regions asked for: a decimated whole frame for face detection, the face box at full resolution for
landmarks, a coarse luma grid for motion. Times are on the video clock: 0 is the first picture's
presentation time, and the audio is placed on the same clock from its own first sample's time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from syncreel.media.errors import MediaError
from syncreel.media.probe import open_input

ANALYSIS_FPS = 25.0  # SyncNet's rate; every score in media/ is computed on this clock
_PLANAR_420 = {"yuv420p", "yuvj420p"}
_QUEUE_FRAMES = 6  # decoded pictures buffered ahead of the analysis
_REDUCING_GAP = 2.0  # PIL: shrink by whole blocks to within 2× of the size asked, then filter

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in a picture's pixels


def as_box(values: Iterable[float]) -> Box:
    """Four numbers (a detector's array row, a median of boxes) as a Box of floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


class Picture:
    """One decoded 4:2:0 picture. Regions come out as RGB already resampled (PIL, in C), converting
    only the pixels asked for: the three planes are resampled separately (the chroma kept at half
    resolution, as 4:2:0 has it, each sample then shared by 2 × 2 pixels) and turned into RGB by
    `ycbcr_to_rgb` (studio-range levels expanded)."""

    def __init__(self, frame: av.VideoFrame):
        if frame.format.name not in _PLANAR_420:
            frame = frame.reformat(format="yuv420p")
        self._frame = frame  # the planes below are views of its buffers
        self.width, self.height = frame.width, frame.height
        self.full_range = frame.format.name == "yuvj420p"
        self._planes = [
            np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes
        ]
        self._images: list[Image.Image] | None = None

    def luma(self, step: int) -> np.ndarray:
        """Every ``step``-th row and column of the luma plane, (H / step, W / step) uint8."""
        return self._planes[0][::step, ::step]

    def _plane_images(self) -> list[Image.Image]:
        if self._images is None:
            self._images = [Image.fromarray(np.ascontiguousarray(plane)) for plane in self._planes]
        return self._images

    def _to_rgb(self, luma: Image.Image, cb: Image.Image, cr: Image.Image) -> np.ndarray:
        y, u, v = np.asarray(luma), np.asarray(cb), np.asarray(cr)
        if u.shape != y.shape:  # chroma resampled at half size: each sample covers 2 × 2 pictures' pixels
            height, width = y.shape
            u, v = (plane.repeat(2, axis=0).repeat(2, axis=1)[:height, :width] for plane in (u, v))
        return ycbcr_to_rgb(y, u, v, full_range=self.full_range)

    def resized(self, box: Box, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (size[1], size[0], 3) of ``box`` = (x0, y0, x1, y1) in pixels, resampled to ``size``."""
        luma, cb, cr = self._plane_images()
        half, half_size = as_box(v / 2 for v in box), ((size[0] + 1) // 2, (size[1] + 1) // 2)
        # a large shrink first averages whole blocks (reducing_gap): a fraction of a full filter's cost
        return self._to_rgb(
            luma.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=_REDUCING_GAP),
            cb.resize(half_size, Image.Resampling.BILINEAR, box=half, reducing_gap=_REDUCING_GAP),
            cr.resize(half_size, Image.Resampling.BILINEAR, box=half, reducing_gap=_REDUCING_GAP),
        )

    def warped(self, affine: tuple[float, float, float, float, float, float], side: int) -> np.ndarray:
        """RGB uint8 (side, side, 3) where output pixel (u, v) shows picture pixel
        (a·u + b·v + c, d·u + e·v + f); black outside the picture."""
        a, b, c, d, e, f = affine
        luma, cb, cr = self._plane_images()
        half_side = (side + 1) // 2
        # in continuous coordinates, chroma (output and picture alike) is luma halved: same slopes, half the shift
        chroma = (a, b, c / 2, d, e, f / 2)
        return self._to_rgb(
            luma.transform((side, side), Image.Transform.AFFINE, affine, Image.Resampling.BILINEAR, fillcolor=16),
            cb.transform((half_side,) * 2, Image.Transform.AFFINE, chroma, Image.Resampling.BILINEAR, fillcolor=128),
            cr.transform((half_side,) * 2, Image.Transform.AFFINE, chroma, Image.Resampling.BILINEAR, fillcolor=128),
        )


def ycbcr_to_rgb(luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, *, full_range: bool) -> np.ndarray:
    """BT.601 Y'CbCr planes (uint8, same shape) → RGB uint8 (..., 3); studio-range levels (Y 16–235,
    Cb/Cr 16–240) are expanded to full range on the way."""
    y = luma.astype(np.float32)
    u, v = cb.astype(np.float32) - 128.0, cr.astype(np.float32) - 128.0
    if not full_range:
        y = (y - 16.0) * (255.0 / 219.0)
        u, v = u * (255.0 / 224.0), v * (255.0 / 224.0)
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class TimedPicture:
    index: int  # position on the analysis clock: shown over [index / fps, (index + 1) / fps)
    source_index: int  # which decoded picture; repeated when the source is slower than the clock
    picture: Picture
    source_start_s: float  # when the decoded picture comes on screen
    source_centre_s: float  # the middle of the decoded picture's own time on screen


@dataclass(frozen=True)
class AudioTrack:
    samples: np.ndarray  # (N,) float32 mono
    rate: int
    start_s: float  # presentation time of the first sample, on the video clock

    def at(self, start_s: float, end_s: float) -> np.ndarray:
        """The samples between two times on the video clock (zeros where the sound has none)."""
        first = int(round((start_s - self.start_s) * self.rate))
        last = int(round((end_s - self.start_s) * self.rate))
        out = np.zeros(max(0, last - first), np.float32)
        lo, hi = max(0, first), min(self.samples.size, last)
        if hi > lo:
            out[lo - first : hi - first] = self.samples[lo:hi]
        return out


def _open(path: Path) -> Any:
    if not path.is_file():
        raise MediaError(path, "no such file")
    return open_input(path)


def _first_time(stream: Any) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _decoded(path: Path, stop: threading.Event, out: queue.Queue) -> None:
    """Decode the first picture stream into ``out`` (time, frame), then None; runs in its own thread
    so that decoding overlaps the analysis of the pictures before."""
    try:
        with _open(path) as container:
            pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if not pictures:
                raise MediaError(path, "no video stream")
            stream = pictures[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if stop.is_set():
                    return
                if frame.time is not None:
                    out.put((frame.time, frame))
    except av.FFmpegError as exc:
        out.put(MediaError(path, f"cannot decode video ({exc.strerror})"))
    except MediaError as exc:
        out.put(exc)
    finally:
        out.put(None)


def pictures(path: str | Path, fps: float = ANALYSIS_FPS) -> Iterator[TimedPicture]:
    """The clip's pictures resampled to ``fps``: clock slot k shows the decoded picture on screen at
    its centre, (k + 0.5) / fps after the first picture. A 24 fps source repeats a picture about once
    a second; a 50 fps one skips every other (skipped pictures are never converted)."""
    path = Path(path)
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    worker = threading.Thread(target=_decoded, args=(path, stop, decoded), daemon=True)
    worker.start()
    slot, source, start = 0, -1, None
    pending: tuple[int, av.VideoFrame] | None = None  # the picture on screen now, not yet converted
    converted: Picture | None = None
    last_time, frame_s = 0.0, 1 / fps
    try:
        while (item := decoded.get()) is not None:
            if isinstance(item, MediaError):
                raise item
            time, frame = item
            start = time if start is None else start
            if pending is not None and time - start > last_time:
                frame_s = time - start - last_time
            while pending is not None and (slot + 0.5) / fps < time - start:
                converted = converted or Picture(pending[1])
                yield TimedPicture(slot, pending[0], converted, last_time, last_time + frame_s / 2)
                slot += 1
            source += 1
            pending, converted, last_time = (source, frame), None, time - start
        while pending is not None and (slot + 0.5) / fps < last_time + frame_s:
            converted = converted or Picture(pending[1])
            yield TimedPicture(slot, pending[0], converted, last_time, last_time + frame_s / 2)
            slot += 1
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                decoded.get(timeout=0.1)  # unblock a worker waiting on a full queue
        worker.join()


def audio_track(path: str | Path, rate: int = 16_000) -> AudioTrack | None:
    """The first audio stream as mono float32 at ``rate`` on the video clock; None when the file has none."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            return None
        video = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        origin = _first_time(video[0]) if video else 0.0
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        chunks, first = [], None
        try:
            for decoded in container.decode(stream):
                if first is None and decoded.time is not None:
                    first = decoded.time
                chunks += [out.to_ndarray()[0] for out in resampler.resample(decoded)]
            chunks += [out.to_ndarray()[0] for out in resampler.resample(None)]
        except av.FFmpegError as exc:
            raise MediaError(path, f"cannot decode audio ({exc.strerror})") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return AudioTrack(samples, rate, (first if first is not None else _first_time(stream)) - origin)
