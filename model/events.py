"""Finding events in the picture, to measure how well a clip's sound lands on what is seen.

- ``visual_events``: for the procedural world's scenes, the instants the picture shows an event: a
  ball's floor contacts (the lowest points of its track) or a square's swells (its area jumping up).
- ``sync_figures``: many clips' visual events against their sound onsets (syncreel.audio's
  ``audio_onsets``, paired by its ``match_events``), as the benchmark table's figures.

The detectors read pixels and samples only (no ground truth), so they measure generated clips and the
world's own clips the same way; benchmarks/model_sync.py reports both, the latter as the floor of the
measurement itself.
"""

from __future__ import annotations

import numpy as np

from syncreel.audio import match_events

MIN_MOVE = 0.03


def _object_mask(frames: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3), values 0–255 (any dtype) → (T, H, W) coverage of whatever differs from
    the background (the median colour of the border)."""
    x = frames.astype(np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (T, 4·S, 3)
    background = np.median(border, axis=1)[:, None, None, :]
    distance = np.abs(x - background).sum(-1)
    # full coverage at 30% of the range summed over RGB; nothing below 6% (codec and sampling noise)
    return np.clip((distance - 0.06 * 255) / (0.24 * 255), 0.0, 1.0)


def visual_events(frames: np.ndarray, fps: float, kind: str) -> tuple[float, ...]:
    """Event times (s) in (T, H, W, 3) frames (values 0–255) of a world scene of ``kind`` ('bounce' or 'pulse').

    bounce: each lowest point of the object's track that is a real contact (a turn from falling to
    rising, moving more than MIN_MOVE of the frame height per frame on both sides), refined
    between frames by fitting a V; pulse: each jump in the object's area of more than a quarter,
    placed halfway between the two frames.
    """
    mask = _object_mask(frames)
    size = frames.shape[1]
    area = mask.sum((1, 2))
    times = (np.arange(len(frames)) + 0.5) / fps
    present = area > 0.3 * np.median(area[area > 0]) if (area > 0).any() else area > 0
    if kind == "pulse":
        jumps = np.flatnonzero((area[1:] > 1.25 * area[:-1]) & present[1:] & present[:-1]) + 1
        return tuple(round(float(times[i] - 0.5 / fps), 4) for i in jumps)
    if kind != "bounce":
        raise ValueError(f"no visual event detector for scene kind {kind!r}; one of bounce, pulse")
    rows = np.arange(size, dtype=np.float32)[None, :, None]
    y = (mask * rows).sum((1, 2)) / np.maximum(area, 1e-6)
    events = []
    for i in range(1, len(frames) - 1):
        if not (present[i - 1] and present[i] and present[i + 1]):
            continue
        before, after = y[i] - y[i - 1], y[i] - y[i + 1]  # how far it fell into, and rose out of, frame i
        if before > MIN_MOVE * size and after > MIN_MOVE * size:
            # V fit: the side that falls more steeply gives the slope; the apex lies toward the other side
            slope = max(before, after)
            offset = (before - after) / (2 * slope)  # in frames, in [-0.5, 0.5]
            events.append(round(float(times[i] + offset / fps), 4))
    return tuple(events)


def sync_figures(events: list[tuple[tuple[float, ...], tuple[float, ...]]], frame_ms: float) -> dict[str, float | None]:
    """Aggregate (visual events, sound onsets) pairs of many clips into the table's figures.

    recall: share of visual events with a sound within ±1 video frame (one-to-one pairing); precision:
    share of sounds with a visual event within ±1 frame; F1 their harmonic mean (a model that spreads
    sounds everywhere gets recall but not precision). Median / mean |offset| over pairs within 250 ms.
    """
    visual = sum(len(v) for v, _ in events)
    sounds = sum(len(a) for _, a in events)
    offsets = [abs(o) for v, a in events for o in match_events(v, a).offsets_ms]
    within_frame = sum(match_events(v, a, window_s=frame_ms / 1000).matched for v, a in events)
    within_40 = sum(match_events(v, a, window_s=0.040).matched for v, a in events)
    recall = within_frame / visual if visual else 0.0
    precision = within_frame / sounds if sounds else 0.0
    return {
        "visual_events": visual,
        "sounds": sounds,
        "median_ms": round(float(np.median(offsets)), 1) if offsets else None,
        "mean_ms": round(float(np.mean(offsets)), 1) if offsets else None,
        "within_1_frame": round(recall, 3),
        "precision_1_frame": round(precision, 3),
        "f1": round(2 * recall * precision / (recall + precision), 3) if recall + precision else 0.0,
        "within_40ms": round(within_40 / visual, 3) if visual else 0.0,
    }
