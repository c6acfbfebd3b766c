"""One dual-tower block: each tower runs self-attention, text cross-attention, cross-modal attention
(a2v: video attends to audio; v2a: audio attends to video) and an MLP, every sub-layer gated by adaLN
modulation from the flow time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from syncreel.model.layers import MLP, Attention, modulate

# Per tower, the adaLN projection yields: shift/scale/gate for self-attention, shift/scale/gate for the
# MLP, and gates for the text and cross-modal attention.
MODULATION_CHUNKS = 8


@dataclass
class TowerState:
    """One tower's tokens and everything position/condition-dependent about them."""

    tokens: torch.Tensor  # (B, N, D)
    condition: torch.Tensor  # (B, D) adaLN input
    self_angles: torch.Tensor  # (N, Dh/2) rotary angles for self-attention (3-D for video, 1-D for audio)
    # Temporal-only angles (the token's time in seconds) for cross-modal attention, keyed by the head
    # dim of the attention they feed: a2v runs at the video head dim, v2a at the audio head dim.
    time_angles: dict[int, torch.Tensor]
    # Each token's time in seconds (N,), and the cross-modal time window it gives (H, N, M): this tower's
    # queries against the other tower's keys (layers.time_window_bias), set once per forward pass.
    seconds: torch.Tensor
    cross_bias: torch.Tensor | None = None


class DualTowerBlock(nn.Module):
    def __init__(
        self,
        video_dim: int,
        video_heads: int,
        audio_dim: int,
        audio_heads: int,
        context_dim: int,
        mlp_ratio: float,
        cross_modal: bool = True,
    ):
        """``cross_modal=False`` leaves out a2v and v2a: the towers run side by side, uncoupled."""
        super().__init__()
        # video tower
        self.video_norm1 = nn.LayerNorm(video_dim, elementwise_affine=False, eps=1e-6)
        self.video_attn = Attention(video_dim, video_heads)
        self.video_norm2 = nn.LayerNorm(video_dim, eps=1e-6)
        self.video_text = Attention(video_dim, video_heads, context_dim)
        self.cross_modal = cross_modal
        if cross_modal:
            self.video_norm3 = nn.LayerNorm(video_dim, eps=1e-6)
            self.a2v = Attention(video_dim, video_heads, audio_dim)
        self.video_norm4 = nn.LayerNorm(video_dim, elementwise_affine=False, eps=1e-6)
        self.video_mlp = MLP(video_dim, mlp_ratio)
        self.video_modulation = nn.Sequential(nn.SiLU(), nn.Linear(video_dim, MODULATION_CHUNKS * video_dim))
        # audio tower (mirrors the video tower)
        self.audio_norm1 = nn.LayerNorm(audio_dim, elementwise_affine=False, eps=1e-6)
        self.audio_attn = Attention(audio_dim, audio_heads)
        self.audio_norm2 = nn.LayerNorm(audio_dim, eps=1e-6)
        self.audio_text = Attention(audio_dim, audio_heads, context_dim)
        if cross_modal:
            self.audio_norm3 = nn.LayerNorm(audio_dim, eps=1e-6)
            self.v2a = Attention(audio_dim, audio_heads, video_dim)
        self.audio_norm4 = nn.LayerNorm(audio_dim, elementwise_affine=False, eps=1e-6)
        self.audio_mlp = MLP(audio_dim, mlp_ratio)
        self.audio_modulation = nn.Sequential(nn.SiLU(), nn.Linear(audio_dim, MODULATION_CHUNKS * audio_dim))

    def forward(
        self,
        video: TowerState,
        audio: TowerState,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        cross_modal: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cross_modal``: (B, 1, 1) of 1.0 / 0.0, per sample whether the towers exchange information;
        None when no sample does (the caller decides that once per pass, so a block never waits on the
        device to find out and compiles as one graph)."""
        v, a = video.tokens, audio.tokens
        (v_shift1, v_scale1, v_gate1, v_shift2, v_scale2, v_gate2, v_gate_text, v_gate_cross) = self.video_modulation(
            video.condition
        ).chunk(MODULATION_CHUNKS, dim=-1)
        (a_shift1, a_scale1, a_gate1, a_shift2, a_scale2, a_gate2, a_gate_text, a_gate_cross) = self.audio_modulation(
            audio.condition
        ).chunk(MODULATION_CHUNKS, dim=-1)

        # 1. self-attention within each tower (3-D rotary for video, 1-D for audio)
        v = v + v_gate1.unsqueeze(1) * self.video_attn(
            modulate(self.video_norm1(v), v_shift1, v_scale1), q_angles=video.self_angles, k_angles=video.self_angles
        )
        a = a + a_gate1.unsqueeze(1) * self.audio_attn(
            modulate(self.audio_norm1(a), a_shift1, a_scale1), q_angles=audio.self_angles, k_angles=audio.self_angles
        )

        # 2. text (and reference) cross-attention
        v = v + v_gate_text.unsqueeze(1) * self.video_text(self.video_norm2(v), context, key_padding=context_mask)
        a = a + a_gate_text.unsqueeze(1) * self.audio_text(self.audio_norm2(a), context, key_padding=context_mask)

        # 3. audio↔video cross-attention on the shared time axis (both sides read the other's state
        #    from before this step, so the exchange is symmetric)
        if self.cross_modal and cross_modal is not None:
            v_in, a_in = self.video_norm3(v), self.audio_norm3(a)
            v_head, a_head = self.a2v.head_dim, self.v2a.head_dim
            v = v + cross_modal * v_gate_cross.unsqueeze(1) * self.a2v(
                v_in,
                a_in,
                q_angles=video.time_angles[v_head],
                k_angles=audio.time_angles[v_head],
                bias=video.cross_bias,
            )
            a = a + cross_modal * a_gate_cross.unsqueeze(1) * self.v2a(
                a_in,
                v_in,
                q_angles=audio.time_angles[a_head],
                k_angles=video.time_angles[a_head],
                bias=audio.cross_bias,
            )

        # 4. MLP
        v = v + v_gate2.unsqueeze(1) * self.video_mlp(modulate(self.video_norm4(v), v_shift2, v_scale2))
        a = a + a_gate2.unsqueeze(1) * self.audio_mlp(modulate(self.audio_norm4(a), a_shift2, a_scale2))
        return v, a
