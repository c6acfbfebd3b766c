"""Flow matching: the training objective and the ODE sampler with per-modality and sync guidance.

Path: x_t = (1 - t)·x_0 + t·ε, t ∈ [0, 1] (t = 1 is pure noise); the network predicts the velocity
v = ε - x_0. Each modality has its own t during training, and either may be held clean (t = 0) so the
same network learns audio-to-video and video-to-audio (the conditioning LTX-2 trains with).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.transformer import DualTowerTransformer


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
    clean_probability: float = 0.1,
    shift: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Velocity-matching loss with an independent flow time per modality.

    With ``clean_probability`` each sample keeps one modality clean (t = 0), teaching conditional modes.
    """
    batch = video.shape[0]
    device = video.device
    video_t = shift_time(torch.rand(batch, device=device, generator=generator), shift)
    audio_t = shift_time(torch.rand(batch, device=device, generator=generator), shift)
    choice = torch.rand(batch, device=device, generator=generator)
    video_t = torch.where(choice < clean_probability / 2, torch.zeros_like(video_t), video_t)
    audio_t = torch.where(
        (choice >= clean_probability / 2) & (choice < clean_probability), torch.zeros_like(audio_t), audio_t
    )
    video_noise = torch.randn(video.shape, device=device, generator=generator)
    audio_noise = torch.randn(audio.shape, device=device, generator=generator)
    video_x = (1 - video_t.view(-1, 1, 1, 1, 1)) * video + video_t.view(-1, 1, 1, 1, 1) * video_noise
    audio_x = (1 - audio_t.view(-1, 1, 1)) * audio + audio_t.view(-1, 1, 1) * audio_noise
    video_v, audio_v = model(video_x, audio_x, video_t, audio_t, context, context_mask)
    # A clean modality has nothing to predict; leave it out of the loss.
    video_weight = (video_t > 0).float().view(-1, 1, 1, 1, 1)
    audio_weight = (audio_t > 0).float().view(-1, 1, 1)
    video_loss = (F.mse_loss(video_v, video_noise - video, reduction="none") * video_weight).mean()
    audio_loss = (F.mse_loss(audio_v, audio_noise - audio, reduction="none") * audio_weight).mean()
    loss = video_loss + audio_loss
    return loss, {"loss": loss.item(), "video": video_loss.item(), "audio": audio_loss.item()}


@dataclass(frozen=True)
class Guidance:
    video: float = 3.0  # classifier-free guidance scale on the video velocity (1 = none)
    audio: float = 3.0  # ... on the audio velocity
    sync: float = 0.0  # push away from the prediction made without audio↔video attention (MOVA's dual CFG)


@dataclass(frozen=True)
class KnownParts:
    """Inpainting: parts held to given clean values while the rest is generated."""

    first_frame: torch.Tensor | None = None  # (B, C, 1, H, W): image-to-video
    audio: torch.Tensor | None = None  # (B, M, Ta): audio-to-video (a given voice or music track)


def _guided_velocity(
    model: DualTowerTransformer,
    video: torch.Tensor,
    audio: torch.Tensor,
    t: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor],
    uncond: tuple[torch.Tensor, torch.Tensor],
    guidance: Guidance,
    audio_t: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    use_cfg = guidance.video != 1.0 or guidance.audio != 1.0
    batch = video.shape[0]
    # One batched call for the conditional and unconditional branches.
    if use_cfg:
        context = _pad_cat(cond[0], uncond[0])
        mask = _pad_cat(cond[1], uncond[1])
        v, a = model(video.repeat(2, 1, 1, 1, 1), audio.repeat(2, 1, 1), t.repeat(2), audio_t.repeat(2), context, mask)
        v_cond, v_uncond, a_cond, a_uncond = v[:batch], v[batch:], a[:batch], a[batch:]
        v_out = v_uncond + guidance.video * (v_cond - v_uncond)
        a_out = a_uncond + guidance.audio * (a_cond - a_uncond)
    else:
        v_cond, a_cond = model(video, audio, t, audio_t, *cond)
        v_out, a_out = v_cond, a_cond
    if guidance.sync:
        v_solo, a_solo = model(video, audio, t, audio_t, *cond, cross_modal=False)
        v_out = v_out + guidance.sync * (v_cond - v_solo)
        a_out = a_out + guidance.sync * (a_cond - a_solo)
    return v_out, a_out


def _pad_cat(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Concatenate two context batches (or masks) of different lengths along the batch axis."""
    length = max(first.shape[1], second.shape[1])
    pad = [0, 0] * (first.dim() - 2)
    first = F.pad(first, [*pad, 0, length - first.shape[1]])
    second = F.pad(second, [*pad, 0, length - second.shape[1]])
    return torch.cat([first, second])


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
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the flow ODE from noise (t = 1) to data (t = 0). Deterministic for a given generator.

    Known parts are kept on their own flow path: at every step they are replaced by their clean value
    noised to the current t with the same fixed noise, so the generated part is conditioned on them.
    """
    if solver not in ("euler", "heun"):
        raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = cond[0].device
    video_noise = torch.randn(video_shape, device=device, generator=generator)
    audio_noise = torch.randn(audio_shape, device=device, generator=generator)
    video, audio = video_noise.clone(), audio_noise.clone()
    times = shift_time(torch.linspace(1, 0, steps + 1, device=device), shift)
    audio_known = known.audio is not None

    def impose(v: torch.Tensor, a: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        if known.first_frame is not None:
            v = v.clone()
            v[:, :, :1] = (1 - t) * known.first_frame + t * video_noise[:, :, :1]
        if audio_known:
            a = (1 - t) * known.audio + t * audio_noise
        return v, a

    def velocity(v: torch.Tensor, a: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        batch = v.shape[0]
        t_video = torch.full((batch,), t, device=device)
        # A known track is given clean to the network, as in training (audio t = 0).
        t_audio = torch.zeros(batch, device=device) if audio_known else t_video
        a_in = known.audio if audio_known else a
        return _guided_velocity(model, v, a_in, t_video, cond, uncond, guidance, t_audio)

    for index in range(steps):
        t, t_next = times[index].item(), times[index + 1].item()
        video, audio = impose(video, audio, t)
        v_vel, a_vel = velocity(video, audio, t)
        video_next, audio_next = video + (t_next - t) * v_vel, audio + (t_next - t) * a_vel
        if solver == "heun" and t_next > 0:
            v_vel2, a_vel2 = velocity(*impose(video_next, audio_next, t_next), t_next)
            video_next = video + (t_next - t) * (v_vel + v_vel2) / 2
            audio_next = audio + (t_next - t) * (a_vel + a_vel2) / 2
        video, audio = video_next, audio_next
    return impose(video, audio, 0.0)
