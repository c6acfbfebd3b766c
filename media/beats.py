"""Tempo, beats, downbeats and sections of a music track, from an onset-strength envelope (numpy only).

1. Onset strength: spectral flux of a log-compressed mel spectrogram (16 kHz, 100 frames a second).
2. Tempo: the autocorrelation of that envelope, weighted by a log-normal prior around 120 BPM.
3. Beats: Ellis' dynamic programme ("Beat tracking by dynamic programming", 2007; librosa's
   ``beat_track``): the beat sequence that best balances onset strength against a steady period.
4. Each beat is moved onto the steepest rise of the sound's energy within a few milliseconds (the
   100 fps envelope alone is too coarse for ±20 ms); the tempo is the slope of the refined beats.
5. Downbeats: the bar phase (4/4) whose beats carry the most low-frequency onset energy.
6. Sections: peaks of a novelty curve between the timbre of the bars before and after each bar line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

RATE = 16_000
HOP = 160  # 10 ms: the envelope's frame rate is 100 per second
N_FFT = 512
N_FFT_BASS = 2048
N_MELS = 40
BASS_HZ = 200.0  # onsets below this carry the kick and the bass: downbeat evidence
MIN_BPM, MAX_BPM = 50.0, 220.0
PRIOR_BPM = 120.0
TIGHTNESS = 100.0  # how strongly the programme holds the period (librosa's default)
REFINE_RADIUS_S = 0.035
BEATS_PER_BAR = 4
WEAK_DOWNBEAT = 0.1  # below this phase contrast, the first beat is taken as the first downbeat


@dataclass(frozen=True)
class Section:
    start_s: float
    end_s: float
    level_db: float


@dataclass(frozen=True)
class BeatGrid:
    tempo_bpm: float
    beats_s: tuple[float, ...]
    downbeats_s: tuple[float, ...]
    beats_per_bar: int
    downbeat_confidence: float  # how much more low-end the chosen bar phase has than the next best (0..1)
    sections: tuple[Section, ...] = field(default=())
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["beats_s"] = [round(t, 4) for t in self.beats_s]
        data["downbeats_s"] = [round(t, 4) for t in self.downbeats_s]
        data["sections"] = [{k: round(v, 3) for k, v in asdict(s).items()} for s in self.sections]
        return data


def _mel_filters(
    n_mels: int, n_fft: int, rate: int, low_hz: float = 30.0, high_hz: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) and their centre frequencies."""
    high_hz = high_hz or rate / 2

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    edges_mel = np.linspace(mel(low_hz), mel(high_hz), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    filters = np.zeros((n_mels, bins.size), np.float32)
    for band in range(n_mels):
        lo, mid, hi = edges[band : band + 3]
        rising = (bins - lo) / max(mid - lo, 1e-9)
        falling = (hi - bins) / max(hi - mid, 1e-9)
        filters[band] = np.clip(np.minimum(rising, falling), 0, None)
    return filters, edges[1:-1]


def log_mel(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, mels) log-compressed mel power, frames centred on t = i × HOP / RATE; and band centres."""
    padded = np.pad(samples.astype(np.float32), (N_FFT // 2, N_FFT // 2))
    if padded.size < N_FFT:
        padded = np.pad(padded, (0, N_FFT - padded.size))
    windows = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    spectrum = np.abs(np.fft.rfft(windows * np.hanning(N_FFT).astype(np.float32), axis=1)) ** 2
    filters, centres = _mel_filters(N_MELS, N_FFT, RATE)
    mel_power = spectrum @ filters.T
    return np.log1p(1000.0 * mel_power / max(float(mel_power.max()), 1e-12)), centres


def bass_onsets(samples: np.ndarray, frames: int) -> np.ndarray:
    """Onset strength below BASS_HZ from a long window (128 ms: bass notes a few Hz apart are
    told apart, so a new note on the downbeat shows even over a sustained one), on the same clock."""
    padded = np.pad(samples.astype(np.float32), (N_FFT_BASS // 2, N_FFT_BASS // 2))
    if padded.size < N_FFT_BASS:
        padded = np.pad(padded, (0, N_FFT_BASS - padded.size))
    windows = np.lib.stride_tricks.sliding_window_view(padded, N_FFT_BASS)[::HOP][:frames]
    bins = np.fft.rfftfreq(N_FFT_BASS, 1 / RATE) < BASS_HZ
    power = np.abs(np.fft.rfft(windows * np.hanning(N_FFT_BASS).astype(np.float32), axis=1)[:, bins]) ** 2
    compressed = np.log1p(1000.0 * power / max(float(power.max()), 1e-12))
    flux = np.maximum(0.0, np.diff(compressed, axis=0)).mean(axis=1)
    return np.concatenate([[0.0], flux])


def onset_strength(mel: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
    """Half-wave rectified spectral flux, one value per frame."""
    chosen = mel if bands is None else mel[:, bands]
    # Silence before the file: a track that opens on a beat has an onset at 0.
    flux = np.maximum(0.0, np.diff(chosen, axis=0, prepend=np.zeros((1, chosen.shape[1])))).mean(axis=1)
    return flux.astype(np.float64)


def estimate_tempo(envelope: np.ndarray, frame_rate: float = RATE / HOP) -> float:
    """The envelope's strongest periodicity in BPM, weighted towards ~120 BPM."""
    centred = envelope - envelope.mean()
    max_lag = min(len(centred) - 1, int(frame_rate * 60 / MIN_BPM) + 1)
    if max_lag < 2:
        return 0.0
    full = np.correlate(centred, centred, mode="full")[len(centred) - 1 :]
    lags = np.arange(1, max_lag + 1)
    autocorr = full[1 : max_lag + 1] / (len(centred) - lags)
    bpm = 60.0 * frame_rate / lags
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM)) ** 2)
    score = np.where((bpm >= MIN_BPM) & (bpm <= MAX_BPM), np.maximum(autocorr, 0) * prior, 0)
    best = int(np.argmax(score))
    if score[best] <= 0:
        return 0.0
    # Octave check: a pulse at half the period nearly as strong as at the period is the real beat
    # (the prior alone would halve a steady 174 BPM).
    centre = round(lags[best] / 2) - 1
    if centre >= 1:
        half = centre - 1 + int(np.argmax(autocorr[centre - 1 : centre + 2]))
        # Summed over neighbouring lags: a period between two whole frames splits its peak.
        near_half = np.maximum(autocorr[half - 1 : half + 2], 0).sum()
        near_best = np.maximum(autocorr[max(0, best - 1) : best + 2], 0).sum()
        if bpm[half] <= MAX_BPM and near_half >= 0.8 * near_best:
            best = half
    shift = 0.0
    if 0 < best < len(score) - 1:  # parabolic interpolation between lags
        left, mid, right = score[best - 1 : best + 2]
        denominator = left - 2 * mid + right
        shift = 0.5 * (left - right) / denominator if denominator else 0.0
    return 60.0 * frame_rate / (lags[best] + shift)


