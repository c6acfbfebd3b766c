"""Random-weight LTX-2 pipelines built entirely in code: no download, no checkpoint.

    from syncreel.model.ltx2_random import build_random_pipeline, tiny
    build_random_pipeline(tiny()).save_pretrained("weights/")   # a directory SYNCREEL_LTX2_PATH can point at

Two presets of one frozen shape:
- ``tiny()``: every component a few thousand parameters, with LTX-2's real compression ratios (32× in
  space, 8× in time, 24 kHz audio), so the `ltx2` backend's whole path — grid snapping, conditioning,
  cropping, the vocoder's rate — runs offline on a CPU in seconds (tests/test_ltx2.py);
- ``full()``: the dimensions of Lightricks' LTX-2.0 release (a 48-layer transformer with 32 × 128 video
  and 32 × 64 audio heads, Gemma-3-12B-sized text encoder, the released VAE, audio VAE and vocoder
  configs), for timing on a GPU when no checkpoint is at hand (benchmarks/ltx2_gpu.py). Random weights
  make noise, at the real cost.

The tokenizer is a ``GemmaTokenizer`` over a byte-fallback vocabulary (the special tokens and one token
per byte), so any text in any language encodes without a trained vocabulary file.

Importing this module imports diffusers and transformers (several seconds): only the ltx2 tests and
benchmark do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GemmaTokenizer

# The audio VAE works on 16 kHz log-mels with a 160-sample hop: 100 mel frames per second, whatever the preset.
MEL_FRAMES_PER_S = 16_000 // 160
# The audio VAE compresses mel bins by this factor (diffusers' LATENT_DOWNSAMPLE_FACTOR).
AUDIO_MEL_COMPRESSION = 4
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>", "<image>")


@dataclass(frozen=True)
class RandomLTX2Shape:
    """The dimensions that differ between a tiny test pipeline and the released model."""

    # Gemma-3 text tower. Its width is what the connectors' RMSNorm runs over: it must equal
    # connector_heads × connector_head_dim.
    text_hidden: int
    text_layers: int  # the connectors read every layer's hidden states (layers + 1 of them)
    text_heads: int
    text_kv_heads: int
    text_head_dim: int
    text_intermediate: int
    text_vocab: int  # the released encoder's 262 208, or just the byte vocabulary
    # SigLIP vision tower: unused by LTX-2's text path, but part of Gemma3ForConditionalGeneration.
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    vision_image_size: int
    vision_patch: int
    mm_tokens_per_image: int  # a square number; image patches per side must divide by its root
    # Text connectors: the bridge from Gemma's stacked hidden states to the two towers.
    connector_heads: int
    connector_head_dim: int
    connector_layers: int
    connector_registers: int | None  # learnable register tokens; None turns them off
    # Dual-stream transformer.
    layers: int
    video_heads: int
    video_head_dim: int
    audio_heads: int
    audio_head_dim: int
    video_latent_channels: int
    # Video VAE: four encoder stages (spatial, temporal, spatiotemporal, spatiotemporal) after a 4×4
    # patchify, three decoder stages: 32× in space and 8× in time at every size.
    vae_channels: tuple[int, int, int, int]
    vae_decoder_channels: tuple[int, int, int]
    vae_layers: tuple[int, int, int, int, int]
    vae_decoder_layers: tuple[int, int, int, int]
    # Audio VAE over the two-channel mel spectrogram.
    audio_vae_channels: int
    audio_vae_multipliers: tuple[int, ...]
    audio_vae_res_blocks: int
    audio_latent_channels: int
    mel_bins: int
    # Vocoder: mel frames (100/s) to samples; the upsampling factors' product sets the output rate.
    vocoder_hidden: int
    vocoder_upsample_factors: tuple[int, ...]
    vocoder_upsample_kernels: tuple[int, ...]
    vocoder_resnet_kernels: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.text_hidden != self.connector_heads * self.connector_head_dim:
            raise ValueError(
                f"text_hidden ({self.text_hidden}) must equal connector_heads × connector_head_dim "
                f"({self.connector_heads} × {self.connector_head_dim})"
            )
        if self.mel_bins % AUDIO_MEL_COMPRESSION:
            raise ValueError(f"mel_bins ({self.mel_bins}) must be a multiple of {AUDIO_MEL_COMPRESSION}")
        if len(self.vocoder_upsample_factors) != len(self.vocoder_upsample_kernels):
            raise ValueError("vocoder_upsample_factors and vocoder_upsample_kernels need one entry per stage")
        if any((k - f) % 2 for k, f in zip(self.vocoder_upsample_kernels, self.vocoder_upsample_factors, strict=True)):
            raise ValueError("each vocoder upsample kernel minus its factor must be even (symmetric padding)")
        if self.vocoder_hidden % 2 ** len(self.vocoder_upsample_factors):
            raise ValueError("vocoder_hidden must halve once per upsampling stage")
        if math.isqrt(self.mm_tokens_per_image) ** 2 != self.mm_tokens_per_image:
            raise ValueError(f"mm_tokens_per_image ({self.mm_tokens_per_image}) must be a square number")

    @property
    def output_sampling_rate(self) -> int:
        """The rate the vocoder really produces, written into its config so that config tells the truth."""
        return MEL_FRAMES_PER_S * math.prod(self.vocoder_upsample_factors)


def tiny() -> RandomLTX2Shape:
    """A few hundred thousand parameters in all; a 2-step 192×128×25 clip takes about a second on a CPU."""
    return RandomLTX2Shape(
        text_hidden=32, text_layers=2, text_heads=2, text_kv_heads=1, text_head_dim=16, text_intermediate=64,
        text_vocab=len(SPECIAL_TOKENS) + 256,
        vision_hidden=16, vision_layers=1, vision_heads=2, vision_intermediate=32, vision_image_size=32,
        vision_patch=8, mm_tokens_per_image=4,
        connector_heads=4, connector_head_dim=8, connector_layers=1, connector_registers=None,
        layers=2, video_heads=2, video_head_dim=8, audio_heads=2, audio_head_dim=4, video_latent_channels=4,
        vae_channels=(8, 16, 32, 64), vae_decoder_channels=(16, 32, 64), vae_layers=(1, 1, 1, 1, 1),
        vae_decoder_layers=(1, 1, 1, 1),
        audio_vae_channels=4, audio_vae_multipliers=(1,), audio_vae_res_blocks=1, audio_latent_channels=2,
        mel_bins=8,
        vocoder_hidden=32, vocoder_upsample_factors=(6, 5, 8), vocoder_upsample_kernels=(12, 11, 16),
        vocoder_resnet_kernels=(3,),
    )  # fmt: skip


def full() -> RandomLTX2Shape:
    """LTX-2.0 as released (diffusers' convert_ltx2_to_diffusers.py configs; Gemma-3-12B's text and SigLIP
    vision dimensions): ~19 B transformer parameters, ~12 B in the text encoder."""
    return RandomLTX2Shape(
        text_hidden=3840, text_layers=48, text_heads=16, text_kv_heads=8, text_head_dim=256, text_intermediate=15360,
        text_vocab=262_208,
        vision_hidden=1152, vision_layers=27, vision_heads=16, vision_intermediate=4304, vision_image_size=896,
        vision_patch=14, mm_tokens_per_image=256,
        connector_heads=30, connector_head_dim=128, connector_layers=2, connector_registers=128,
        layers=48, video_heads=32, video_head_dim=128, audio_heads=32, audio_head_dim=64, video_latent_channels=128,
        vae_channels=(256, 512, 1024, 2048), vae_decoder_channels=(256, 512, 1024), vae_layers=(4, 6, 6, 2, 2),
        vae_decoder_layers=(5, 5, 5, 5),
        audio_vae_channels=128, audio_vae_multipliers=(1, 2, 4), audio_vae_res_blocks=2, audio_latent_channels=8,
        mel_bins=64,
        vocoder_hidden=1024, vocoder_upsample_factors=(6, 5, 2, 2, 2), vocoder_upsample_kernels=(16, 15, 8, 4, 4),
        vocoder_resnet_kernels=(3, 7, 11),
    )  # fmt: skip


def byte_tokenizer(model_max_length: int = 1024) -> GemmaTokenizer:
    """A Gemma tokenizer whose vocabulary is the special tokens plus one token per byte (``<0x41>``…)."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab |= {f"<0x{byte:02X}>": len(SPECIAL_TOKENS) + byte for byte in range(256)}
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


