"""Finding events in picture and sound, to measure how well a clip's sound lands on what is seen.

- ``audio_onsets``: where a stem's loudness jumps (a thump, a kick, a syllable), in seconds.
- ``visual_events``: for the procedural world's scenes, the instants the picture shows an event: a
  ball's floor contacts (the lowest points of its track) or a square's swells (its area jumping up).
- ``match_events``: pairs each visual event with the nearest onset and reports the offsets.

The detectors read pixels and samples only (no ground truth), so they measure generated clips and the
world's own clips the same way; benchmarks/model_sync.py reports both, the latter as the floor of the
measurement itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_S = 0.005
MIN_MOVE = 0.03


def loudness(wave: np.ndarray, rate: int, hop_s: float = HOP_S, window_s: float = 0.01) -> np.ndarray:
    """RMS in windows of ``window_s`` every ``hop_s``, in dBFS."""
    hop, window = max(1, int(hop_s * rate)), max(1, int(window_s * rate))
    count = max(0, (len(wave) - window) // hop + 1)
    if count == 0:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(wave, window)[::hop][:count]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def audio_onsets(
    wave: np.ndarray, rate: int, *, rise_db: float = 12.0, floor_db: float = -40.0, min_gap_s: float = 0.12
) -> tuple[float, ...]:
    """Times where the loudness rises by ``rise_db`` within 30 ms to above ``floor_db`` dBFS and above
    the clip's peak loudness minus 24 dB; at most one onset per ``min_gap_s``."""
    level = loudness(np.asarray(wave, np.float32), rate)
    if level.size < 8:
        return ()
    lag = max(1, int(0.03 / HOP_S))
    threshold = max(floor_db, float(level.max()) - 24.0)
    rise = level[lag:] - level[:-lag]
    candidates = np.flatnonzero((rise >= rise_db) & (level[lag:] >= threshold)) + lag
    onsets: list[float] = []
    for index in candidates:
        # the onset is where the level first crosses halfway (in dB) between its start and its top
        start = index - lag
        top = int(start + np.argmax(level[start : index + lag + 1]))
        middle = (level[start] + level[top]) / 2
        crossing = start + int(np.argmax(level[start : top + 1] >= middle))
        at = (crossing + 0.5) * HOP_S + 0.005  # + half the 10 ms window
        if not onsets or at - onsets[-1] >= min_gap_s:
            onsets.append(round(at, 4))
    return tuple(onsets)


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


@dataclass(frozen=True)
class SyncMatch:
    offsets_ms: tuple[float, ...]  # audio onset minus visual event, per matched visual event
    unmatched_visual: int  # visual events with no onset within the window
    unmatched_audio: int  # onsets with no visual event within the window

    @property
    def matched(self) -> int:
        return len(self.offsets_ms)


def match_events(visual: tuple[float, ...], audio: tuple[float, ...], window_s: float = 0.25) -> SyncMatch:
    """Greedy one-to-one pairing of visual events with onsets, nearest first, within ``window_s``."""
    pairs = sorted(
        (abs(a - v), i, j) for i, v in enumerate(visual) for j, a in enumerate(audio) if abs(a - v) <= window_s
    )
    used_v, used_a, offsets = set(), set(), {}
    for _, i, j in pairs:
        if i not in used_v and j not in used_a:
            used_v.add(i)
            used_a.add(j)
            offsets[i] = (audio[j] - visual[i]) * 1000
    return SyncMatch(tuple(offsets[i] for i in sorted(offsets)), len(visual) - len(used_v), len(audio) - len(used_a))


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