def track_beats(envelope: np.ndarray, tempo_bpm: float, frame_rate: float = RATE / HOP) -> np.ndarray:
    """Beat frames by dynamic programming over the envelope at a period of ``tempo_bpm``."""
    period = frame_rate * 60.0 / tempo_bpm
    spread = envelope.std()
    if spread <= 0:
        return np.zeros(0, int)
    normalized = envelope / spread
    offsets = np.arange(-round(period), round(period) + 1)
    window = np.exp(-0.5 * (offsets * 32.0 / period) ** 2)
    local = np.convolve(normalized, window, mode="same")
    lags = np.arange(round(period / 2), round(2 * period) + 1)
    penalty = -TIGHTNESS * np.log(lags / period) ** 2
    cumulative = np.zeros_like(local)
    backlink = np.full(len(local), -1)
    for frame in range(len(local)):
        previous = frame - lags
        valid = previous >= 0
        if valid.any():
            candidates = cumulative[previous[valid]] + penalty[valid]
            best = int(np.argmax(candidates))
            cumulative[frame] = local[frame] + candidates[best]
            backlink[frame] = previous[valid][best]
        else:
            cumulative[frame] = local[frame]
    peaks = [f for f in range(1, len(cumulative) - 1) if cumulative[f - 1] <= cumulative[f] > cumulative[f + 1]]
    if not peaks:
        return np.zeros(0, int)
    threshold = 0.5 * np.median(cumulative[peaks])
    frame = max(f for f in peaks if cumulative[f] >= threshold)
    chain = []
    while frame >= 0:
        chain.append(frame)
        frame = backlink[frame]
    beats = np.array(chain[::-1])
    # Silence before the music starts or after it ends holds no beats.
    strength = local[beats]
    strong = np.flatnonzero(strength >= 0.2 * np.median(strength))
    beats = beats[strong[0] : strong[-1] + 1] if strong.size else beats
    return _extend(_steady_ends(beats, period), local, period)


