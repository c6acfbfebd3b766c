"""Compose a scene's image references into the master at full resolution, moved by what the model made.

A generator that draws small pictures (the built-in model: 48 px squares) decides *what moves and when*:
a mouth that opens with the speech, a ball that hits the floor with the thump. This module reads that
motion from the model's own low-resolution frames and carries it onto the brief's references at the
master's size, so the picture shows the brand's presenter and product, sharp, while the model stays the
source of sync:

- **presenter** (an image with role ``character``): the photo is the face. From the model's frames,
  per frame: the head's motion (a global shift and scale, solved by least squares on image gradients,
  the mouth left out) and the mouth opening (how much the mouth region darkens against its closed
  state; the model draws an open mouth as a dark inner gap, see model/world.py). The photo is placed at
  an integer offset (pixels kept as they are; a scale other than 1 is one high-quality resample per 1%
  step, reused), and only the mouth is warped: below the inner lip line found by the face mesh on the
  photo (landmarks 13/14, corners 78/308), the lower lip and jaw move down with a smooth displacement
  and a dark inner-mouth gap opens between the lips.
- **product** (role ``product``): a pixel-accurate packshot — never redrawn. With a motion reference it
  hops as that clip does, landing exactly on the sound events the model made and nowhere else (`hops`);
  without one it is placed where the model's moving object is (its bottom on the object's bottom, so a
  bounce's contacts land where the model's effects are). A fixed scale per shot (or a few scale steps
  when the object swells and shrinks, each resampled once). Its matte is the image's alpha channel
  or, for an opaque image on a plain background, that background keyed out from the border. Every
  frame's placement (x, y, w, h, scale) is recorded, so the region can be compared with the reference
  under it (``packshot_at``).
- **the set**: a ``background`` / ``style`` image covering the frame, or the model's own picture: as it
  is behind a presenter, and without its moving object (the median of its frames) behind a product.

The motion is an input (`FaceMotion`, `ObjectTrack`): `face_motion` / `object_track` read it from
the model's frames, and ``FaceMotion.still`` / ``ObjectTrack.still`` hold the references still — the
ablation that shows the sync comes from the model. Pure numpy / scipy / PIL; no orchestration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.signal import savgol_filter

from syncreel.media.errors import MediaError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
RESAMPLE = Image.Resampling.LANCZOS  # the one filter every scaled reference is made with

# Face motion read from the model's frames
MOUTH_ENERGY_SHARE = 0.4  # the mouth: pixels whose darkening energy is at least this share of the peak
MOUTH_RADIUS = 0.15  # ... within this share of the picture's side from the peak
MIN_MOUTH_CONTRAST = 0.15  # luma (0..1): a darkening under this never reads as a fully open mouth
HEAD_SMOOTH_FRAMES = 2.0  # σ of the temporal smoothing of the head's motion
MAX_HEAD_SHIFT = 0.03  # of the picture's side: the model's jitter, not a walk across the frame
MAX_HEAD_SCALE = 0.03
SCALE_STEP = 0.01  # the photo is resampled once per step of scale
OPENING_LEVELS = 32  # the mouth is warped once per level of opening (and scale step), then reused

# The mouth warp on the photo (in units of the inner mouth's width, corner 78 to corner 308)
MAX_GAP = 0.35  # inner-lip gap of a fully open mouth
JAW_WIDTH = 0.9  # the jaw's drop falls off across the face with this (Gaussian) width
JAW_RAMP = 0.6  # under the lower lip the drop eases from the gap's lens into the jaw's over this length
JAW_FALLOFF = 1.0  # ... then fades out over this share of the lip-to-chin distance (past the chin)
INNER_MOUTH = np.array([58, 18, 22], np.float32)  # the dark of an open mouth
LIP_INNER, LIP_OUTER = (13, 14), (78, 308)
CHIN = 152

# Products
OBJECT_MIN_DISTANCE = 60.0  # RGB distance from the picture's border colour that marks the object
OBJECT_MIN_PIXELS = 3
OBJECT_MIN_SHARE = 0.6  # the object is one region: at least this share of what differs from the border
OBJECT_MAX_AREA = 0.45  # ... and no more than this share of the picture
OBJECT_MIN_FRAMES = 0.5  # a track needs the object in at least this share of the frames
PRODUCT_OVER_OBJECT = 1.8  # the packshot is this much taller than the model's object ...
PRODUCT_HEIGHT = (0.3, 0.55)  # ... within these shares of the frame height
SIDE_PRODUCT_HEIGHT = 0.5  # a product beside a presenter, still
SWELL_RATIO = 1.25  # an object whose height varies more than this (p90 / p10) gets scale steps
SWELL_STEP = 1.05  # fine enough that a swell reads as motion (tagline's pulse: sfx confidence 0.32 at 1.1)
MAX_SWELL_STEPS = 8
KEY_TOLERANCE = 14.0  # RGB distance to the border colour keyed out of an opaque packshot
KEY_BORDER_SPREAD = 6.0  # the border must be this uniform to be a packshot background
TRACK_SMOOTH_FRAMES = 5
HOP_S = 0.6  # the longest hop onto a landing (a motion clip's hop, landed on the model's sound)
# A hop's height, in shares of the picture's side: the motion clip's, within these. Higher, a packshot
# leaves the ground so fast that its take-off reads as a turn of the motion as strong as its landing
# (the example's sfx offset read +390 ms at 0.5: the take-off, a hop before the sound).
HOP_HEIGHT = (0.05, 0.1)
REBOUND_S, REBOUND_SHARE = 0.25, 0.25  # the bounce off a landing: its length, and its height's share


# -- inputs ---------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 4) uint8 RGBA (opaque when it has no alpha). MediaError naming the file
    when it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA")).copy()
    except (OSError, ValueError) as exc:
        raise MediaError(Path(path), f"cannot read the image ({type(exc).__name__})") from None


def keyed(image: np.ndarray) -> np.ndarray:
    """RGBA with a matte: the image's own alpha when it has one; for an opaque image on a plain
    background (a packshot whose alpha was flattened), the background connected to the border keyed
    out, with a one-pixel soft edge; otherwise the image as it is."""
    if image.shape[-1] == 4 and (image[..., 3] < 255).any():
        return image
    rgb = image[..., :3].astype(np.float32)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(border, axis=0)
    if np.median(np.linalg.norm(border - colour, axis=1)) > KEY_BORDER_SPREAD:
        return _with_alpha(image, np.full(image.shape[:2], 255, np.uint8))
    near = np.linalg.norm(rgb - colour, axis=-1) <= KEY_TOLERANCE
    labels, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge_labels[edge_labels > 0])
    alpha = (~background).astype(np.float32)
    soft = ndimage.uniform_filter(alpha, 3)
    alpha = np.where(ndimage.binary_erosion(alpha > 0, iterations=1), 1.0, np.minimum(alpha, soft))
    return _with_alpha(image, np.round(alpha * 255).astype(np.uint8))


def _with_alpha(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.concatenate([image[..., :3], alpha[..., None]], axis=-1)


def scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """The RGBA image resampled by ``scale`` (the size rounded to whole pixels) with RESAMPLE, colour
    weighted by alpha so a transparent background does not bleed into the edge."""
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return image
    return np.asarray(Image.fromarray(image, "RGBA").resize(size, RESAMPLE, reducing_gap=None))


def packshot_at(packshot: np.ndarray, scale: float) -> np.ndarray:
    """The keyed packshot as the compositor shows it at ``scale``: what a benchmark compares the
    master's region with under a recorded `Placement`."""
    return scaled(keyed(packshot), scale)


