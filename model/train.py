"""Train the built-in model on the procedural world (model/world.py) and write a checkpoint.

    python -m model.train --minutes 20 --out model/checkpoints/builtin.safetensors

Clips are generated on the fly (a fresh batch every step, so there is no dataset to download or
store). Captions are dropped 10% of the time so the unconditional branch that classifier-free
guidance needs is learned too. A CSV of the loss curve is written beside the checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.codecs import encode_audio
from model.config import DualTowerConfig, small
from model.flow_matching import flow_matching_loss
from model.transformer import DualTowerTransformer, tokenize
from model.world import sample_clip

CAPTION_DROPOUT = 0.1


def world_batch(
    rng: np.random.Generator, config: DualTowerConfig, batch: int, seconds: float
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(B, 3, T, H, W) video latents, (B, n_mels, frames) audio latents and captions."""
    clips = [
        sample_clip(rng, seconds, config.latent_fps, config.latent_height, config.latent_width, config.sample_rate)
        for _ in range(batch)
    ]
    video = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 4, 1, 2, 3)
    mel_frames = int(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
    audio = torch.stack([encode_audio(torch.from_numpy(c.audio), config)[:, :mel_frames] for c in clips])
    captions = [c.caption if rng.random() > CAPTION_DROPOUT else "" for c in clips]
    return video.float(), audio, captions


def train(
    config: DualTowerConfig,
    *,
    minutes: float,
    max_steps: int,
    batch: int,
    seconds: float,
    lr: float,
    seed: int,
    out: Path,
    log: Path,
    resume: Path | None = None,
) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if resume is not None:  # continue from saved weights (the optimizer state starts afresh)
        model, provenance = load_checkpoint(resume)
        model.train()
        config, done_before = model.config, int(provenance.get("steps", 0))
    else:
        model, done_before = DualTowerTransformer(config), 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = 50
    started = time.perf_counter()
    deadline = started + minutes * 60
    provenance = {"batch": batch, "clip_seconds": seconds, "seed": seed, "resumed_from": str(resume or "")}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "seconds", "loss", "video", "audio", "lr"])
        step, running = 0, []
        while step < max_steps and time.perf_counter() < deadline:
            progress = min(1.0, (time.perf_counter() - started) / (minutes * 60))
            rate = lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
            for group in optimizer.param_groups:
                group["lr"] = rate
            video, audio, captions = world_batch(rng, config, batch, seconds)
            context = model.encode_context(tokenize(captions, config.text_vocab, config.max_text_tokens))
            loss, parts = flow_matching_loss(model, video, audio, *context)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            running.append(parts)
            if step % 10 == 0:
                mean = {k: float(np.mean([p[k] for p in running])) for k in running[0]}
                elapsed = time.perf_counter() - started
                writer.writerow(
                    [
                        done_before + step,
                        round(elapsed, 1),
                        round(mean["loss"], 5),
                        round(mean["video"], 5),
                        round(mean["audio"], 5),
                        f"{rate:.2e}",
                    ]
                )
                handle.flush()
                print(
                    f"step {done_before + step:5d}  {elapsed:7.1f} s  loss {mean['loss']:.4f} "
                    f"(video {mean['video']:.4f}, audio {mean['audio']:.4f})  lr {rate:.1e}",
                    flush=True,
                )
                running = []
            if step % 200 == 0:
                save_checkpoint(model, out, steps=done_before + step, **provenance)
    # Shipped in half precision: half the size; the backend computes in float32 after loading.
    save_checkpoint(
        model,
        out,
        dtype=torch.float16,
        steps=done_before + step,
        minutes=round((time.perf_counter() - started) / 60, 1),
        **provenance,
    )
    print(f"wrote {out} after {done_before + step} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="Wall-clock budget.")
    parser.add_argument("--steps", type=int, default=100_000, help="Stop earlier after this many steps.")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="Length of each training clip.")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("checkpoints") / "builtin.safetensors")
    parser.add_argument("--resume", type=Path, help="Continue from this checkpoint's weights.")
    args = parser.parse_args()
    train(
        small(),
        minutes=args.minutes,
        max_steps=args.steps,
        batch=args.batch,
        seconds=args.seconds,
        lr=args.lr,
        seed=args.seed,
        out=args.out,
        # A resumed run keeps the earlier curve: its rows go to a second file beside it.
        log=args.out.with_name(f"{args.out.stem}{'-resumed' if args.resume else ''}.csv"),
        resume=args.resume,
    )


if __name__ == "__main__":
    main()