def _steady_ends(beats: np.ndarray, period: float) -> np.ndarray:
    """Drop end beats off the period (the programme's last pick can land on the file's end)."""
    while len(beats) > 2 and abs(beats[-1] - beats[-2] - period) > 0.1 * period:
        beats = beats[:-1]
    while len(beats) > 2 and abs(beats[1] - beats[0] - period) > 0.1 * period:
        beats = beats[1:]
    return beats


def _extend(beats: np.ndarray, local: np.ndarray, period: float) -> np.ndarray:
    """Add the beats the programme's ends miss (its first beat has no predecessor to reward it): one
    period out from either end, while the onsets there are as strong as the track's beats."""
    if beats.size == 0:
        return beats
    floor = 0.5 * np.median(local[beats])
    reach = max(1, round(period / 8))
    found = list(beats)
    for direction in (-1, 1):
        while True:
            guess = (found[0] if direction < 0 else found[-1]) + direction * round(period)
            lo, hi = max(0, guess - reach), min(len(local), guess + reach + 1)
            if hi <= lo or guess < 0 or guess >= len(local):
                break
            candidate = lo + int(np.argmax(local[lo:hi]))
            if local[candidate] < floor:
                break
            if direction < 0:
                found.insert(0, candidate)
            else:
                found.append(candidate)
    return np.asarray(found)


