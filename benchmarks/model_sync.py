"""Event-level audio-video sync of the built-in model: joint (a2v / v2a) against sequential (none).

    python benchmarks/model_sync.py [--clips 12] [--seconds 4] [--steps 16] [--json FILE]

Held-out prompts: bounce and pulse scenes of the procedural world drawn from seeds training never
uses (the caption space is small, so their captions also occur in training; the draws — positions,
speeds, tempos, phases — are new). For each prompt both models generate picture and sound together
from the caption alone (text-to-audio+video, the same seed for every row). Visible events are found
in the generated frames (a ball's floor contacts, a square's swells) and sounds in the generated
effects stem (model/events.py); each visual event is paired with the nearest onset within 250 ms.

Rows: the world's own clips (the floor of the measurement: the same detectors on ground truth), the
joint model at sync-guidance scales 1.0 (off), 2.0 and 3.5, the sequential baseline — the same
network trained the same way (same data, time budget, codec) without audio↔video attention — and
chance: the joint model's picture events against another clip's sounds (scenes alternate bounce,
pulse, so that is the next clip of the same kind), the score of sound that ignores the picture.
Columns: visual events found, how many found a sound within 250 ms, the median and mean |offset|,
and the share of *all* visual events whose sound lies within ±1 video frame (80 ms at the model's
12.5 latent frames/s) and within ±40 ms (one frame at 25 fps); events with no sound count as misses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.builtin import BuiltinGenerator  # noqa: E402
from model.codecs import decode_audio  # noqa: E402
from model.events import audio_onsets, match_events, visual_events  # noqa: E402
from model.generator import GenerationRequest  # noqa: E402
from model.world import STEMS, sample_clip  # noqa: E402

CHECKPOINTS = ROOT / "model" / "checkpoints"
HELD_OUT_SEED = 900_000  # training draws from default_rng(seed) streams with small seeds; these never occur


def held_out_prompts(count: int, seconds: float, config) -> list:
    """``count`` bounce and ``count`` pulse scenes, each from its own unseen seed."""
    scenes = []
    for index in range(count):
        for kind in ("bounce", "pulse"):
            rng = np.random.default_rng(HELD_OUT_SEED + 2 * index + (kind == "pulse"))
            scenes.append(sample_clip(rng, seconds, config.latent_fps, config.frame_size, config.sample_rate, kind))
    return scenes


def measure(events: list[tuple[tuple[float, ...], tuple[float, ...]]], frame_ms: float) -> dict[str, float]:
    """Aggregate (visual events, onsets) pairs of many clips into the table's figures."""
    visual = sum(len(v) for v, _ in events)
    offsets = [abs(o) for v, a in events for o in match_events(v, a).offsets_ms]
    return {
        "visual_events": visual,
        "with_sound": len(offsets),
        "median_ms": round(float(np.median(offsets)), 1) if offsets else None,
        "mean_ms": round(float(np.mean(offsets)), 1) if offsets else None,
        "within_1_frame": round(sum(o <= frame_ms for o in offsets) / visual, 3) if visual else None,
        "within_40ms": round(sum(o <= 40 for o in offsets) / visual, 3) if visual else None,
    }