def _luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) @ (LUMA / 255.0)


# -- the motion, read from the model's frames -------------------------------------------------------
@dataclass(frozen=True)
class FaceMotion:
    """Per frame: mouth opening (0 closed … 1 wide), head shift (dx, dy) and scale change, the shift in
    units of the model picture's side."""

    opening: np.ndarray  # (T,)
    shift: np.ndarray  # (T, 2)
    scale: np.ndarray  # (T,) 1 = as placed

    @classmethod
    def still(cls, frames: int) -> FaceMotion:
        """No motion: the photo held as it is, mouth closed."""
        return cls(np.zeros(frames, np.float32), np.zeros((frames, 2), np.float32), np.ones(frames, np.float32))

    def __len__(self) -> int:
        return len(self.opening)


def _mouth_weights(darkening: np.ndarray) -> np.ndarray:
    """(S, S) weights of the mouth: where the picture darkens most over time, around its peak."""
    energy = ndimage.gaussian_filter(darkening.mean(0), 1.0)
    side = energy.shape[0]
    peak = np.unravel_index(int(np.argmax(energy)), energy.shape)
    yy, xx = np.mgrid[0 : energy.shape[0], 0 : energy.shape[1]]
    near = np.hypot(yy - peak[0], xx - peak[1]) <= MOUTH_RADIUS * side
    return np.where(near & (energy >= MOUTH_ENERGY_SHARE * energy.max()), energy, 0.0).astype(np.float32)


