"""One decode of a clip → what the sync scores compare, on the 25 fps analysis clock.

Per decoded picture that the clock shows: the mouth opening of the most prominent face (MediaPipe
face-mesh landmarks, `media.faces`) and the motion change of the whole picture. Both are measured at
the picture's own time and interpolated onto the clock's slot centres (k + 0.5) / 25, so a 24 fps
or 30 fps source is resampled without the half-frame jumps of repeating pictures. The sound is kept
as mono 16 kHz on the same clock (`media.frames.AudioTrack`).

Mouth opening: the mean inner-lip gap over the five inner vertical pairs of the face mesh (13/14 at
the centre, 82/87, 312/317, 81/178, 311/402), divided by the distance between the outer eye corners
(33/263), a face-size normaliser that does not move when the jaw does.

Motion, from the frame differences D(i) = L(i) − L(i−1) of a coarse luma grid: ``motion_energy`` is
their RMS (how much moves), and ``motion_change`` at picture i is how much the motion turns back
there — the negative part of the cosine between D(i) and D(i+1), times the smaller of their RMS. A
ball that hits the floor, a hand that stops on a table: the picture after undoes the picture before.
Steady motion, a pan or a cut score about zero. (Measured on the calibration set's bouncing balls:
the second difference or the frame-difference energy itself peak up to 40 ms before the contact,
because the contact frame moves little between the fast frames around it; the turn does not.)

Black and frozen stretches, for the technical QC (`media.qc`), come from the same decode and the same
luma grid, with the definitions of ffmpeg's blackdetect and freezedetect (see `Stretches`), so a clip
that is both scored for sync and checked is decoded once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from syncreel.media.errors import MediaError
from syncreel.media.faces import EYE_LEFT_OF_IMAGE, EYE_RIGHT_OF_IMAGE, FaceMesh, FaceTracker
from syncreel.media.frames import ANALYSIS_FPS, AudioTrack, audio_track, pictures

MOUTH_PAIRS = ((13, 14), (82, 87), (312, 317), (81, 178), (311, 402))
MOTION_GRID_SIDE = 96  # the motion grid's short side, in samples
AUDIO_RATE = 16_000  # SyncNet's audio rate; enough for the 300–3400 Hz speech band
# blackdetect's definitions: a pixel is black at or below this share of the luma range above black
# level (pix_th), a picture when this share of its pixels are (pic_th), a stretch from this long (d)
BLACK_PIXEL_THRESHOLD = 0.10
BLACK_PICTURE_SHARE = 0.98
BLACK_MIN_S = 0.1
# freezedetect's: a picture is frozen while its mean absolute difference from the stretch's first
# picture stays at or below this share of the 8-bit range (n), a stretch from this long (d)
FREEZE_NOISE = 0.003
FREEZE_MIN_S = 1.0

Span = tuple[float, float]  # (start, end) in seconds on the video clock


@dataclass(frozen=True)
class ClipTracks:
    path: str
    fps: float  # the analysis clock
    frames: int  # slots on the clock
    width: int
    height: int
    source_pictures: int  # decoded pictures that the clock showed
    mouth_opening: np.ndarray | None  # (frames,) float, NaN where no face; None when faces were not tracked
    motion_change: np.ndarray  # (frames,) float ≥ 0, luma levels RMS
    motion_energy: np.ndarray  # (frames,) float ≥ 0, luma levels RMS
    audio: AudioTrack | None
    black: tuple[Span, ...] = field(default=())  # black stretches (`Stretches`)
    frozen: tuple[Span, ...] = field(default=())  # frozen stretches (`Stretches`)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def face_present(self) -> np.ndarray:
        if self.mouth_opening is None:
            return np.zeros(self.frames, bool)
        return np.isfinite(self.mouth_opening)


def mouth_opening(mesh: FaceMesh) -> float:
    """Inner-lip gap over the outer-eye-corner distance, from the upright crop's landmarks."""
    points = mesh.crop_points[:, :2]
    gap = np.mean([np.linalg.norm(points[upper] - points[lower]) for upper, lower in MOUTH_PAIRS])
    eyes = np.linalg.norm(points[EYE_RIGHT_OF_IMAGE] - points[EYE_LEFT_OF_IMAGE])
    return float(gap / max(eyes, 1e-6))


