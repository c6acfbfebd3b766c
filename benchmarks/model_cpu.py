"""How long the shipped checkpoint takes to make a 4-second clip on this machine's CPU, and its peak memory.

    python benchmarks/model_cpu.py [--seconds 4] [--steps 8] [--json FILE]

Generates a clip at the example brief's master format (640×360, 24 fps, 48 kHz) from text alone,
after one short warm-up generation, and splits the time into sampling (the transformer), frame
decoding (autoencoder + resize) and audio decoding (Griffin-Lim over three stems). The last column
compares each total with the 30 s target. Peak memory is the process's peak resident set size
(everything: Python, PyTorch, the model), read from the kernel after each row.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncreel.model.builtin import CHECKPOINT, BuiltinGenerator  # noqa: E402
from syncreel.model.codecs import decode_audio, decode_video  # noqa: E402
from syncreel.model.generator import GenerationRequest  # noqa: E402

TARGET_S = 30.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_clip(backend: BuiltinGenerator, seconds: float, steps: int, sync: float) -> dict[str, float]:
    request = GenerationRequest(
        scene_id="bench",
        language="en",
        prompt="a red ball bouncing in a studio, a thump on every bounce",
        duration_s=seconds,
        width=640,
        height=360,
        fps=24,
        sample_rate=48_000,
        seed=5,
        steps=steps,
        sync_guidance=sync,
    )
    started = time.perf_counter()
    video, audio, _ = backend.generate_latents(request)
    sampled = time.perf_counter()
    decode_video(backend.model.video_codec, video, request.num_frames, request.height, request.width)
    framed = time.perf_counter()
    decode_audio(audio, backend.config, generator=torch.Generator().manual_seed(0))
    done = time.perf_counter()
    clip = backend.generate(request)  # the whole backend call, as the pipeline makes it
    whole = time.perf_counter() - done
    assert clip.frames.shape[0] == request.num_frames
    return {
        "sample_s": round(sampled - started, 2),
        "frames_s": round(framed - sampled, 2),
        "audio_s": round(done - framed, 2),
        "generate_s": round(whole, 2),
        "peak_rss_mib": round(peak_mib(), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        print(f"error: no checkpoint at {args.checkpoint}")
        return 2
    before = peak_mib()
    backend = BuiltinGenerator(args.checkpoint)
    loaded = peak_mib()
    backend.generate(
        GenerationRequest("warm", "en", "warm up", 1.0, 64, 64, 12, 16_000, seed=0, steps=1)
    )  # first-call costs (allocator, kernels) out of the timings
    rows = []
    for label, steps, sync in (
        (f"{args.steps} steps", args.steps, 1.0),
        (f"{args.steps} steps, sync 2.0", args.steps, 2.0),
        (f"{2 * args.steps} steps", 2 * args.steps, 1.0),
    ):
        rows.append(
            {"run": label, "steps": steps, "sync_guidance": sync, **timed_clip(backend, args.seconds, steps, sync)}
        )
    print(
        f"{args.seconds:g} s clip, 640×360 at 24 fps + 48 kHz, on {torch.get_num_threads()} CPU threads; "
        f"process RSS {before:.0f} MiB before loading, {loaded:.0f} MiB with the model"
    )
    header = (
        f"{'run':<22}{'sample s':>10}{'frames s':>10}{'audio s':>9}{'generate s':>12}{'× target':>10}{'peak MiB':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['run']:<22}{row['sample_s']:>10.2f}{row['frames_s']:>10.2f}{row['audio_s']:>9.2f}"
            f"{row['generate_s']:>12.2f}{row['generate_s'] / TARGET_S:>10.2f}{row['peak_rss_mib']:>10.0f}"
        )
    print(f"target: a {args.seconds:g} s clip in under {TARGET_S:.0f} s (× target < 1)")
    if args.json:
        payload = {
            "seconds": args.seconds,
            "threads": torch.get_num_threads(),
            "target_s": TARGET_S,
            "rss_before_load_mib": round(before, 1),
            "rss_loaded_mib": round(loaded, 1),
            "checkpoint": str(args.checkpoint),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
