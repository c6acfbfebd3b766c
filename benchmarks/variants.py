"""Platform fan-out speed: syncreel's `render_variants` against two hand-made baselines.

    python benchmarks/variants.py                 # 30 s 1920×1080 master, every registered platform
    python benchmarks/variants.py --json out.json # the table, and the same figures written as JSON
    python benchmarks/variants.py --seconds 10 --platform tiktok --platform square --platform youtube

All three render the same master to the same platforms with the same encoder settings
(`media.variants._encoder_args`: libx264 at --preset, the platform's profile, level, CRF, VBV, GOP;
AAC at its rate, bitrate and channels), in the same run, one after the other:

- **naive**: one ffmpeg invocation per platform (decode, crop, scale, encode);
- **hand-written split**: one ffmpeg command that decodes once and splits into every output, with the
  same crops: what a careful engineer writes by hand;
- **syncreel**: `render_variants`, which also does more: subject analysis (shots, faces, motion),
  a crop path per platform, two-pass loudness, thumbnails and a contact sheet, an independent loudness
  check of each output; it encodes once every output whose render spec is identical.

The baselines' crops (``--baseline-crop``): by default **subject**, the very windows syncreel's
analysis chose, planned once before the timed runs and sent to ``crop`` by the same kind of sendcmd
file, so that all three encode the same pictures and the comparison is of the fan-out alone (a crop
that follows a subject across the frame pans, and x264 spends about twice the CPU on a panning
picture as on a still one: measured 12.9 vs 7.0 CPU s for 10 s of 9:16); **centre** gives the
baselines a fixed centred crop instead, as a naive pipeline would (the subject leaves the frame).
syncreel's own analysis is timed in its run either way.

Wall time and CPU time (this process and its children) are measured for each; realtime factors are
master seconds per wall second, per variant (syncreel's and the split's amortised over their outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

from syncreel.media.ffmpeg import BITEXACT, run  # noqa: E402
from syncreel.media.probe import probe  # noqa: E402
from syncreel.media.reframe import analyse_subjects, cover_crop_size, plan_crop_path  # noqa: E402
from syncreel.media.variants import (  # noqa: E402
    _crop_commands,
    _encoder_args,
    _output_frames,
    _rate,
    filter_path,
    render_variants,
)
from syncreel.schemas.platforms import PLATFORMS, PlatformSpec  # noqa: E402


def make_master(path: Path, seconds: float, size: tuple[int, int] = (1920, 1080), fps: int = 25) -> Path:
    """A master with a subject (a face photo) moving across a still, textured background, and a tone
    that pulses like speech."""
    from skimage import data

    width, height = size
    folder = path.parent
    rng = np.random.default_rng(7)
    noise = rng.integers(40, 140, (height // 16, width // 16, 3)).astype(np.uint8)
    Image.fromarray(noise).resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3)).save(
        folder / "background.png"
    )
    Image.fromarray(data.astronaut()).resize((height // 3, height // 3)).save(folder / "subject.png")
    side = height // 3
    graph = (
        f"[1:v]scale={side}:{side}[subject];"
        f"[0:v][subject]overlay=x='40+(W-w-80)*t/{seconds}':y='(H-h)/2+H/8*sin(t)':shortest=1,"
        f"fps={fps},format=yuv420p[v]"
    )
    sound = f"aevalsrc=0.25*sin(2*PI*220*t)*(0.55+0.45*sin(2*PI*3*t)):s=48000:d={seconds}"
    run(
        ["-loop", "1", "-framerate", str(fps), "-i", str(folder / "background.png"),
         "-loop", "1", "-framerate", str(fps), "-i", str(folder / "subject.png"),
         "-f", "lavfi", "-i", sound, "-filter_complex", graph, "-map", "[v]", "-map", "2:a",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", "-c:a", "aac", "-b:a", "256k",
         *BITEXACT, "-y", str(path)],
        what="writing the benchmark master",
        path=path,
    )  # fmt: skip
    return path


Crop = tuple[Path | None, int, int]  # a sendcmd file of crop windows (None: it holds still), the first window's x, y
Crops = dict[str, Crop | None]  # per platform; None: a centred crop


def subject_crops(src: Path, specs: dict[str, PlatformSpec], folder: Path) -> Crops:
    """The crop windows syncreel's analysis chooses for each platform, as sendcmd files (untimed)."""
    info = probe(src)
    analysis = analyse_subjects(src)
    crops: Crops = {}
    for name, spec in specs.items():
        crop = plan_crop_path(analysis, (spec.width, spec.height), spec.fps, _output_frames(info, spec.fps))
        if "pad" in crop.modes:
            raise SystemExit(f"{name}: the crop path pads some shots; the baselines follow crop-only paths")
        lines, commands = _crop_commands(crop, name), folder / f"{name}.cmd"
        commands.write_text(lines)
        crops[name] = (commands if lines.strip() else None, int(crop.windows[0][0]), int(crop.windows[0][1]))
    return crops


