"""Shot boundaries: where a cut starts a new shot, from coarse luma pictures.

A cut changes the whole picture at once, so two measures jump together: the luma histogram distance
between consecutive pictures and their mean absolute pixel difference. Motion and pans move pixels but
keep the histogram; a flash changes both but only for a picture or two, and the minimum shot length
refuses a second cut right after the first. The decision is adaptive: a cut is a histogram distance
(or, between shots of the same tones, a mean pixel difference) well above the recent median *and*
above an absolute floor, so a busy shot does not cut on every frame.

    boundaries = shot_boundaries(picture.luma(8) for picture in pictures)
    shots = shots_from_boundaries(boundaries, frame_count)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from syncreel.media.errors import MediaError
from syncreel.media.frames import Picture
from syncreel.media.probe import open_input

HISTOGRAM_BINS = 32
MIN_HISTOGRAM_DISTANCE = 0.30  # total-variation distance (0–1): below this no cut, however quiet the shot
RELATIVE_JUMP = 3.0  # … and at least this many times the median distance of the recent pictures
MIN_PIXEL_DIFFERENCE = 12.0  # mean |ΔY| (0–255) that a cut also shows
MIN_SAME_TONE_DIFFERENCE = 18.0  # a cut between shots of the same tones: every pixel changes at once
MEDIAN_WINDOW = 15
MIN_SHOT_FRAMES = 6  # a quarter second at 24 fps: no two cuts closer than this


@dataclass(frozen=True)
class Shot:
    start: int  # first frame (inclusive)
    end: int  # last frame + 1

    @property
    def frames(self) -> int:
        return self.end - self.start


def _histogram(luma: np.ndarray) -> np.ndarray:
    counts = np.bincount((luma.ravel() >> 3).astype(np.intp), minlength=HISTOGRAM_BINS).astype(np.float64)
    return counts / max(1.0, counts.sum())


def shot_boundaries(lumas: Iterable[np.ndarray], *, min_shot_frames: int = MIN_SHOT_FRAMES) -> list[int]:
    """Indices of the frames that start a new shot (never 0), from each frame's luma plane (any size,
    uint8; a decimated plane such as ``Picture.luma(8)`` is plenty)."""
    boundaries: list[int] = []
    recent: deque[float] = deque(maxlen=MEDIAN_WINDOW)
    recent_differences: deque[float] = deque(maxlen=MEDIAN_WINDOW)
    previous_histogram, previous_luma = None, None
    last_cut = 0
    for index, luma in enumerate(lumas):
        luma = np.asarray(luma, dtype=np.uint8)
        histogram = _histogram(luma)
        if previous_histogram is not None and previous_luma is not None and previous_luma.shape == luma.shape:
            distance = 0.5 * float(np.abs(histogram - previous_histogram).sum())
            difference = float(np.abs(luma.astype(np.int16) - previous_luma).mean())
            baseline = float(np.median(recent)) if recent else 0.0
            usual_difference = float(np.median(recent_differences)) if recent_differences else 0.0
            new_tones = distance >= MIN_HISTOGRAM_DISTANCE and distance >= RELATIVE_JUMP * baseline
            new_picture = difference >= MIN_SAME_TONE_DIFFERENCE and difference >= RELATIVE_JUMP * usual_difference
            is_cut = (
                (new_tones or new_picture)
                and difference >= MIN_PIXEL_DIFFERENCE
                and index - last_cut >= min_shot_frames
            )
            if is_cut:
                boundaries.append(index)
                last_cut = index
                recent.clear()
                recent_differences.clear()
            else:
                recent.append(distance)
                recent_differences.append(difference)
        previous_histogram, previous_luma = histogram, luma
    return boundaries


def shots_from_boundaries(boundaries: Iterable[int], frame_count: int) -> list[Shot]:
    """The shots a list of boundaries cuts ``frame_count`` frames into (one shot when there is no cut)."""
    edges = [0, *sorted(b for b in set(boundaries) if 0 < b < frame_count), frame_count]
    return [Shot(start, end) for start, end in zip(edges, edges[1:], strict=False) if end > start]


def detect_shots(path: str | Path, *, luma_step: int = 8) -> list[Shot]:
    """The shots of a video file, on its own frame clock (one decode, luma only)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    try:
        with open_input(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            lumas = [Picture(frame).luma(luma_step).copy() for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError) as exc:
        raise MediaError(
            path, f"cannot decode video for shot detection ({getattr(exc, 'strerror', None) or 'no video stream'})"
        ) from None
    return shots_from_boundaries(shot_boundaries(lumas), len(lumas))
