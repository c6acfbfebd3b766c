"""DualTowerTransformer: the network that predicts flow velocities for video and audio together.

It knows nothing of training or sampling (see flow_matching.py): given noisy latents of both
modalities, each with its own flow time, plus text and reference tokens, it returns one velocity per
modality.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from syncreel.model.blocks import DualTowerBlock, TowerState
from syncreel.model.codecs import VideoAutoencoder, encode_audio
from syncreel.model.config import DualTowerConfig
from syncreel.model.layers import TimestepEmbedder, index_angles, modulate, time_angles, time_window_bias

REFERENCE_KINDS = ("image", "video", "audio")
# Below this flow time the audio velocity (x_t − clean) / t is taken at t = AUDIO_MIN_T, not blown up.
AUDIO_MIN_T = 0.05
REFERENCE_ROLES = (
    "character",
    "style",
    "product",
    "background",
    "first_frame",
    "motion",
    "music",
    "voice",
    "sfx",
    "footage",
    "continue",
)


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, the units the text encoder reads."""
    return "".join(c if c.isalnum() else f" {c} " for c in text.lower()).split()


def tokenize(texts: list[str], vocab: int, max_tokens: int) -> torch.Tensor:
    """Hashed word pieces: words(text) → ids in [1, vocab); 0 pads. (B, L)."""
    rows = []
    for text in texts:
        ids = [1 + zlib.crc32(word.encode()) % (vocab - 1) for word in words(text)][:max_tokens]
        rows.append(ids + [0] * (max_tokens - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


@dataclass(frozen=True)
class ReferenceTensor:
    """A reference prepared for the network: image (3, S, S), video (F, 3, 16, 16), audio mel (n_mels, K);
    values roughly in [-1, 1]. Build one with image_reference / video_reference / audio_reference."""

    kind: str
    role: str
    tensor: torch.Tensor


def image_reference(image: torch.Tensor, role: str, config: DualTowerConfig) -> ReferenceTensor:
    """(3, H, W) in [-1, 1] → an appearance reference (character, product, style, first frame...)."""
    size = config.reference_image_size
    return ReferenceTensor("image", role, F.interpolate(image[None].float(), size=(size, size), mode="area")[0])


def video_reference(frames: torch.Tensor, role: str, config: DualTowerConfig) -> ReferenceTensor:
    """(T, 3, H, W) in [-1, 1] → a motion reference: evenly spaced frames at 16 × 16."""
    pick = torch.linspace(0, len(frames) - 1, config.reference_video_frames).round().long()
    return ReferenceTensor("video", role, F.interpolate(frames[pick].float(), size=(16, 16), mode="area"))


def audio_reference(wave: torch.Tensor, role: str, config: DualTowerConfig) -> ReferenceTensor:
    """(N,) waveform at the model's sample rate → a voice / music / sfx reference: log-mel pooled in time."""
    mel = encode_audio(wave, config)
    return ReferenceTensor("audio", role, F.adaptive_avg_pool1d(mel[None], config.reference_audio_tokens)[0])


class TextEncoder(nn.Module):
    def __init__(self, config: DualTowerConfig):
        super().__init__()
        self.embed = nn.Embedding(config.text_vocab, config.text_dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(1, config.max_text_tokens, config.text_dim))
        layer = nn.TransformerEncoderLayer(
            config.text_dim,
            nhead=max(1, config.text_dim // 32),
            dim_feedforward=2 * config.text_dim,
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.text_layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, L) → (B, L, Dt), mask
        mask = tokens != 0
        mask[:, 0] = True  # an empty prompt (the unconditional branch) still has one token to attend to
        x = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        return self.layers(x, src_key_padding_mask=~mask), mask


class ReferenceEncoder(nn.Module):
    """References → context tokens: image patches (appearance), motion frames, pooled audio mel."""

    def __init__(self, config: DualTowerConfig):
        super().__init__()
        self.config = config
        dim, patch = config.text_dim, config.reference_patch
        self.image = nn.Linear(3 * patch * patch, dim)
        self.image_position = nn.Parameter(torch.zeros((config.reference_image_size // patch) ** 2, dim))
        self.video = nn.Linear(3 * 16 * 16, dim)
        self.audio = nn.Linear(config.n_mels, dim)
        self.kind = nn.Embedding(len(REFERENCE_KINDS), dim)
        self.role = nn.Embedding(len(REFERENCE_ROLES), dim)

    def encode_one(self, ref: ReferenceTensor) -> torch.Tensor:  # → (R_i, Dt)
        patch = self.config.reference_patch
        if ref.kind == "image":
            patches = ref.tensor.unfold(1, patch, patch).unfold(2, patch, patch)  # (3, n, n, p, p)
            tokens = self.image(patches.permute(1, 2, 0, 3, 4).flatten(2).flatten(0, 1)) + self.image_position
        elif ref.kind == "video":
            tokens = self.video(ref.tensor.flatten(1))
        else:
            tokens = self.audio(ref.tensor.T)
        kind = torch.tensor(REFERENCE_KINDS.index(ref.kind), device=tokens.device)
        role = torch.tensor(REFERENCE_ROLES.index(ref.role), device=tokens.device)
        return tokens + self.kind(kind) + self.role(role)

    def forward(self, batch: list[list[ReferenceTensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R, Dt) tokens and a (B, R) mask, padded to the longest sample."""
        per_sample = [torch.cat([self.encode_one(r) for r in refs]) if refs else None for refs in batch]
        longest = max((t.shape[0] for t in per_sample if t is not None), default=0)
        dim = self.config.text_dim
        tokens = torch.zeros(len(batch), longest, dim, device=self.kind.weight.device)
        mask = torch.zeros(len(batch), longest, dtype=torch.bool, device=tokens.device)
        for i, sample in enumerate(per_sample):
            if sample is not None:
                tokens[i, : sample.shape[0]], mask[i, : sample.shape[0]] = sample, True
        return tokens, mask


class DualTowerTransformer(nn.Module):
    def __init__(self, config: DualTowerConfig):
        super().__init__()
        self.config = c = config
        video_patch = c.latent_channels * c.patch_h * c.patch_w
        audio_patch = c.stems * c.n_mels * c.audio_patch
        # The frame codec travels with the network (one checkpoint holds both); diffusion training
        # leaves it frozen.
        self.video_codec = VideoAutoencoder(c)
        self.video_embed = nn.Linear(video_patch, c.video_dim)
        self.audio_embed = nn.Linear(audio_patch, c.audio_dim)
        self.text_encoder = TextEncoder(c)
        self.reference_encoder = ReferenceEncoder(c)
        self.video_time = TimestepEmbedder(c.video_dim)
        self.audio_time = TimestepEmbedder(c.audio_dim)
        # Each tower's conditioning also sees the other modality's flow time (as LTX-2's adaLN does).
        self.video_other_time = TimestepEmbedder(c.video_dim)
        self.audio_other_time = TimestepEmbedder(c.audio_dim)
        self.video_text_pool = nn.Linear(c.text_dim, c.video_dim)
        self.audio_text_pool = nn.Linear(c.text_dim, c.audio_dim)
        self.blocks = nn.ModuleList(
            DualTowerBlock(
                c.video_dim, c.video_heads, c.audio_dim, c.audio_heads, c.text_dim, c.mlp_ratio, c.cross_modal
            )
            for _ in range(c.depth)
        )
        self.video_final_norm = nn.LayerNorm(c.video_dim, elementwise_affine=False, eps=1e-6)
        self.video_final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(c.video_dim, 2 * c.video_dim))
        self.video_head = nn.Linear(c.video_dim, video_patch)
        self.audio_final_norm = nn.LayerNorm(c.audio_dim, elementwise_affine=False, eps=1e-6)
        self.audio_final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(c.audio_dim, 2 * c.audio_dim))
        self.audio_head = nn.Linear(c.audio_dim, audio_patch)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linear layers; zero for every adaLN projection and both output heads, so each block
        starts as the identity and the untrained network predicts zero video velocity and a clean audio
        latent of zeros."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, DualTowerBlock):
                _zero_linear(module.video_modulation[-1])
                _zero_linear(module.audio_modulation[-1])
        for layer in (
            self.video_final_modulation[-1],
            self.audio_final_modulation[-1],
            self.video_head,
            self.audio_head,
        ):
            _zero_linear(layer)

    # -- positions -------------------------------------------------------------------------------
    def video_seconds(self, frames: int, device: torch.device) -> torch.Tensor:
        """Centre time of each latent frame, in seconds."""
        return (torch.arange(frames, device=device) + 0.5) / self.config.latent_fps

    def audio_seconds(self, tokens: int, device: torch.device) -> torch.Tensor:
        """Centre time of each audio token, in seconds."""
        return (torch.arange(tokens, device=device) + 0.5) / self.config.audio_token_fps

    def _video_state(self, x: torch.Tensor, frames: int, rows: int, cols: int, condition: torch.Tensor) -> TowerState:
        c, device = self.config, x.device
        head = c.video_dim // c.video_heads
        t = self.video_seconds(frames, device)[:, None, None].expand(frames, rows, cols).flatten()
        y = torch.arange(rows, device=device)[None, :, None].expand(frames, rows, cols).flatten()
        xs = torch.arange(cols, device=device)[None, None, :].expand(frames, rows, cols).flatten()
        pairs = head // 2
        self_angles = torch.cat(
            [
                time_angles(t, pairs // 2, c.rope_min_period_s, c.rope_max_period_s),
                index_angles(y, pairs // 4),
                index_angles(xs, pairs - pairs // 2 - pairs // 4),
            ],
            -1,
        )
        return TowerState(x, condition, self_angles, self._time_angles(t), t)

    def _audio_state(self, x: torch.Tensor, condition: torch.Tensor) -> TowerState:
        c = self.config
        t = self.audio_seconds(x.shape[1], x.device)
        self_angles = time_angles(t, c.audio_dim // c.audio_heads // 2, c.rope_min_period_s, c.rope_max_period_s)
        return TowerState(x, condition, self_angles, self._time_angles(t), t)

    def _time_angles(self, seconds: torch.Tensor) -> dict[int, torch.Tensor]:
        c = self.config
        heads = {c.video_dim // c.video_heads, c.audio_dim // c.audio_heads}
        return {h: time_angles(seconds, h // 2, c.rope_min_period_s, c.rope_max_period_s) for h in heads}

    # -- forward ---------------------------------------------------------------------------------
    def encode_context(
        self, text_tokens: torch.Tensor, references: list[list[ReferenceTensor]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text and reference tokens as one context (B, L + R, Dt) with its mask."""
        text, mask = self.text_encoder(text_tokens)
        if references is not None and any(references):
            ref_tokens, ref_mask = self.reference_encoder(references)
            text, mask = torch.cat([text, ref_tokens], 1), torch.cat([mask, ref_mask], 1)
        return text, mask

    def forward(
        self,
        video_latents: torch.Tensor,
        audio_latents: torch.Tensor,
        video_t: torch.Tensor,
        audio_t: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        cross_modal: bool | torch.Tensor = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """video_latents (B, C, T, H, W), audio_latents (B, S, M, Ta) (S stems); flow times (B,) per
        modality. ``cross_modal``: False (or a (B,) boolean mask, per sample) switches the audio↔video
        attention off — what sync guidance contrasts with, and the dropout that teaches it in training.
        Returns velocities of the same shapes."""
        c = self.config
        batch, channels, frames, height, width = video_latents.shape
        rows, cols = height // c.patch_h, width // c.patch_w

        # 1. patchify both modalities into tokens
        v = video_latents.reshape(batch, channels, frames, rows, c.patch_h, cols, c.patch_w)
        v = v.permute(0, 2, 3, 5, 1, 4, 6).reshape(batch, frames * rows * cols, -1)
        v = self.video_embed(v)  # (B, T_v, Dv)
        mel_frames = audio_latents.shape[-1]
        a = audio_latents.reshape(batch, c.stems, c.n_mels, mel_frames // c.audio_patch, c.audio_patch)
        a = self.audio_embed(a.permute(0, 3, 1, 2, 4).flatten(2))  # (B, T_a, Da)

        # 2. conditioning: own flow time + the other modality's + pooled text
        pooled = (context * context_mask[..., None]).sum(1) / context_mask.sum(1, keepdim=True).clamp(min=1)
        video_condition = self.video_time(video_t) + self.video_other_time(audio_t) + self.video_text_pool(pooled)
        audio_condition = self.audio_time(audio_t) + self.audio_other_time(video_t) + self.audio_text_pool(pooled)
        video = self._video_state(v, frames, rows, cols, video_condition)
        audio = self._audio_state(a, audio_condition)
        if c.cross_modal and c.cross_modal_window_s > 0:  # the same for every block: computed once
            video.cross_bias = time_window_bias(video.seconds, audio.seconds, c.video_heads, c.cross_modal_window_s)
            audio.cross_bias = time_window_bias(audio.seconds, video.seconds, c.audio_heads, c.cross_modal_window_s)

        # 3. the coupled blocks
        if isinstance(cross_modal, bool):
            cross_modal = torch.full((batch,), cross_modal, device=v.device)
        exchange = cross_modal.to(v.dtype).view(batch, 1, 1) if c.cross_modal and bool(cross_modal.any()) else None
        for block in self.blocks:
            video.tokens, audio.tokens = block(video, audio, context, context_mask, cross_modal=exchange)

        # 4. final adaLN and heads, back to latent shapes
        shift, scale = self.video_final_modulation(video_condition).chunk(2, dim=-1)
        v = self.video_head(modulate(self.video_final_norm(video.tokens), shift, scale))
        v = v.reshape(batch, frames, rows, cols, channels, c.patch_h, c.patch_w)
        v = v.permute(0, 4, 1, 2, 5, 3, 6).reshape(batch, channels, frames, height, width)
        shift, scale = self.audio_final_modulation(audio_condition).chunk(2, dim=-1)
        a = self.audio_head(modulate(self.audio_final_norm(audio.tokens), shift, scale))
        a = a.reshape(batch, mel_frames // c.audio_patch, c.stems, c.n_mels, c.audio_patch).permute(0, 2, 3, 1, 4)
        # The audio head predicts the clean latent, turned into the velocity here: an audio token has
        # more values (stems × mels × frames) than the tower has width, and through that bottleneck the
        # noise half of a velocity cannot be predicted (its loss stalls near the share of the token that
        # does not fit), while the clean mel, smooth across bins, can (x-prediction, as in "Back to
        # Basics: Let Denoising Generative Models Denoise", Li & He 2025).
        clean = a.reshape(batch, c.stems, c.n_mels, mel_frames)
        return v, (audio_latents - clean) / audio_t.clamp(min=AUDIO_MIN_T).view(-1, 1, 1, 1)


def _zero_linear(layer: nn.Module) -> None:
    """Zero a linear layer's weight and bias (an adaLN projection or an output head)."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"expected a Linear layer to zero-initialise, got {type(layer).__name__}")
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
