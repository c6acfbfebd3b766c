"""Lip-sync scoring on signals whose answer is known: the speech envelope, the lag search and its
sign, drift from windows, and the verdicts with a brief's thresholds. (The calibration clips, real
MP4s through the face-landmark model, are in test_media_sync.py.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from syncreel.media.frames import AudioTrack
from syncreel.media.lipsync import (
    MAX_LAG,
    STATIC_MOUTH_MOTION,
    LipSyncScore,
    judge_lipsync,
    lag_correlation,
    peak_of,
    score_tracks,
    speech_envelope,
)
from syncreel.media.tracks import ClipTracks

FPS = 25.0
RATE = 16_000


def syllables(frames: int, seed: int = 0) -> np.ndarray:
    """A random syllable-like opening per slot: bursts of 3–8 slots with pauses between."""
    rng = np.random.default_rng(seed)
    out = np.zeros(frames)
    t = 2
    while t < frames - 10:
        length = int(rng.integers(3, 9))
        out[t : t + length] = np.sin(np.linspace(0, np.pi, length)) * rng.uniform(0.5, 1.0)
        t += length + int(rng.integers(1, 6))
    return out


def voiced(opening: np.ndarray, shift_slots: float = 0.0, hum: float = 0.0) -> AudioTrack:
    """A 1 kHz 'voice' whose loudness follows ``opening`` shifted later by ``shift_slots``."""
    samples = int(len(opening) / FPS * RATE)
    t = np.arange(samples) / RATE
    gain = np.interp(t * FPS - 0.5 - shift_slots, np.arange(len(opening)), opening, left=0, right=0)
    wave = 0.3 * gain * np.sin(2 * np.pi * 1000 * t) + hum * np.sin(2 * np.pi * 100 * t)
    wave += 1e-3 * np.random.default_rng(1).standard_normal(samples)
    return AudioTrack(wave.astype(np.float32), RATE, 0.0)


def tracks(opening: np.ndarray, audio: AudioTrack | None) -> ClipTracks:
    frames = len(opening)
    mouth = 0.05 + 0.1 * opening
    return ClipTracks("synthetic", FPS, frames, 640, 360, frames, mouth, np.zeros(frames), np.zeros(frames), audio)


@pytest.mark.parametrize("shift", [-7, -2, 0, 3, 10])
def test_lag_search_finds_the_shift_and_its_sign(shift: int) -> None:
    visual = syllables(200)
    audio = np.roll(visual, shift)  # audio[t + shift] = visual[t]: the audio is late by `shift` slots
    offset, peak, confidence = peak_of(lag_correlation(visual, audio), FPS)
    assert offset == pytest.approx(shift * 40, abs=2)
    assert peak > 0.95 and confidence > 0.5


def test_lag_curve_covers_600_ms_each_way() -> None:
    curve = lag_correlation(syllables(100), syllables(100, seed=2))
    assert curve.shape == (2 * MAX_LAG + 1,) and MAX_LAG * 40 == 600


def test_subframe_offsets_are_interpolated() -> None:
    opening = syllables(250)
    score = score_tracks(tracks(opening, voiced(opening, shift_slots=2.5)))
    assert score.offset_ms == pytest.approx(100, abs=12)


def test_speech_envelope_marks_speech_and_ignores_hum() -> None:
    opening = np.zeros(100)
    opening[40:60] = 1.0
    envelope = speech_envelope(voiced(opening, hum=0.3), 100, FPS)
    assert envelope.speech[42:58].all() and not envelope.speech[:35].any() and not envelope.speech[65:].any()
    assert envelope.envelope[50] == pytest.approx(1.0, abs=0.01) and envelope.envelope[10] < 0.3
    silent = speech_envelope(AudioTrack(np.zeros(RATE * 4, np.float32), RATE, 0.0), 100, FPS)
    assert not silent.speech.any()


def test_score_of_a_synced_mouth() -> None:
    opening = syllables(250)
    score = score_tracks(tracks(opening, voiced(opening)))
    assert score.offset_ms == pytest.approx(0, abs=10)
    assert score.face_share == 1.0 and score.speech_face_share == 1.0
    assert score.confidence > 0.6 and abs(score.drift_ms_per_s) < 5
    assert len(score.windows) >= 5 and all(abs(w.offset_ms) < 20 for w in score.windows)
    assert judge_lipsync(score).status == "in_sync"


def test_drift_is_measured_from_the_windows() -> None:
    opening = syllables(375)  # 15 s
    # the sound slips 40 ms later every second: slot t of the picture is heard at t · 1.04
    stretched = np.interp(np.arange(int(375 * 1.04)) / 1.04, np.arange(375), opening)[:375]
    score = score_tracks(tracks(opening, voiced(stretched)))
    assert score.drift_ms_per_s == pytest.approx(40, abs=8)
    assert judge_lipsync(score).status == "drifting"


def test_speech_with_the_face_gone() -> None:
    opening = syllables(200)
    gone = tracks(opening, voiced(opening))
    gone = replace(gone, mouth_opening=np.where(np.arange(200) < 50, gone.mouth_opening, np.nan))
    score = score_tracks(gone)
    assert score.face_share == pytest.approx(0.25) and score.speech_face_share < 0.5
    assert judge_lipsync(score, speaker_expected=True).status == "no_face"
    assert judge_lipsync(score, speaker_expected=True).verdict == "fail"
    assert judge_lipsync(score).verdict == "warn"  # a voice-over is allowed where no speaker is expected


def test_no_audio_track_is_no_speech() -> None:
    score = score_tracks(tracks(syllables(100), None))
    assert score.speech_s == 0 and score.offset_ms is None
    verdict = judge_lipsync(score)
    assert verdict.status == "no_speech" and verdict.verdict == "pass"
    assert judge_lipsync(score, speaker_expected=True).verdict == "fail"


def base_score(**changes) -> LipSyncScore:
    score = LipSyncScore(
        offset_ms=0.0,
        peak_correlation=0.9,
        confidence=0.8,
        drift_ms_per_s=0.0,
        drift_residual_ms=5.0,
        face_share=1.0,
        speech_face_share=1.0,
        speech_s=3.0,
        mouth_motion=0.04,
        duration_s=4.0,
        fps=FPS,
        lags_ms=(),
        correlation=(),
        windows=(),
    )
    return replace(score, **changes)


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-46, "audio_early"), (-44, "in_sync"), (0, "in_sync"), (124, "in_sync"), (126, "audio_late")],
)
def test_itu_bt1359_defaults(offset: float, status: str) -> None:
    assert judge_lipsync(base_score(offset_ms=offset)).status == status


def test_thresholds_come_from_the_caller() -> None:
    score = base_score(offset_ms=-30.0, confidence=0.45)
    assert judge_lipsync(score, min_confidence=0.4).status == "in_sync"
    assert judge_lipsync(score, min_confidence=0.5).status == "unsynced"
    assert judge_lipsync(score, min_confidence=0.4, max_audio_early_ms=20).status == "audio_early"
    late = base_score(offset_ms=150.0)
    assert judge_lipsync(late, max_audio_late_ms=200).verdict == "pass"
    assert judge_lipsync(late).verdict == "fail" and "150 ms late" in judge_lipsync(late).message


def test_still_mouth_has_its_own_verdict() -> None:
    verdict = judge_lipsync(base_score(mouth_motion=STATIC_MOUTH_MOTION / 2), speaker_expected=True)
    assert verdict.status == "static_mouth" and verdict.verdict == "fail"