def attacks(samples: np.ndarray, times: np.ndarray, radius_s: float = REFINE_RADIUS_S) -> tuple[np.ndarray, np.ndarray]:
    """Each time moved to the steepest rise of 1 ms log energy within ``radius_s`` (kept where nothing
    rises by 3 dB: a pad, a swell), and that rise in dB."""
    step = RATE // 1000
    lead = 10  # ms of silence before the file, so a sound that starts at 0 still rises
    padded = np.concatenate([np.zeros(lead * step, np.float64), samples.astype(np.float64)])
    energy = np.square(padded[: len(padded) // step * step]).reshape(-1, step).mean(1)
    level = 10 * np.log10(np.convolve(energy, np.ones(3) / 3, mode="same") + 1e-10)
    rise = np.concatenate([[0.0], np.diff(level)])
    refined, strength = [], []
    for time in times:
        centre = int(round(time * 1000)) + lead
        lo, hi = max(0, centre - int(radius_s * 1000)), min(len(rise), centre + int(radius_s * 1000) + 1)
        steepest = float(rise[lo:hi].max()) if hi - lo >= 3 else 0.0
        strength.append(steepest)
        refined.append(max(0, lo + int(np.argmax(rise[lo:hi])) - 1 - lead) / 1000.0 if steepest >= 3.0 else time)
    return np.asarray(refined), np.asarray(strength)


def refine_onsets(samples: np.ndarray, times: np.ndarray, radius_s: float = REFINE_RADIUS_S) -> np.ndarray:
    """``attacks``' times only."""
    return attacks(samples, times, radius_s)[0]


def _downbeat_phase(bass: np.ndarray, beat_frames: np.ndarray) -> tuple[int, float]:
    if len(beat_frames) < BEATS_PER_BAR:
        return 0, 0.0
    around = [bass[max(0, f - 3) : f + 4].max() for f in beat_frames]
    strength = np.asarray(around)
    # Median: one beat weakened by the file's start (no sound before it to rise from) must not decide.
    means = np.array([np.median(strength[phase::BEATS_PER_BAR]) for phase in range(BEATS_PER_BAR)])
    order = np.argsort(means)[::-1]
    best, second = means[order[0]], means[order[1]]
    confidence = float((best - second) / best) if best > 0 else 0.0
    if confidence < WEAK_DOWNBEAT:  # no bar phase stands out: music is most often cut to start on a bar
        return 0, confidence
    return int(order[0]), confidence


def _sections(mel: np.ndarray, samples: np.ndarray, downbeats: np.ndarray, duration_s: float) -> tuple[Section, ...]:
    """Boundaries at bar lines where the next two bars' timbre differs most from the last two's."""
    frame_rate = RATE / HOP
    bars = [*downbeats, duration_s]
    features = []
    for start, end in zip(bars[:-1], bars[1:], strict=True):
        lo, hi = int(start * frame_rate), max(int(start * frame_rate) + 1, int(end * frame_rate))
        features.append(mel[lo:hi].mean(0))
    cuts = [0.0]
    if len(features) >= 6:
        feats = np.asarray(features)
        feats = feats / (np.linalg.norm(feats, axis=1, keepdims=True) + 1e-9)
        novelty = np.zeros(len(feats))
        for bar in range(2, len(feats) - 1):
            before, after = feats[max(0, bar - 2) : bar].mean(0), feats[bar : bar + 2].mean(0)
            novelty[bar] = 1 - float(before @ after / (np.linalg.norm(before) * np.linalg.norm(after) + 1e-9))
        threshold = max(0.05, novelty.mean() + 2 * novelty.std())
        last = 0
        for bar in range(2, len(feats) - 1):
            peak = novelty[bar] >= novelty[bar - 1] and novelty[bar] >= novelty[bar + 1]
            if peak and novelty[bar] > threshold and bar - last >= 2:
                cuts.append(float(downbeats[bar]))
                last = bar
    edges = [*cuts, duration_s]
    sections = []
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        part = samples[int(start * RATE) : int(end * RATE)]
        rms = float(np.sqrt(np.mean(np.square(part)))) if part.size else 0.0
        sections.append(Section(start, end, 20 * np.log10(rms) if rms > 0 else -120.0))
    return tuple(sections)


def beat_grid(samples: np.ndarray, rate: int = RATE) -> BeatGrid:
    """Analyse mono ``samples`` at ``rate`` (resampled by the caller to RATE; see media.analysis)."""
    if rate != RATE:
        raise ValueError(f"beat_grid needs {RATE} Hz samples, got {rate} Hz")
    duration = len(samples) / RATE
    mel, centres = log_mel(samples)
    envelope = onset_strength(mel)
    tempo = estimate_tempo(envelope)
    if tempo <= 0:
        return BeatGrid(0.0, (), (), BEATS_PER_BAR, 0.0, (Section(0.0, duration, -120.0),), duration)
    frames = track_beats(envelope, tempo)
    # Search a beat's attack over an eighth of the period (35-80 ms): the programme's frame can sit a
    # few frames off an attack when noise flattens the envelope.
    beats, rises = attacks(samples, frames * HOP / RATE, float(np.clip(7.5 / tempo, REFINE_RADIUS_S, 0.08)))
    # Before the music starts and after it stops (silence, noise, a room) no beat has an attack.
    weak = rises < 3.0
    first, last = 0, len(beats)
    while first < last - 1 and weak[first]:
        first += 1
    while last - 1 > first and weak[last - 1]:
        last -= 1
    beats, frames = beats[first:last], frames[first:last]
    if len(beats) >= 4:  # the tempo the beats keep: least-squares slope of time against beat number
        tempo = 60.0 / float(np.polyfit(np.arange(len(beats)), beats, 1)[0])
    bass = onset_strength(mel, centres < BASS_HZ) + bass_onsets(samples, len(envelope))
    phase, confidence = _downbeat_phase(bass, frames)
    downbeats = beats[phase::BEATS_PER_BAR]
    return BeatGrid(
        tempo_bpm=round(tempo, 2),
        beats_s=tuple(float(t) for t in beats),
        downbeats_s=tuple(float(t) for t in downbeats),
        beats_per_bar=BEATS_PER_BAR,
        downbeat_confidence=round(confidence, 3),
        sections=_sections(mel, samples, downbeats, duration) if len(downbeats) else (),
        duration_s=duration,
    )
