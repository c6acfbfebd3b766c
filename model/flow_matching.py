"""Flow matching: the training objective and the ODE sampler with per-modality and sync guidance.

Path: x_t = (1 - t)·x_0 + t·ε, t ∈ [0, 1] (t = 1 is pure noise); the network returns the velocity
v = ε - x_0 (the audio tower gets there by predicting x_0: see DualTowerTransformer.forward). The
loss is the velocity error for video and the clean-latent error for audio. Each modality has its
own t during training, and either may be held clean (t = 0) so the same network learns
audio-to-video and video-to-audio (the conditioning LTX-2 trains with).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from syncreel.model.transformer import AUDIO_MIN_T, DualTowerTransformer


@dataclass(frozen=True)
class TrainingModes:
    """How training samples are split between the generation modes; the rest noise both streams."""

    video_to_audio: float = 0.25  # share with the video clean: the sound learns to follow a given picture
    audio_to_video: float = 0.25  # share with the audio clean: the picture learns to follow a given sound
    cross_modal_dropout: float = 0.1  # share seen with a2v / v2a off (what sync guidance contrasts with)

    def __post_init__(self) -> None:
        shares = (self.video_to_audio, self.audio_to_video, self.cross_modal_dropout)
        if min(shares) < 0 or max(shares) > 1 or self.video_to_audio + self.audio_to_video > 1:
            raise ValueError(
                f"training mode shares must lie in [0, 1] and video_to_audio + audio_to_video <= 1, got {self}"
            )


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Bend the time grid toward high noise (MOVA and Ovi use shift 5): more steps where structure forms."""
    return shift * t / (1 + (shift - 1) * t)


