"""Train the built-in model on the procedural world (model/world.py) and write a checkpoint.

    python -m syncreel.model.train --codec-minutes 10 --minutes 0 --out codec.safetensors
    python -m syncreel.model.train --codec-from codec.safetensors --minutes 80 --out model.safetensors

Two stages: the frame autoencoder (``--codec-minutes``), then, with it frozen, the dual-tower transformer
by flow matching on world clips generated on the fly (``--minutes`` / ``--steps``). A CSV of the loss
curve and a plot of it are written beside the checkpoint. ``--help`` lists the options; docs/model.md
explains them and has the commands that made the shipped checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import time
from collections import deque
from dataclasses import replace
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from syncreel.model.checkpoint import load_checkpoint, load_codec_state, read_metadata, save_checkpoint
from syncreel.model.codecs import VideoAutoencoder, encode_audio
from syncreel.model.config import DualTowerConfig, sequential, small
from syncreel.model.flow_matching import TrainingModes, flow_matching_loss
from syncreel.model.plot import plot_curves
from syncreel.model.transformer import (
    DualTowerTransformer,
    ReferenceTensor,
    audio_reference,
    image_reference,
    tokenize,
    video_reference,
)
from syncreel.model.world import WorldClip, face, sample_clip

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter  # what csv.writer returns (its class is private)

CAPTION_DROPOUT = 0.1
REFERENCE_PROBABILITY = 0.3
LOG_EVERY = 20  # steps per row of the loss log (each row averages them)
SAVE_EVERY = 500  # steps between interim checkpoints (the final one is written in half precision)
CHECKPOINTS = Path(__file__).with_name("checkpoints")


def clip_references(clip: WorldClip, frames: torch.Tensor, config: DualTowerConfig) -> list[ReferenceTensor]:
    """The reference a brief would give for this kind of scene: the speaker's photo for a talking
    character, the motion for a bounce, the beat (its effects stem) as music for a pulse."""
    if clip.kind == "talk":
        return [
            image_reference(torch.from_numpy(face(config.frame_size)).permute(2, 0, 1) * 2 - 1, "character", config)
        ]
    if clip.kind == "bounce":
        return [video_reference(frames, "motion", config)]
    return [audio_reference(torch.from_numpy(clip.stems[1]), "music", config)]


def world_batch(
    rng: np.random.Generator, config: DualTowerConfig, batch: int, seconds: float
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[list[ReferenceTensor]]]:
    """(B, T, 3, S, S) frames in [-1, 1], (B, stems, n_mels, frames) audio latents, captions, and the
    references given with each clip (none for most)."""
    clips = [sample_clip(rng, seconds, config.latent_fps, config.frame_size, config.sample_rate) for _ in range(batch)]
    frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3).float()
    mel_frames = int(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
    stems = torch.from_numpy(np.stack([c.stems for c in clips]))
    audio = encode_audio(stems, config)[..., :mel_frames]
    captions = [c.caption if rng.random() > CAPTION_DROPOUT else "" for c in clips]
    references = [
        clip_references(clip, clip_frames, config) if rng.random() < REFERENCE_PROBABILITY else []
        for clip, clip_frames in zip(clips, frames, strict=True)
    ]
    return frames, audio, captions, references


Batch = tuple[torch.Tensor, torch.Tensor, list[str], list[list[ReferenceTensor]]]


def _pack(batch: Batch) -> tuple:
    """A batch as numpy arrays for the trip between processes (tensors would travel as shared-memory
    handles); the frames in half precision, half the bytes to copy (values in [-1, 1]: steps of 1/1024
    at most, finer than the 8-bit video the model meets in use)."""
    frames, audio, captions, references = batch
    refs = [[(r.kind, r.role, r.tensor.numpy()) for r in sample] for sample in references]
    return frames.half().numpy(), audio.numpy(), captions, refs


def _unpack(packed: tuple) -> Batch:
    frames, audio, captions, refs = packed
    references = [[ReferenceTensor(kind, role, torch.from_numpy(t)) for kind, role, t in sample] for sample in refs]
    return torch.from_numpy(frames).float(), torch.from_numpy(audio), captions, references


def _worker_init() -> None:
    torch.set_num_threads(1)  # one core per worker: the pool, not each worker, is parallel


def _make_batch(config: DualTowerConfig, seed: int, job: int, batch: int, seconds: float) -> tuple:
    return _pack(world_batch(np.random.default_rng([seed, job]), config, batch, seconds))


class BatchStream:
    """World batches in a fixed order: job ``j`` draws from its own generator (seed, j), so the stream is
    the same with any number of workers. Mostly ``batch`` clips of ``seconds``; with ``long_every`` k,
    every k-th batch has clips twice as long at half the batch size (positions up to twice the length).

    With ``workers`` > 0, that many processes make batches ahead (at most two each in flight): the world
    is numpy on the CPU, and a GPU step takes less time than one core needs for a batch. ``waited_s``
    counts the seconds the trainer spent waiting for data."""

    def __init__(
        self, config: DualTowerConfig, batch: int, seconds: float, seed: int, workers: int = 0, long_every: int = 0
    ):
        self.config, self.batch, self.seconds, self.seed, self.long_every = config, batch, seconds, seed, long_every
        self.job, self.waited_s = 0, 0.0
        self._pending: deque = deque()
        self._pool: Pool | None = None
        if workers > 0:  # spawned, not forked: the trainer may already hold a CUDA context
            self._pool = pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
            for _ in range(2 * workers):
                self._submit(pool)

    def _shape(self, job: int) -> tuple[int, float]:
        long = self.long_every > 0 and job % self.long_every == self.long_every - 1
        return (self.batch // 2, self.seconds * 2) if long else (self.batch, self.seconds)

    def _submit(self, pool: Pool) -> None:
        job = self.job + len(self._pending)
        self._pending.append(pool.apply_async(_make_batch, (self.config, self.seed, job, *self._shape(job))))

    def next(self) -> Batch:
        started = time.perf_counter()
        if self._pool is None:
            batch, seconds = self._shape(self.job)
            made = world_batch(np.random.default_rng([self.seed, self.job]), self.config, batch, seconds)
        else:
            made = _unpack(self._pending.popleft().get())
        self.job += 1
        if self._pool is not None:
            self._submit(self._pool)
        self.waited_s += time.perf_counter() - started
        return made

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


def _to_device(references: list[list[ReferenceTensor]], device: torch.device) -> list[list[ReferenceTensor]]:
    return [[ReferenceTensor(r.kind, r.role, r.tensor.to(device)) for r in sample] for sample in references]


def encode_frames(codec: VideoAutoencoder, frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, S, S) frames → (B, C, T, s, s) latents of the frozen codec, computed in bfloat16 where the
    processor has it natively (5 times faster on this project's CPUs, whose AMX units do bfloat16; the
    latents differ from float32 ones by 0.3% of their spread (RMS), far below the noise training adds)."""
    fast = _fast_bfloat16(frames.device)
    with torch.no_grad(), torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=fast):
        latents = codec.encode(frames.flatten(0, 1)).float()
    return latents.unflatten(0, frames.shape[:2]).transpose(1, 2)


