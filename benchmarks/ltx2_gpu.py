"""Speed of the `ltx2` backend on a GPU: seconds per denoising step and end-to-end seconds per generated second.

    python benchmarks/ltx2_gpu.py [--weights DIR] [--steps 30] [--repeats 2] [--json FILE]

One request at LTX-2's reference size — 768×512, 121 frames at 24 fps (5.04 s), from text, with a line
of dialogue — through the backend's own ``generate`` (model/ltx2.py: prompt, pipeline call, crop, audio
resampling), after one 2-step warm-up at the same size. With ``--weights`` the checkpoint in that
folder is timed; without, a random-weight pipeline of LTX-2.0's released dimensions built in memory
(tests/fixtures/ltx2_random.py ``full()``: the 48-layer 19 B transformer, a Gemma-3-12B-sized text encoder, the
released VAE, audio VAE and vocoder configs) — the same arithmetic, noise for output.

Each measured run is timed twice, alternating: through the backend, and as the bare diffusers call — the
same pipeline object called with the very arguments the backend passes it (prompt, grid, guidance), which
leaves out only the backend's own work (prompt building, cropping, uint8 frames, audio resampling); the
goal is the backend within 10% of the bare call.

Figures: the transformer's time (forward hooks, CUDA-synchronised) per denoising step and its calls per
step (classifier-free guidance runs as one batch of two; spatio-temporal and modality guidance add a
call each), the text encoder's time, the rest (VAE decode, vocoder, copies), the end-to-end time and
that divided by the clip's duration, and the peak GPU memory allocated.

Without CUDA it says so and measures nothing (exit 0, ``"measured": false`` in the JSON), unless
``--device cpu`` asks for a run on this CPU — with ``--tiny`` (the test pipeline) and a small
``--width/--height/--frames`` that is the script's smoke test (``--device cpu`` needs ``--tiny`` or
``--weights``: LTX-2.0's full shape would be ~120 GB of float32 random weights). A checkpoint that cannot be
loaded, missing packages or the GPU running out of memory end it with the reason and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncreel.model.generator import GenerationRequest, GeneratorOutOfMemory, GeneratorUnavailable  # noqa: E402
from syncreel.model.ltx2 import build_prompt, grid_size  # noqa: E402

PROMPT = (
    "A woman in a sunlit kitchen opens a chilled can of sparkling drink, the tab pops and the drink "
    "fizzes; she smiles into the camera. Warm backlight, shallow depth of field, handheld close-up. "
    "Brand: Lumen Fizz. Tone: bright, playful, early-summer energy."
)
LINE = ("presenter", "Summer tastes lighter with Lumen Fizz.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="A diffusers-format LTX-2 checkpoint directory to time.")
    parser.add_argument("--tiny", action="store_true", help="Without --weights: the tiny test pipeline, not full().")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--steps", type=int, default=30, help="Denoising steps of each measured run.")
    parser.add_argument("--repeats", type=int, default=1, help="Measured runs, after the warm-up; figures averaged.")
    parser.add_argument("--video-guidance", type=float, default=3.0)
    parser.add_argument("--audio-guidance", type=float, default=3.0)
    parser.add_argument("--sync-guidance", type=float, default=1.0, help="LTX-2's modality guidance; 1 = off.")
    parser.add_argument("--stg-scale", type=float, default=1.0, help="Spatio-temporal guidance; 0 = off.")
    parser.add_argument("--stg-blocks", type=int, nargs="+", default=None, help="Default: 28, or 1 with --tiny.")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    parser.add_argument("--cpu-offload", action="store_true", help="Model CPU offload (SYNCREEL_LTX2_CPU_OFFLOAD).")
    parser.add_argument("--vae-tiling", action="store_true", help="VAE tiling (SYNCREEL_LTX2_VAE_TILING).")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args(argv)
    if args.weights is not None and args.tiny:
        parser.error("--tiny builds a random pipeline: it does not go with --weights")
    if args.device == "cpu" and args.weights is None and not args.tiny:
        parser.error("--device cpu needs --tiny or --weights: LTX-2.0's full random shape does not fit a CPU's memory")
    if min(args.width, args.height, args.frames, args.steps, args.repeats) < 1 or args.fps <= 0:
        parser.error("--width, --height, --frames, --steps, --repeats and --fps must be positive")
    if args.stg_blocks is None:
        args.stg_blocks = [1] if args.tiny else [28]
    return args


class ForwardTimer:
    """Seconds spent in a module's forward calls (synchronising the device around each) and their count."""

    def __init__(self, module: torch.nn.Module, synchronize: Callable[[], None]):
        self.synchronize, self.seconds, self.calls, self._started = synchronize, 0.0, 0, 0.0
        module.register_forward_pre_hook(self._start)
        module.register_forward_hook(self._stop)

    def _start(self, module, args) -> None:
        self.synchronize()
        self._started = time.perf_counter()

    def _stop(self, module, args, output) -> None:
        self.synchronize()
        self.seconds += time.perf_counter() - self._started
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def make_generator(args: argparse.Namespace, device: torch.device):
    """The backend over ``--weights``, or over a random pipeline built in memory; and what it is."""
    from syncreel.model.ltx2 import LTX2Generator, _resolve_dtype

    options = {
        "cpu_offload": args.cpu_offload,
        "vae_tiling": args.vae_tiling,
        "stg_scale": args.stg_scale,
        "stg_blocks": tuple(args.stg_blocks),
        "device": device.type,
    }
    if args.weights is not None:
        return LTX2Generator(args.weights, dtype=args.dtype, **options), str(args.weights)
    from tests.fixtures.ltx2_random import build_random_pipeline, full, tiny

    dtype = _resolve_dtype(args.dtype, device)
    # With offload the weights wait in CPU memory; otherwise they are created on the GPU directly.
    placement = "cpu" if args.cpu_offload else device
    pipeline = build_random_pipeline(tiny() if args.tiny else full(), dtype=dtype, device=placement)
    label = "random weights, " + ("tiny() test shape" if args.tiny else "full(): LTX-2.0's shape")
    return LTX2Generator(pipeline=pipeline, **options), label


