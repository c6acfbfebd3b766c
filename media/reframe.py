"""Subject-aware reframing: what matters in each shot, and a smooth crop path that keeps it in frame.

Two steps, so that one analysis of a master serves every platform:

1. `analyse_subjects` decodes the master once (luma planes; a small RGB picture now and then for the
   report) and finds, per source frame: the shot it belongs to (`media.shots`), the faces (MediaPipe's
   BlazeFace, the detector the lip-sync QA uses, run a few times a second and interpolated), the box
   of what moves (motion saliency on a coarse luma grid) and the generator's hints when it gives any.
2. `plan_crop_path` turns that into one crop window per output frame for a target frame size:

   - the window has the target's aspect and is as large as the source allows (the cover crop);
   - per shot, the *required* box (every face with head room, the hints, else what moves when it fits)
     gives each frame a band of window positions that keep it inside; when one position fits the whole
     shot the window **holds still** there (snapping to the centre when that fits and is close), else
     it follows the narrowest smooth path through the bands: a least-squares path that penalises
     velocity and acceleration, with the bands as hard bounds (no jitter, no late catch-up);
   - when the required box cannot fit a window (two people far apart, 16:9 → 9:16) on more than
     ``MAX_INFEASIBLE_SHARE`` of a shot, that shot is **padded**: the whole picture, fitted over a
     blurred, scaled copy of itself, rather than a cut face;
   - a cut may move the window at once; inside a shot the path's per-frame step and acceleration are
     measured and reported (`CropPath.max_step_px`, `max_accel_px`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from scipy.optimize import lsq_linear
from scipy.sparse import diags, eye, vstack

from syncreel.media.errors import MediaError
from syncreel.media.frames import Box, Picture, as_box
from syncreel.media.probe import open_input
from syncreel.media.shots import Shot, shot_boundaries, shots_from_boundaries

FACE_SAMPLES_PER_S = 4.0  # faces move slowly next to a frame: detect a few times a second, interpolate
MIN_FACE_SIDE = 0.05  # of the frame's short side: smaller faces are extras, not the subject
MIN_TILE_SCORE = 0.7  # the tile search sees more texture at a larger scale: ask it for more confidence
# The small-face search (the detector on tiles) costs ~15 whole-frame passes: it runs on one face
# sample in TILE_EVERY (faces it alone finds are held until the next such sample).
TILE_EVERY = 12
FACE_HOLD_S = 0.5  # a face missed this long (a blink, a turn) is still there
FACE_MARGIN = (0.35, 0.45, 0.35, 0.6)  # head room around a face box: left, top, right, bottom (× face size)
MOTION_GRID_COLUMNS = 96  # the motion grid: about this many cells across
MOTION_MIN_LEVEL = 10.0  # |ΔY| (0–255) below this is noise or compression
MOTION_MIN_SHARE = 0.002  # of the grid's cells moving, or there is no moving subject
MOTION_MAX_WIDTH = 0.8  # a moving box wider than this share of the frame is a pan, not a subject
MOTION_MASS = (0.03, 0.97)  # the moving box spans these quantiles of the motion mass
MOTION_SMOOTH_FRAMES = 5  # a running median over this many frames calms the box
MOTION_HOLD_S = 0.5  # a subject that stops for this long is still where it stopped
MOTION_MARGIN = 0.08  # of the box's size, each side
REPORT_PICTURES = 8  # small RGB pictures kept for the report's crop-path drawing
REPORT_WIDTH = 320

MAX_INFEASIBLE_SHARE = 0.02  # a shot whose required box does not fit more often than this is padded
SNAP_TO_CENTRE = 0.05  # of the source side: a still window this close to the centre goes to the centre
VELOCITY_WEIGHT = 1.0
ACCELERATION_WEIGHT = 40.0  # relative to velocity: ramps over about half a second at 25 fps
TARGET_WEIGHT = 1e-3  # a faint pull towards the subject's centre, so that moves end near it


@dataclass(frozen=True)
class SubjectHint:
    """What the generator says matters: a box (fractions of the frame, 0–1) over a time span."""

    start_s: float
    end_s: float
    box: Box
    required: bool = True  # False: a preference (the window leans towards it) rather than a must-keep

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubjectHint:
        x0, y0, x1, y1 = (float(v) for v in data["box"])
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"a hint box is (x0, y0, x1, y1) in fractions of the frame, got {data['box']}")
        return cls(float(data["start_s"]), float(data["end_s"]), (x0, y0, x1, y1), bool(data.get("required", True)))


@dataclass
class SourceAnalysis:
    """What `analyse_subjects` found, per source frame."""

    width: int
    height: int
    fps: float
    frame_count: int
    shots: list[Shot]
    faces: list[list[Box]]  # per frame: every face (interpolated between detections), source pixels
    motion: list[Box | None]  # per frame: the moving subject's box
    hints: list[SubjectHint] = field(default_factory=list)
    pictures: dict[int, np.ndarray] = field(default_factory=dict)  # frame index → small RGB, for the report
    face_detector: str = "none"  # "blazeface" or why there was none

    def required_box(self, frame: int) -> Box | None:
        """Union of what must stay in frame: faces with head room, required hints."""
        boxes = [_with_face_margin(box, self.width, self.height) for box in self.faces[frame]]
        boxes += self._hint_boxes(frame, required=True)
        return _union(boxes)

    def preferred_box(self, frame: int) -> Box | None:
        """Where the window should lean when nothing is required: preference hints, else what moves."""
        return _union(self._hint_boxes(frame, required=False)) or self.motion[frame]

    def _hint_boxes(self, frame: int, *, required: bool) -> list[Box]:
        t = (frame + 0.5) / self.fps
        return [
            (h.box[0] * self.width, h.box[1] * self.height, h.box[2] * self.width, h.box[3] * self.height)
            for h in self.hints
            if h.required == required and h.start_s <= t < h.end_s
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self.frame_count,
            "shots": [[s.start, s.end] for s in self.shots],
            "face_detector": self.face_detector,
            "frames_with_faces": sum(1 for f in self.faces if f),
            "frames_with_motion": sum(1 for m in self.motion if m is not None),
            "hints": len(self.hints),
        }


def _union(boxes: Sequence[Box]) -> Box | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _with_face_margin(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    left, top, right, bottom = FACE_MARGIN
    return (max(0.0, x0 - left * w), max(0.0, y0 - top * h), min(width, x1 + right * w), min(height, y1 + bottom * h))


def _face_detector() -> tuple[Any, str]:
    from syncreel.media.faces import FaceDetector, FaceModelError

    try:
        return FaceDetector(threads=1), "blazeface"
    except FaceModelError as exc:
        return None, f"none ({exc})"


def _overlaps(box: Box, others: Sequence[Box]) -> bool:
    for other in others:
        inter_w = min(box[2], other[2]) - max(box[0], other[0])
        inter_h = min(box[3], other[3]) - max(box[1], other[1])
        if inter_w > 0 and inter_h > 0:
            return True
    return False


def _squares(picture: Picture) -> list[tuple[int, int, int, int]]:
    """The two ends of a wide (or tall) frame as squares of its short side: the detector sees a face
    about twice as large there as in the whole letterboxed frame, for two passes instead of ~15 tiles."""
    w, h = picture.width, picture.height
    if max(w, h) < 1.3 * min(w, h):
        return []
    return [(0, 0, h, h), (w - h, 0, w, h)] if w > h else [(0, 0, w, w), (0, h - w, w, h)]


def _detect_faces(
    detector: Any, picture: Picture, *, tiles: bool, carried: Sequence[Box], expected: int
) -> tuple[list[Box], list[Box]]:
    """Every face in the picture big enough to matter, and those only the tile search found.

    The whole frame finds large faces in one pass; the frame's two end squares run too when it found
    fewer faces than the sample before (a face too small for the whole frame, but not for a square);
    the detector's own search over tiles runs on one sample in TILE_EVERY, and the faces only it found
    are carried to the samples in between."""
    least = MIN_FACE_SIDE * min(picture.width, picture.height)

    def add(found: list[Box], more: Sequence[Box]) -> list[Box]:
        return found + [b for b in more if b[2] - b[0] >= least and not _overlaps(b, found)]

    boxes = add([], [d.box for d in detector.detect(picture, tiles=False)])
    if tiles or len(boxes) < expected:
        for square in _squares(picture):
            boxes = add(boxes, [as_box(b) for _, b, _ in detector._run(picture, square)])
    if tiles:
        tiled = [as_box(b) for score, b, _ in detector._tiled(picture) if score >= MIN_TILE_SCORE]
    else:
        tiled = list(carried)
    small = [b for b in tiled if b[2] - b[0] >= least and not _overlaps(b, boxes)]
    return boxes + small, small


def _motion_box(previous: np.ndarray, current: np.ndarray, step: int, width: int, height: int) -> Box | None:
    """The box of what moved between two coarse luma pictures, or None (nothing, or everything: a pan)."""
    difference = np.abs(current.astype(np.int16) - previous.astype(np.int16)).astype(np.float32)
    level = max(MOTION_MIN_LEVEL, 4.0 * float(np.median(difference)))
    moving = difference >= level
    if moving.mean() < MOTION_MIN_SHARE:
        return None
    weights = difference * moving
    columns, rows = weights.sum(0), weights.sum(1)

    def span(mass: np.ndarray) -> tuple[float, float]:
        cumulative = np.cumsum(mass) / mass.sum()
        low = int(np.searchsorted(cumulative, MOTION_MASS[0]))
        high = int(np.searchsorted(cumulative, MOTION_MASS[1]))
        return low * step, min((high + 1) * step, len(mass) * step)

    x0, x1 = span(columns)
    y0, y1 = span(rows)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 - x0 > MOTION_MAX_WIDTH * width:
        return None
    mx, my = MOTION_MARGIN * (x1 - x0), MOTION_MARGIN * (y1 - y0)
    return (max(0.0, x0 - mx), max(0.0, y0 - my), min(width, x1 + mx), min(height, y1 + my))


def _smooth_motion(boxes: list[Box | None], shots: list[Shot], hold: int) -> list[Box | None]:
    """A running median of each box edge within a shot, and a short hold over gaps."""
    out: list[Box | None] = [None] * len(boxes)
    half = MOTION_SMOOTH_FRAMES // 2
    for shot in shots:
        last, since = None, 0
        for i in range(shot.start, shot.end):
            window = [b for b in boxes[max(shot.start, i - half) : min(shot.end, i + half + 1)] if b is not None]
            if boxes[i] is not None and window:
                last, since = as_box(np.median(np.array(window), axis=0)), 0
                out[i] = last
            elif last is not None and since < hold:
                since += 1
                out[i] = last
    return out


def _interpolate_faces(
    samples: dict[int, list[Box]], shots: list[Shot], frame_count: int, hold: int
) -> list[list[Box]]:
    """Faces on every frame from the sampled detections: between two samples of the same shot with the
    same number of faces, each face (ordered left to right) moves linearly; otherwise the nearer
    sample's faces stand, for at most ``hold`` frames past a sample."""
    faces: list[list[Box]] = [[] for _ in range(frame_count)]
    for shot in shots:
        sampled = sorted(i for i in samples if shot.start <= i < shot.end)
        for i in range(shot.start, shot.end):
            before = max((s for s in sampled if s <= i), default=None)
            after = min((s for s in sampled if s >= i), default=None)
            a = samples[before] if before is not None else []
            b = samples[after] if after is not None else []
            if before is not None and after is not None and after > before and a and len(a) == len(b):
                w = (i - before) / (after - before)
                left_a, left_b = sorted(a), sorted(b)
                faces[i] = [
                    as_box((1 - w) * pa + w * pb for pa, pb in zip(fa, fb, strict=True))
                    for fa, fb in zip(left_a, left_b, strict=True)
                ]
            elif a and (before is not None and i - before <= hold):
                faces[i] = list(a)
            elif b and (after is not None and after - i <= hold):
                faces[i] = list(b)
    return faces


