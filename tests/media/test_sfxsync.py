"""Sound-effect sync on signals whose answer is known: onset strength lands in the right slot, the
motion-change lag search, the per-event table and the verdicts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from syncreel.media.frames import AudioTrack
from syncreel.media.sfxsync import SfxSyncScore, judge_sfx_sync, onset_strength, score_tracks
from syncreel.media.tracks import ClipTracks

FPS = 25.0
RATE = 16_000


def knocks(times_s: list[float], seconds: float) -> np.ndarray:
    wave = 1e-3 * np.random.default_rng(0).standard_normal(int(seconds * RATE))
    t = np.arange(int(0.1 * RATE)) / RATE
    knock = 0.5 * np.sin(2 * np.pi * 150 * t) * np.exp(-t * 40)
    for at in times_s:
        start = int(at * RATE)
        wave[start : start + knock.size] += knock[: wave.size - start]
    return wave.astype(np.float32)


def test_onset_strength_peaks_in_the_slot_of_the_knock() -> None:
    strength = onset_strength(knocks([0.50, 1.23, 2.71], 4.0), RATE, 100, FPS)
    assert sorted(np.argsort(strength)[-3:]) == [12, 30, 67]  # floor(t · 25)
    assert strength[12] > 20 and np.median(strength) < 1


def clip(events: list[float], sound_shift_s: float, seconds: float = 6.0) -> ClipTracks:
    frames = int(seconds * FPS)
    change = np.zeros(frames)
    for at in events:
        change[int(at * FPS)] = 10.0
    audio = AudioTrack(knocks([e + sound_shift_s for e in events], seconds), RATE, 0.0)
    return ClipTracks("synthetic", FPS, frames, 256, 256, frames, None, change, np.full(frames, 5.0), audio)


EVENTS = [0.62, 1.5, 2.1, 3.3, 3.9, 4.86]


@pytest.mark.parametrize("shift_ms", [-200, 0, 120, 280, -560])
def test_offset_and_event_table(shift_ms: int) -> None:
    score = score_tracks(clip(EVENTS, shift_ms / 1000), events_s=tuple(EVENTS))
    assert score.offset_ms == pytest.approx(shift_ms, abs=25)
    assert score.confidence > 0.5
    assert len(score.events) == len(EVENTS) and score.unmatched_events == 0
    assert all(row.offset_ms == pytest.approx(shift_ms, abs=12) for row in score.events)


def test_unrelated_sounds() -> None:
    # 15 impacts in 12 s and 15 knocks at other times (with only a handful of events, chance
    # alignments at some lag can look confident: see docs/qa.md, "Sound-effect sync")
    events = sorted(np.random.default_rng(100).uniform(0.3, 11.5, 15).round(2))
    unrelated = sorted(np.random.default_rng(3).uniform(0.3, 11.5, 15).round(2))
    tracks = clip(events, 0.0, seconds=12.0)
    tracks = replace(tracks, audio=AudioTrack(knocks(unrelated, 12.0), RATE, 0.0))
    score = score_tracks(tracks, events_s=tuple(events))
    assert judge_sfx_sync(score).status == "unsynced"
    assert judge_sfx_sync(score).verdict == "warn"  # sounds need not follow motion...
    assert judge_sfx_sync(score, effects_expected=True).verdict == "fail"  # ...unless events were reported


def base_score(**changes) -> SfxSyncScore:
    score = SfxSyncScore(
        offset_ms=0.0,
        peak_correlation=0.7,
        confidence=0.7,
        onsets=5,
        motion=4.0,
        duration_s=5.0,
        lags_ms=(),
        correlation=(),
        events=(),
        unmatched_events=None,
        unmatched_onsets=None,
    )
    return replace(score, **changes)


@pytest.mark.parametrize(
    ("changes", "status", "verdict"),
    [
        ({}, "in_sync", "pass"),
        ({"offset_ms": -60.0}, "audio_early", "fail"),
        ({"offset_ms": 140.0}, "audio_late", "fail"),
        ({"onsets": 1}, "no_onsets", "pass"),
        ({"motion": 0.1}, "no_motion", "pass"),
    ],
)
def test_verdicts(changes: dict, status: str, verdict: str) -> None:
    judged = judge_sfx_sync(base_score(**changes), effects_expected=True)
    assert (judged.status, judged.verdict) == (status, verdict)


def test_an_offset_only_warns_when_no_effects_are_expected() -> None:
    # speech onsets lead a talking face's motion: not an effects fault (lip-sync judges speech)
    judged = judge_sfx_sync(base_score(offset_ms=-155.0))
    assert (judged.status, judged.verdict) == ("audio_early", "warn")


def test_thresholds_come_from_the_caller() -> None:
    assert judge_sfx_sync(base_score(offset_ms=-60.0), max_audio_early_ms=80).status == "in_sync"
    assert judge_sfx_sync(base_score(confidence=0.4), min_confidence=0.5).status == "unsynced"


def test_effects_are_judged_on_their_own_stem_when_the_clip_keeps_one() -> None:
    """A master's mix holds a line whose syllables follow nothing that moves; its effects stem holds the
    knocks on the impacts: judged on the stem, the knocks are in sync; on the mix, the line blurs them."""
    from syncreel.media.syncqa import SyncExpectation, judge

    seconds = 6.0
    tracks = clip(EVENTS, 0.0, seconds)
    effects = tracks.audio
    syllables = knocks(list(np.arange(0.3, 5.8, 0.21).round(2)), seconds)  # a line: onsets every 210 ms
    mixed = replace(tracks, audio=AudioTrack(effects.samples + syllables, RATE, 0.0))
    on_stem = judge(mixed, SyncExpectation(events_s=tuple(EVENTS)), effects=effects)
    assert on_stem.sfx_verdict.status == "in_sync" and abs(on_stem.sfx.offset_ms) <= 25
    on_mix = judge(mixed, SyncExpectation(events_s=tuple(EVENTS)))
    assert on_mix.sfx.confidence < on_stem.sfx.confidence