def bench_request(args: argparse.Namespace, steps: int) -> GenerationRequest:
    return GenerationRequest(
        scene_id="bench",
        language="en",
        prompt=PROMPT,
        duration_s=args.frames / args.fps,
        width=args.width,
        height=args.height,
        fps=args.fps,
        sample_rate=48_000,
        seed=0,
        dialogue=(LINE,),
        sound_cues=((1.0, "a can tab pops, then fizz"),),
        steps=steps,
        video_guidance=args.video_guidance,
        audio_guidance=args.audio_guidance,
        sync_guidance=args.sync_guidance,
    )


def measure(args: argparse.Namespace, device: torch.device, progress: Callable[[dict], None]) -> dict[str, object]:
    cuda = device.type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    started = time.perf_counter()
    generator, checkpoint = make_generator(args, device)
    synchronize()
    setup_s = time.perf_counter() - started
    denoiser = ForwardTimer(generator.pipeline.transformer, synchronize)
    text = ForwardTimer(generator.pipeline.text_encoder, synchronize)
    started = time.perf_counter()
    generator.generate(bench_request(args, steps=2))  # warm-up: kernels, allocator, cuDNN plans
    warmup_s = time.perf_counter() - started
    request = bench_request(args, steps=args.steps)
    figures = {
        "checkpoint": checkpoint,
        "model_version": generator.model_version,
        "dtype": str(generator.dtype).removeprefix("torch."),
        "cpu_offload": generator.cpu_offload,
        "vae_tiling": generator.vae_tiling,
        "setup_s": round(setup_s, 1),
        "warmup_s": round(warmup_s, 1),
        "rows": [],
    }
    # The bare call: the same pipeline with the very arguments the backend passes (prompt, grid, guidance),
    # returning diffusers' float arrays, without the backend's cropping, uint8 frames and resampling.
    grid = grid_size(request.width, request.height, request.num_frames)
    arguments = generator._arguments(request, build_prompt(request), grid)
    timed = {"syncreel backend": [], "bare diffusers call": []}
    for _ in range(args.repeats):  # alternating, so drift in clocks or memory affects both alike
        for label in timed:
            denoiser.reset()
            text.reset()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            synchronize()
            started = time.perf_counter()
            if label == "syncreel backend":
                clip = generator.generate(request)
            else:
                seed = torch.Generator(device="cpu").manual_seed(request.seed)
                generator.pipeline(**arguments, generator=seed, output_type="np", return_dict=False)
            synchronize()
            end_to_end = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            timed[label].append((end_to_end, denoiser.seconds, denoiser.calls, text.seconds, peak))
    duration_s = request.duration_s
    for label, runs in timed.items():
        count = len(runs)
        end_to_end, denoise, calls, text_s = (sum(r[i] for r in runs) / count for i in range(4))
        peaks = [r[4] for r in runs if r[4] is not None]
        figures["rows"].append(
            {
                "call": label,
                "mode": clip.parameters["mode"],
                "size": f"{grid.width}×{grid.height}×{grid.frames}",
                "steps": args.steps,
                "transformer_calls_per_step": round(calls / args.steps, 2),
                "s_per_step": round(denoise / args.steps, 4),
                "denoise_s": round(denoise, 3),
                "text_s": round(text_s, 3),
                "decode_and_rest_s": round(end_to_end - denoise - text_s, 3),
                "end_to_end_s": round(end_to_end, 3),
                "clip_s": round(duration_s, 3),
                "s_per_generated_s": round(end_to_end / duration_s, 3),
                "peak_gib": round(max(peaks), 2) if peaks else None,
            }
        )
        progress(figures)
    figures["guidance"] = clip.parameters["guidance"]
    backend, bare = figures["rows"]
    figures["backend_over_bare"] = round(backend["end_to_end_s"] / bare["end_to_end_s"] - 1, 4)
    return figures