class Stretches:
    """Black and frozen stretches of a picture sequence, fed one luma grid per decoded picture.

    ffmpeg's blackdetect and freezedetect, measured on the grid (every ``step``-th pixel) instead of
    every pixel: a picture is black when at least 98% of its samples are at or below black level +
    10% of the luma range (16 + 21.9 in studio range, 25.5 in full range); frozen while the mean
    absolute luma difference from the stretch's first picture is at most 0.003 of the 8-bit range
    (0.77 levels; freezedetect adds the chroma planes, which a colour-only change would need). A black
    stretch counts from 0.1 s, a frozen one from 1 s; each runs from its first picture's start to the
    start of the first picture that breaks it, or to the end of the last picture."""

    def __init__(self, full_range: bool):
        black, white = (0.0, 255.0) if full_range else (16.0, 235.0)
        self._black_level = black + BLACK_PIXEL_THRESHOLD * (white - black)
        self._black_since: float | None = None
        self._reference: tuple[float, np.ndarray] | None = None  # (start, grid) of the picture frozen on
        self._black: list[Span] = []
        self._frozen: list[Span] = []

    def add(self, start_s: float, grid: np.ndarray) -> None:
        """The picture that comes on screen at ``start_s``, as its uint8 luma grid."""
        black = np.count_nonzero(grid <= self._black_level) >= BLACK_PICTURE_SHARE * grid.size
        if black and self._black_since is None:
            self._black_since = start_s
        elif not black and self._black_since is not None:
            self._close(self._black, self._black_since, start_s, BLACK_MIN_S)
            self._black_since = None
        if self._reference is not None:
            difference = np.mean(np.abs(grid.astype(np.int16) - self._reference[1])) / 256
            if difference <= FREEZE_NOISE:
                return
            self._close(self._frozen, self._reference[0], start_s, FREEZE_MIN_S)
        self._reference = (start_s, grid.astype(np.int16))

    @staticmethod
    def _close(spans: list[Span], start_s: float, end_s: float, minimum_s: float) -> None:
        if end_s - start_s >= minimum_s - 1e-6:
            spans.append((round(start_s, 3), round(end_s, 3)))

    def spans(self, end_s: float) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
        """(black, frozen) once the last picture has gone off screen at ``end_s``."""
        black, frozen = list(self._black), list(self._frozen)
        if self._black_since is not None:
            self._close(black, self._black_since, end_s, BLACK_MIN_S)
        if self._reference is not None:
            self._close(frozen, self._reference[0], end_s, FREEZE_MIN_S)
        return tuple(black), tuple(frozen)


def _turn(before: np.ndarray, after: np.ndarray) -> float:
    """How much the motion ``after`` undoes the motion ``before`` (two frame differences)."""
    norm_before, norm_after = float(np.linalg.norm(before)), float(np.linalg.norm(after))
    if norm_before == 0 or norm_after == 0:
        return 0.0
    cosine = float(np.vdot(before, after)) / (norm_before * norm_after)
    return max(0.0, -cosine) * min(norm_before, norm_after) / np.sqrt(before.size)


def _on_clock(times: np.ndarray, values: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """Linear interpolation of samples at ``times`` onto slot centres; NaN wherever a neighbour is NaN."""
    centres = (np.arange(frames) + 0.5) / fps
    if times.size == 0:
        return np.full(frames, np.nan)
    if times.size == 1:
        return np.full(frames, values[0])
    out = np.interp(centres, times, np.nan_to_num(values, nan=0.0))
    # a slot whose bracketing samples include a missing one is missing too
    right = np.clip(np.searchsorted(times, centres), 0, times.size - 1)
    left = np.clip(right - 1, 0, times.size - 1)
    missing = np.isnan(values[left]) | np.isnan(values[right])
    out[missing] = np.nan
    return out


def analyse(
    path: str | Path, *, faces: bool = True, sound: bool = True, tracker: FaceTracker | None = None
) -> ClipTracks:
    """Decode ``path`` once and measure the tracks (faces only when ``faces``, the sound only when
    ``sound``). Raises MediaError for a missing or unreadable file, or one without a picture stream."""
    path = Path(path)
    if faces and tracker is None:
        tracker = FaceTracker()
    if tracker is not None:
        tracker.reset()
    times: list[float] = []
    openings: list[float] = []
    change: list[float] = [0.0]  # the first and last pictures have no turn
    energy: list[float] = [0.0]
    grids: list[np.ndarray] = []  # the last three pictures' luma grids
    stretches: Stretches | None = None
    frames, width, height, last_source, end_s = 0, 0, 0, -1, 0.0
    for shown in pictures(path, ANALYSIS_FPS):
        frames = shown.index + 1
        if shown.source_index == last_source:
            continue
        last_source = shown.source_index
        picture = shown.picture
        width, height = picture.width, picture.height
        times.append(shown.source_centre_s)
        end_s = 2 * shown.source_centre_s - shown.source_start_s
        step = max(1, min(width, height) // MOTION_GRID_SIDE)
        grid = picture.luma(step)
        stretches = stretches or Stretches(picture.full_range)
        stretches.add(shown.source_start_s, grid)
        grids = [*grids[-2:], grid.astype(np.float32)]
        if len(grids) >= 2:
            energy.append(float(np.sqrt(np.mean((grids[-1] - grids[-2]) ** 2))))
        if len(grids) == 3:
            change.append(_turn(grids[1] - grids[0], grids[2] - grids[1]))
        if faces and tracker is not None:
            mesh = tracker(picture)
            openings.append(mouth_opening(mesh) if mesh is not None else np.nan)
    if frames == 0 or stretches is None:
        raise MediaError(path, "no pictures to analyse")
    stamps = np.asarray(times)
    change = (change + [0.0])[: len(times)]
    energy = energy[: len(times)]
    black, frozen = stretches.spans(end_s)
    return ClipTracks(
        path=str(path),
        fps=ANALYSIS_FPS,
        frames=frames,
        width=width,
        height=height,
        source_pictures=len(times),
        mouth_opening=_on_clock(stamps, np.asarray(openings), frames, ANALYSIS_FPS) if faces else None,
        motion_change=_on_clock(stamps, np.asarray(change), frames, ANALYSIS_FPS),
        motion_energy=_on_clock(stamps, np.asarray(energy), frames, ANALYSIS_FPS),
        audio=audio_track(path, AUDIO_RATE) if sound else None,
        black=black,
        frozen=frozen,
    )