def generated_events(backend: BuiltinGenerator, scene, seconds: float, steps: int, sync: float, seed: int):
    config = backend.config
    request = GenerationRequest(
        scene_id="bench",
        language="en",
        prompt=scene.caption,
        duration_s=seconds,
        width=config.frame_size,
        height=config.frame_size,
        fps=config.latent_fps,
        sample_rate=config.sample_rate,
        seed=seed,
        steps=steps,
        sync_guidance=sync,
    )
    video, audio, _ = backend.generate_latents(request)
    with torch.no_grad():
        frames = backend.model.video_codec.decode(video.permute(1, 0, 2, 3))  # (T, 3, S, S)
    pixels = ((frames.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    effects = decode_audio(audio[STEMS.index("effects")], config, generator=torch.Generator().manual_seed(seed))
    return visual_events(pixels, config.latent_fps, scene.kind), audio_onsets(effects.numpy(), config.sample_rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINTS / "builtin.safetensors")
    parser.add_argument("--baseline", type=Path, default=CHECKPOINTS / "sequential.safetensors")
    parser.add_argument("--clips", type=int, default=12, help="Prompts per scene kind (bounce, pulse).")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    for path in (args.checkpoint, args.baseline):
        if not path.is_file():
            print(f"error: no checkpoint at {path} (train it with python -m model.train; see its docstring)")
            return 2
    joint, sequential = BuiltinGenerator(args.checkpoint), BuiltinGenerator(args.baseline)
    config = joint.config
    frame_ms = 1000 / config.latent_fps
    scenes = held_out_prompts(args.clips, args.seconds, config)
    rows = []
    truth = [
        (
            visual_events((s.frames + 1) * 127.5, config.latent_fps, s.kind),
            audio_onsets(s.stems[STEMS.index("effects")], config.sample_rate),
        )
        for s in scenes
    ]
    rows.append({"model": "world (ground truth)", "sync_guidance": None, **measure(truth, frame_ms), "s_per_clip": 0})
    runs = [("joint", joint, 1.0), ("joint", joint, 2.0), ("joint", joint, 3.5), ("sequential", sequential, 1.0)]
    for label, backend, sync in runs:
        started = time.perf_counter()
        found = [
            generated_events(backend, scene, args.seconds, args.steps, sync, seed=1000 + i)
            for i, scene in enumerate(scenes)
        ]
        per_clip = (time.perf_counter() - started) / len(scenes)
        rows.append(
            {"model": label, "sync_guidance": sync, **measure(found, frame_ms), "s_per_clip": round(per_clip, 2)}
        )
        for kind in ("bounce", "pulse"):
            subset = [f for f, s in zip(found, scenes, strict=True) if s.kind == kind]
            rows[-1][f"{kind}_within_1_frame"] = measure(subset, frame_ms)["within_1_frame"]
        if label == "joint" and sync == 1.0:
            joint_found = found
    # Chance: the joint model's picture events against the sounds of the next clip of the same kind,
    # what a model whose sound ignored its picture would score with these detectors and these scenes.
    shuffled = [(joint_found[i][0], joint_found[(i + 2) % len(joint_found)][1]) for i in range(len(joint_found))]
    rows.append({"model": "chance (mismatched)", "sync_guidance": None, **measure(shuffled, frame_ms), "s_per_clip": 0})

    header = (
        f"{'model':<22}{'sync':>6}{'events':>8}{'sounded':>9}{'median ms':>11}{'mean ms':>9}"
        f"{'±1 frame':>10}{'±40 ms':>8}{'bounce':>8}{'pulse':>7}{'s/clip':>8}"
    )
    print(
        f"Event sync on {len(scenes)} held-out prompts, {args.seconds:g} s, {args.steps} steps "
        f"(1 frame = {frame_ms:.0f} ms)"
    )
    print(header)
    print("-" * len(header))

    def show(value, spec):
        return "-" if value is None else format(value, spec)

    for row in rows:
        print(
            f"{row['model']:<22}{show(row['sync_guidance'], '.1f'):>6}{row['visual_events']:>8}{row['with_sound']:>9}"
            f"{show(row['median_ms'], '.1f'):>11}{show(row['mean_ms'], '.1f'):>9}"
            f"{show(row['within_1_frame'], '.1%'):>10}{show(row['within_40ms'], '.1%'):>8}"
            f"{show(row.get('bounce_within_1_frame'), '.0%'):>8}{show(row.get('pulse_within_1_frame'), '.0%'):>7}"
            f"{row['s_per_clip']:>8}"
        )
    joint_off = rows[1]["within_1_frame"] or 0.0
    baseline = rows[-2]["within_1_frame"] or 0.0
    print(
        f"\njoint (sync 1.0) vs sequential, share within ±1 frame: {joint_off:.1%} vs {baseline:.1%}"
        f" (ratio {joint_off / baseline:.2f})"
        if baseline
        else ""
    )
    if args.json:
        payload = {
            "clips": len(scenes),
            "seconds": args.seconds,
            "steps": args.steps,
            "frame_ms": frame_ms,
            "checkpoint": str(args.checkpoint),
            "baseline": str(args.baseline),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
