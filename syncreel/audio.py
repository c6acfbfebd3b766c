"""Sound as numpy arrays, below the libraries that read it: resampling, loudness, onsets, event pairing.

- ``resample``: one band-limited resampler (polyphase, at the exact rational ratio of the two rates).
- ``loudness``: RMS in short windows, in dBFS; ``audio_onsets``: where it jumps (a thump, a kick, a
  syllable), in seconds.
- ``match_events``: pairs event times (what a picture shows) with onsets one to one, nearest first.

model/ (the world, the built-in backend, its benchmarks) and media/ (the sound-effect sync score, the
master's sound, speech) both measure and convert sound with these, so neither imports the other for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

HOP_S = 0.005


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A float32 waveform, mono (N,) or (C, N), from ``rate`` to ``target`` Hz along its last axis,
    band-limited (polyphase), so a tone above the lower rate's Nyquist frequency is removed, not folded."""
    if rate == target or not wave.size:
        return wave
    divisor = math.gcd(rate, target)
    return resample_poly(wave, target // divisor, rate // divisor, axis=-1).astype(np.float32)


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