def _crop_chain(
    name: str, spec: PlatformSpec, src_w: int, src_h: int, crop: tuple[Path | None, int, int] | None
) -> str:
    crop_w, crop_h = cover_crop_size(src_w, src_h, spec.width, spec.height)
    x, y, send = (src_w - crop_w) // 2, (src_h - crop_h) // 2, ""
    if crop is not None:
        commands, x, y = crop
        send = f"sendcmd=f={filter_path(commands)}," if commands is not None else ""
    return (
        f"fps={_rate(spec.fps)},{send}crop@{name}={crop_w}:{crop_h}:{x}:{y},"
        f"scale={spec.width}:{spec.height}:flags=bicubic,setsar=1,format={spec.pix_fmt}"
    )


def _audio_chain(spec: PlatformSpec) -> str:
    layout = "mono" if spec.audio_channels == 1 else "stereo"
    return f"aresample={spec.audio_rate},aformat=sample_fmts=fltp:channel_layouts={layout}"


def naive(src: Path, specs: dict[str, PlatformSpec], out: Path, preset: str, crops: Crops) -> dict[str, float]:
    """One ffmpeg per platform; returns each one's wall time."""
    info = probe(src)
    assert info.video is not None
    walls = {}
    for name, spec in specs.items():
        started = time.perf_counter()
        run(
            ["-i", str(src), "-vf", _crop_chain(name, spec, info.video.width, info.video.height, crops[name]),
             "-af", _audio_chain(spec), *_encoder_args(spec, preset), *BITEXACT, "-movflags", "+faststart",
             "-y", str(out / f"{name}.mp4")],
            what=f"naive {name}",
            path=src,
        )  # fmt: skip
        walls[name] = time.perf_counter() - started
    return walls


def hand_split(src: Path, specs: dict[str, PlatformSpec], out: Path, preset: str, crops: Crops) -> None:
    """One ffmpeg: decode once, split into every output."""
    info = probe(src)
    assert info.video is not None
    count = len(specs)
    graph = [f"[0:v]split={count}" + "".join(f"[v{i}]" for i in range(count))]
    graph.append(f"[0:a]asplit={count}" + "".join(f"[a{i}]" for i in range(count)))
    outputs: list[str] = []
    for i, (name, spec) in enumerate(specs.items()):
        graph.append(f"[v{i}]{_crop_chain(name, spec, info.video.width, info.video.height, crops[name])}[vo{i}]")
        graph.append(f"[a{i}]{_audio_chain(spec)}[ao{i}]")
        outputs += ["-map", f"[vo{i}]", "-map", f"[ao{i}]", *_encoder_args(spec, preset), *BITEXACT]
        outputs += ["-movflags", "+faststart", "-y", str(out / f"{name}.mp4")]
    run(["-i", str(src), "-filter_complex", ";".join(graph), *outputs], what="hand-written split", path=src)


def syncreel(src: Path, specs: dict[str, PlatformSpec], out: Path, preset: str, crops: Crops) -> dict[str, Any]:
    results = render_variants(src, specs, out, x264_preset=preset)
    first = next(iter(results.values()))
    return {
        "same_render_as": {name: result.same_render_as for name, result in results.items()},
        "stages": first.timings,
    }


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    cpu, started = _cpu_s(), time.perf_counter()
    value = fn()
    return time.perf_counter() - started, _cpu_s() - cpu, value


