"""Sound-effect sync: do the sounds land on the picture's impacts, and how far apart are they?

On the 25 fps clock (`media.tracks`): the audio onset strength — how fast the loudness rises, from
syncreel/audio.py's ``loudness`` (10 ms RMS every 5 ms, in dB), over the 30 ms that its ``audio_onsets``
looks at, placed at the middle of each rise and kept as the strongest rise in each slot — against
the picture's motion change (how much the frame difference turns back on itself, as when a ball
hits the floor: see `media.tracks`). Their correlation over ±15 slots gives the offset
(**positive = audio late**), the peak and the confidence (peak − median), as for lip-sync.

When the generator reports when its visual events happen, ``events`` pairs each with the detected
onset (syncreel/audio.py's ``audio_onsets``) nearest to where the clip's offset puts its sound, and
reports that onset's own offset: the per-event table; ``unmatched_events`` / ``unmatched_onsets``
count what syncreel/audio.py's one-to-one ``match_events`` leaves unpaired there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from syncreel.audio import HOP_S, audio_onsets, loudness, match_events
from syncreel.media.lipsync import MAX_LAG, lag_correlation, peak_of
from syncreel.media.qc import Verdict
from syncreel.media.tracks import ClipTracks, analyse
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, MIN_SFX_CONFIDENCE

RISE_S = 0.03  # the rise that audio_onsets looks at
ONSET_RANGE_DB = 40.0  # rises in quieter sound than the loudest minus this are not onsets
EVENT_WINDOW_S = 0.12  # an onset further than this from where the clip's offset puts an event's sound is not its sound

# The confidence threshold's default, MIN_SFX_CONFIDENCE, is calibrated on tests/fixtures/calibration.py:
# shifted balls 0.60–0.76, another ball's sound 0.23; 15 knocks at times unrelated to 15 impacts
# 0.11–0.18. With only ~6 events, chance alignment reaches 0.5.
MIN_ONSETS = 2
MIN_MOTION = 0.5  # mean frame-difference RMS (luma levels) under which the picture is still

Status = Literal["in_sync", "audio_early", "audio_late", "unsynced", "no_onsets", "no_motion"]


@dataclass(frozen=True)
class EventMatch:
    visual_s: float
    onset_s: float | None
    offset_ms: float | None  # onset − visual event; positive: audio late


@dataclass(frozen=True)
class SfxSyncScore:
    offset_ms: float | None  # positive: audio late
    peak_correlation: float | None
    confidence: float | None
    onsets: int  # detected audio onsets
    motion: float  # mean frame-difference RMS over the clip (luma levels)
    duration_s: float
    lags_ms: tuple[float, ...]
    correlation: tuple[float, ...]
    events: tuple[EventMatch, ...]  # only when visual event times were given
    unmatched_events: int | None  # one-to-one pairing (syncreel.audio.match_events): events without a sound
    unmatched_onsets: int | None  # ... and sounds without an event (within EVENT_WINDOW_S of the offset)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SfxSyncVerdict:
    status: Status
    verdict: Verdict
    message: str


def onset_strength(wave: np.ndarray, rate: int, frames: int, fps: float) -> np.ndarray:
    """The strongest loudness rise (dB over 30 ms) whose middle falls in each slot."""
    strength = np.zeros(frames)
    level = loudness(np.asarray(wave, np.float32), rate)
    lag = max(1, int(round(RISE_S / HOP_S)))
    if level.size <= lag:
        return strength
    floor = float(level.max()) - ONSET_RANGE_DB
    rise = np.clip(level[lag:] - level[:-lag], 0, None) * (level[lag:] >= floor)
    # level[i] is the window [i·hop, i·hop + 10 ms); the rise from i to i + lag is centred between them
    middles = (np.arange(rise.size) + lag / 2) * HOP_S + 0.005
    slots = np.floor(middles * fps).astype(int)
    inside = (slots >= 0) & (slots < frames)
    np.maximum.at(strength, slots[inside], rise[inside])
    return strength


def score_tracks(tracks: ClipTracks, events_s: tuple[float, ...] = ()) -> SfxSyncScore:
    """The sound-effect sync of an analysed clip; ``events_s``: visual event times, if known."""
    fps, frames = tracks.fps, tracks.frames
    wave = tracks.audio.at(0.0, frames / fps) if tracks.audio is not None else np.zeros(0, np.float32)
    rate = tracks.audio.rate if tracks.audio is not None else 16_000
    onsets = audio_onsets(wave, rate) if wave.size else ()
    strength = onset_strength(wave, rate, frames, fps) if wave.size else np.zeros(frames)
    lags = tuple(lag * 1000 / fps for lag in range(-MAX_LAG, MAX_LAG + 1))
    correlation = lag_correlation(tracks.motion_change, strength)
    found = peak_of(correlation, fps) if strength.any() and tracks.motion_change.any() else None
    table: tuple[EventMatch, ...] = ()
    pairing = None
    if events_s:
        offset_s = found[0] / 1000 if found is not None else 0.0
        table = _event_table(tuple(events_s), onsets, offset_s)
        expected = tuple(v + offset_s for v in events_s)
        pairing = match_events(expected, onsets, window_s=EVENT_WINDOW_S)
    return SfxSyncScore(
        offset_ms=None if found is None else found[0],
        peak_correlation=None if found is None else found[1],
        confidence=None if found is None else found[2],
        onsets=len(onsets),
        motion=float(np.mean(tracks.motion_energy)) if frames else 0.0,
        duration_s=frames / fps,
        lags_ms=lags,
        correlation=tuple(float(c) for c in correlation) if found is not None else (),
        events=table,
        unmatched_events=None if pairing is None else pairing.unmatched_visual,
        unmatched_onsets=None if pairing is None else pairing.unmatched_audio,
    )


def _event_table(visual: tuple[float, ...], onsets: tuple[float, ...], offset_s: float) -> tuple[EventMatch, ...]:
    """Each visual event with the onset nearest to where the clip's offset puts its sound, within
    EVENT_WINDOW_S of it (None when there is none)."""
    rows = []
    for v in visual:
        nearest = min(onsets, key=lambda a: abs(a - v - offset_s), default=None)
        if nearest is None or abs(nearest - v - offset_s) > EVENT_WINDOW_S:
            rows.append(EventMatch(round(v, 4), None, None))
        else:
            rows.append(EventMatch(round(v, 4), float(nearest), round(float(nearest - v) * 1000, 1)))
    return tuple(rows)


def score_sfx_sync(path: str | Path, events_s: tuple[float, ...] = ()) -> SfxSyncScore:
    """Decode ``path`` (pictures without face tracking, and the sound) and score its sound-effect sync."""
    return score_tracks(analyse(path, faces=False), events_s)


def judge_sfx_sync(
    score: SfxSyncScore,
    *,
    max_audio_early_ms: float = AUDIO_EARLY_MS,
    max_audio_late_ms: float = AUDIO_LATE_MS,
    min_confidence: float = MIN_SFX_CONFIDENCE,
    effects_expected: bool = False,
) -> SfxSyncVerdict:
    """Status and pass/warn/fail. A clip without onsets or without motion has nothing to sync: it
    passes with its own status. Sounds that follow no motion at any offset (``unsynced``) or follow it
    too early or too late fail when ``effects_expected`` (the generator reported visual events, or the
    scene has sound cues), and only warn otherwise: speech, music and ambience need not follow what
    moves (speech onsets against a talking face's motion lead it by ~150 ms: lip-sync judges those)."""
    strict: Verdict = "fail" if effects_expected else "warn"
    if score.onsets < MIN_ONSETS:
        return SfxSyncVerdict("no_onsets", "pass", f"{score.onsets} sound onset(s): no sound effects to sync")
    if score.motion < MIN_MOTION or score.confidence is None or score.offset_ms is None:
        return SfxSyncVerdict(
            "no_motion", "pass", f"the picture hardly moves (motion {score.motion:.2f}): nothing to sync"
        )
    if score.confidence < min_confidence:
        return SfxSyncVerdict(
            "unsynced",
            strict,
            f"the sounds do not follow the picture's motion at any offset within ±600 ms "
            f"(confidence {score.confidence:.2f}, need {min_confidence:g})",
        )
    offset = score.offset_ms
    if offset < -max_audio_early_ms:
        return SfxSyncVerdict("audio_early", strict, f"sound effects {-offset:.0f} ms early "
                              f"(allowed {max_audio_early_ms:g} ms; confidence {score.confidence:.2f})")  # fmt: skip
    if offset > max_audio_late_ms:
        return SfxSyncVerdict("audio_late", strict, f"sound effects {offset:.0f} ms late "
                              f"(allowed {max_audio_late_ms:g} ms; confidence {score.confidence:.2f})")  # fmt: skip
    return SfxSyncVerdict(
        "in_sync", "pass", f"sound effects in sync: {offset:+.0f} ms, confidence {score.confidence:.2f}"
    )
