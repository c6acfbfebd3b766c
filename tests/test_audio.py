"""syncreel.audio's resampler, the one every stage uses (the master's sound, the built-in model's stems,
LTX-2's waveform, speech, the stems WAV): band-limited, so a tone survives a trip through a lower rate
without folding into new frequencies."""

from __future__ import annotations

import numpy as np

from syncreel.audio import resample
from syncreel.media.encode import MASTER_AUDIO_RATE, fit_audio


def _tone(frequency: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _band_db(wave: np.ndarray, rate: int, low: float, high: float) -> float:
    """Energy between ``low`` and ``high`` Hz (Hann-windowed spectrum), in dB."""
    power = np.abs(np.fft.rfft(wave * np.hanning(wave.size))) ** 2
    frequencies = np.fft.rfftfreq(wave.size, 1 / rate)
    return float(10 * np.log10(power[(frequencies >= low) & (frequencies < high)].sum() + 1e-30))


def test_a_tone_through_a_lower_rate_does_not_alias() -> None:
    """5 kHz at 48 kHz → 16 kHz → 48 kHz: nothing above the 16 kHz rate's 8 kHz Nyquist frequency comes
    back (linear interpolation put images of the tone there at about −12 dB)."""
    there_and_back = resample(resample(_tone(5_000, 48_000), 48_000, 16_000), 16_000, 48_000)
    assert there_and_back.dtype == np.float32 and there_and_back.shape == (48_000,)
    middle = there_and_back[4_800:-4_800]  # away from the filter's start-up at either end
    tone_db = _band_db(middle, 48_000, 4_500, 5_500)
    assert tone_db - _band_db(middle, 48_000, 8_000, 24_000) >= 50


def test_channels_are_resampled_along_the_last_axis() -> None:
    stereo = np.stack([_tone(440, 24_000), _tone(880, 24_000)])
    out = resample(stereo, 24_000, 48_000)
    assert out.shape == (2, 48_000) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], resample(stereo[1], 24_000, 48_000), atol=1e-6)
    assert resample(stereo, 24_000, 24_000) is stereo


def test_the_masters_sound_is_resampled_band_limited() -> None:
    """media.encode's fit_audio brings a 16 kHz clip to the master's 48 kHz with the same resampler."""
    master = fit_audio(_tone(5_000, 16_000)[None], 16_000, 1.0)
    assert master.shape == (2, MASTER_AUDIO_RATE)
    middle = master[0, 4_800:-4_800]
    tone_db = _band_db(middle, MASTER_AUDIO_RATE, 4_500, 5_500)
    assert tone_db - _band_db(middle, MASTER_AUDIO_RATE, 8_000, 24_000) >= 50
