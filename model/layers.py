"""Building blocks: timestep embedding, rotary positions on a time axis in seconds, attention, MLP."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: normalised tokens (B, N, D) shifted and scaled per sample by the conditioning (B, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Flow time t ∈ [0, 1] → sinusoidal features → MLP (as in DiT)."""

    def __init__(self, dim: int, frequencies: int = 128):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) → (B, D)
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = 1000 * t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def time_angles(seconds: torch.Tensor, pairs: int, min_period_s: float, max_period_s: float) -> torch.Tensor:
    """Rotary angles for positions given in seconds: (N,) → (N, pairs).

    Both towers call this with their tokens' times, so a video frame and the audio at the same instant
    get the same phase whatever their token rates.
    """
    periods = torch.logspace(math.log10(min_period_s), math.log10(max_period_s), pairs, device=seconds.device)
    return seconds.float()[:, None] * (2 * math.pi / periods)[None]


def index_angles(index: torch.Tensor, pairs: int, base: float = 100.0) -> torch.Tensor:
    """Standard RoPE angles over integer grid positions (the video's rows and columns)."""
    inv = base ** (-torch.arange(pairs, device=index.device, dtype=torch.float32) / pairs)
    return index.float()[:, None] * inv[None]


def time_window_bias(q_seconds: torch.Tensor, k_seconds: torch.Tensor, heads: int, width_s: float) -> torch.Tensor:
    """Additive attention bias (H, N, M) favouring keys near each query's instant: −Δt² / (2 w_h²) with
    w_h = width_s · 2^h, so head 0 reads the moment itself and later heads wider surroundings."""
    widths = width_s * 2.0 ** torch.arange(heads, device=q_seconds.device, dtype=torch.float32)
    delta = q_seconds.float()[:, None] - k_seconds.float()[None, :]
    return -(delta[None] ** 2) / (2 * widths[:, None, None] ** 2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (B, H, N, Dh) by angles (N, Dh/2)."""
    x_pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = torch.cos(angles)[None, None], torch.sin(angles)[None, None]
    real = x_pairs[..., 0] * cos - x_pairs[..., 1] * sin
    imag = x_pairs[..., 0] * sin + x_pairs[..., 1] * cos
    return torch.stack([real, imag], dim=-1).flatten(-2).type_as(x)


class Attention(nn.Module):
    """Multi-head attention; queries from ``x``, keys/values from ``context`` (itself when None),
    optional rotary angles for each side."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.q_norm = nn.RMSNorm(dim // heads)
        self.k_norm = nn.RMSNorm(dim // heads)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        q_angles: torch.Tensor | None = None,
        k_angles: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``key_padding`` (B, M): True where a key may be attended; ``bias`` (H, N, M): added to the
        attention logits (the cross-modal time window)."""
        context = x if context is None else context
        q = self.q_norm(self.q(x).unflatten(-1, (self.heads, -1)).transpose(1, 2))  # (B, H, N, Dh)
        k, v = self.kv(context).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (B, H, M, Dh) each
        k = self.k_norm(k)
        if q_angles is not None:
            q = apply_rotary(q, q_angles)
        if k_angles is not None:
            k = apply_rotary(k, k_angles)
        mask = None if key_padding is None else key_padding[:, None, None, :]  # True = attend
        if bias is not None:
            mask = bias[None].to(q.dtype) if mask is None else bias[None].to(q.dtype).masked_fill(~mask, -math.inf)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