def _head_motion(luma: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (shift (T, 2) in pixels, scale change (T,)) against the clip's median picture: one
    Gauss-Newton step of a shift + zoom model about the centre, least squares over the pixels outside
    ``exclude`` (the mouth, whose own motion is not the head's)."""
    reference = np.median(luma, axis=0)
    gy, gx = np.gradient(reference)
    side_y, side_x = reference.shape
    yy, xx = np.mgrid[0:side_y, 0:side_x].astype(np.float32)
    yy -= (side_y - 1) / 2
    xx -= (side_x - 1) / 2
    keep = ~exclude
    basis = np.stack([gx[keep], gy[keep], gx[keep] * xx[keep] + gy[keep] * yy[keep]], axis=1)  # (P, 3)
    change = (luma - reference)[:, keep]  # (T, P)
    normal = basis.T @ basis + 1e-6 * np.eye(3)
    params = -np.linalg.solve(normal, basis.T @ change.T).T  # (T, 3): frame(x) ≈ reference(x − p)
    return params[:, :2], params[:, 2]


def face_motion(native: np.ndarray) -> FaceMotion:
    """The head's motion and the mouth's opening in the model's own frames (T, S, S, 3) uint8."""
    luma = _luma(native)
    frames, side = luma.shape[0], luma.shape[1]
    closed = np.percentile(luma, 90, axis=0)  # each pixel as it is when the mouth is shut
    darkening = np.clip(closed - luma, 0.0, None)
    weights = _mouth_weights(darkening)
    if weights.sum() <= 0:
        return FaceMotion.still(frames)
    level = (darkening * weights).sum((1, 2)) / weights.sum()
    opening = np.clip(level / max(float(np.percentile(level, 98)), MIN_MOUTH_CONTRAST), 0.0, 1.0)
    mouth = ndimage.binary_dilation(weights > 0, iterations=max(1, side // 16))
    shift, zoom = _head_motion(luma, mouth)
    sigma = min(HEAD_SMOOTH_FRAMES, frames / 4)
    if frames > 2:
        shift = ndimage.gaussian_filter1d(shift, sigma, axis=0, mode="nearest")
        zoom = ndimage.gaussian_filter1d(zoom, sigma, mode="nearest")
    shift = np.clip(shift / side, -MAX_HEAD_SHIFT, MAX_HEAD_SHIFT)
    scale = 1.0 + np.clip(zoom, -MAX_HEAD_SCALE, MAX_HEAD_SCALE)
    return FaceMotion(opening.astype(np.float32), shift.astype(np.float32), scale.astype(np.float32))


@dataclass(frozen=True)
class ObjectTrack:
    """Per frame, the model's moving object in its picture, as shares of the picture's side: the
    centre's x, the bottom's y, the height; ``found`` where the object was seen (the rest interpolated)."""

    centre_x: np.ndarray
    bottom_y: np.ndarray
    height: np.ndarray
    found: np.ndarray

    @classmethod
    def still(cls, frames: int, centre_x: float = 0.5, bottom_y: float = 0.9, height: float = 0.25) -> ObjectTrack:
        return cls(
            np.full(frames, centre_x, np.float32),
            np.full(frames, bottom_y, np.float32),
            np.full(frames, height, np.float32),
            np.zeros(frames, bool),
        )

    def __len__(self) -> int:
        return len(self.centre_x)


def object_track(native: np.ndarray) -> ObjectTrack:
    """Where the model's object is in each of its frames (T, S, S, 3): the largest region far from the
    picture's border colour, when it is one region (a texture is none). Frames without one are
    interpolated from their neighbours; a clip with the object in under half its frames gives the still
    track (``found`` all False)."""
    frames, side = native.shape[0], native.shape[1]
    pictures = native.astype(np.float32)
    rows = np.zeros((frames, 3), np.float32)
    found = np.zeros(frames, bool)
    for index, picture in enumerate(pictures):
        ring = np.concatenate([picture[0], picture[-1], picture[:, 0], picture[:, -1]])
        mask = np.linalg.norm(picture - np.median(ring, axis=0), axis=-1) > OBJECT_MIN_DISTANCE
        labels, count = ndimage.label(mask)
        if count == 0 or mask.mean() > OBJECT_MAX_AREA:
            continue
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        if sizes.max() < OBJECT_MIN_PIXELS or sizes.max() < OBJECT_MIN_SHARE * mask.sum():
            continue  # specks or a texture, not one object
        ys, xs = np.nonzero(labels == int(np.argmax(sizes)) + 1)
        top, bottom = np.percentile(ys, 2), np.percentile(ys, 98) + 1
        rows[index] = ((xs.min() + xs.max() + 1) / 2, bottom, bottom - top)
        found[index] = True
    if found.mean() < OBJECT_MIN_FRAMES:
        return ObjectTrack.still(frames)
    at = np.arange(frames)
    filled = np.stack([np.interp(at, at[found], rows[found, k]) for k in range(3)], axis=1)
    if frames >= TRACK_SMOOTH_FRAMES:
        filled = savgol_filter(filled, TRACK_SMOOTH_FRAMES, 2, axis=0, mode="interp")
    filled /= side
    centre_x, bottom_y, height = (filled[:, k].astype(np.float32) for k in range(3))
    return ObjectTrack(centre_x, bottom_y, height, found)


def video_track(path: str | Path, frames: int, fps: float, side: int = 48) -> ObjectTrack:
    """`object_track` of a video (a motion reference), its pictures shown at ``fps`` for ``frames``
    frames (the last one held) and squeezed to ``side``² squares: positions as shares of its frame."""
    from syncreel.media.frames import pictures

    squares: list[np.ndarray] = []
    for shown in pictures(Path(path), fps):
        picture = shown.picture
        squares.append(picture.resized((0, 0, picture.width, picture.height), (side, side)))
        if len(squares) >= frames:
            break
    if not squares:
        raise MediaError(Path(path), "no pictures to track")
    squares += [squares[-1]] * (frames - len(squares))
    return object_track(np.stack(squares))


def hops(reference: ObjectTrack, fps: float, events_s: Sequence[float]) -> ObjectTrack:
    """The object hopping as ``reference`` (a motion clip's track) hops — its floor, its hop's height,
    its place across the frame — landing exactly on ``events_s`` (the sounds the model made) and on
    nothing else: a ballistic hop of up to HOP_S onto each. A landing turns the motion back at once:
    into the next hop when that is near, else into a small rebound that settles without landing again.
    A landing with no sound of the model's under it would be a contact the model did not make."""
    frames = len(reference)
    floor = float(np.max(reference.bottom_y))
    height = float(np.clip(np.ptp(reference.bottom_y), *HOP_HEIGHT))
    lift = np.zeros(frames, np.float32)  # how far above the floor, in shares of the picture's side
    times = (np.arange(frames) + 0.5) / fps

    def arc(begin: float, seconds: float, peak: float, shape: Callable[[np.ndarray], np.ndarray]) -> None:
        u = (times - begin) / seconds
        inside = (u > 0) & (u < 1)
        lift[inside] = np.maximum(lift[inside], peak * shape(u[inside]))

    events = sorted(e for e in events_s if 0 < e < frames / fps)
    for index, event in enumerate(events):
        previous = events[index - 1] if index else -math.inf
        begin = previous if event - previous < HOP_S + REBOUND_S else max(0.0, event - HOP_S)
        fall = event - begin
        if fall >= 2 / fps:
            arc(begin, fall, height * (fall / HOP_S) ** 2, lambda u: 4 * u * (1 - u))
        following = events[index + 1] if index + 1 < len(events) else math.inf
        if following - event >= HOP_S + REBOUND_S:  # off the floor at once, back without a second landing
            arc(event, REBOUND_S, height * REBOUND_SHARE, lambda u: 27 / 4 * u * (1 - u) ** 2)
    return ObjectTrack(
        np.full(frames, float(np.median(reference.centre_x)), np.float32),
        (floor - lift).astype(np.float32),
        np.full(frames, float(np.median(reference.height)), np.float32),
        np.ones(frames, bool),
    )


# -- where things go in the master frame --------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """The master frame and the square in its middle where the model's picture is shown."""

    height: int
    width: int

    @property
    def side(self) -> int:
        return min(self.height, self.width)

    @property
    def origin(self) -> tuple[int, int]:
        """(top, left) of the model's square in the frame."""
        return (self.height - self.side) // 2, (self.width - self.side) // 2


@dataclass(frozen=True)
class Placement:
    """Where a reference layer is in one frame: top-left (may be outside the frame), its size, and the
    scale from the reference's own pixels."""

    frame: int
    x: int
    y: int
    w: int
    h: int
    scale: float

    def to_list(self) -> list[float]:
        return [self.frame, self.x, self.y, self.w, self.h, round(self.scale, 6)]


@dataclass
class Composition:
    frames: np.ndarray  # (T, H, W, 3) uint8
    placements: dict[str, list[Placement]] = field(default_factory=dict)  # per reference role
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what was composed and each layer's placement per frame ([frame, x, y, w, h, scale])."""
        return {
            **self.report,
            "placements": {role: [p.to_list() for p in items] for role, items in self.placements.items()},
        }


def _paste(canvas: np.ndarray, layer: np.ndarray, x: int, y: int) -> None:
    """Layer (h, w, 4) RGBA over canvas (H, W, 3) uint8 at integer (x, y), clipped to the canvas; opaque
    pixels are copied exactly."""
    height, width = canvas.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + layer.shape[1]), min(height, y + layer.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    part = layer[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3]
    region = canvas[y0:y1, x0:x1]
    if alpha.min() == 255:
        region[:] = part[..., :3]
        return
    weight = alpha[..., None].astype(np.float32) / 255.0
    blended = region.astype(np.float32) * (1 - weight) + part[..., :3].astype(np.float32) * weight
    region[:] = np.round(blended).astype(np.uint8)


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An image scaled to cover (height, width) and centre-cropped: (height, width, 3) uint8."""
    rgb = image[..., :3]
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    size = (max(width, round(rgb.shape[1] * scale)), max(height, round(rgb.shape[0] * scale)))
    big = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, RESAMPLE))
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[top : top + height, left : left + width])


def fitted_model_picture(square: np.ndarray, layout: Layout) -> np.ndarray:
    """One of the model's square pictures at master size, laid out as the built-in backend lays out its
    frames (model.codecs.fit_pictures, which this mirrors without importing the model): the square
    scaled into the middle over a blurred, dimmed copy of itself filling the rest."""
    side, height, width = layout.side, layout.height, layout.width
    picture = Image.fromarray(square)
    inner = np.asarray(picture.resize((side, side), Image.Resampling.BICUBIC))
    if height == width:
        return inner
    cover = max(height, width)
    scale = 4 / cover
    crop_top, crop_left = (cover - height) // 2, (cover - width) // 2
    box = (crop_left * scale, crop_top * scale, (crop_left + width) * scale, (crop_top + height) * scale)
    tiny = picture.resize((4, 4), Image.Resampling.BOX)
    canvas = np.round(np.asarray(tiny.resize((width, height), Image.Resampling.BILINEAR, box=box)) * 0.6)
    canvas = canvas.astype(np.uint8)
    top, left = layout.origin
    canvas[top : top + side, left : left + side] = inner
    return canvas


# -- the presenter --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MouthGeometry:
    """The photo's mouth (from its face mesh), in the photo's pixels."""

    left: np.ndarray  # inner corner 78, (x, y)
    right: np.ndarray  # inner corner 308
    upper: np.ndarray  # inner upper lip 13
    lower: np.ndarray  # inner lower lip 14
    chin: np.ndarray  # 152

    @classmethod
    def from_points(cls, points: np.ndarray) -> MouthGeometry:
        return cls(*(np.asarray(points[i], np.float64) for i in (LIP_OUTER[0], LIP_OUTER[1], *LIP_INNER, CHIN)))

    def scaled(self, factor: float) -> MouthGeometry:
        return MouthGeometry(*(getattr(self, name) * factor for name in ("left", "right", "upper", "lower", "chin")))

    @property
    def width(self) -> float:
        return float(np.linalg.norm(self.right - self.left))


def photo_mouth(photo: np.ndarray) -> MouthGeometry | None:
    """The mouth of the face in an RGB(A) photo by the face mesh (media.faces), or None when the photo
    shows no face (or the face models are not installed)."""
    import av

    from syncreel.media.faces import FaceModelError, FaceTracker
    from syncreel.media.frames import Picture

    try:
        tracker = FaceTracker()
    except FaceModelError:
        return None
    rgb = np.ascontiguousarray(photo[..., :3])
    picture = Picture(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    mesh = tracker(picture)
    if mesh is None:
        return None
    mesh = tracker(picture) or mesh  # once more from the mesh's own crop, as tracking does
    return MouthGeometry.from_points(mesh.points)


class MouthWarp:
    """Opens the photo's mouth (``patch``). Above the inner lip line nothing moves. Under it the lower
    lip, teeth and jaw move down: by the gap's lens-shaped height right under the lips (the inner corners
    stay put), by a broad jaw profile further down, fading out towards and past the chin. The gap between
    the lips is the dark of an open mouth, a soft pixel at its edges. The geometry is laid out once per
    photo and scale; each opening is then a few array operations over the patch."""

    def __init__(self, photo: np.ndarray, mouth: MouthGeometry):
        self.photo = photo
        width = mouth.width
        axis = (mouth.right - mouth.left) / max(width, 1e-6)  # along the mouth
        self.normal = np.array([-axis[1], axis[0]])  # down the face
        centre = (mouth.left + mouth.right) / 2
        lip = (mouth.upper + mouth.lower) / 2  # the closed mouth's lip line passes here ...
        sag = float((lip - centre) @ self.normal)  # ... and through the corners: a parabola
        self.width = width
        self.max_gap = MAX_GAP * width
        self.ramp, self.fall = JAW_RAMP * width, JAW_FALLOFF * max(width, float((mouth.chin - lip) @ self.normal))
        reach = 2.0 * JAW_WIDTH * width  # the jaw's drop is under 2% of the gap beyond
        corners = [
            centre + s * axis * reach + t * self.normal
            for s in (-1, 1)
            for t in (-0.2 * width, self.max_gap + self.ramp + self.fall)
        ]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        self.x0, self.y0 = max(0, int(math.floor(min(xs)))), max(0, int(math.floor(min(ys))))
        self.x1 = min(photo.shape[1], int(math.ceil(max(xs))) + 1)
        self.y1 = min(photo.shape[0], int(math.ceil(max(ys))) + 1)
        yy, xx = np.mgrid[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)
        du, dv = xx - centre[0], yy - centre[1]
        u = du * axis[0] + dv * axis[1]
        across = np.clip(1 - (u / (width / 2)) ** 2, 0, None)
        below = (du * self.normal[0] + dv * self.normal[1]) - sag * across
        self.below = below.astype(np.float32)  # depth under the lip line
        self.lens = np.sqrt(across).astype(np.float32)  # the gap's height along the mouth, per unit of gap
        self.jaw = np.exp(-((u / (JAW_WIDTH * width)) ** 2)).astype(np.float32)  # the jaw's drop, per unit
        self.yy, self.xx = yy, xx

    def patch(self, opening: float) -> tuple[np.ndarray, int, int] | None:
        """The RGB patch (h, w, 3) uint8 of the mouth opened by ``opening`` (0 … 1) and its top-left (x, y)
        in the photo; None for a closed mouth."""
        if opening <= 0.01 or self.width < 4 or self.x1 - self.x0 < 2 or self.y1 - self.y0 < 2:
            return None
        gap = np.float32(self.max_gap * opening)
        lens, jaw, below = gap * self.lens, gap * self.jaw, self.below
        depth = np.clip(below - lens, 0, None)
        ease = np.clip(depth / self.ramp, 0, 1)
        ease = ease * ease * (3 - 2 * ease)
        fade = np.clip(1 - np.clip(depth - self.ramp, 0, None) / self.fall, 0, 1)
        lift = np.where(below >= lens, (lens + (jaw - lens) * ease) * fade, np.float32(0))
        out = self.photo[self.y0 : self.y1, self.x0 : self.x1, :3].astype(np.float32)
        moved = lift > 1e-3
        step_x, step_y = np.float32(self.normal[0]), np.float32(self.normal[1])
        out[moved] = _bilinear(self.photo, self.yy[moved] - lift[moved] * step_y, self.xx[moved] - lift[moved] * step_x)
        inside = (below >= 0) & (below < lens)
        edge = np.clip(np.minimum(below + 0.5, lens - below + 0.5), 0, 1) * (lens > 0.5)
        share = np.clip(below / np.maximum(lens, 1e-6), 0, 1)
        colour = INNER_MOUTH * (np.float32(0.75) + np.float32(0.5) * np.abs(share - np.float32(0.5)))[..., None]
        blend = (inside * edge)[..., None]
        out = out * (1 - blend) + colour * blend
        return np.round(np.clip(out, 0, 255)).astype(np.uint8), self.x0, self.y0


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(N, 3) float32 RGB of ``image`` at the points (ys, xs), bilinear, edges clamped."""
    height, width = image.shape[:2]
    ys, xs = np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)
    y0, x0 = np.minimum(ys.astype(np.int32), height - 2), np.minimum(xs.astype(np.int32), width - 2)
    fy, fx = (ys - y0.astype(np.float32))[:, None], (xs - x0.astype(np.float32))[:, None]
    rgb = image[..., :3]
    top = rgb[y0, x0] * (1 - fx) + rgb[y0, x0 + 1] * fx
    bottom = rgb[y0 + 1, x0] * (1 - fx) + rgb[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


class Presenter:
    """A character photo placed in the master frame, its head and mouth moved frame by frame."""

    def __init__(self, photo: np.ndarray, layout: Layout):
        self.layout = layout
        self._levels: dict[int, tuple[np.ndarray, MouthWarp | None]] = {}
        self._patches: dict[tuple[int, int], tuple[np.ndarray, int, int] | None] = {}  # (scale step, opening)
        height, width = photo.shape[:2]
        self.base_scale = min(layout.height / height, layout.width / width)  # the whole photo in frame
        self.photo = photo if photo.shape[-1] == 4 else _with_alpha(photo, np.full((height, width), 255, np.uint8))
        self._mouth = photo_mouth(self.photo)

    @property
    def face_found(self) -> bool:
        return self._mouth is not None

    def _level(self, step: int) -> tuple[np.ndarray, MouthWarp | None]:
        """The photo resampled at the base scale × (1 + step · SCALE_STEP), once per step."""
        if step not in self._levels:
            factor = self.base_scale * (1 + step * SCALE_STEP)
            image = scaled(self.photo, factor)
            actual = image.shape[1] / self.photo.shape[1]
            self._levels[step] = (image, MouthWarp(image, self._mouth.scaled(actual)) if self._mouth else None)
        return self._levels[step]

    def place(self, canvas: np.ndarray, index: int, motion: FaceMotion) -> Placement:
        """Draw frame ``index`` of the talking photo over ``canvas`` (H, W, 3), in place."""
        step = int(round((float(motion.scale[index]) - 1) / SCALE_STEP))
        image, warp = self._level(step)
        h, w = image.shape[:2]
        side = self.layout.side
        x = (self.layout.width - w) // 2 + int(round(float(motion.shift[index, 0]) * side))
        y = (self.layout.height - h) // 2 + int(round(float(motion.shift[index, 1]) * side))
        _paste(canvas, image, x, y)
        level = int(round(float(motion.opening[index]) * OPENING_LEVELS))
        if warp is not None and (step, level) not in self._patches:
            self._patches[step, level] = warp.patch(level / OPENING_LEVELS)
        patch = self._patches.get((step, level))
        if patch is not None:
            pixels, px, py = patch
            alpha = image[py : py + pixels.shape[0], px : px + pixels.shape[1], 3:4]
            _paste(canvas, np.concatenate([pixels, alpha], -1), x + px, y + py)
        return Placement(index, x, y, w, h, w / self.photo.shape[1])


# -- the product ----------------------------------------------------------------------------------
class Product:
    """A packshot moved along the model's object track, at a fixed scale per shot (or a few steps)."""

    def __init__(self, packshot: np.ndarray, layout: Layout):
        self.layout = layout
        self.packshot = keyed(packshot)
        self._cache: dict[float, np.ndarray] = {}

    def at(self, scale: float) -> np.ndarray:
        if scale not in self._cache:
            self._cache[scale] = scaled(self.packshot, scale)
        return self._cache[scale]

    def _base_scale(self, object_height: float) -> float:
        low, high = PRODUCT_HEIGHT
        share = float(np.clip(PRODUCT_OVER_OBJECT * object_height * self.layout.side / self.layout.height, low, high))
        return share * self.layout.height / self.packshot.shape[0]

    def scales(self, track: ObjectTrack) -> np.ndarray:
        """Per frame scale: one for the shot, or steps of SWELL_STEP when the object swells and shrinks."""
        heights = np.maximum(track.height, 1e-3)
        typical = float(np.median(heights))
        base = self._base_scale(typical)
        if np.percentile(heights, 90) / np.percentile(heights, 10) < SWELL_RATIO:
            return np.full(len(track), base)
        steps = np.clip(np.round(np.log(heights / typical) / math.log(SWELL_STEP)), -MAX_SWELL_STEPS, MAX_SWELL_STEPS)
        return base * SWELL_STEP**steps

    def place(self, canvas: np.ndarray, index: int, track: ObjectTrack, scale: float) -> Placement:
        """Draw frame ``index``: the packshot's bottom centre on the object's bottom centre."""
        image = self.at(scale)
        h, w = image.shape[:2]
        top, left = self.layout.origin
        side = self.layout.side
        x = left + int(round(float(track.centre_x[index]) * side - w / 2))
        y = top + int(round(float(track.bottom_y[index]) * side - h))
        _paste(canvas, image, x, y)
        return Placement(index, x, y, w, h, scale)

    def place_beside(self, canvas: np.ndarray, index: int) -> Placement:
        """A still packshot in the frame's right band (beside a presenter), or its lower right corner."""
        band = (self.layout.width - self.layout.side) // 2
        margin = max(2, self.layout.height // 30)
        scale = SIDE_PRODUCT_HEIGHT * self.layout.height / self.packshot.shape[0]
        # in the band when there is one (a landscape frame), else smaller, in the corner over the picture
        scale = min(scale, (band - 2 * margin) / self.packshot.shape[1]) if band > 2 * margin else 0.6 * scale
        image = self.at(scale)
        h, w = image.shape[:2]
        x, y = self.layout.width - margin - w, self.layout.height - margin - h
        _paste(canvas, image, x, y)
        return Placement(index, x, y, w, h, scale)


# -- the scene ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneReferences:
    """The scene's image references by what they are for (RGBA arrays, `read_image`)."""

    character: np.ndarray | None = None
    product: np.ndarray | None = None
    background: np.ndarray | None = None  # a background or style image: the set

    @property
    def any(self) -> bool:
        return any(image is not None for image in (self.character, self.product))


def compose_scene(
    model_frames: np.ndarray,
    native: np.ndarray,
    references: SceneReferences,
    *,
    face: FaceMotion | None = None,
    track: ObjectTrack | None = None,
    motion_track: ObjectTrack | None = None,
    events_s: Sequence[float] = (),
    fps: float = 24.0,
    inplace: bool = False,
) -> Composition:
    """The scene's references composed over the set at the size of ``model_frames`` (T, H, W, 3), the
    backend's master-size pictures; ``native`` (T, S, S, 3) are its own small pictures, the motion's
    source. ``face`` / ``track`` give the motion instead (``FaceMotion.still(T)`` holds the presenter
    still). The product hops as ``motion_track`` (a motion reference's, `video_track`) does, landing on
    ``events_s`` — the sound events the model made, at ``fps`` — so the model's effects land on its
    contacts (`hops`); without a motion reference or sound events it follows the model's own object
    (`object_track`), or stands still when the model shows none. ``inplace`` draws into ``model_frames``
    (saving a copy of the clip). A scene with no character or product reference gets the model's frames
    back unchanged."""
    frames, height, width = model_frames.shape[:3]
    if references.any and native.shape[0] != frames:
        raise ValueError(f"native frames ({native.shape[0]}) and master frames ({frames}) differ in count")
    if references.character is not None:
        out = model_frames if inplace else np.empty_like(model_frames)
        placements, report = _compose_presenter(out, model_frames, native, references.character, references, face)
    elif references.product is not None:
        out = model_frames if inplace else np.empty_like(model_frames)
        path, source = _product_path(native, track, motion_track, events_s, fps)
        placements, report = _compose_product(out, native, references.product, references.background, path, source)
    else:
        return Composition(model_frames, {}, {"composed": False})
    report = {"composed": True, "size": [width, height], **report}
    report["set"] = "background" if references.background is not None else "model"
    return Composition(out, placements, report)


def _compose_presenter(
    out: np.ndarray,
    model_frames: np.ndarray,
    native: np.ndarray,
    photo: np.ndarray,
    references: SceneReferences,
    face: FaceMotion | None,
) -> tuple[dict[str, list[Placement]], dict[str, Any]]:
    """The presenter ``photo`` into ``out``, moved as ``face`` (or the model's own face) moves, over the
    set (the background reference, else the model's frames), with the product still beside it."""
    frames, height, width = model_frames.shape[:3]
    layout = Layout(height, width)
    presenter = Presenter(photo, layout)
    motion = face if face is not None else face_motion(native)
    product = Product(references.product, layout) if references.product is not None else None
    backdrop = cover(references.background, height, width) if references.background is not None else None
    placements: dict[str, list[Placement]] = {"character": [], "product": []}
    for index in range(frames):
        out[index] = backdrop if backdrop is not None else model_frames[index]
        placements["character"].append(presenter.place(out[index], index, motion))
        if product is not None:
            placements["product"].append(product.place_beside(out[index], index))
    report: dict[str, Any] = {
        "character": {
            "face_found": presenter.face_found,
            "motion": "given" if face is not None else "model",
            "mouth_opening_mean": round(float(np.mean(motion.opening)), 4),
            "mouth_opening_max": round(float(np.max(motion.opening)), 4),
            "head_shift_max": round(float(np.abs(motion.shift).max()), 4),
        }
    }
    if product is None:
        del placements["product"]
    else:
        report["product"] = {"motion": "still, beside the presenter"}
    return placements, report


def _product_path(
    native: np.ndarray,
    track: ObjectTrack | None,
    motion_track: ObjectTrack | None,
    events_s: Sequence[float],
    fps: float,
) -> tuple[ObjectTrack, str]:
    """The track the product follows and where it came from: the one given, the motion reference's hops
    landing on the model's sounds, or the model's own object."""
    if track is not None:
        return track, "given"
    if motion_track is not None and motion_track.found.any() and events_s:
        return hops(motion_track, fps, events_s), "motion reference, landings on the model's sounds"
    return object_track(native), "model"


def _compose_product(
    out: np.ndarray,
    native: np.ndarray,
    packshot: np.ndarray,
    background: np.ndarray | None,
    path: ObjectTrack,
    source: str,
) -> tuple[dict[str, list[Placement]], dict[str, Any]]:
    """The packshot into ``out`` along ``path``, over the background reference or, without one, the
    model's picture without its object (the median of its frames)."""
    frames, height, width = out.shape[:3]
    layout = Layout(height, width)
    product = Product(packshot, layout)
    scales = product.scales(path)
    if background is not None:
        backdrop = cover(background, height, width)
    else:
        backdrop = fitted_model_picture(np.median(native, axis=0).round().astype(np.uint8), layout)
    placements: dict[str, list[Placement]] = {"product": []}
    for index in range(frames):
        out[index] = backdrop
        placements["product"].append(product.place(out[index], index, path, float(scales[index])))
    report = {
        "product": {
            "motion": source if path.found.any() else "still",
            "object_found_share": round(float(np.mean(path.found)), 3),
            "scales": sorted({round(float(s), 4) for s in scales}),
        }
    }
    return placements, report


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 arrays of one shape; inf when identical."""
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def packshot_psnr(frame: np.ndarray, packshot: np.ndarray, placement: Placement) -> float | None:
    """PSNR of the frame's region under ``placement`` against the packshot shown at that scale, over its
    opaque pixels inside the frame; None when none of them shows."""
    image = packshot_at(packshot, placement.scale)
    x, y = placement.x, placement.y
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + image.shape[1]), min(height, y + image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    part = image[y0 - y : y1 - y, x0 - x : x1 - x]
    opaque = part[..., 3] == 255
    if not opaque.any():
        return None
    return psnr(frame[y0:y1, x0:x1][opaque], part[..., :3][opaque])


def laplacian_variance(image: np.ndarray) -> float:
    """Sharpness: the variance of the Laplacian of the luma (0..255)."""
    return float(ndimage.laplace(_luma(image[..., :3]) * 255.0).var())


def placements_from(records: Sequence[Sequence[float]]) -> list[Placement]:
    """`Placement`s back from their JSON lists ([frame, x, y, w, h, scale])."""
    return [Placement(int(f), int(x), int(y), int(w), int(h), float(s)) for f, x, y, w, h, s in records]


__all__ = [
    "Composition",
    "FaceMotion",
    "Layout",
    "ObjectTrack",
    "Placement",
    "SceneReferences",
    "compose_scene",
    "face_motion",
    "laplacian_variance",
    "object_track",
    "packshot_at",
    "packshot_psnr",
    "placements_from",
    "psnr",
    "read_image",
]
