"""Does one ball stay one ball? The built-in model's pictures, counted as objects per frame.

    python benchmarks/model_picture.py [--checkpoint FILE ...] [--clips 12] [--seconds 4] [--steps 16] [--json FILE]

For each checkpoint, on the held-out bounce and pulse prompts of benchmarks/model_sync.py (one ball or
one square per scene), the picture is generated from the caption alone (text-to-audio+video, as the
backend samples it), decoded at the checkpoint's own picture size, and each frame's foreground (whatever
differs from the border's median colour, model/events.py) is split into connected pieces; pieces under
0.5% of the frame are noise, not objects. Figures per frame: how many objects, and the share of frames
with exactly one (the world always shows one), none, or several. Area jitter: the median over clips of
the frame-to-frame change of the object area, relative to the area (pulse scenes swell on the beat by
design, so compare each kind with the world's own row).

Rows per checkpoint: the world's own frames (the ceiling: the same counting on ground truth), the same
frames through the checkpoint's frame codec and back (what the codec alone loses), and the generated
pictures. Picture sizes differ between checkpoints; every figure is relative to the frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from model_sync import held_out_prompts  # noqa: E402

from syncreel.model.builtin import CHECKPOINT, BuiltinGenerator  # noqa: E402
from syncreel.model.events import _object_mask  # noqa: E402
from syncreel.model.generator import GenerationRequest  # noqa: E402

MIN_OBJECT_SHARE = 0.005  # of the frame's pixels: smaller pieces are codec or sampling noise
KINDS = ("bounce", "pulse")


def objects_per_frame(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, S, S, 3) values 0–255 → objects in each frame and the foreground area of each (share of the frame)."""
    mask = _object_mask(pixels) > 0.5
    size = mask.shape[1] * mask.shape[2]
    counts, areas = [], []
    for frame in mask:
        labels, found = ndimage.label(frame)
        pieces = np.bincount(labels.ravel())[1:] if found else np.zeros(0)
        kept = pieces[pieces >= MIN_OBJECT_SHARE * size]
        counts.append(len(kept))
        areas.append(kept.sum() / size)
    return np.array(counts), np.array(areas)


def summarise(per_clip: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, float]:
    row: dict[str, float] = {}
    for label, picked in (("all", per_clip), *((kind, [c for c in per_clip if c[0] == kind]) for kind in KINDS)):
        counts = np.concatenate([c[1] for c in picked])
        jitter = [np.median(np.abs(np.diff(a)) / np.maximum(a[1:], 1e-3)) for _, _, a in picked if len(a) > 1]
        prefix = "" if label == "all" else f"{label}_"
        row[f"{prefix}one_object"] = round(float(np.mean(counts == 1)), 3)
        row[f"{prefix}objects_per_frame"] = round(float(counts.mean()), 2)
        if label == "all":
            row["no_object"] = round(float(np.mean(counts == 0)), 3)
            row["several_objects"] = round(float(np.mean(counts > 1)), 3)
        row[f"{prefix}area_jitter"] = round(float(np.median(jitter)), 3) if jitter else None
    return row


def to_pixels(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, S, S) in about [-1, 1] → (T, S, S, 3) values 0–255."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()


def measure(path: Path, clips: int, seconds: float, steps: int) -> list[dict[str, object]]:
    backend = BuiltinGenerator(path)
    config, codec = backend.config, backend.model.video_codec
    scenes = held_out_prompts(clips, seconds, config)
    world, through_codec, generated = [], [], []
    for index, scene in enumerate(scenes):
        truth = (scene.frames + 1) * 127.5
        world.append((scene.kind, *objects_per_frame(truth)))
        with torch.no_grad():
            rebuilt = codec.decode(codec.encode(torch.from_numpy(scene.frames).permute(0, 3, 1, 2)))
        through_codec.append((scene.kind, *objects_per_frame(to_pixels(rebuilt))))
        request = GenerationRequest(
            scene_id="picture", language="en", prompt=scene.caption, duration_s=seconds, width=config.frame_size,
            height=config.frame_size, fps=config.latent_fps, sample_rate=config.sample_rate, seed=1000 + index,
            steps=steps,
        )  # fmt: skip
        video, _, _ = backend.generate_latents(request)
        with torch.no_grad():
            frames = codec.decode(video.permute(1, 0, 2, 3))
        generated.append((scene.kind, *objects_per_frame(to_pixels(frames))))
    name = path.name
    common = {"checkpoint": str(path), "frame_size": config.frame_size}
    return [
        {"source": "world (ground truth)", "name": name, **common, **summarise(world)},
        {"source": "world through the codec", "name": name, **common, **summarise(through_codec)},
        {"source": "generated from text", "name": name, **common, **summarise(generated)},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=[CHECKPOINT])
    parser.add_argument("--clips", type=int, default=12, help="Prompts per scene kind (bounce, pulse).")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    for path in args.checkpoint:
        if not path.is_file():
            print(f"error: no checkpoint at {path}")
            return 2
    rows = [row for path in args.checkpoint for row in measure(path, args.clips, args.seconds, args.steps)]
    print(
        f"Objects per frame on {2 * args.clips} held-out prompts ({args.clips} bounce, {args.clips} pulse), "
        f"{args.seconds:g} s, {args.steps} steps; pieces under {MIN_OBJECT_SHARE:.1%} of the frame ignored"
    )
    header = (
        f"{'checkpoint':<26}{'px':>5}  {'source':<25}{'one object':>11}{'none':>7}{'several':>9}{'per frame':>10}"
        f"{'bounce 1':>9}{'pulse 1':>9}{'jitter b':>9}{'jitter p':>9}"
    )
    print(header)
    print("-" * len(header))

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for row in rows:
        print(
            f"{row['name']:<26}{row['frame_size']:>5}  {row['source']:<25}{row['one_object']:>11.1%}"
            f"{row['no_object']:>7.1%}{row['several_objects']:>9.1%}{row['objects_per_frame']:>10.2f}"
            f"{row['bounce_one_object']:>9.1%}{row['pulse_one_object']:>9.1%}"
            f"{show(row['bounce_area_jitter']):>9}{show(row['pulse_area_jitter']):>9}"
        )
    if args.json:
        payload = {"clips": 2 * args.clips, "seconds": args.seconds, "steps": args.steps, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
