"""Everything GPU-side in one timed session: MFU, LTX-2 at full size, and a GPU-trained built-in checkpoint.

    PYTHONPATH=. python benchmarks/gpu_session.py --out DIR [--budget-s 540] [--tiny]

For a short lease on a GPU machine (docs/model.md, "GPU figures", has what one run gave).
Parts, each in its own process with its own time limit, so that one failing or running long costs only
its own figures (each benchmark rewrites its JSON as it goes):

1. ``model_gpu``: benchmarks/model_gpu.py on the base config in bf16 (eager, cuDNN-first attention,
   compiled blocks; each with and without a2v / v2a) → ``model_gpu.json``;
2. ``ltx2_gpu``: benchmarks/ltx2_gpu.py at 768×512, 121 frames, random weights of LTX-2.0's released
   dimensions built on the GPU in bf16, the backend against the bare diffusers call → ``ltx2_gpu.json``;
3. ``train``: the built-in model at 96 px pictures (``small(96)``), on whatever time is left. First the
   96 px frame codec, taught to give the shipped 48 px codec's latents (``--codec-teacher``), so the
   shipped networks read it as they are; then the joint and the sequential network, side by side on the
   one GPU, each started from its shipped counterpart (``--init-from``) and fine-tuned with the recipe of
   the last CPU stage, each fed by half the CPU cores making world batches → ``builtin.safetensors``,
   ``sequential.safetensors`` and their loss curves ``builtin.csv``, ``sequential.csv``.

``session.json`` holds each part's exit status and seconds, the training's time split (steps, seconds,
seconds waiting for data, from each checkpoint's provenance) and the versions seen. Everything lands in
``--out`` (8 files: what a lease with a file limit sends back; scratch goes to ``--work``).

``--tiny`` runs the same parts on a CPU in a few minutes (tiny configs, the tiny LTX-2 pipeline, 48 px
and seconds of training): the script's own test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "model" / "checkpoints"


def run_part(name: str, command: list[str], limit_s: float, log: list[dict]) -> int:
    """Run one part with a time limit; its output goes straight to ours."""
    print(f"\n=== {name}: {' '.join(command)} (limit {limit_s:.0f} s)", flush=True)
    started = time.perf_counter()
    try:
        code = subprocess.run(command, cwd=ROOT, timeout=max(1.0, limit_s)).returncode
    except subprocess.TimeoutExpired:
        code = 124
    seconds = round(time.perf_counter() - started, 1)
    log.append({"part": name, "exit": code, "seconds": seconds})
    print(f"=== {name}: exit {code} after {seconds} s", flush=True)
    return code


def versions() -> dict[str, object]:
    found: dict[str, object] = {"python": platform.python_version()}
    for package in ("torch", "diffusers", "transformers", "huggingface_hub", "espeakng_loader"):
        try:
            module = __import__(package)
            found[package] = getattr(module, "__version__", "installed")
        except Exception as exc:  # noqa: BLE001 - a missing or broken package is a finding, not a failure
            found[package] = f"unavailable: {type(exc).__name__}: {exc}"
    import torch

    if torch.cuda.is_available():
        found["device"] = torch.cuda.get_device_name()
        found["cuda"] = torch.version.cuda
        found["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return found


def provenance(path: Path) -> dict[str, object]:
    from syncreel.model.checkpoint import read_metadata

    try:
        return read_metadata(path)["provenance"]
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Where the figures and checkpoints go (8 files).")
    parser.add_argument("--work", type=Path, help="Scratch (the codec stage, plots); default a temporary folder.")
    parser.add_argument("--budget-s", type=float, default=540, help="Wall-clock seconds for all parts together.")
    parser.add_argument("--model-gpu-s", type=float, default=130, help="Time limit of the MFU part.")
    parser.add_argument("--ltx2-s", type=float, default=150, help="Time limit of the LTX-2 part.")
    parser.add_argument("--codec-minutes", type=float, default=0.5)
    parser.add_argument("--ltx2-steps", type=int, default=8, help="Denoising steps of each measured LTX-2 run.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["model_gpu", "ltx2_gpu", "train"])
    parser.add_argument("--tiny", action="store_true", help="The same parts, CPU-sized: the script's own test.")
    args = parser.parse_args()
    deadline = time.perf_counter() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_session-"))
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    parts: list[dict] = []
    session: dict[str, object] = {"tiny": args.tiny, "versions": versions(), "parts": parts}
    print(json.dumps(session["versions"], indent=2), flush=True)

    def save() -> None:
        (args.out / "session.json").write_text(json.dumps(session, indent=2))

    save()
    env_cores = os.cpu_count() or 2
    if "model_gpu" not in args.skip:
        sizes = (
            ["--device", "cpu", "--config", "tiny", "--batch", "1", "--seconds", "1", "--steps", "1"]
            if args.tiny
            else ["--config", "base", "--batch", "2", "--seconds", "4", "--steps", "5"]
        )
        command = [python, "benchmarks/model_gpu.py", *sizes, "--variants", "eager,cudnn,compiled"]
        if args.tiny:
            command[-1] = "eager"
        run_part("model_gpu", [*command, "--json", str(args.out / "model_gpu.json")], args.model_gpu_s, parts)
        save()
    if "ltx2_gpu" not in args.skip:
        sizes = (
            ["--tiny", "--device", "cpu", "--width", "96", "--height", "64", "--frames", "9", "--steps", "2"]
            if args.tiny
            else ["--steps", str(args.ltx2_steps)]
        )
        command = [python, "benchmarks/ltx2_gpu.py", *sizes, "--json", str(args.out / "ltx2_gpu.json")]
        run_part("ltx2_gpu", command, min(args.ltx2_s, deadline - time.perf_counter() - 60), parts)
        save()
    if "train" not in args.skip:
        train(args, work, deadline, env_cores, session, parts)
        save()
    print("\n=== session")
    print(json.dumps(session, indent=2))
    return 0


def train(args, work: Path, deadline: float, cores: int, session: dict, parts: list[dict]) -> None:
    """The codec stage, then both flow trainings side by side, on the time that is left."""
    python = [sys.executable, "-m", "model.train"]
    if args.tiny:
        common = ["--frame-size", "48", "--device", "cpu", "--batch", "4", "--seconds", "1"]
        codec_minutes, workers = 0.05, 1
    else:
        common = ["--frame-size", "96", "--device", "cuda", "--batch", "32", "--seconds", "2"]
        codec_minutes, workers = args.codec_minutes, max(1, cores // 2 - 1)
    codec = work / "codec.safetensors"
    teacher = str(SHIPPED / "builtin.safetensors")
    command = [*python, *common, "--codec-minutes", str(codec_minutes), "--minutes", "0", "--workers",
               str(2 * workers), "--codec-teacher", teacher, "--out", str(codec)]  # fmt: skip
    # The codec stage's limit: its minutes, the worker start-up and the final save.
    if run_part("train codec", command, codec_minutes * 60 + 90, parts) != 0:
        return
    # What is left, less the save, the plot and the process start-up at the end.
    minutes = max(0.1, (deadline - time.perf_counter() - 50) / 60)
    if args.tiny:
        minutes = min(minutes, 0.25)
    session["flow_minutes"] = round(minutes, 2)
    runs = {}
    started = time.perf_counter()
    for name, extra in (("builtin", []), ("sequential", ["--sequential"])):
        out = args.out / f"{name}.safetensors"
        command = [*python, *common, *extra, "--codec-from", str(codec), "--init-from",
                   str(SHIPPED / f"{name}.safetensors"), "--minutes", f"{minutes:.2f}", "--lr", "3e-4", "--seed", "5",
                   "--echo", "2", "--video-to-audio", "0.3", "--audio-to-video", "0.1", "--workers", str(workers),
                   "--out", str(out)]  # fmt: skip
        print(f"\n=== train {name}: {' '.join(command)}", flush=True)
        runs[name] = (subprocess.Popen(command, cwd=ROOT), out)
    for name, (process, out) in runs.items():
        try:
            code = process.wait(timeout=max(1.0, minutes * 60 + 120 - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            process.kill()
            code = 124
        parts.append({"part": f"train {name}", "exit": code, "seconds": round(time.perf_counter() - started, 1)})
        figures = provenance(out) if out.is_file() else {"error": "no checkpoint written"}
        figures["size_bytes"] = out.stat().st_size if out.is_file() else None
        session[f"train_{name}"] = figures
        print(f"=== train {name}: exit {code}; {json.dumps(figures)}", flush=True)
    for stray in args.out.glob("*.png"):  # plots are redrawn from the CSVs; keep within the file limit
        stray.replace(work / stray.name)


if __name__ == "__main__":
    raise SystemExit(main())
