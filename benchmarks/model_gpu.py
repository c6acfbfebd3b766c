"""Training throughput of a GPU-sized dual-tower config: tokens/s and model FLOP utilisation (MFU) in bf16.

    python benchmarks/model_gpu.py [--config base] [--batch 4] [--seconds 4] [--steps 10] [--json FILE]

One training step is the flow-matching loss's forward and backward pass plus an AdamW update, under
bf16 autocast. FLOPs per step are counted by PyTorch's FlopCounterMode on one step (matrix products
and attention, forward and backward), so MFU = counted FLOPs / step time / the GPU's peak dense bf16
rate (from --peak-tflops, or the table below by device name). Tokens are video + audio latent tokens.
Rows: with and without the audio↔video attention (the cost of coupling the towers), each timed over
``--steps`` steps after warm-up.

Without CUDA it says so and measures nothing, unless ``--device cpu`` asks for a (slow, small-config)
run of the same code, which reports tokens/s and counted FLOPs but no MFU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import config as presets  # noqa: E402
from model.flow_matching import flow_matching_loss  # noqa: E402
from model.transformer import DualTowerTransformer, tokenize  # noqa: E402

# Peak dense bf16 tensor throughput (TFLOP/s, no sparsity), from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0}


def peak_for(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return PEAK_BF16_TFLOPS[key]
    if "H100" in name:
        return PEAK_BF16_TFLOPS["H100 SXM"]
    return None


def step_fn(model, video, audio, context, optimizer, device):
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = flow_matching_loss(model, video, audio, *context)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(config, batch: int, seconds: float, steps: int, device: torch.device) -> dict[str, float]:
    model = DualTowerTransformer(config).to(device).train()
    optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if not n.startswith("video_codec.")])
    frames = round(seconds * config.latent_fps)
    mel = round(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
    video = torch.randn(batch, config.latent_channels, frames, config.latent_height, config.latent_width, device=device)
    audio = torch.randn(batch, config.stems, config.n_mels, mel, device=device)
    text = tokenize(["a red ball bouncing in a studio"] * batch, config.text_vocab, config.max_text_tokens).to(device)
    tokens = frames * (config.latent_height // config.patch_h) * (config.latent_width // config.patch_w)
    tokens += mel // config.audio_patch

    def run_step():
        context = model.encode_context(text)
        step_fn(model, video, audio, context, optimizer, device)()

    run_step()  # warm-up
    counter = FlopCounterMode(display=False)
    with counter:
        run_step()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        run_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / steps
    return {
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "tokens_per_sample": tokens,
        "step_s": round(per_step, 4),
        "tokens_per_s": round(batch * tokens / per_step, 1),
        "tflop_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(flops / per_step / 1e12, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--peak-tflops", type=float, help="The device's peak dense bf16 TFLOP/s.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("model_gpu: no CUDA device here — unmeasured. Run it on a GPU machine (or --device cpu --config small).")
        if args.json:
            args.json.write_text(json.dumps({"measured": False, "reason": "no CUDA device"}, indent=2))
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = args.peak_tflops or (peak_for(name) if device.type == "cuda" else None)
    config = getattr(presets, args.config)()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for label, variant in (("joint (a2v + v2a)", config), ("towers uncoupled", replace(config, cross_modal=False))):
        figures = measure(variant, args.batch, args.seconds, args.steps, device)
        figures["mfu"] = round(figures["achieved_tflops"] / peak, 4) if peak else None
        rows.append({"model": label, **figures})
    print(
        f"{args.config} config, batch {args.batch} × {args.seconds:g} s clips, bf16 autocast, on {name}"
        + (f" (peak {peak:g} TFLOP/s bf16)" if peak else " (peak unknown: no MFU)")
    )
    header = (
        f"{'model':<20}{'params M':>10}{'tokens':>8}{'step s':>9}{'tokens/s':>11}"
        f"{'TFLOP/step':>12}{'TFLOP/s':>9}{'MFU':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        mfu = "-" if row["mfu"] is None else f"{row['mfu']:.1%}"
        print(
            f"{row['model']:<20}{row['parameters_m']:>10.1f}{row['tokens_per_sample']:>8}{row['step_s']:>9.3f}"
            f"{row['tokens_per_s']:>11.0f}{row['tflop_per_step']:>12.3f}{row['achieved_tflops']:>9.2f}{mfu:>8}"
        )
    coupled, uncoupled = rows
    print(f"coupling cost: {coupled['step_s'] / uncoupled['step_s']:.2f}× the uncoupled step time")
    if args.json:
        payload = {
            "measured": True,
            "device": name,
            "peak_tflops": peak,
            "config": args.config,
            "batch": args.batch,
            "seconds": args.seconds,
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
