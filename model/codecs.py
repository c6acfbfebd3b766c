"""Codecs of the built-in model.

Video: pixel space at the latent grid. Frames are resized to latent_height × latent_width and mapped
to [-1, 1]; decoding resizes back (bilinear in space, linear in time to the requested frame rate). A
learned autoencoder can replace it without touching the transformer.

Audio: log-mel at 16 kHz (Hann STFT, Slaney-style triangular mel filters built here), normalised to
about [-1, 1]; decoding inverts the filterbank (pseudo-inverse) and runs Griffin-Lim phase recovery.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from model.config import DualTowerConfig

LOG_FLOOR = 1e-5
# Log-mel values of real sound lie in about [-11.5, 2]; this maps them to about [-1, 1].
MEL_CENTER, MEL_SCALE = -4.5, 5.0


def encode_video(frames: torch.Tensor, config: DualTowerConfig) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (3, T, h, w) in [-1, 1] at the latent grid (T kept)."""
    x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1
    x = F.interpolate(x, size=(config.latent_height, config.latent_width), mode="area")
    return x.permute(1, 0, 2, 3)


def decode_video(latents: torch.Tensor, frames: int, height: int, width: int) -> np.ndarray:
    """(3, T, h, w) → (frames, height, width, 3) uint8, interpolated in time and space."""
    x = latents.unsqueeze(0).float()
    x = F.interpolate(x, size=(frames, x.shape[-2], x.shape[-1]), mode="trilinear", align_corners=True)
    x = x[0].permute(1, 0, 2, 3)  # (frames, 3, h, w)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@cache
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, equal area, on the HTK mel scale."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595 * np.log10(1 + hz / 700)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700 * (10 ** (mel / 2595) - 1)

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array(0.0)), to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    filters = np.maximum(0, np.minimum(rising, falling)) * (2 / (upper - lower))
    return torch.tensor(filters, dtype=torch.float32)


@cache
def mel_pseudo_inverse(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels): the least-squares way back from mel power to linear power."""
    return torch.linalg.pinv(mel_filterbank(sample_rate, n_fft, n_mels))


def encode_audio(wave: torch.Tensor, config: DualTowerConfig) -> torch.Tensor:
    """(N,) float waveform at config.sample_rate → (n_mels, frames) normalised log-mel."""
    window = torch.hann_window(config.n_fft)
    spec = torch.stft(wave.float(), config.n_fft, config.hop_length, window=window, return_complex=True)
    power = spec.abs() ** 2
    mel = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels) @ power
    return (torch.log(mel.clamp(min=LOG_FLOOR)) - MEL_CENTER) / MEL_SCALE


def decode_audio(
    mel: torch.Tensor, config: DualTowerConfig, iterations: int = 32, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n_mels, frames) normalised log-mel → (N,) waveform via filterbank pseudo-inverse + Griffin-Lim."""
    power_mel = torch.exp(mel.float() * MEL_SCALE + MEL_CENTER)
    inverse = mel_pseudo_inverse(config.sample_rate, config.n_fft, config.n_mels)
    magnitude = (inverse @ power_mel).clamp(min=0).sqrt()  # (bins, frames)
    window = torch.hann_window(config.n_fft)
    length = (mel.shape[-1] - 1) * config.hop_length
    phase = torch.rand(magnitude.shape, generator=generator) * 2 * math.pi
    spec = magnitude * torch.exp(1j * phase)
    for _ in range(iterations):
        wave = torch.istft(spec, config.n_fft, config.hop_length, window=window, length=length)
        rebuilt = torch.stft(wave, config.n_fft, config.hop_length, window=window, return_complex=True)
        spec = magnitude * torch.exp(1j * torch.angle(rebuilt))
    return torch.istft(spec, config.n_fft, config.hop_length, window=window, length=length)
