"""Lip-sync score: does the mouth on screen move with the speech in the sound, and how far apart are they?

On the 25 fps clock (`media.tracks`): the mouth opening of the most prominent face against the speech
envelope of the sound — band-passed to 300–3400 Hz (zero phase, so the filter adds no delay), RMS per
40 ms slot, compressed to dB and floored 40 dB under the clip's loudest slot. Their Pearson correlation
at every lag of ±15 slots (±600 ms) gives:

- ``offset_ms``: the lag of the highest correlation, refined between slots by a parabola through
  its neighbours. **Positive means the audio is late** (the sound of a syllable comes after the mouth
  opens for it); negative, audio early. ITU-R BT.1359 finds about 45 ms early and 125 ms late
  detectable, which are the default thresholds.
- ``peak_correlation`` and ``confidence`` = peak − median over all lags: SyncNet's confidence, on a
  correlation scale (0 … 2): a mouth that follows this speech peaks sharply at one lag; one that
  follows other words (or nothing) correlates about as well at every lag.

Both series are correlated at the syllable scale: each minus its own centred moving average over
SYLLABLE_WINDOW_S (0.36 s, passing the 3–8 Hz of syllables). Without that, a line's outline — a
mouth closed and the sound quiet before and after it, open and loud during it — correlates with
itself at every lag shorter than the line, lifting the median: a 2 s line in a 5 s scene whose mouth
follows every syllable (peak 0.93) scored a confidence of 0.30, below mismatched clips' spread.
- ``windows``: the same measure in 3 s windows every second (the per-window curve for a report), and
  ``drift_ms_per_s``, the confidence-weighted slope of the windows' offsets against time, with
  ``drift_residual_ms``, how far the windows lie from that line (a real drift is a straight line; the
  windows of an unrelated mouth jump about).
- ``face_share`` (all slots) and ``speech_face_share`` (slots with speech), ``speech_s``, and
  ``mouth_motion``: the spread of the mouth opening while speech plays.

`judge_lipsync` turns a score into a status with its own name for each way to fail — ``no_speech``,
``no_face`` (speech, but no face on screen), ``static_mouth`` (a face whose mouth does not move while
speech plays), ``drifting``, ``unsynced`` (no lag where mouth and speech agree), ``audio_early``,
``audio_late`` — or ``in_sync``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from syncreel.media.faces import FaceTracker
from syncreel.media.frames import AudioTrack
from syncreel.media.qc import Verdict
from syncreel.media.tracks import ClipTracks, analyse
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, MIN_LIPSYNC_CONFIDENCE

SPEECH_BAND_HZ = (300.0, 3400.0)
MAX_LAG = 15  # slots: ±600 ms at 25 fps, as SyncNet searches
ENVELOPE_RANGE_DB = 40.0  # compression: dB under the loudest slot, floored here
SPEECH_OVER_FLOOR_DB = 12.0  # a slot carries speech this far above the clip's quiet (10th percentile) level
SPEECH_MIN_DBFS = -55.0  # ... and above this absolute level
WINDOW_S, WINDOW_HOP_S = 3.0, 1.0
WINDOW_MIN_SPEECH_S = 1.0
MIN_PAIRED_SLOTS = 25  # a correlation needs at least a second of slots with both signals
SYLLABLE_WINDOW_S = 0.36  # the moving average taken off both series: what is slower than syllables

# Judging (the confidence threshold's default, MIN_LIPSYNC_CONFIDENCE, is calibrated on
# tests/fixtures/calibration.py's set; see docs/qa.md, "Thresholds")
MIN_SPEECH_S = 0.5  # less speech than this: nothing to sync
MIN_SPEECH_FACE_SHARE = 0.5  # a face on at least this share of the speech
STATIC_MOUTH_MOTION = 0.012  # mouth-opening spread (face-size units) under which the mouth is not moving
DRIFT_NOISE_MS_PER_S = 8.0  # slopes below this are within the windows' measurement noise
MIN_DRIFT_WINDOWS = 3
MAX_DRIFT_RESIDUAL_MS = 40.0  # windows further from a line than this jump about: no steady drift to report

Status = Literal["in_sync", "audio_early", "audio_late", "drifting", "unsynced", "static_mouth", "no_face", "no_speech"]


@dataclass(frozen=True)
class SyncWindow:
    start_s: float
    end_s: float
    offset_ms: float
    peak_correlation: float
    confidence: float


@dataclass(frozen=True)
class LipSyncScore:
    offset_ms: float | None  # positive: audio late
    peak_correlation: float | None
    confidence: float | None  # peak − median correlation over the ±15 lags
    drift_ms_per_s: float | None  # None with fewer than three measurable windows
    drift_residual_ms: float | None  # how far the windows' offsets lie from the drift line (RMS)
    face_share: float
    speech_face_share: float
    speech_s: float
    mouth_motion: float | None  # std of the mouth opening over speech slots with a face
    duration_s: float
    fps: float
    lags_ms: tuple[float, ...]
    correlation: tuple[float, ...]  # per lag; empty when not measurable
    windows: tuple[SyncWindow, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LipSyncVerdict:
    status: Status
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class SpeechEnvelope:
    envelope: np.ndarray  # (frames,) compressed level in [0, 1]
    level_dbfs: np.ndarray  # (frames,) speech-band RMS per slot
    speech: np.ndarray  # (frames,) bool: the slot carries speech


def speech_envelope(audio: AudioTrack | None, frames: int, fps: float) -> SpeechEnvelope:
    """The speech-band envelope of ``audio`` per clock slot [k / fps, (k + 1) / fps)."""
    if audio is None or audio.samples.size == 0:
        silent = np.zeros(frames)
        return SpeechEnvelope(silent, np.full(frames, -120.0), np.zeros(frames, bool))
    wave = audio.at(0.0, frames / fps).astype(np.float64)
    # zero-phase band-pass in the frequency domain: a filter delay would read as an offset
    spectrum = np.fft.rfft(wave)
    hz = np.fft.rfftfreq(wave.size, 1 / audio.rate)
    spectrum[(hz < SPEECH_BAND_HZ[0]) | (hz > SPEECH_BAND_HZ[1])] = 0
    wave = np.fft.irfft(spectrum, wave.size)
    edges = np.round(np.arange(frames + 1) / fps * audio.rate).astype(int)
    energy = np.array([np.mean(wave[a:b] ** 2) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)])
    level = 10 * np.log10(energy + 1e-12)
    peak = float(level.max())
    envelope = np.clip((level - (peak - ENVELOPE_RANGE_DB)) / ENVELOPE_RANGE_DB, 0.0, 1.0)
    quiet = float(np.percentile(level, 10))
    speech = (level >= quiet + SPEECH_OVER_FLOOR_DB) & (level >= SPEECH_MIN_DBFS)
    return SpeechEnvelope(envelope, level, speech)


def syllabic(series: np.ndarray, fps: float) -> np.ndarray:
    """``series`` minus its centred moving average over SYLLABLE_WINDOW_S (an odd number of slots),
    averaging only the known (finite) slots; unknown slots stay NaN."""
    width = max(3, int(round(SYLLABLE_WINDOW_S * fps)) | 1)
    values = np.asarray(series, np.float64)
    known = np.isfinite(values)
    kernel = np.ones(width)
    total = np.convolve(np.where(known, values, 0.0), kernel, mode="same")
    count = np.convolve(known.astype(np.float64), kernel, mode="same")
    trend = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return np.where(known, values - trend, np.nan)


def lag_correlation(
    visual: np.ndarray, audio: np.ndarray, max_lag: int = MAX_LAG, span: slice | None = None
) -> np.ndarray:
    """Pearson correlation of visual[t] with audio[t + lag] for lag = −max_lag … max_lag, over the
    slots t in ``span`` (all by default) where both are known; NaN where fewer than MIN_PAIRED_SLOTS pair."""
    frames = visual.size
    t = np.arange(frames)[span or slice(None)]
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        pair = t[(t + lag >= 0) & (t + lag < frames)]
        v, a = visual[pair], audio[pair + lag]
        known = np.isfinite(v) & np.isfinite(a)
        if known.sum() < MIN_PAIRED_SLOTS:
            continue
        v, a = v[known], a[known]
        v, a = v - v.mean(), a - a.mean()
        norm = float(np.sqrt((v * v).sum() * (a * a).sum()))
        out[i] = float((v * a).sum() / norm) if norm > 0 else 0.0
    return out


def peak_of(correlation: np.ndarray, fps: float) -> tuple[float, float, float] | None:
    """(offset ms, peak, confidence) of a lag curve centred on lag 0; the offset is refined between
    slots by a parabola through the peak and its neighbours. None when the curve is not measurable."""
    if not np.isfinite(correlation).any():
        return None
    curve = np.nan_to_num(correlation, nan=-1.0)
    best = int(np.argmax(curve))
    shift = 0.0
    if 0 < best < curve.size - 1:
        left, centre, right = curve[best - 1], curve[best], curve[best + 1]
        bend = left - 2 * centre + right
        shift = float(np.clip(0.5 * (left - right) / bend, -0.5, 0.5)) if bend < 0 else 0.0
    lag = best - (curve.size - 1) // 2 + shift
    peak = float(curve[best])
    return lag * 1000 / fps, peak, peak - float(np.nanmedian(correlation))


def _drift(windows: list[SyncWindow]) -> tuple[float, float] | None:
    """Confidence-weighted least-squares line through the windows' offsets (ms) against their centres
    (s): its slope (ms/s) and the weighted RMS distance of the windows from it (ms)."""
    usable = [w for w in windows if w.confidence > 0]
    if len(usable) < MIN_DRIFT_WINDOWS:
        return None
    centres = np.array([(w.start_s + w.end_s) / 2 for w in usable])
    offsets = np.array([w.offset_ms for w in usable])
    weights = np.array([w.confidence for w in usable])
    mean_t, mean_o = np.average(centres, weights=weights), np.average(offsets, weights=weights)
    spread = float(np.sum(weights * (centres - mean_t) ** 2))
    if spread <= 0:
        return None
    slope = float(np.sum(weights * (centres - mean_t) * (offsets - mean_o)) / spread)
    residual = offsets - (mean_o + slope * (centres - mean_t))
    return slope, float(np.sqrt(np.average(residual**2, weights=weights)))


def score_tracks(tracks: ClipTracks) -> LipSyncScore:
    """The lip-sync score of an analysed clip (see the module docstring)."""
    fps, frames = tracks.fps, tracks.frames
    speech = speech_envelope(tracks.audio, frames, fps)
    mouth = tracks.mouth_opening if tracks.mouth_opening is not None else np.full(frames, np.nan)
    face = np.isfinite(mouth)
    speech_slots = int(speech.speech.sum())
    speech_with_face = speech.speech & face
    motion = float(np.std(mouth[speech_with_face])) if speech_with_face.sum() >= 2 else None
    lags = tuple(lag * 1000 / fps for lag in range(-MAX_LAG, MAX_LAG + 1))
    visual, audible = syllabic(mouth, fps), syllabic(speech.envelope, fps)
    correlation = lag_correlation(visual, audible) if speech_slots and face.any() else np.full(len(lags), np.nan)
    overall = peak_of(correlation, fps)
    windows: list[SyncWindow] = []
    width, hop = int(round(WINDOW_S * fps)), int(round(WINDOW_HOP_S * fps))
    for start in range(0, max(1, frames - width + 1), hop):
        span = slice(start, min(frames, start + width))
        if speech.speech[span].sum() < WINDOW_MIN_SPEECH_S * fps or face[span].mean() < MIN_SPEECH_FACE_SHARE:
            continue
        found = peak_of(lag_correlation(visual, audible, span=span), fps)
        if found is not None:
            offset, peak, confidence = found
            windows.append(SyncWindow(round(start / fps, 3), round(span.stop / fps, 3), offset, peak, confidence))
    drift = _drift(windows)
    return LipSyncScore(
        offset_ms=None if overall is None else overall[0],
        peak_correlation=None if overall is None else overall[1],
        confidence=None if overall is None else overall[2],
        drift_ms_per_s=None if drift is None else drift[0],
        drift_residual_ms=None if drift is None else drift[1],
        face_share=float(face.mean()) if frames else 0.0,
        speech_face_share=float(speech_with_face.sum() / speech_slots) if speech_slots else 0.0,
        speech_s=speech_slots / fps,
        mouth_motion=motion,
        duration_s=frames / fps,
        fps=fps,
        lags_ms=lags,
        correlation=tuple(float(c) for c in correlation) if np.isfinite(correlation).any() else (),
        windows=tuple(windows),
    )


def score_lipsync(path: str | Path, *, tracker: FaceTracker | None = None) -> LipSyncScore:
    """Decode ``path`` and score its lip-sync. Raises MediaError naming the file when it cannot be read."""
    return score_tracks(analyse(path, tracker=tracker))


def judge_lipsync(
    score: LipSyncScore,
    *,
    max_audio_early_ms: float = AUDIO_EARLY_MS,
    max_audio_late_ms: float = AUDIO_LATE_MS,
    min_confidence: float = MIN_LIPSYNC_CONFIDENCE,
    speaker_expected: bool = False,
    speech_expected: bool = False,
) -> LipSyncVerdict:
    """Status and pass/warn/fail for a score, against a brief's ``qa`` thresholds.

    ``speaker_expected``: the clip is meant to show its speaker talking (a scene with on-screen
    dialogue). Then no speech, no face and a still mouth fail; otherwise they warn (a voice-over, a
    silent shot) or, for no speech, pass — there is nothing to sync. ``speech_expected``: the clip
    should hold speech (a voice-over line, say), so no speech fails even without a speaker to see.
    """
    return (
        _nothing_to_sync(score, speaker_expected, speech_expected)
        or _drifting(score, max_audio_early_ms, max_audio_late_ms, min_confidence)
        or _offset_verdict(score, max_audio_early_ms, max_audio_late_ms, min_confidence)
    )


def _nothing_to_sync(score: LipSyncScore, speaker_expected: bool, speech_expected: bool) -> LipSyncVerdict | None:
    """The verdict when the clip lacks what lip-sync is measured on: speech, a face while it plays, or a
    moving mouth; None when it has all three."""
    strict: Verdict = "fail" if speaker_expected else "warn"
    if score.speech_s < MIN_SPEECH_S:
        wanted = speaker_expected or speech_expected
        return LipSyncVerdict(
            "no_speech",
            "fail" if wanted else "pass",
            f"{'the dialogue is missing: ' if wanted else ''}no speech to sync "
            f"({score.speech_s:.2f} s of speech-band activity, need {MIN_SPEECH_S:g} s)",
        )
    if score.speech_face_share < MIN_SPEECH_FACE_SHARE:
        return LipSyncVerdict(
            "no_face",
            strict,
            f"speech for {score.speech_s:.1f} s but a face on only {score.speech_face_share:.0%} of it "
            f"(need {MIN_SPEECH_FACE_SHARE:.0%})",
        )
    if score.mouth_motion is None or score.mouth_motion < STATIC_MOUTH_MOTION:
        motion = "unknown" if score.mouth_motion is None else f"{score.mouth_motion:.4f}"
        return LipSyncVerdict(
            "static_mouth",
            strict,
            f"the mouth does not move while speech plays (opening spread {motion}, need {STATIC_MOUTH_MOTION:g})",
        )
    return None


def _drifting(
    score: LipSyncScore, max_audio_early_ms: float, max_audio_late_ms: float, min_confidence: float
) -> LipSyncVerdict | None:
    """A fail when the offset moves steadily through the clip and its confident ends fall outside the
    allowed range; None otherwise."""
    confident = [w for w in score.windows if w.confidence >= min_confidence]
    drift = score.drift_ms_per_s
    steady = score.drift_residual_ms is not None and score.drift_residual_ms <= MAX_DRIFT_RESIDUAL_MS
    if drift is None or not steady or abs(drift) < DRIFT_NOISE_MS_PER_S or len(confident) < MIN_DRIFT_WINDOWS:
        return None
    first, last = confident[0].offset_ms, confident[-1].offset_ms
    if all(-max_audio_early_ms <= o <= max_audio_late_ms for o in (first, last)):
        return None
    return LipSyncVerdict(
        "drifting",
        "fail",
        f"sync drifts by {drift:+.0f} ms/s: from {first:+.0f} ms to {last:+.0f} ms "
        f"(allowed −{max_audio_early_ms:g} … +{max_audio_late_ms:g} ms; positive = audio late)",
    )


def _offset_verdict(
    score: LipSyncScore, max_audio_early_ms: float, max_audio_late_ms: float, min_confidence: float
) -> LipSyncVerdict:
    """The whole clip's offset against the allowed range, when the mouth follows the speech confidently."""
    if score.confidence is None or score.offset_ms is None or score.confidence < min_confidence:
        found = "not measurable" if score.confidence is None else f"{score.confidence:.2f}"
        return LipSyncVerdict(
            "unsynced",
            "fail",
            f"the mouth does not follow this speech at any offset within ±600 ms "
            f"(confidence {found}, need {min_confidence:g})",
        )
    offset = score.offset_ms
    if offset < -max_audio_early_ms:
        return LipSyncVerdict(
            "audio_early",
            "fail",
            f"audio {-offset:.0f} ms early (allowed {max_audio_early_ms:g} ms; confidence {score.confidence:.2f})",
        )
    if offset > max_audio_late_ms:
        return LipSyncVerdict(
            "audio_late",
            "fail",
            f"audio {offset:.0f} ms late (allowed {max_audio_late_ms:g} ms; confidence {score.confidence:.2f})",
        )
    return LipSyncVerdict(
        "in_sync",
        "pass",
        f"in sync: audio {offset:+.0f} ms (positive = late; allowed −{max_audio_early_ms:g} … "
        f"+{max_audio_late_ms:g} ms), confidence {score.confidence:.2f}",
    )