def print_table(device_name: str, figures: dict[str, object]) -> None:
    print(
        f"LTX-2 on {device_name}, torch {torch.__version__}: {figures['checkpoint']}, {figures['dtype']}, "
        f"offload {'on' if figures['cpu_offload'] else 'off'}, VAE tiling {'on' if figures['vae_tiling'] else 'off'}"
        f" (set up in {figures['setup_s']} s, warm-up {figures['warmup_s']} s)"
    )
    header = (
        f"{'call':<21}{'mode':<21}{'generated':>14}{'steps':>6}{'calls/step':>11}{'s/step':>8}{'denoise s':>10}"
        f"{'text s':>8}{'decode+ s':>10}{'e2e s':>8}{'s per gen s':>12}{'peak GiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in figures["rows"]:
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        print(
            f"{row['call']:<21}{row['mode']:<21}{row['size']:>14}{row['steps']:>6}{row['transformer_calls_per_step']:>11}"
            f"{row['s_per_step']:>8.3f}{row['denoise_s']:>10.2f}{row['text_s']:>8.2f}{row['decode_and_rest_s']:>10.2f}"
            f"{row['end_to_end_s']:>8.2f}{row['s_per_generated_s']:>12.2f}{peak:>9}"
        )
    overhead = figures["backend_over_bare"]
    print(f"the backend's end-to-end time against the bare call: {overhead:+.1%} (goal: within 10%)")


def _fail(args: argparse.Namespace, reason: str) -> int:
    print(f"ltx2_gpu: unmeasured — {reason}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"measured": False, "reason": reason}, indent=2))
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "ltx2_gpu: no CUDA device here — unmeasured. Run it on a GPU machine "
            "(python benchmarks/ltx2_gpu.py [--weights DIR]); --tiny --device cpu smoke-tests the script."
        )
        if args.json:
            args.json.write_text(json.dumps({"measured": False, "reason": "no CUDA device"}, indent=2))
        return 0
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def progress(figures: dict[str, object]) -> None:  # a run cut short keeps the rows it finished
        if args.json:
            payload = {"measured": True, "device": device_name, "torch": torch.__version__, **figures}
            args.json.write_text(json.dumps(payload, indent=2))

    try:
        figures = measure(args, device, progress)
    except ImportError as exc:
        return _fail(args, f"{exc}: pip install -e '.[ltx2]'")
    except (GeneratorUnavailable, GeneratorOutOfMemory) as exc:
        return _fail(args, str(exc))
    except torch.cuda.OutOfMemoryError as exc:  # building the random weights on the GPU
        return _fail(args, f"{device_name} ran out of memory ({exc}); try --cpu-offload")
    print_table(device_name, figures)
    if args.json:
        progress(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