@dataclass
class _Scan:
    """What one decode of the source collects, frame by frame: coarse luma pictures and what moved
    between them, faces on every ``face_every``-th frame, and a few small pictures for the report."""

    width: int
    height: int
    detector: Any  # a FaceDetector, or None when faces are not looked for
    face_every: int
    report_every: int
    step: int  # source pixels per cell of the motion grid
    lumas: list[np.ndarray] = field(default_factory=list)
    motion: list[Box | None] = field(default_factory=list)
    samples: dict[int, list[Box]] = field(default_factory=dict)  # frame index → faces found there
    pictures: dict[int, np.ndarray] = field(default_factory=dict)
    small_faces: list[Box] = field(default_factory=list)  # those only the last tile search found
    expected_faces: int = 0

    def add(self, index: int, picture: Picture) -> None:
        luma = picture.luma(self.step).copy()
        moved = _motion_box(self.lumas[-1], luma, self.step, self.width, self.height) if self.lumas else None
        self.motion.append(moved)
        self.lumas.append(luma)
        if self.detector is not None and index % self.face_every == 0:
            tiles = (index // self.face_every) % TILE_EVERY == 0
            self.samples[index], small = _detect_faces(
                self.detector, picture, tiles=tiles, carried=self.small_faces, expected=self.expected_faces
            )
            self.expected_faces = len(self.samples[index]) - len(small)
            if tiles:
                self.small_faces = small
        if index % self.report_every == 0 and len(self.pictures) < REPORT_PICTURES:
            size = (REPORT_WIDTH, max(2, round(REPORT_WIDTH * self.height / self.width)))
            self.pictures[index] = picture.resized((0, 0, self.width, self.height), size)


def _scan(path: Path, detector: Any, face_samples_per_s: float) -> tuple[_Scan, float]:
    """Decode the first video stream (not a cover picture) of ``path`` once: its scan and frame rate."""
    try:
        with open_input(path) as container:
            streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if not streams:
                raise MediaError(path, "no video stream to reframe")
            stream = streams[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 25.0)
            width, height = stream.codec_context.width, stream.codec_context.height
            seconds = (
                float(stream.duration * stream.time_base) if stream.duration else float(container.duration or 0) / 1e6
            )
            expected = stream.frames or max(1, round(seconds * fps))
            scan = _Scan(
                width,
                height,
                detector,
                face_every=max(1, round(fps / face_samples_per_s)),
                report_every=max(1, expected // REPORT_PICTURES),
                step=max(1, width // MOTION_GRID_COLUMNS),
            )
            for index, frame in enumerate(container.decode(stream)):
                scan.add(index, Picture(frame))
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot decode video for reframing ({exc.strerror})") from None
    return scan, fps


def analyse_subjects(
    path: str | Path,
    *,
    hints: Sequence[SubjectHint] = (),
    faces: bool = True,
    face_samples_per_s: float = FACE_SAMPLES_PER_S,
) -> SourceAnalysis:
    """Decode ``path`` once and find its shots, faces, moving subject (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    detector, detector_name = _face_detector() if faces else (None, "none (not asked)")
    scan, fps = _scan(path, detector, face_samples_per_s)
    frame_count = len(scan.lumas)
    if frame_count == 0:
        raise MediaError(path, "no decodable frames to reframe")
    boundaries = shot_boundaries(scan.lumas)
    shots = shots_from_boundaries(boundaries, frame_count)
    for cut in boundaries:  # the difference across a cut is the cut, not a subject
        scan.motion[cut] = None
    return SourceAnalysis(
        width=scan.width,
        height=scan.height,
        fps=fps,
        frame_count=frame_count,
        shots=shots,
        faces=_interpolate_faces(scan.samples, shots, frame_count, hold=max(1, round(FACE_HOLD_S * fps))),
        motion=_smooth_motion(scan.motion, shots, hold=max(1, round(MOTION_HOLD_S * fps))),
        hints=list(hints),
        pictures=scan.pictures,
        face_detector=detector_name,
    )


# --- the crop path ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShotPlan:
    start: int  # output frames [start, end)
    end: int
    mode: Literal["crop", "pad"]
    reason: str


@dataclass(frozen=True)
class CropPath:
    """One window of the source per output frame (x, y, w, h in source pixels): in "crop" shots the
    window is scaled to fill the output; in "pad" shots it is the whole frame, fitted over a blur."""

    source_size: tuple[int, int]
    output_size: tuple[int, int]
    fps: float
    windows: np.ndarray  # (N, 4) int: x, y, w, h
    modes: tuple[str, ...]  # per output frame: "crop" | "pad"
    shots: tuple[ShotPlan, ...]

    @property
    def crop_size(self) -> tuple[int, int]:
        crops = self.windows[np.array(self.modes) == "crop"]
        return (int(crops[0, 2]), int(crops[0, 3])) if len(crops) else self.source_size

    @property
    def pad_share(self) -> float:
        return sum(m == "pad" for m in self.modes) / max(1, len(self.modes))

    def _within_shots(self, order: int) -> np.ndarray:
        steps = []
        for shot in self.shots:
            if shot.mode == "crop" and shot.end - shot.start > order:
                steps.append(np.abs(np.diff(self.windows[shot.start : shot.end, :2], n=order, axis=0)).max(initial=0))
        return np.array(steps or [0])

    @property
    def max_step_px(self) -> float:
        """The largest frame-to-frame move of the window inside a shot (source pixels)."""
        return float(self._within_shots(1).max())

    @property
    def max_accel_px(self) -> float:
        """The largest change of that move from one frame to the next (source pixels / frame²)."""
        return float(self._within_shots(2).max())

    def contains(self, frame: int, box: Box) -> bool:
        """Whether the output frame shows all of ``box`` (source pixels)."""
        x, y, w, h = self.windows[frame]
        return x <= box[0] + 0.5 and y <= box[1] + 0.5 and box[2] - 0.5 <= x + w and box[3] - 0.5 <= y + h

    def summary(self) -> dict[str, Any]:
        return {
            "mode": "pad" if self.pad_share == 1 else "crop" if self.pad_share == 0 else "mixed",
            "crop_size": list(self.crop_size),
            "pad_share": round(self.pad_share, 4),
            "max_step_px": self.max_step_px,
            "max_accel_px": self.max_accel_px,
            "shots": [s.__dict__ for s in self.shots],
        }

    def samples(self, most: int = 240) -> list[dict[str, Any]]:
        """At most ``most`` evenly spaced windows, ``{t, x, y, w, h, mode}`` (seconds, source pixels):
        small enough to keep inline in a record for a report's plot."""
        step = max(1, math.ceil(len(self.modes) / most))
        return [
            {
                "t": round(k / self.fps, 3),
                **dict(zip("xywh", map(int, self.windows[k]), strict=True)),
                "mode": self.modes[k],
            }
            for k in range(0, len(self.modes), step)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON: the summary and every frame's window, ``[x, y, w, h, mode]`` in source pixels."""
        return {
            "source_size": list(self.source_size),
            "output_size": list(self.output_size),
            "fps": self.fps,
            **self.summary(),
            "frames": [[*map(int, w), m] for w, m in zip(self.windows, self.modes, strict=True)],
        }


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _with_motion(needed: Box | None, moving: Box | None, crop_w: int, crop_h: int) -> Box | None:
    if moving is None:
        return needed
    both = _union([b for b in (needed, moving) if b is not None])
    assert both is not None
    return both if both[2] - both[0] <= crop_w and both[3] - both[1] <= crop_h else needed


def cover_crop_size(src_w: int, src_h: int, out_w: int, out_h: int) -> tuple[int, int]:
    """The largest window of the source with the output's aspect."""
    scale = max(out_w / src_w, out_h / src_h)
    return min(src_w, _even(out_w / scale)), min(src_h, _even(out_h / scale))


def _smooth_path(lower: np.ndarray, upper: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares path under bounds: velocity and acceleration penalised, a faint pull to ``target``."""
    n = len(lower)
    if n == 1:
        return np.clip(target, lower, upper)
    d1 = diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    parts = [math.sqrt(VELOCITY_WEIGHT) * d1, math.sqrt(TARGET_WEIGHT) * eye(n)]
    rhs = [np.zeros(n - 1), math.sqrt(TARGET_WEIGHT) * target]
    if n > 2:
        d2 = diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(n - 2, n))
        parts.insert(1, math.sqrt(ACCELERATION_WEIGHT) * d2)
        rhs.insert(1, np.zeros(n - 2))
    upper = np.maximum(upper, lower + 1e-6)  # lsq_linear wants lower < upper
    solution = lsq_linear(vstack(parts).tocsr(), np.concatenate(rhs), bounds=(lower, upper), lsmr_tol="auto")
    return np.clip(solution.x, lower, upper)


def _axis_path(
    required: list[tuple[float, float] | None],
    preferred: list[tuple[float, float] | None],
    size: int,
    window: int,
) -> tuple[np.ndarray, int]:
    """Window positions along one axis for one shot, and how many frames the required span did not fit."""
    room = size - window
    n = len(required)
    if room <= 0:
        return np.zeros(n), 0
    lower, upper = np.zeros(n), np.full(n, float(room))
    target = np.full(n, room / 2)
    infeasible = 0
    for i, (need, want) in enumerate(zip(required, preferred, strict=True)):
        if need is not None:
            low, high = need[1] - window, need[0]
            if low > high:  # wider than the window: keep its centre
                infeasible += 1
                low = high = (need[0] + need[1]) / 2 - window / 2
            lower[i], upper[i] = min(max(0.0, low), room), max(min(float(room), high), 0.0)
            lower[i] = min(lower[i], upper[i])
        focus = need if need is not None else want
        if focus is not None:
            target[i] = (focus[0] + focus[1]) / 2 - window / 2
    target = np.clip(target, lower, upper)
    common_low, common_high = lower.max(), upper.min()
    if common_low <= common_high:  # one position keeps the subject all shot long: hold still
        centre = room / 2
        still = float(np.clip(np.median(target), common_low, common_high))
        if common_low <= centre <= common_high and abs(still - centre) <= SNAP_TO_CENTRE * size:
            still = centre
        return np.full(n, still), infeasible
    return _smooth_path(lower, upper, target), infeasible


def plan_crop_path(
    analysis: SourceAnalysis,
    output_size: tuple[int, int],
    fps: float,
    frame_count: int,
    *,
    policy: Literal["subject", "fit", "centre"] = "subject",
) -> CropPath:
    """One source window per output frame at ``fps`` for ``frame_count`` frames (module docstring)."""
    src_w, src_h = analysis.width, analysis.height
    out_w, out_h = output_size
    crop_w, crop_h = cover_crop_size(src_w, src_h, out_w, out_h)
    source_of = np.minimum(((np.arange(frame_count) + 0.5) / fps * analysis.fps).astype(int), analysis.frame_count - 1)
    windows = np.zeros((frame_count, 4), np.int64)
    modes: list[str] = ["crop"] * frame_count
    plans: list[ShotPlan] = []
    for shot in analysis.shots:
        frames = np.flatnonzero((source_of >= shot.start) & (source_of < shot.end))
        if len(frames) == 0:
            continue
        mode, reason, xs, ys = _plan_shot(analysis, source_of[frames], (crop_w, crop_h), policy)
        for offset, f in enumerate(frames):
            if mode == "pad":
                windows[f] = (0, 0, src_w, src_h)
            else:
                windows[f] = (int(round(xs[offset])), int(round(ys[offset])), crop_w, crop_h)
            modes[f] = mode
        plans.append(ShotPlan(int(frames[0]), int(frames[-1]) + 1, mode, reason))
    return CropPath((src_w, src_h), (out_w, out_h), fps, windows, tuple(modes), tuple(plans))


def _plan_shot(
    analysis: SourceAnalysis,
    sources: np.ndarray,
    crop: tuple[int, int],
    policy: Literal["subject", "fit", "centre"],
) -> tuple[Literal["crop", "pad"], str, np.ndarray, np.ndarray]:
    """One shot's mode, the reason for it, and its window's x and y for each of its output frames (whose
    source frames are ``sources``): centred unless the subject policy finds something to keep in frame."""
    src_w, src_h = analysis.width, analysis.height
    crop_w, crop_h = crop
    xs, ys = np.full(len(sources), (src_w - crop_w) / 2), np.full(len(sources), (src_h - crop_h) / 2)
    if policy == "fit":
        return "pad", "fit policy", xs, ys
    if (crop_w, crop_h) == (src_w, src_h):
        return "crop", "same aspect", xs, ys
    needed = [analysis.required_box(int(f)) if policy == "subject" else None for f in sources]
    wanted = [analysis.preferred_box(int(f)) if policy == "subject" else None for f in sources]
    # what moves is required too, when the window can hold it with the faces and hints
    needed = [_with_motion(n, w, crop_w, crop_h) for n, w in zip(needed, wanted, strict=True)]
    xs, bad_x = _axis_path(
        [(b[0], b[2]) if b else None for b in needed], [(b[0], b[2]) if b else None for b in wanted], src_w, crop_w
    )
    ys, bad_y = _axis_path(
        [(b[1], b[3]) if b else None for b in needed], [(b[1], b[3]) if b else None for b in wanted], src_h, crop_h
    )
    infeasible = max(bad_x, bad_y) / len(sources)
    if infeasible > MAX_INFEASIBLE_SHARE:
        return "pad", f"the subject does not fit a {crop_w}×{crop_h} window on {infeasible:.0%} of the shot", xs, ys
    if all(n is None for n in needed):
        return "crop", "nothing detected: centred" if policy == "subject" else "centre policy", xs, ys
    return "crop", "holds still" if np.ptp(xs) < 1 and np.ptp(ys) < 1 else "follows the subject", xs, ys


def draw_crop_path(analysis: SourceAnalysis, path: CropPath, out: Path, *, fps_ratio: float | None = None) -> Path:
    """The report's picture of a crop path: the kept source pictures with the window drawn on each
    (green: crop, orange: pad), faces in blue, and under them the window's centre over time."""
    from PIL import Image, ImageDraw

    ratio = fps_ratio if fps_ratio is not None else path.fps / analysis.fps
    pictures = sorted(analysis.pictures.items())
    if not pictures:
        raise MediaError(out, "no pictures kept for the crop-path drawing")
    thumb_h, thumb_w = pictures[0][1].shape[:2]
    scale = thumb_w / analysis.width
    columns = min(4, len(pictures))
    rows = math.ceil(len(pictures) / columns)
    plot_h = 120
    sheet = Image.new("RGB", (columns * thumb_w, rows * thumb_h + plot_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    last = len(path.modes) - 1
    for slot, (index, rgb) in enumerate(pictures):
        left, top = (slot % columns) * thumb_w, (slot // columns) * thumb_h
        sheet.paste(Image.fromarray(rgb), (left, top))
        frame = min(last, int(index * ratio))
        x, y, w, h = (float(v) * scale for v in path.windows[frame])
        colour = (60, 220, 90) if path.modes[frame] == "crop" else (255, 150, 40)
        draw.rectangle([left + x, top + y, left + x + w - 1, top + y + h - 1], outline=colour, width=2)
        for face in analysis.faces[index]:
            fx0, fy0, fx1, fy1 = (v * scale for v in face)
            draw.rectangle([left + fx0, top + fy0, left + fx1, top + fy1], outline=(70, 140, 255), width=1)
    plot_top = rows * thumb_h
    width = sheet.width
    centres = path.windows[:, 0] + path.windows[:, 2] / 2
    xs = np.linspace(0, width - 1, len(centres))
    ys = plot_top + plot_h - 4 - (centres / analysis.width) * (plot_h - 8)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(60, 220, 90), width=2)
    for shot in path.shots[1:]:
        x = shot.start / max(1, len(centres) - 1) * (width - 1)
        draw.line([(x, plot_top), (x, plot_top + plot_h)], fill=(160, 160, 160), width=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