def _check_outputs(out: Path, specs: dict[str, PlatformSpec], seconds: float) -> None:
    for name, spec in specs.items():
        info = probe(out / f"{name}.mp4")
        assert info.video is not None and (info.video.width, info.video.height) == (spec.width, spec.height)
        assert abs(info.duration_s - seconds) < 0.2, (name, info.duration_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of the synthetic master.")
    parser.add_argument("--platform", action="append", help="Platforms (default: every registered one).")
    parser.add_argument("--preset", default="veryfast", help="x264 preset, the same for all three.")
    parser.add_argument("--master", type=Path, help="Use this master instead of the synthetic one.")
    parser.add_argument(
        "--baseline-crop",
        choices=("subject", "centre"),
        default="subject",
        help="The baselines' crops: syncreel's windows (the same pictures encoded) or a fixed centred crop.",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    names = args.platform or list(PLATFORMS)
    specs = {name: PLATFORMS[name] for name in names}
    with tempfile.TemporaryDirectory(prefix="syncreel-bench-") as folder:
        root = Path(folder)
        src = args.master or make_master(root / "master.mp4", args.seconds)
        seconds = probe(src).duration_s
        crops: Crops = {name: None for name in specs}
        if args.baseline_crop == "subject":
            crops = subject_crops(src, specs, root)
        rows = {}
        for label, fn in (("naive", naive), ("hand-written split", hand_split), ("syncreel", syncreel)):
            out = root / label.replace(" ", "-")
            out.mkdir()
            wall, cpu, value = measure(lambda fn=fn, out=out: fn(src, specs, out, args.preset, crops))
            _check_outputs(out, specs, seconds)
            rows[label] = {"wall_s": wall, "cpu_s": cpu, "detail": value}
            shutil.rmtree(out)
    report = _report(rows, specs, seconds, args)
    _print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _report(
    rows: dict[str, dict[str, Any]], specs: dict[str, PlatformSpec], seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    """The figures: each run's wall and CPU time against naive's, its encodes and realtime factor."""
    naive_wall, naive_cpu = rows["naive"]["wall_s"], rows["naive"]["cpu_s"]
    encodes = {"naive": len(specs), "hand-written split": len(specs)}
    shared = rows["syncreel"]["detail"]["same_render_as"]
    encodes["syncreel"] = sum(1 for same in shared.values() if same is None)
    return {
        "master": {"seconds": round(seconds, 2), "size": "1920x1080" if args.master is None else str(args.master)},
        "platforms": list(specs),
        "preset": args.preset,
        "baseline_crop": args.baseline_crop,
        "cores": os.cpu_count(),
        "runs": {
            label: {
                "wall_s": round(row["wall_s"], 2),
                "cpu_s": round(row["cpu_s"], 2),
                "vs_naive_wall": round(row["wall_s"] / naive_wall, 3),
                "vs_naive_cpu": round(row["cpu_s"] / naive_cpu, 3),
                "encodes": encodes[label],
                "realtime_per_variant": round(seconds / (row["wall_s"] / len(specs)), 2),
            }
            for label, row in rows.items()
        },
        "naive_realtime_by_platform": {
            name: round(seconds / wall, 2) for name, wall in rows["naive"]["detail"].items()
        },
        "syncreel_shared_encodes": {name: same for name, same in shared.items() if same},
        "syncreel_stages_s": {stage: round(v, 2) for stage, v in rows["syncreel"]["detail"]["stages"].items()},
    }


def _print_table(report: dict[str, Any]) -> None:
    master, preset, crop = report["master"], report["preset"], report["baseline_crop"]
    print(f"master {master['seconds']:.1f} s {master['size']}, {len(report['platforms'])} platforms, x264 {preset}, "
          f"{report['cores']} cores, baselines' crops: {crop}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'':22}{'wall s':>9}{'CPU s':>9}{'× naive wall':>14}{'× naive CPU':>13}{'encodes':>9}{'RT/variant':>12}")
    for label, run_report in report["runs"].items():
        print(
            f"{label:22}{run_report['wall_s']:9.1f}{run_report['cpu_s']:9.1f}{run_report['vs_naive_wall']:14.2f}"
            f"{run_report['vs_naive_cpu']:13.2f}{run_report['encodes']:9d}{run_report['realtime_per_variant']:12.2f}"
        )
    print("naive realtime factor per platform: " + ", ".join(
        f"{name} {rtf:.2f}×" for name, rtf in report["naive_realtime_by_platform"].items()
    ))  # fmt: skip
    print("syncreel stages: " + ", ".join(f"{k} {v:.1f}" for k, v in report["syncreel_stages_s"].items()))
    if report["syncreel_shared_encodes"]:
        print(
            "syncreel encoded once for: "
            + ", ".join(f"{a} = {b}" for a, b in report["syncreel_shared_encodes"].items())
        )


if __name__ == "__main__":
    main()
