"""Face landmarks offline: MediaPipe's BlazeFace detector and 468-point face mesh, run by LiteRT.

The model files ship with the package (``media/models``, Apache-2.0; NOTICE.md there says where they
come from) and run in Google's ``ai-edge-litert`` interpreter. This module is our
own thin wrapper around the two networks, following MediaPipe's graphs:

- detection: ``face_detection_full_range.tflite`` (192×192, one anchor per cell of a 48×48 grid)
  on the frame letterboxed to 192 px; when it finds nothing, the same model on overlapping tiles of
  half the frame's short side, so that a small face in a large frame is still found;
- landmarks: ``face_landmark.tflite`` on a 192×192 crop of the face at full resolution, square,
  1.5 × the face box, turned so that the eyes are level (MediaPipe's detection-to-ROI rule);
- tracking: the next frame's crop comes from this frame's landmarks (MediaPipe's face-mesh loop), and
  detection runs again only when the landmark model says the face is gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syncreel.media.frames import Box, Picture, as_box

MODELS = Path(__file__).parent / "models"
DETECTOR_MODEL = "face_detection_full_range.tflite"
LANDMARK_MODEL = "face_landmark.tflite"
INSTALL_HINT = "reinstall syncreel (pip install .): its face models and ai-edge-litert come with it"

DETECTOR_SIZE = 192
DETECTOR_STRIDE = 4  # full range: one layer of stride 4, one anchor per cell (MediaPipe's SSD options)
RAW_SCORE_CLIP = 100.0  # MediaPipe clips logits to ±100 before the sigmoid
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
LANDMARK_SIZE = 192
LANDMARK_COUNT = 468
MIN_FACE_PRESENCE = 0.5  # sigmoid of the landmark model's face flag
ROI_SCALE = 1.5  # the crop is this much larger than the face box (detection and tracking alike)
EYE_LEFT_OF_IMAGE, EYE_RIGHT_OF_IMAGE = 33, 263  # outer eye corners: the rotation and the face size
TILE_OVERLAP = 0.5


class FaceModelError(RuntimeError):
    """The face models or their runtime are not installed."""


def model_path(name: str) -> Path:
    """One of the face models that ship in ``media/models``."""
    path = MODELS / name
    if not path.is_file():
        raise FaceModelError(f"the face model {name} is missing from {MODELS}: {INSTALL_HINT}")
    return path


def _interpreter(member: str, threads: int):  # -> ai_edge_litert Interpreter
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise FaceModelError(f"the LiteRT runtime is not installed (ai-edge-litert): {INSTALL_HINT}") from None
    interpreter = Interpreter(model_path=str(model_path(member)), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


@dataclass(frozen=True)
class Detection:
    score: float
    box: Box  # in frame pixels
    keypoints: np.ndarray  # (6, 2) frame pixels: two eyes, nose tip, mouth, two ear tragions


@dataclass(frozen=True)
class Roi:
    """A square region of the frame, turned by ``angle`` (radians, the eye line's slope in the image)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_frame(self, points: np.ndarray, side: int) -> np.ndarray:
        """(N, 2) coordinates in the ``side``-pixel crop → frame pixels."""
        scale = self.size / side
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        dx, dy = (points[:, 0] - side / 2) * scale, (points[:, 1] - side / 2) * scale
        return np.stack([self.cx + dx * cos - dy * sin, self.cy + dx * sin + dy * cos], axis=1)


@dataclass(frozen=True)
class FaceMesh:
    crop_points: np.ndarray  # (468, 3) in the upright 192-px crop: scale-free measures come from here
    points: np.ndarray  # (468, 2) in frame pixels
    presence: float  # the landmark model's face probability
    roi: Roi


def _anchors() -> np.ndarray:
    """Anchor centres (x, y) normalised to the input, row by row (MediaPipe's SsdAnchorsCalculator for
    the full-range model: fixed anchor size, offset 0.5, one anchor per cell)."""
    cells = DETECTOR_SIZE // DETECTOR_STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def _weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[tuple]:
    """MediaPipe's weighted non-maximum suppression: each cluster of overlapping boxes becomes their
    score-weighted mean, with the best score."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > NMS_IOU)
        weights = scores[cluster] / scores[cluster].sum()
        kept.append(
            (
                float(scores[i]),
                (weights[:, None] * boxes[cluster]).sum(0),
                (weights[:, None, None] * keypoints[cluster]).sum(0),
            )
        )
        remaining &= ~cluster
    return kept


class FaceDetector:
    """BlazeFace full range on a whole frame, then on tiles when the whole frame shows no face."""

    def __init__(self, threads: int = 1):
        self._net = _interpreter(DETECTOR_MODEL, threads)
        self._input = self._net.get_input_details()[0]["index"]
        outputs = sorted(self._net.get_output_details(), key=lambda o: o["shape"][-1], reverse=True)
        self._regressors, self._classifiers = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _anchors()

    def _run(self, picture: Picture, box: tuple[int, int, int, int]) -> list[tuple]:
        """Detections in ``box`` of the picture, letterboxed into the square input: (score, box,
        keypoints) in picture pixels."""
        x0, y0, x1, y1 = box
        width, height = x1 - x0, y1 - y0
        scale = DETECTOR_SIZE / max(width, height)
        fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
        left, top = (DETECTOR_SIZE - fit_w) // 2, (DETECTOR_SIZE - fit_h) // 2
        resized = picture.resized(box, (fit_w, fit_h))
        canvas[top : top + fit_h, left : left + fit_w] = resized.astype(np.float32) / 127.5 - 1.0
        self._net.set_tensor(self._input, canvas[None])
        self._net.invoke()
        raw = self._net.get_tensor(self._regressors)[0]  # (2304, 16): box centre, size, 6 keypoints
        logits = np.clip(self._net.get_tensor(self._classifiers)[0, :, 0], -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
        scores = 1 / (1 + np.exp(-logits))
        keep = scores >= MIN_DETECTION_SCORE
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / DETECTOR_SIZE, scores[keep], self._anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        valid = (half > 0).all(1)
        found = []
        offset = np.array([left, top], np.float32) / DETECTOR_SIZE
        origin = np.array([x0, y0], np.float32)
        for score, found_box, points in _weighted_nms(boxes[valid], keypoints[valid], scores[valid]):
            # letterbox (normalised) → picture pixels
            box_px = ((found_box.reshape(2, 2) - offset) * DETECTOR_SIZE / scale + origin).ravel()
            found.append((score, box_px, (points - offset) * DETECTOR_SIZE / scale + origin))
        return found

    def detect(self, picture: Picture, *, tiles: bool = True) -> list[Detection]:
        """Faces in the picture, best first; tiles are searched only when the whole frame shows none."""
        found = self._run(picture, (0, 0, picture.width, picture.height))
        if not found and tiles:
            found = self._tiled(picture)
        return [
            Detection(float(score), as_box(box), np.asarray(points, np.float32))
            for score, box, points in sorted(found, key=lambda d: -d[0])
        ]

    def _tiled(self, picture: Picture) -> list[tuple]:
        side = min(picture.width, picture.height) // 2
        if side < DETECTOR_SIZE:
            return []
        stride = max(1, int(side * (1 - TILE_OVERLAP)))
        found = []
        for y in range(0, max(1, picture.height - side + stride), stride):
            for x in range(0, max(1, picture.width - side + stride), stride):
                x0, y0 = min(x, picture.width - side), min(y, picture.height - side)
                found += self._run(picture, (x0, y0, x0 + side, y0 + side))
        if not found:
            return []
        boxes = np.array([b for _, b, _ in found])
        keypoints = np.array([k for _, _, k in found])
        scores = np.array([s for s, _, _ in found])
        return _weighted_nms(boxes, keypoints, scores)


def roi_from_detection(detection: Detection) -> Roi:
    """MediaPipe's rule: the box's centre, its longer side × 1.5, turned by the line between the eyes."""
    x0, y0, x1, y1 = detection.box
    (ex0, ey0), (ex1, ey1) = detection.keypoints[0], detection.keypoints[1]
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * ROI_SCALE, math.atan2(ey1 - ey0, ex1 - ex0))


def roi_from_mesh(points: np.ndarray) -> Roi:
    """The tracking rule: the landmarks' bounding box × 1.5, turned by the outer eye corners."""
    low, high = points.min(0), points.max(0)
    dx, dy = points[EYE_RIGHT_OF_IMAGE] - points[EYE_LEFT_OF_IMAGE]
    size = float(max(high - low)) * ROI_SCALE
    return Roi(float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2, size, math.atan2(dy, dx))


class FaceLandmarker:
    """The 468-point face mesh on an upright square crop of the face."""

    def __init__(self, threads: int = 1):
        self._net = _interpreter(LANDMARK_MODEL, threads)
        self._input = self._net.get_input_details()[0]["index"]
        outputs = sorted(self._net.get_output_details(), key=lambda o: o["shape"][-1], reverse=True)
        self._points, self._presence = outputs[0]["index"], outputs[1]["index"]

    def crop(self, picture: Picture, roi: Roi) -> np.ndarray:
        """The ROI as an upright LANDMARK_SIZE² RGB crop (black outside the picture)."""
        scale = roi.size / LANDMARK_SIZE
        cos, sin = math.cos(roi.angle), math.sin(roi.angle)
        half = LANDMARK_SIZE / 2
        # crop (u, v) → picture (cx + (u − half)·s·cos − (v − half)·s·sin, cy + (u − half)·s·sin + (v − half)·s·cos)
        affine = (
            scale * cos,
            -scale * sin,
            roi.cx - half * scale * cos + half * scale * sin,
            scale * sin,
            scale * cos,
            roi.cy - half * scale * sin - half * scale * cos,
        )
        return picture.warped(affine, LANDMARK_SIZE)

    def landmarks(self, picture: Picture, roi: Roi) -> FaceMesh | None:
        """The mesh inside ``roi``; None when the model sees no face there."""
        crop = self.crop(picture, roi)
        self._net.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self._net.invoke()
        presence = float(1 / (1 + np.exp(-float(self._net.get_tensor(self._presence).ravel()[-1]))))
        if presence < MIN_FACE_PRESENCE:
            return None
        crop_points = self._net.get_tensor(self._points).reshape(-1, 3)[:LANDMARK_COUNT].copy()
        return FaceMesh(crop_points, roi.to_frame(crop_points[:, :2], LANDMARK_SIZE), presence, roi)


class FaceTracker:
    """Landmarks of the most prominent face, picture after picture: detection when there is no track,
    then each picture's crop from the landmarks of the one before. While no face is in view, detection
    is tried again every ``redetect_every`` pictures (tiles every ``retile_every``)."""

    def __init__(self, threads: int = 1, redetect_every: int = 6, retile_every: int = 25):
        self.detector = FaceDetector(threads)
        self.landmarker = FaceLandmarker(threads)
        self.redetect_every, self.retile_every = redetect_every, retile_every
        self._roi: Roi | None = None
        self._since_detect: int | None = None
        self._since_tiles: int | None = None

    def reset(self) -> None:
        self._roi, self._since_detect, self._since_tiles = None, None, None

    def _detect(self, picture: Picture) -> Roi | None:
        tiles = self._since_tiles is None or self._since_tiles >= self.retile_every
        self._since_detect = 0
        if tiles:
            self._since_tiles = 0
        detections = self.detector.detect(picture, tiles=tiles)
        if not detections:
            return None
        largest = max(detections, key=lambda d: (d.box[2] - d.box[0]) * d.score)
        return roi_from_detection(largest)

    def __call__(self, picture: Picture) -> FaceMesh | None:
        for counter in ("_since_detect", "_since_tiles"):
            if getattr(self, counter) is not None:
                setattr(self, counter, getattr(self, counter) + 1)
        mesh = self.landmarker.landmarks(picture, self._roi) if self._roi is not None else None
        if mesh is None and (self._roi is not None or self._since_detect is None
                             or self._since_detect >= self.redetect_every):  # fmt: skip
            roi = self._detect(picture)
            mesh = self.landmarker.landmarks(picture, roi) if roi is not None else None
        self._roi = roi_from_mesh(mesh.points) if mesh is not None else None
        return mesh