@contextmanager
def _default_placement(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype`` (a 19 B model never exists in float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            yield
    finally:
        torch.set_default_dtype(previous)


def _text_encoder(shape: RandomLTX2Shape) -> Gemma3ForConditionalGeneration:
    specials = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    config = Gemma3Config(
        text_config={
            "vocab_size": shape.text_vocab,
            "hidden_size": shape.text_hidden,
            "intermediate_size": shape.text_intermediate,
            "num_hidden_layers": shape.text_layers,
            "num_attention_heads": shape.text_heads,
            "num_key_value_heads": shape.text_kv_heads,
            "head_dim": shape.text_head_dim,
            "query_pre_attn_scalar": shape.text_head_dim,
            "pad_token_id": specials["<pad>"],
            "eos_token_id": specials["<eos>"],
            "bos_token_id": specials["<bos>"],
        },
        vision_config={
            "hidden_size": shape.vision_hidden,
            "intermediate_size": shape.vision_intermediate,
            "num_hidden_layers": shape.vision_layers,
            "num_attention_heads": shape.vision_heads,
            "image_size": shape.vision_image_size,
            "patch_size": shape.vision_patch,
        },
        mm_tokens_per_image=shape.mm_tokens_per_image,
        boi_token_index=specials["<start_of_image>"],
        eoi_token_index=specials["<end_of_image>"],
        image_token_index=specials["<image>"],
    )
    return Gemma3ForConditionalGeneration(config).eval()


def _video_vae(shape: RandomLTX2Shape) -> AutoencoderKLLTX2Video:
    return AutoencoderKLLTX2Video(
        latent_channels=shape.video_latent_channels,
        block_out_channels=shape.vae_channels,
        decoder_block_out_channels=shape.vae_decoder_channels,
        layers_per_block=shape.vae_layers,
        decoder_layers_per_block=shape.vae_decoder_layers,
        spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )


def build_random_pipeline(
    shape: RandomLTX2Shape,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LTX2Pipeline:
    """An `LTX2Pipeline` with every component initialised from ``seed``, on ``device`` in ``dtype``."""
    torch.manual_seed(seed)
    with _default_placement(torch.device(device), dtype):
        text_encoder = _text_encoder(shape)
        connectors = LTX2TextConnectors(
            caption_channels=shape.text_hidden,
            text_proj_in_factor=shape.text_layers + 1,
            video_connector_num_attention_heads=shape.connector_heads,
            video_connector_attention_head_dim=shape.connector_head_dim,
            video_connector_num_layers=shape.connector_layers,
            video_connector_num_learnable_registers=shape.connector_registers,
            audio_connector_num_attention_heads=shape.connector_heads,
            audio_connector_attention_head_dim=shape.connector_head_dim,
            audio_connector_num_layers=shape.connector_layers,
            audio_connector_num_learnable_registers=shape.connector_registers,
            rope_type="split",
        )
        transformer = LTX2VideoTransformer3DModel(
            in_channels=shape.video_latent_channels,
            out_channels=shape.video_latent_channels,
            num_attention_heads=shape.video_heads,
            attention_head_dim=shape.video_head_dim,
            cross_attention_dim=shape.video_heads * shape.video_head_dim,
            audio_in_channels=shape.audio_latent_channels * shape.mel_bins // AUDIO_MEL_COMPRESSION,
            audio_out_channels=shape.audio_latent_channels * shape.mel_bins // AUDIO_MEL_COMPRESSION,
            audio_num_attention_heads=shape.audio_heads,
            audio_attention_head_dim=shape.audio_head_dim,
            audio_cross_attention_dim=shape.audio_heads * shape.audio_head_dim,
            num_layers=shape.layers,
            caption_channels=shape.text_hidden,
            rope_type="split",
        )
        vae = _video_vae(shape)
        audio_vae = AutoencoderKLLTX2Audio(
            base_channels=shape.audio_vae_channels,
            ch_mult=shape.audio_vae_multipliers,
            num_res_blocks=shape.audio_vae_res_blocks,
            latent_channels=shape.audio_latent_channels,
            mel_bins=shape.mel_bins,
        )
        vocoder = LTX2Vocoder(
            in_channels=audio_vae.config.output_channels * shape.mel_bins,
            hidden_channels=shape.vocoder_hidden,
            out_channels=2,
            upsample_kernel_sizes=list(shape.vocoder_upsample_kernels),
            upsample_factors=list(shape.vocoder_upsample_factors),
            resnet_kernel_sizes=list(shape.vocoder_resnet_kernels),
            resnet_dilations=[[1, 3, 5]] * len(shape.vocoder_resnet_kernels),
            output_sampling_rate=shape.output_sampling_rate,
        )
    # LTX-2's resolution-dependent timestep shift (its released scheduler config).
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    return LTX2Pipeline(
        scheduler=scheduler,
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=byte_tokenizer(),
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )
