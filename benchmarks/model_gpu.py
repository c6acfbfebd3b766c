"""Training throughput of a GPU-sized dual-tower config: tokens/s and model FLOP utilisation (MFU) in bf16.

    python benchmarks/model_gpu.py [--config base] [--batch 2] [--seconds 4] [--steps 5]
        [--variants eager,cudnn,compiled] [--json FILE]

One training step is the flow-matching loss's forward and backward pass plus an AdamW update, under
bf16 autocast. FLOPs per step are counted by PyTorch's FlopCounterMode on one eager step (matrix
products and attention, forward and backward; the same arithmetic for every variant), so MFU = counted
FLOPs / step time / the GPU's peak dense bf16 rate (from --peak-tflops, or the table below by device
name). Tokens are video + audio latent tokens. The share of the counted FLOPs that is attention
(scaled-dot-product kernels) is reported beside it: at the base config's 12,800 video tokens a sample,
attention is about two thirds of the arithmetic, so the attention kernel sets the ceiling (the figures of
one H200 run, and what limits them, are in docs/model.md, "GPU figures").

Rows: each variant with and without the audio↔video attention (the cost of coupling the towers), each
timed over ``--steps`` steps after warm-up. Variants:
- ``eager``: PyTorch's own choice of SDPA kernel for each call;
- ``flash``: SDPA restricted to FlashAttention (the masked calls, text and a2v / v2a, which FlashAttention
  cannot take, fall back to the memory-efficient kernel);
- ``cudnn``: cuDNN's attention first (it takes the masks too), then FlashAttention, then memory-efficient;
- ``compiled``: each block compiled with ``torch.compile`` (one graph per block shape, reused by all
  blocks: minutes less compilation than the whole network), default kernels.
A variant whose kernels refuse the inputs is reported as an error row, and the others still run.
The JSON is rewritten after every row, so a run cut short keeps what it measured.

Without CUDA it says so and measures nothing, unless ``--device cpu`` asks for a (slow, small-config)
run of the same code, which reports tokens/s and counted FLOPs but no MFU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncreel.model import config as presets  # noqa: E402
from syncreel.model.flow_matching import TrainingModes, flow_matching_loss  # noqa: E402
from syncreel.model.transformer import DualTowerTransformer, tokenize  # noqa: E402

# Peak dense bf16 tensor throughput (TFLOP/s, no sparsity), from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "A100": 312.0}
VARIANTS = ("eager", "flash", "cudnn", "compiled")
# The training mix, but no sample with a2v / v2a dropped: every step does the same arithmetic (and a
# compiled block never meets a batch in which no sample exchanges, which would be another graph).
EVERY_SAMPLE_COUPLED = TrainingModes(cross_modal_dropout=0.0)


def peak_for(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return PEAK_BF16_TFLOPS[key]
    if "H100" in name:
        return PEAK_BF16_TFLOPS["H100 SXM"]
    return None


def attention_kernels(variant: str):
    """The SDPA kernel restriction of a variant (a context manager)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if variant == "flash":
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION], set_priority=True)
    if variant == "cudnn":
        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
        return sdpa_kernel(order, set_priority=True)
    return nullcontext()


def attention_flops(counter: FlopCounterMode) -> int:
    """FLOPs of the attention kernels (forward and backward) among those ``counter`` saw."""
    totals = counter.get_flop_counts().get("Global", {})
    return sum(count for op, count in totals.items() if "attention" in str(op))


def measure(config, batch: int, seconds: float, steps: int, device: torch.device, variant: str) -> dict[str, float]:
    torch.manual_seed(0)
    with device:  # initialised where it runs: a billion parameters take seconds to initialise on a CPU
        model = DualTowerTransformer(config).train()
    optimizer = torch.optim.AdamW([p for n, p in model.named_parameters() if not n.startswith("video_codec.")])
    if variant == "compiled":
        for block in model.blocks:
            block.compile()
    frames = round(seconds * config.latent_fps)
    mel = round(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
    video = torch.randn(batch, config.latent_channels, frames, config.latent_height, config.latent_width, device=device)
    audio = torch.randn(batch, config.stems, config.n_mels, mel, device=device)
    text = tokenize(["a red ball bouncing in a studio"] * batch, config.text_vocab, config.max_text_tokens).to(device)
    tokens = frames * (config.latent_height // config.patch_h) * (config.latent_width // config.patch_w)
    tokens += mel // config.audio_patch
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_step() -> None:
        with attention_kernels(variant), torch.autocast(device.type, dtype=torch.bfloat16):
            context = model.encode_context(text)
            loss, _ = flow_matching_loss(model, video, audio, *context, modes=EVERY_SAMPLE_COUPLED)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    run_step()  # warm-up (and, compiled, the compilation)
    synchronize()
    warmup_s = time.perf_counter() - started
    flops = attention = None
    if variant != "compiled":  # the counter runs the ops eagerly; a compiled step does the same arithmetic
        counter = FlopCounterMode(display=False)
        with counter:
            run_step()
        flops, attention = counter.get_total_flops(), attention_flops(counter)
    if device.type == "cuda":
        synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        run_step()
    synchronize()
    per_step = (time.perf_counter() - started) / steps
    return {
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "tokens_per_sample": tokens,
        "warmup_s": round(warmup_s, 1),
        "step_s": round(per_step, 4),
        "tokens_per_s": round(batch * tokens / per_step, 1),
        "flops_per_step": flops,
        "attention_flop_share": round(attention / flops, 3) if flops else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }


def finish_row(row: dict, flops: int | None, peak: float | None) -> dict:
    """TFLOP per step, achieved TFLOP/s and MFU from the counted FLOPs of the variant's model."""
    if flops is None or "step_s" not in row:
        return {**row, "tflop_per_step": None, "achieved_tflops": None, "mfu": None}
    achieved = flops / row["step_s"] / 1e12
    return {
        **row,
        "tflop_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(achieved, 2),
        "mfu": round(achieved / peak, 4) if peak else None,
    }


def print_table(header_line: str, rows: list[dict]) -> None:
    print(header_line)
    header = (
        f"{'variant':<10}{'model':<20}{'params M':>10}{'tokens':>8}{'step s':>9}{'tokens/s':>11}"
        f"{'TFLOP/step':>12}{'TFLOP/s':>9}{'MFU':>8}{'attn share':>11}{'peak GiB':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<10}{row['model']:<20}  error: {row['error'][:120]}")
            continue
        mfu = "-" if row["mfu"] is None else f"{row['mfu']:.1%}"
        tflop = "-" if row["tflop_per_step"] is None else f"{row['tflop_per_step']:.3f}"
        achieved = "-" if row["achieved_tflops"] is None else f"{row['achieved_tflops']:.2f}"
        share = "-" if row["attention_flop_share"] is None else f"{row['attention_flop_share']:.0%}"
        memory = "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f}"
        print(
            f"{row['variant']:<10}{row['model']:<20}{row['parameters_m']:>10.1f}{row['tokens_per_sample']:>8}"
            f"{row['step_s']:>9.3f}{row['tokens_per_s']:>11.0f}{tflop:>12}{achieved:>9}{mfu:>8}{share:>11}{memory:>10}"
        )
    for variant in dict.fromkeys(r["variant"] for r in rows):
        pair = {r["model"]: r for r in rows if r["variant"] == variant and "step_s" in r}
        if len(pair) == 2:
            joint, uncoupled = pair["joint (a2v + v2a)"], pair["towers uncoupled"]
            print(f"{variant}: coupling cost {joint['step_s'] / uncoupled['step_s']:.2f}× the uncoupled step time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--variants",
        help=f"Comma-separated, eager first (it counts the FLOPs): {', '.join(VARIANTS)}. "
        "Default: eager,cudnn,compiled on CUDA, eager on the CPU.",
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--peak-tflops", type=float, help="The device's peak dense bf16 TFLOP/s.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    default = "eager,cudnn,compiled" if args.device == "cuda" else "eager"
    variants = [v.strip() for v in (args.variants or default).split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
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
    header_line = (
        f"{args.config} config, batch {args.batch} × {args.seconds:g} s clips, bf16 autocast, on {name}, "
        f"torch {torch.__version__}" + (f" (peak {peak:g} TFLOP/s bf16)" if peak else " (peak unknown: no MFU)")
    )
    rows: list[dict] = []
    counted: dict[str, tuple[int, float]] = {}  # model → FLOPs and attention share of an eager step
    models = (("joint (a2v + v2a)", config), ("towers uncoupled", replace(config, cross_modal=False)))
    for variant in variants:
        for label, variant_config in models:
            try:
                figures = measure(variant_config, args.batch, args.seconds, args.steps, device, variant)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # a kernel refusing its inputs, or OOM
                rows.append({"variant": variant, "model": label, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{variant} / {label}: {rows[-1]['error'][:300]}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            else:
                if figures["flops_per_step"] is not None:
                    counted[label] = (figures["flops_per_step"], figures["attention_flop_share"])
                flops, share = counted.get(label, (None, None))
                figures["attention_flop_share"] = share
                rows.append(finish_row({"variant": variant, "model": label, **figures}, flops, peak))
                print(f"{variant} / {label}: {rows[-1]}", flush=True)
            if args.json:
                payload = {
                    "measured": True,
                    "device": name,
                    "torch": torch.__version__,
                    "peak_tflops": peak,
                    "config": args.config,
                    "batch": args.batch,
                    "seconds": args.seconds,
                    "rows": rows,
                }
                args.json.write_text(json.dumps(payload, indent=2))
    print_table(header_line, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
