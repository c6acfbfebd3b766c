"""Codecs of the built-in model.

Video: a small convolutional autoencoder, trained here on the procedural world's frames (the first
stage of model/train.py), maps each square RGB frame of ``frame_size`` pixels to a latent grid
``codec_factor`` times smaller with ``latent_channels`` channels, normalised per channel to unit
variance. It works frame by frame: time is the transformer's business. Decoding fits the square
into the requested size (the square in the middle over a blurred, dimmed copy of itself filling the
rest) and interpolates linearly in time to the requested frame rate.

Audio: log-mel at 16 kHz (Hann STFT, triangular mel filters built here), normalised to about
[-1, 1], one channel per stem (dialogue, effects, ambience); decoding inverts the filterbank
(pseudo-inverse) and runs Griffin-Lim phase recovery per stem; the stems sum to the mix.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from syncreel.model.config import DualTowerConfig

LOG_FLOOR = 1e-5
# Log-mel values of real sound lie in about [-11.5, 2]; this maps them to about [-1, 1].
MEL_CENTER, MEL_SCALE = -4.5, 5.0


class VideoAutoencoder(nn.Module):
    """Frames (N, 3, S, S) in [-1, 1] ⇄ latents (N, C, S/f, S/f); strided convolutions down, nearest
    upsampling + convolutions up. ``latent_mean`` / ``latent_std`` (set after training) normalise."""

    # buffers (register_buffer): saved with the weights, not trained
    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: DualTowerConfig):
        super().__init__()
        self.frame_size, self.factor = config.frame_size, config.codec_factor
        stages = int(math.log2(config.codec_factor))
        widths = [config.codec_width * min(2, 2**i) for i in range(stages + 1)]
        down: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(stages):
            down += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.SiLU()]
            down += [nn.Conv2d(widths[i + 1], widths[i + 1], 3, padding=1), nn.SiLU()]
        down.append(nn.Conv2d(widths[-1], config.latent_channels, 1))
        up: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1), nn.SiLU()]
        for i in reversed(range(stages)):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)]
            up += [nn.SiLU(), nn.Conv2d(widths[i], widths[i], 3, padding=1), nn.SiLU()]
        up.append(nn.Conv2d(widths[0], 3, 3, padding=1))
        self.encoder, self.decoder = nn.Sequential(*down), nn.Sequential(*up)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    @property
    def latent_grid(self) -> int:
        """Latents per side for the picture size the codec was built for."""
        return self.frame_size // self.factor

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) in [-1, 1] → normalised latents (N, C, s, s)."""
        z = self.encoder(frames)
        return (z - self.latent_mean.view(1, -1, 1, 1)) / self.latent_std.view(1, -1, 1, 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (N, C, s, s) → frames (N, 3, S, S), about [-1, 1]."""
        z = latents * self.latent_std.view(1, -1, 1, 1) + self.latent_mean.view(1, -1, 1, 1)
        return self.decoder(z)

    @torch.no_grad()
    def set_normalisation(self, frames: torch.Tensor) -> None:
        """Per-channel mean and standard deviation of the raw latents of a sample of frames."""
        z = self.encoder(frames)
        self.latent_mean.copy_(z.mean((0, 2, 3)))
        self.latent_std.copy_(z.std((0, 2, 3)).clamp(min=1e-4))


def square_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (T, 3, size, size) in [-1, 1]: centre square crop, then area resize."""
    x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1
    height, width = x.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return F.interpolate(x[..., top : top + side, left : left + side], size=(size, size), mode="area")


def encode_video(codec: VideoAutoencoder, frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (C, T, s, s) normalised latents."""
    with torch.no_grad():
        return codec.encode(square_frames(frames, size)).permute(1, 0, 2, 3)


def _linear_weights(source: int, size: int) -> torch.Tensor:
    """(size, source): the weights of 1-D linear interpolation from ``source`` to ``size`` samples
    (align_corners=False), the coefficients F.interpolate uses; bilinear is these along each axis."""
    return F.interpolate(torch.eye(source)[None], size=size, mode="linear", align_corners=False)[0].T


def fit_square(squares: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, 3, S, S) → (T, 3, height, width): the square scaled to fit, centred over a blurred, dimmed
    copy of itself that covers the frame (no black bars, nothing cropped)."""
    side = min(height, width)
    inner = F.interpolate(squares, size=(side, side), mode="bicubic", align_corners=False)
    if height == width:
        return inner
    cover = max(height, width)
    # the blurred copy: the square averaged to 4 × 4 and enlarged bilinearly to cover², of which only the
    # frame's window is computed (separably: rows, then columns)
    tiny = F.interpolate(squares, size=(4, 4), mode="area")
    top, left = (cover - height) // 2, (cover - width) // 2
    weights = _linear_weights(4, cover)
    rows, columns = weights[top : top + height], weights[left : left + width]
    canvas = torch.einsum("hi,tcij,wj->tchw", rows, tiny, columns) * 0.6 - 0.4
    top, left = (height - side) // 2, (width - side) // 2
    canvas[..., top : top + side, left : left + side] = inner
    return canvas


def fit_pictures(squares: np.ndarray, height: int, width: int) -> np.ndarray:
    """`fit_square` for uint8 pictures (T, S, S, 3) → (T, height, width, 3), in 8 bits with PIL: a tenth
    of the float path's time at 1280×720, and the same picture to within a level or two (the small
    square is rounded to 8 bits before it is enlarged)."""
    count, side = squares.shape[0], min(height, width)
    out = np.empty((count, height, width, 3), np.uint8)
    cover = max(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    # the blurred copy's window of the cover² enlargement of the 4 × 4 average, in source coordinates
    scale = 4 / cover
    crop_top, crop_left = (cover - height) // 2, (cover - width) // 2
    box = (crop_left * scale, crop_top * scale, (crop_left + width) * scale, (crop_top + height) * scale)
    dim = np.round(np.arange(256) * 0.6).astype(np.uint8)  # (p / 127.5 − 1) · 0.6 − 0.4, in levels
    for index, square in enumerate(squares):
        picture = Image.fromarray(square)
        if height != width:
            tiny = picture.resize((4, 4), Image.Resampling.BOX)
            out[index] = dim[np.asarray(tiny.resize((width, height), Image.Resampling.BILINEAR, box=box))]
        inner = picture.resize((side, side), Image.Resampling.BICUBIC)
        out[index, top : top + side, left : left + side] = np.asarray(inner)
    return out


def decode_video(codec: VideoAutoencoder, latents: torch.Tensor, frames: int, height: int, width: int) -> np.ndarray:
    """(C, T, s, s) normalised latents → (frames, height, width, 3) uint8, interpolated in time and fitted."""
    with torch.no_grad():
        squares = codec.decode(latents.permute(1, 0, 2, 3).float())  # (T, 3, S, S)
        x = squares.permute(1, 0, 2, 3)[None]  # (1, 3, T, S, S)
        x = F.interpolate(x, size=(frames, *x.shape[-2:]), mode="trilinear", align_corners=True)[0]
        pictures = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    if pictures.shape[1:3] == (height, width):
        return np.ascontiguousarray(pictures)
    return fit_pictures(pictures, height, width)


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
    """(..., N) float waveform(s) at config.sample_rate → (..., n_mels, frames) normalised log-mel."""
    window = torch.hann_window(config.n_fft)
    flat = wave.float().reshape(-1, wave.shape[-1])
    spec = torch.stft(flat, config.n_fft, config.hop_length, window=window, return_complex=True)
    mel = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels) @ (spec.abs() ** 2)
    mel = (torch.log(mel.clamp(min=LOG_FLOOR)) - MEL_CENTER) / MEL_SCALE
    return mel.reshape(*wave.shape[:-1], *mel.shape[-2:])


def decode_audio(
    mel: torch.Tensor, config: DualTowerConfig, iterations: int = 32, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(..., n_mels, frames) normalised log-mel → (..., N) waveform(s) via filterbank pseudo-inverse +
    Griffin-Lim (leading dimensions, such as stems, are processed together)."""
    leading = mel.shape[:-2]
    power_mel = torch.exp(mel.float().reshape(-1, *mel.shape[-2:]) * MEL_SCALE + MEL_CENTER)
    inverse = mel_pseudo_inverse(config.sample_rate, config.n_fft, config.n_mels)
    magnitude = (inverse @ power_mel).clamp(min=0).sqrt()  # (K, bins, frames)
    window = torch.hann_window(config.n_fft)
    length = (mel.shape[-1] - 1) * config.hop_length
    phase = torch.rand(magnitude.shape, generator=generator) * 2 * math.pi
    spec = magnitude * torch.exp(1j * phase)
    for _ in range(iterations):
        wave = torch.istft(spec, config.n_fft, config.hop_length, window=window, length=length)
        rebuilt = torch.stft(wave, config.n_fft, config.hop_length, window=window, return_complex=True)
        spec = magnitude * torch.exp(1j * torch.angle(rebuilt))
    wave = torch.istft(spec, config.n_fft, config.hop_length, window=window, length=length)
    return wave.reshape(*leading, length)