def flow_matching_loss(
    model: DualTowerTransformer,
    video: torch.Tensor,
    audio: torch.Tensor,
    context: torch.Tensor,
    context_mask: torch.Tensor,
    *,
    modes: TrainingModes = TrainingModes(),
    shift: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching loss with an independent flow time per modality.

    Per ``modes``, a sample keeps the video clean (t = 0; video-to-audio), or the audio clean
    (audio-to-video), or noises both; and a share of samples is seen with the audio↔video attention
    off, so the network also knows what it would predict without the other modality — the reference
    that sync guidance pushes away from.

    Video: the velocity error. Audio: the error of the clean latent the audio head predicts (the
    velocity it returns is (x_t − clean) / t, so the velocity error is this one weighted by 1 / t²:
    nearly all of it would come from the nearly clean samples, where the picture has nothing left to
    tell the sound, and the coupling would not be learned; see docs/model.md).
    """
    batch = video.shape[0]
    device = video.device
    video_t = shift_time(torch.rand(batch, device=device, generator=generator), shift)
    audio_t = shift_time(torch.rand(batch, device=device, generator=generator), shift)
    choice = torch.rand(batch, device=device, generator=generator)
    video_clean = choice < modes.video_to_audio
    audio_clean = (choice >= modes.video_to_audio) & (choice < modes.video_to_audio + modes.audio_to_video)
    video_t = torch.where(video_clean, torch.zeros_like(video_t), video_t)
    audio_t = torch.where(audio_clean, torch.zeros_like(audio_t), audio_t)
    coupled = torch.rand(batch, device=device, generator=generator) >= modes.cross_modal_dropout
    video_noise = torch.randn(video.shape, device=device, generator=generator)
    audio_noise = torch.randn(audio.shape, device=device, generator=generator)
    v_shape, a_shape = (-1,) + (1,) * (video.dim() - 1), (-1,) + (1,) * (audio.dim() - 1)
    video_x = (1 - video_t.view(v_shape)) * video + video_t.view(v_shape) * video_noise
    audio_x = (1 - audio_t.view(a_shape)) * audio + audio_t.view(a_shape) * audio_noise
    video_v, audio_v = model(video_x, audio_x, video_t, audio_t, context, context_mask, cross_modal=coupled)
    audio_clean_hat = audio_x - audio_t.clamp(min=AUDIO_MIN_T).view(a_shape) * audio_v  # what the head predicted
    # A clean modality has nothing to predict; leave it out of the loss.
    video_weight = (video_t > 0).float().view(v_shape)
    audio_weight = (audio_t > 0).float().view(a_shape)
    video_loss = _masked_mean(F.mse_loss(video_v, video_noise - video, reduction="none"), video_weight)
    audio_loss = _masked_mean(F.mse_loss(audio_clean_hat, audio, reduction="none"), audio_weight)
    loss = video_loss + audio_loss
    return loss, {"loss": loss.item(), "video": video_loss.item(), "audio": audio_loss.item()}


def _masked_mean(errors: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean error over the samples that count (weight 1), so the logged loss does not fall just because
    more samples were clean; 0 when none count."""
    counted = weight.expand_as(errors).sum()
    return (errors * weight).sum() / counted.clamp(min=1)


@dataclass(frozen=True)
class Guidance:
    """Guidance scales; 1.0 means "no guidance" for each, as in classifier-free guidance."""

    video: float = 3.0  # classifier-free guidance on the video velocity
    audio: float = 3.0  # ... on the audio velocity
    # Sync guidance (MOVA's dual CFG, LTX-2's modality guidance): push away from the prediction made
    # without audio↔video attention: v += (sync - 1) · (v_coupled - v_uncoupled).
    sync: float = 1.0


@dataclass(frozen=True)
class KnownParts:
    """What is given rather than generated; the sampler keeps it and generates the rest to match.

    - ``video``: the whole clip (B, C, T, h, w) → video-to-audio (foley for a given clip);
    - ``audio``: the whole track (B, S, M, Ta) → audio-to-video (a given voice or music stays as it is);
    - ``video_prefix`` (B, C, K, h, w) and ``audio_prefix`` (B, S, M, Ka): the start of the clip →
      image-to-video (K = 1, the first frame) and extension (the last frames of a clip to continue).
    A whole modality is given clean to the network (t = 0, as trained); a prefix is imposed on the
    generated stream at every step, noised to the current flow time (inpainting by replacement).
    """

    video: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    video_prefix: torch.Tensor | None = None
    audio_prefix: torch.Tensor | None = None


def _guided_velocity(
    model: DualTowerTransformer,
    video: torch.Tensor,
    audio: torch.Tensor,
    video_t: torch.Tensor,
    audio_t: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor],
    uncond: tuple[torch.Tensor, torch.Tensor],
    guidance: Guidance,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All the passes guidance needs in one batched call: conditional, unconditional (when CFG is on)
    and conditional without cross-modal attention (when sync guidance is on)."""
    batch = video.shape[0]
    use_cfg = guidance.video != 1.0 or guidance.audio != 1.0
    use_sync = guidance.sync != 1.0 and model.config.cross_modal
    contexts, masks, coupled = [cond[0]], [cond[1]], [True]
    if use_cfg:
        contexts, masks, coupled = contexts + [uncond[0]], masks + [uncond[1]], coupled + [True]
    if use_sync:
        contexts, masks, coupled = contexts + [cond[0]], masks + [cond[1]], coupled + [False]
    passes = len(contexts)
    context, mask = _pad_cat(contexts), _pad_cat(masks)
    cross = torch.tensor(coupled, device=video.device).repeat_interleave(batch)
    v, a = model(
        video.repeat(passes, *([1] * (video.dim() - 1))),
        audio.repeat(passes, *([1] * (audio.dim() - 1))),
        video_t.repeat(passes),
        audio_t.repeat(passes),
        context,
        mask,
        cross_modal=cross,
    )
    v_cond, a_cond = v[:batch], a[:batch]
    v_out, a_out = v_cond, a_cond
    if use_cfg:
        v_uncond, a_uncond = v[batch : 2 * batch], a[batch : 2 * batch]
        v_out = v_uncond + guidance.video * (v_cond - v_uncond)
        a_out = a_uncond + guidance.audio * (a_cond - a_uncond)
    if use_sync:
        v_solo, a_solo = v[-batch:], a[-batch:]
        v_out = v_out + (guidance.sync - 1.0) * (v_cond - v_solo)
        a_out = a_out + (guidance.sync - 1.0) * (a_cond - a_solo)
    return v_out, a_out


def _pad_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate context batches (or masks) of different lengths along the batch axis."""
    length = max(p.shape[1] for p in parts)
    padded = [F.pad(p, [*([0, 0] * (p.dim() - 2)), 0, length - p.shape[1]]) for p in parts]
    return torch.cat(padded)


def time_grid(steps: int, shift: float, audio_lag: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow times of the video and the audio at each of ``steps`` + 1 points, from 1 (noise) to 0.

    ``audio_lag`` (−1 to 1) lets one stream trail the other: one progress variable runs from 1 + |lag|
    down to 0; the leading stream's time is it minus |lag|, the trailing stream's is it, each clamped to
    [0, 1] (then shifted). Positive: the sound trails, so the picture settles first and the sound is
    denoised against an ever cleaner picture (at the end the video-to-audio case training covers).
    Negative: the picture trails the sound (audio-to-video at the end). 0 gives both the same grid.
    """
    if not -1 <= audio_lag <= 1:
        raise ValueError(f"audio_lag must lie in [-1, 1], got {audio_lag}")
    lag = abs(audio_lag)
    progress = torch.linspace(1 + lag, 0, steps + 1, device=device)
    leading = shift_time((progress - lag).clamp(0, 1), shift)
    trailing = shift_time(progress.clamp(0, 1), shift)
    return (leading, trailing) if audio_lag >= 0 else (trailing, leading)


@dataclass(frozen=True)
class _Flow:
    """One sampling run's ODE: the guided velocity of the network, with the known parts held to what
    was given (a whole known modality stays put; a prefix is re-imposed, noised to the current time)."""

    model: DualTowerTransformer
    cond: tuple[torch.Tensor, torch.Tensor]
    uncond: tuple[torch.Tensor, torch.Tensor]
    guidance: Guidance
    known: KnownParts
    video_noise: torch.Tensor  # the starting noise, which a prefix is mixed with at each step
    audio_noise: torch.Tensor

    def impose(
        self, video: torch.Tensor, audio: torch.Tensor, t_v: float, t_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        known = self.known
        if known.video_prefix is not None and known.video is None:
            k = known.video_prefix.shape[2]
            video = video.clone()
            video[:, :, :k] = (1 - t_v) * known.video_prefix + t_v * self.video_noise[:, :, :k]
        if known.audio_prefix is not None and known.audio is None:
            k = known.audio_prefix.shape[-1]
            audio = audio.clone()
            audio[..., :k] = (1 - t_a) * known.audio_prefix + t_a * self.audio_noise[..., :k]
        return video, audio

    def velocity(
        self, video: torch.Tensor, audio: torch.Tensor, t_v: float, t_a: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # A whole known modality is given clean, as in training (its t = 0); its velocity is unused.
        known, batch, device = self.known, video.shape[0], video.device
        t_video = torch.full((batch,), 0.0 if known.video is not None else t_v, device=device)
        t_audio = torch.full((batch,), 0.0 if known.audio is not None else t_a, device=device)
        v_vel, a_vel = _guided_velocity(
            self.model, video, audio, t_video, t_audio, self.cond, self.uncond, self.guidance
        )
        if known.video is not None:
            v_vel = torch.zeros_like(v_vel)
        if known.audio is not None:
            a_vel = torch.zeros_like(a_vel)
        return v_vel, a_vel

    def step(
        self, video: torch.Tensor, audio: torch.Tensor, now: tuple[float, float], then: tuple[float, float], heun: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """From flow times ``now`` to ``then`` (video, audio): an Euler step, or Heun's (the mean of the
        velocities at both ends) when ``heun`` and the step does not end on clean data."""
        (t_v, t_a), (next_v, next_a) = now, then
        video, audio = self.impose(video, audio, t_v, t_a)
        v_vel, a_vel = self.velocity(video, audio, t_v, t_a)
        video_next, audio_next = video + (next_v - t_v) * v_vel, audio + (next_a - t_a) * a_vel
        if heun and max(next_v, next_a) > 0:
            v_vel2, a_vel2 = self.velocity(*self.impose(video_next, audio_next, next_v, next_a), next_v, next_a)
            video_next = video + (next_v - t_v) * (v_vel + v_vel2) / 2
            audio_next = audio + (next_a - t_a) * (a_vel + a_vel2) / 2
        return video_next, audio_next


@torch.no_grad()
def sample(
    model: DualTowerTransformer,
    video_shape: tuple[int, ...],
    audio_shape: tuple[int, ...],
    cond: tuple[torch.Tensor, torch.Tensor],
    uncond: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int = 8,
    solver: str = "euler",
    guidance: Guidance = Guidance(),
    known: KnownParts = KnownParts(),
    shift: float = 3.0,
    audio_lag: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the flow ODE from noise (t = 1) to data (t = 0). Deterministic for a given generator.

    Each modality moves on its own time grid (time_grid: ``audio_lag`` > 0 lets the sound trail the
    picture, < 0 the picture trail the sound; ``steps`` are each stream's own, so a lag of 1 takes twice
    the network evaluations). Known parts (see KnownParts) come back exactly as given: a whole known
    modality is never integrated, and prefixes are put back at t = 0.
    """
    if solver not in ("euler", "heun"):
        raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if known.video is not None and known.audio is not None:
        raise ValueError("both modalities are known: there is nothing to generate")
    device = cond[0].device
    video_noise = torch.randn(video_shape, device=device, generator=generator)
    audio_noise = torch.randn(audio_shape, device=device, generator=generator)
    flow = _Flow(model, cond, uncond, guidance, known, video_noise, audio_noise)
    video = video_noise.clone() if known.video is None else known.video.clone()
    audio = audio_noise.clone() if known.audio is None else known.audio.clone()
    # With one modality given there is nothing for the other to trail.
    lag = audio_lag if known.video is None and known.audio is None else 0.0
    # ``steps`` is per stream: a lagged schedule is 1 + |lag| long, so it takes that many times the steps.
    evaluations = round(steps * (1 + abs(lag)))
    video_times, audio_times = time_grid(evaluations, shift, lag, device)
    for index in range(evaluations):
        now = (video_times[index].item(), audio_times[index].item())
        then = (video_times[index + 1].item(), audio_times[index + 1].item())
        video, audio = flow.step(video, audio, now, then, heun=solver == "heun")
    return flow.impose(video, audio, 0.0, 0.0)
