"""Configuration of the dual-tower audio-video diffusion transformer, with named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class DualTowerConfig:
    # Towers: audio carries far fewer tokens and less detail than video, so its tower is narrower
    # (the asymmetry LTX-2 and MOVA use).
    video_dim: int = 96
    video_heads: int = 3
    audio_dim: int = 64
    audio_heads: int = 2
    depth: int = 4  # shared blocks; every block couples the towers with a2v / v2a attention
    mlp_ratio: float = 3.0

    # Sequential baseline: False builds the towers without a2v / v2a attention (nothing couples them).
    cross_modal: bool = True

    # Video: square RGB frames of frame_size pixels, encoded frame by frame by the convolutional
    # autoencoder in codecs.py (downsampling by codec_factor) into latent_channels channels, then
    # patched into tokens. Decoded frames are interpolated to the requested size and frame rate.
    frame_size: int = 48
    codec_factor: int = 4
    codec_width: int = 32  # channels of the autoencoder's first stage (doubling once after it)
    latent_channels: int = 4
    latent_fps: float = 12.5  # video latent frames per second: two audio tokens per video frame
    patch_h: int = 4  # 12 × 12 latents in 4 × 4 patches: 9 tokens per frame
    patch_w: int = 4

    # Audio latents: log-mel frames at 16 kHz; two frames per token gives 25 audio tokens per second.
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 320  # 50 mel frames per second
    n_mels: int = 64
    audio_patch: int = 2
    stems: int = 3  # dialogue, effects, ambience (model/world.py STEMS): channels of the audio latent

    # Text: a small encoder trained with the model over hashed word pieces, so nothing is downloaded.
    text_vocab: int = 4096
    text_dim: int = 64
    text_layers: int = 1
    max_text_tokens: int = 96

    # References enter as extra context tokens beside the text.
    reference_image_size: int = 32  # images resized to this square, then 8×8 patches → 16 tokens
    reference_patch: int = 8
    reference_video_frames: int = 4  # motion clips sampled to this many 16×16 frames
    reference_audio_tokens: int = 16  # voice / music mel pooled to this many tokens
    max_references: int = 12

    # Rotary time axis, in seconds, shared by both towers: periods from ~1/25 s to ~20 s.
    rope_min_period_s: float = 0.04
    rope_max_period_s: float = 20.0
    # Cross-modal (a2v / v2a) attention is also biased towards the other modality's tokens near the same
    # instant: a Gaussian in the time difference, head h of width cross_modal_window_s · 2^h (0.08, 0.16,
    # 0.32 s at the default), so that one head reads "now" and others the moments around it. 0 turns it
    # off (rotary phase alone then has to learn where "now" is).
    cross_modal_window_s: float = 0.08

    def __post_init__(self) -> None:
        for tower, dim, heads in (
            ("video", self.video_dim, self.video_heads),
            ("audio", self.audio_dim, self.audio_heads),
        ):
            if dim % heads:
                raise ValueError(f"{tower}_dim {dim} must be divisible by {tower}_heads {heads}")
            if (dim // heads) % 8 and tower == "video":
                raise ValueError(f"video head dim {dim // heads} must be divisible by 8 (3-D rotary: t, y, x pairs)")
            if (dim // heads) % 2:
                raise ValueError(f"{tower} head dim {dim // heads} must be even (rotary pairs)")
        if self.codec_factor < 1 or self.codec_factor & (self.codec_factor - 1):
            raise ValueError(f"codec_factor must be a power of two, got {self.codec_factor}")
        if self.frame_size % self.codec_factor:
            raise ValueError(f"frame_size {self.frame_size} must be a multiple of codec_factor {self.codec_factor}")
        if self.latent_height % self.patch_h or self.latent_width % self.patch_w:
            raise ValueError("the latent grid (frame_size / codec_factor) must be a multiple of the patch size")
        if self.depth < 1 or self.latent_fps <= 0 or self.sample_rate <= 0:
            raise ValueError("depth, latent_fps and sample_rate must be positive")
        if self.cross_modal_window_s < 0:
            raise ValueError(f"cross_modal_window_s must be >= 0, got {self.cross_modal_window_s}")
        if self.reference_image_size % self.reference_patch:
            raise ValueError("reference_image_size must be a multiple of reference_patch")

    @property
    def latent_height(self) -> int:
        return self.frame_size // self.codec_factor

    @property
    def latent_width(self) -> int:
        return self.frame_size // self.codec_factor

    @property
    def mel_fps(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def audio_token_fps(self) -> float:
        return self.mel_fps / self.audio_patch

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def tiny() -> DualTowerConfig:
    """For tests: a forward pass in milliseconds."""
    return DualTowerConfig(
        video_dim=48,
        video_heads=2,
        audio_dim=32,
        audio_heads=2,
        depth=2,
        frame_size=16,
        codec_factor=4,
        codec_width=8,
        latent_channels=4,
        patch_h=2,
        patch_w=2,
        latent_fps=4.0,
        n_mels=16,
        n_fft=256,
        hop_length=160,
        text_vocab=512,
        text_dim=32,
        text_layers=1,
        max_text_tokens=32,
        reference_image_size=16,
        reference_video_frames=2,
        reference_audio_tokens=4,
    )


def small(frame_size: int = 48) -> DualTowerConfig:
    """The built-in model: a 4 s clip in seconds on two CPU cores (docs/model.md has how each shipped
    checkpoint was trained). ``frame_size`` (48 · 2^k) sets the picture; the frame codec
    gets one more downsampling stage per doubling, so the latent grid stays 12 × 12 (9 tokens a frame)
    and the transformer costs the same at any picture size."""
    factor = frame_size // 12
    if frame_size % 12 or factor < 4 or factor & (factor - 1):
        raise ValueError(f"small(): frame_size must be 48 · 2^k (48, 96, 192), got {frame_size}")
    return DualTowerConfig(frame_size=frame_size, codec_factor=factor)


def sequential(config: DualTowerConfig) -> DualTowerConfig:
    """The same network without audio↔video attention: the baseline that model_sync compares against."""
    return replace(config, cross_modal=False)


def base() -> DualTowerConfig:
    """GPU-sized: the same code at a width and depth that wants an accelerator."""
    return DualTowerConfig(
        video_dim=1152,
        video_heads=16,
        audio_dim=576,
        audio_heads=8,
        depth=24,
        frame_size=256,
        codec_factor=8,
        patch_h=2,
        patch_w=2,
        codec_width=128,
        latent_channels=16,
        latent_fps=12.5,
        n_mels=128,
        text_dim=512,
        text_layers=6,
        max_text_tokens=256,
        reference_image_size=64,
    )