def _fast_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (
        device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def _schedule(lr: float, step: int, progress: float, warmup: int = 50) -> float:
    """Linear warm-up, then cosine decay to a tenth over the wall-clock budget."""
    return lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_codec(
    model: DualTowerTransformer,
    data: BatchStream,
    *,
    minutes: float,
    lr: float,
    writer: CsvWriter,
    teacher: VideoAutoencoder | None = None,
) -> int:
    """Stage 1: the frame autoencoder, on frames of random world clips (``data``: 1 s clips). Returns the
    steps taken. With a ``teacher`` (the frame codec of a checkpoint at a smaller picture size with the
    same latent grid), the encoder also learns to give the teacher's latents of the same frames shrunk to
    its size: a transformer trained on the teacher's latents then reads the new codec's as it is, and the
    decoder learns to draw them at the new size."""
    codec, device = model.video_codec, model.video_embed.weight.device
    optimizer = torch.optim.AdamW(codec.parameters(), lr=lr, weight_decay=0.0)
    started = time.perf_counter()
    step, running = 0, []
    while time.perf_counter() - started < minutes * 60:
        rate = _schedule(lr, step, (time.perf_counter() - started) / (minutes * 60))
        for group in optimizer.param_groups:
            group["lr"] = rate
        frames = data.next()[0].flatten(0, 1).to(device)  # 8 clips × 1 s of frames
        latents = codec.encoder(frames)
        rebuilt = codec.decoder(latents)
        loss = F.mse_loss(rebuilt, frames) + 0.5 * F.l1_loss(rebuilt, frames) + 1e-4 * latents.pow(2).mean()
        if teacher is not None:
            with torch.no_grad():
                shrunk = F.interpolate(frames, size=(teacher.frame_size, teacher.frame_size), mode="area")
                target = teacher.encode(shrunk)
            loss = loss + F.mse_loss(latents, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        if step % LOG_EVERY == 0 or time.perf_counter() - started >= minutes * 60:  # ... and the last row
            elapsed = time.perf_counter() - started
            writer.writerow(
                ["codec", step, round(elapsed, 1), round(float(np.mean(running)), 5), "", "", f"{rate:.2e}"]
            )
            print(f"codec step {step:5d}  {elapsed:7.1f} s  loss {np.mean(running):.4f}", flush=True)
            running = []
    if teacher is None:  # with a teacher the raw latents already are the teacher's normalised ones
        frames = torch.cat([data.next()[0].flatten(0, 1) for _ in range(4)]).to(device)
        codec.set_normalisation(frames)
    return step


def train(
    config: DualTowerConfig,
    *,
    codec_minutes: float,
    minutes: float,
    max_steps: int,
    batch: int,
    seconds: float,
    lr: float,
    seed: int,
    out: Path,
    resume: Path | None = None,
    codec_from: Path | None = None,
    modes: TrainingModes | None = None,
    echo: int = 1,
    device: str | torch.device = "cpu",
    workers: int = 0,
    init_from: Path | None = None,
    codec_teacher: Path | None = None,
) -> dict[str, float]:
    """Train (see the module docstring). ``echo``: optimizer steps per generated batch, each with its own
    noise, flow times and modes (data echoing: making and encoding a batch costs as much as a step).
    ``workers``: processes making batches ahead (BatchStream). ``init_from``: start a new network from a
    checkpoint's tensors wherever name and shape match, its frame codec excepted (a network at another
    picture size, say). ``codec_teacher``: a checkpoint whose frame codec the codec stage learns to agree
    with (train_codec). Returns the flow stage's time split: steps, seconds, and the seconds spent
    waiting for data."""
    if echo < 1:
        raise ValueError(f"echo must be at least 1 (steps per generated batch), got {echo}")
    modes = modes or TrainingModes()
    device = torch.device(device)
    torch.manual_seed(seed)
    done_before = 0
    provenance: dict[str, Any] = {}
    if resume is not None:  # continue from saved weights (the optimizer state starts afresh)
        model, provenance = load_checkpoint(resume)
        config, done_before = model.config, int(provenance.get("steps", 0))
    else:
        model = DualTowerTransformer(config)
    if init_from is not None and resume is None:
        provenance["initialised_from"] = str(init_from)
        provenance["steps_before"] = _take_matching(model, init_from)
    if codec_from is not None:
        model.video_codec.load_state_dict(load_codec_state(codec_from))
        provenance["codec_steps"] = read_metadata(codec_from)["provenance"].get("codec_steps", 0)
    model.to(device).train()
    log = out.with_name(f"{out.stem}{'-resumed' if resume else ''}.csv")
    log.parent.mkdir(parents=True, exist_ok=True)
    provenance = {
        **provenance,
        "batch": batch,
        "clip_seconds": seconds,
        "seed": seed,
        "resumed_from": str(resume or ""),
        "codec_from": str(codec_from or provenance.get("codec_from", "")),
        "video_to_audio_share": modes.video_to_audio,
        "audio_to_video_share": modes.audio_to_video,
        "echo": echo,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    with log.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stage", "step", "seconds", "loss", "video", "audio", "lr"])
        if codec_minutes > 0:  # (further) train the frame codec: from scratch, or from codec_from / resume
            clips = BatchStream(config, 8, 1.0, seed + 1_000_003, workers)
            teacher = None
            if codec_teacher is not None:
                teacher = load_checkpoint(codec_teacher)[0].video_codec.to(device).eval()
                channels = teacher.encoder[-1].out_channels
                if teacher.latent_grid != config.latent_height or channels != config.latent_channels:
                    raise ValueError(f"{codec_teacher}: its codec's latents are not this network's (grid, channels)")
                provenance["codec_teacher"] = str(codec_teacher)
            try:
                steps = train_codec(model, clips, minutes=codec_minutes, lr=2e-3, writer=writer, teacher=teacher)
            finally:
                clips.close()
            provenance["codec_steps"] = int(provenance.get("codec_steps", 0)) + steps
            handle.flush()
        codec = model.video_codec.requires_grad_(False).eval()
        parameters = [p for name, p in model.named_parameters() if not name.startswith("video_codec.")]
        optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
        flowing = minutes > 0 and max_steps > 0
        data = BatchStream(config, batch, seconds, seed, workers, long_every=4) if flowing else None
        started = time.perf_counter()
        step, running = 0, []
        try:
            while data is not None and step < max_steps and time.perf_counter() - started < minutes * 60:
                rate = _schedule(lr, step, (time.perf_counter() - started) / (minutes * 60))
                for group in optimizer.param_groups:
                    group["lr"] = rate
                if step % echo == 0:  # a fresh batch; otherwise the last one again, with new noise and times
                    frames, audio, captions, references = data.next()
                    video = encode_frames(codec, frames.to(device))
                    audio, references = audio.to(device), _to_device(references, device)
                    text = tokenize(captions, config.text_vocab, config.max_text_tokens).to(device)
                context = model.encode_context(text, references)
                loss, parts = flow_matching_loss(model, video, audio, *context, modes=modes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                step += 1
                running.append(parts)
                last = step >= max_steps or time.perf_counter() - started >= minutes * 60
                if step % LOG_EVERY == 0 or last:
                    mean = {k: float(np.mean([p[k] for p in running])) for k in running[0]}
                    elapsed = time.perf_counter() - started
                    writer.writerow(
                        ["flow", done_before + step, round(elapsed, 1)]
                        + [round(mean[k], 5) for k in ("loss", "video", "audio")]
                        + [f"{rate:.2e}"]
                    )
                    handle.flush()
                    print(
                        f"step {done_before + step:5d}  {elapsed:7.1f} s  loss {mean['loss']:.4f} "
                        f"(video {mean['video']:.4f}, audio {mean['audio']:.4f})  lr {rate:.1e}  "
                        f"waiting for data {data.waited_s / elapsed:.0%}",
                        flush=True,
                    )
                    running = []
                if step % SAVE_EVERY == 0:
                    save_checkpoint(model, out, **{**provenance, "steps": done_before + step})
        finally:
            if data is not None:
                data.close()
    # Shipped in half precision: half the size; the backend computes in float32 after loading.
    elapsed = time.perf_counter() - started
    split = {"steps": step, "seconds": round(elapsed, 1), "data_wait_s": round(data.waited_s if data else 0.0, 1)}
    provenance.update(
        steps=done_before + step, minutes=round(elapsed / 60, 1), data_wait_s=split["data_wait_s"],
        data_wait_share=_share(split),
    )  # fmt: skip
    save_checkpoint(model, out, dtype=torch.float16, **provenance)
    plot_curves(log, log.with_suffix(".png"), title=f"{out.name}: training loss")
    print(
        f"wrote {out} after {done_before + step} steps; curve in {log.with_suffix('.png')}; {step} steps in "
        f"{elapsed:.0f} s, {split['data_wait_s']:.0f} s of it waiting for data"
    )
    return split


def _take_matching(model: DualTowerTransformer, path: Path) -> int:
    """Copy ``path``'s tensors into ``model`` where name and shape match, the frame codec excepted; returns
    the flow steps that checkpoint had taken."""
    source, provenance = load_checkpoint(path)
    own = model.state_dict()
    taken = {
        name: tensor
        for name, tensor in source.state_dict().items()
        if not name.startswith("video_codec.") and name in own and own[name].shape == tensor.shape
    }
    model.load_state_dict(taken, strict=False)
    print(f"initialised {len(taken)} of {len(own)} tensors from {path}")
    return int(provenance.get("steps", 0))


def _share(split: dict[str, float]) -> float:
    return round(split["data_wait_s"] / split["seconds"], 3) if split["seconds"] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=50.0, help="Wall-clock budget of the flow stage.")
    parser.add_argument(
        "--codec-minutes", type=float, default=0.0, help="Budget of the autoencoder stage (0: keep the codec as is)."
    )
    parser.add_argument("--steps", type=int, default=1_000_000, help="Stop the flow stage after this many steps.")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0, help="Length of each (short) training clip.")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default).")
    parser.add_argument("--sequential", action="store_true", help="Train the baseline without a2v / v2a.")
    parser.add_argument(
        "--frame-size", type=int, default=48, help="Picture size of a new network (small(frame_size): 48, 96, 192)."
    )
    parser.add_argument("--device", default="cpu", help="Where to train: cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--workers", type=int, default=0, help="Processes making world batches ahead (0: in the training process)."
    )
    parser.add_argument("--out", type=Path, default=CHECKPOINTS / "builtin.safetensors")
    parser.add_argument(
        "--echo", type=int, default=1, help="Optimizer steps per generated batch, each with fresh noise (data echoing)."
    )
    parser.add_argument("--resume", type=Path, help="Continue from this checkpoint's weights.")
    parser.add_argument("--codec-from", type=Path, help="Take the frame autoencoder from this checkpoint.")
    parser.add_argument(
        "--init-from", type=Path, help="Start a new network from this checkpoint's matching tensors (not its codec)."
    )
    parser.add_argument(
        "--codec-teacher", type=Path, help="The codec stage learns to give this checkpoint's codec latents too."
    )
    parser.add_argument(
        "--video-to-audio", type=float, default=0.25, help="Share of samples with the video clean (sound generated)."
    )
    parser.add_argument(
        "--audio-to-video", type=float, default=0.25, help="Share of samples with the audio clean (picture generated)."
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = sequential(small(args.frame_size)) if args.sequential else small(args.frame_size)
    train(
        replace(config),
        codec_minutes=args.codec_minutes,
        minutes=args.minutes,
        max_steps=args.steps,
        batch=args.batch,
        seconds=args.seconds,
        lr=args.lr,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        codec_from=args.codec_from,
        modes=TrainingModes(video_to_audio=args.video_to_audio, audio_to_video=args.audio_to_video),
        echo=args.echo,
        device=args.device,
        workers=args.workers,
        init_from=args.init_from,
        codec_teacher=args.codec_teacher,
    )


if __name__ == "__main__":
    main()
