"""Event-level audio-video sync of the built-in model: joint (a2v / v2a) against sequential (none).

    python benchmarks/model_sync.py [--clips 12] [--seconds 4] [--steps 16] [--json FILE]

Held-out prompts: bounce and pulse scenes of the procedural world drawn from seeds training never
uses (the caption space is small, so their captions also occur in training; the draws — positions,
speeds, tempos, phases — are new). For each prompt both models generate picture and sound together
from the caption alone (text-to-audio+video, the same seed for every row). Visible events are found
in the generated frames (a ball's floor contacts, a square's swells) and sounds in the generated
effects stem (model/events.py); each visual event is paired with the nearest onset within 250 ms.

Text rows sample as the builtin backend does, the sound trailing the picture by ``--audio-lag`` (its
``AUDIO_LAG``); when that is not 0, both models are also measured with both streams on one grid.

Rows: the world's own clips (the ceiling of the measurement: the same detectors on ground truth;
pulse scenes sound a hi-hat between kicks that nothing in the picture marks, so their precision tops
out near half), the joint model at sync-guidance scales 1.0 (off), 2.0 and 3.5, and the sequential
baseline — the same network trained the same way (same data, time budget, codec) without
audio↔video attention. Two more pairs of rows isolate each direction of the coupling:
video-to-audio (the scene's own picture given, sound generated: foley) and audio-to-video (the
scene's own sound given, picture generated); the sequential model cannot see the given stream.

Columns: visual events and sound onsets found; the median |offset| of pairs within 250 ms; recall
(share of visual events with a sound within ±1 video frame, 80 ms at the model's 12.5 latent
frames/s), precision (share of sounds with a visual event within ±1 frame) and their F1; chance:
the F1 of the same row's picture events against the sounds of another clip of the same kind — what
sound that ignores the picture scores with these detectors, at that row's density of sounds; recall
within ±40 ms (one frame at 25 fps); F1 per scene kind; F1 − chance with a 95% bootstrap interval over
the clips (a row whose interval holds 0 is not distinguishable from chance on these prompts).

Below the table, joint against sequential in each mode: the joint row's F1 − chance minus the
sequential row's, with a paired 95% bootstrap interval (the same clips drawn for both rows); an
interval above 0 means the joint model beats the baseline on these prompts.
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

from syncreel.audio import audio_onsets, match_events  # noqa: E402
from syncreel.model.builtin import AUDIO_LAG, BuiltinGenerator  # noqa: E402
from syncreel.model.codecs import decode_audio, encode_audio, encode_video  # noqa: E402
from syncreel.model.events import sync_figures, visual_events  # noqa: E402
from syncreel.model.generator import GenerationRequest  # noqa: E402
from syncreel.model.world import STEMS, sample_clip  # noqa: E402

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


def chance_pairs(found: list) -> list:
    """Each clip's picture events against the sounds of another clip of the same kind (scenes alternate
    bounce, pulse): what sound that ignores the picture scores, at the row's own density of sounds."""
    return [(found[i][0], found[(i + 2) % len(found)][1]) for i in range(len(found))]


def _has_chance(found: list) -> bool:
    """chance_pairs needs two clips of each kind; with one, each clip would be paired with itself."""
    return len(found) > 2


def scored(found: list, scenes: list, frame_ms: float) -> dict[str, float]:
    """sync_figures() of one row, with its F1 per scene kind and its own chance level (chance_pairs)."""
    row = sync_figures(found, frame_ms)
    for kind in ("bounce", "pulse"):
        row[f"{kind}_f1"] = sync_figures([f for f, s in zip(found, scenes, strict=True) if s.kind == kind], frame_ms)[
            "f1"
        ]
    row["chance_f1"] = sync_figures(chance_pairs(found), frame_ms)["f1"] if _has_chance(found) else None
    row["above_chance"], row["above_chance_ci95"] = None, None
    if row["chance_f1"] is not None:
        row["above_chance"] = round(row["f1"] - row["chance_f1"], 3)
        row["above_chance_ci95"] = _interval(_margin_draws(found, frame_ms))
    return row


def joint_minus_sequential(joint: list, baseline: list, frame_ms: float) -> dict[str, object]:
    """How far the joint model's F1 − chance exceeds the baseline's on the same prompts, with a paired 95%
    bootstrap interval (the same clips drawn for both): an interval above 0 means joint beats sequential.
    Both None without a chance level (_has_chance)."""
    if not _has_chance(joint):
        return {"difference": None, "ci95": None}

    def lead(picks: np.ndarray) -> np.ndarray:
        return _margin_draws(joint, frame_ms, picks) - _margin_draws(baseline, frame_ms, picks)

    every_clip = np.arange(len(joint))[None]  # one "draw" that takes each clip once: the point estimate
    return {"difference": round(float(lead(every_clip)[0]), 3), "ci95": _interval(lead(_bootstrap_picks(len(joint))))}


def _bootstrap_picks(clips: int, draws: int = 2000) -> np.ndarray:
    return np.random.default_rng(0).integers(0, clips, (draws, clips))


def _margin_draws(found: list, frame_ms: float, picks: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap draws of F1 − chance F1 over clips (clips drawn with replacement, each with its chance
    pairing). F1 within ±1 frame is 2·matched / (visual events + sounds), so per-clip counts suffice."""
    window = frame_ms / 1000
    picks = _bootstrap_picks(len(found)) if picks is None else picks

    def f1(pairs: list) -> np.ndarray:
        counts = np.array([(match_events(v, a, window_s=window).matched, len(v) + len(a)) for v, a in pairs], float)
        totals = counts[picks].sum(1)
        return 2 * totals[:, 0] / np.maximum(totals[:, 1], 1)

    return f1(found) - f1(chance_pairs(found))


def _interval(draws: np.ndarray) -> list[float]:
    return [round(float(q), 3) for q in np.percentile(draws, [2.5, 97.5])]


def generated_events(
    backend: BuiltinGenerator, scene, seconds: float, steps: int, sync: float, seed: int, mode: str = "text"
):
    """(visual event times, sound onset times) of one clip made by ``backend`` for ``scene``'s caption.

    mode "text": both streams generated. "video-to-audio": the scene's own picture is given and kept,
    the sound generated (events: the given picture's, onsets: the generated effects stem's).
    "audio-to-video": the scene's own stems are given and kept, the picture generated.
    """
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
    truth_pixels = (scene.frames + 1) * 127.5
    given = {}
    if mode == "video-to-audio":
        frames = torch.from_numpy(truth_pixels.round().astype(np.uint8))
        given["video"] = encode_video(backend.model.video_codec, frames, config.frame_size)
    elif mode == "audio-to-video":
        mel_frames = round(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
        given["audio"] = encode_audio(torch.from_numpy(scene.stems), config)[..., :mel_frames]
    video, audio, _ = backend.generate_latents(request, given)
    # A given stream comes back as given: measure the scene's own rather than a decoded copy of it.
    if mode == "video-to-audio":
        pixels = truth_pixels
    else:
        with torch.no_grad():
            frames = backend.model.video_codec.decode(video.permute(1, 0, 2, 3))  # (T, 3, S, S)
        pixels = ((frames.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    if mode == "audio-to-video":
        effects = scene.stems[STEMS.index("effects")]
    else:
        stem = audio[STEMS.index("effects")]
        effects = decode_audio(stem, config, generator=torch.Generator().manual_seed(seed)).numpy()
    return visual_events(pixels, config.latent_fps, scene.kind), audio_onsets(effects, config.sample_rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINTS / "builtin.safetensors")
    parser.add_argument("--baseline", type=Path, default=CHECKPOINTS / "sequential.safetensors")
    parser.add_argument("--clips", type=int, default=12, help="Prompts per scene kind (bounce, pulse).")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument(
        "--audio-lag",
        type=float,
        default=AUDIO_LAG,
        help="How far the sound trails the picture in text-to-audio+video sampling (the builtin backend's "
        f"default: {AUDIO_LAG}); when not 0, both models are also measured without it.",
    )
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    for path in (args.checkpoint, args.baseline):
        if not path.is_file():
            print(f"error: no checkpoint at {path} (train it with python -m syncreel.model.train; see its docstring)")
            return 2
    backends = {
        (label, lag): BuiltinGenerator(path, audio_lag=lag)
        for label, path in (("joint", args.checkpoint), ("sequential", args.baseline))
        for lag in {args.audio_lag, 0.0}
    }
    config = backends["joint", 0.0].config
    frame_ms = 1000 / config.latent_fps
    scenes = held_out_prompts(args.clips, args.seconds, config)
    rows, found_by_row = [], {}
    truth = [
        (
            visual_events((s.frames + 1) * 127.5, config.latent_fps, s.kind),
            audio_onsets(s.stems[STEMS.index("effects")], config.sample_rate),
        )
        for s in scenes
    ]
    rows.append(
        {
            "model": "world (ground truth)",
            "mode": "-",
            "sync_guidance": None,
            "audio_lag": None,
            **scored(truth, scenes, frame_ms),
        }
    )
    rows[-1]["s_per_clip"] = 0
    lag = args.audio_lag
    runs = [
        ("joint", "text", 1.0, lag),
        ("joint", "text", 2.0, lag),
        ("joint", "text", 3.5, lag),
        ("sequential", "text", 1.0, lag),
        *([("joint", "text", 1.0, 0.0), ("sequential", "text", 1.0, 0.0)] if lag else []),
        ("joint", "video-to-audio", 1.0, 0.0),
        ("sequential", "video-to-audio", 1.0, 0.0),
        ("joint", "audio-to-video", 1.0, 0.0),
        ("sequential", "audio-to-video", 1.0, 0.0),
    ]
    for label, mode, sync, run_lag in runs:
        started = time.perf_counter()
        backend = backends[label, run_lag]
        found = [
            generated_events(backend, scene, args.seconds, args.steps, sync, seed=1000 + i, mode=mode)
            for i, scene in enumerate(scenes)
        ]
        per_clip = (time.perf_counter() - started) / len(scenes)
        row = {"model": label, "mode": mode, "sync_guidance": sync, "audio_lag": run_lag if mode == "text" else None}
        found_by_row[label, mode, sync, row["audio_lag"]] = found
        rows.append({**row, **scored(found, scenes, frame_ms)})
        rows[-1]["s_per_clip"] = round(per_clip, 2)

    header = (
        f"{'model':<21}{'mode':<15}{'sync':>5}{'lag':>5}{'events':>7}{'sounds':>7}{'median ms':>10}{'recall':>8}"
        f"{'precision':>10}{'F1':>7}{'chance':>8}{'F1 - chance [95% CI]':>24}{'±40 ms':>8}{'bounce':>8}{'pulse':>7}"
        f"{'s/clip':>7}"
    )
    print(
        f"Event sync on {len(scenes)} held-out prompts, {args.seconds:g} s, {args.steps} steps; recall, "
        f"precision and F1 within ±1 frame ({frame_ms:.0f} ms); chance: F1 against another clip's sounds; "
        "F1 - chance with its 95% bootstrap interval over clips; bounce / pulse: F1 per scene kind"
    )
    print(header)
    print("-" * len(header))

    def show(value, spec):
        return "-" if value is None else format(value, spec)

    def with_interval(value, interval):
        if value is None:
            return "-"
        low, high = interval
        return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"

    for row in rows:
        print(
            f"{row['model']:<21}{row['mode']:<15}{show(row['sync_guidance'], '.1f'):>5}"
            f"{show(row['audio_lag'], '.1f'):>5}{row['visual_events']:>7}"
            f"{row['sounds']:>7}{show(row['median_ms'], '.1f'):>10}{row['within_1_frame']:>8.1%}"
            f"{row['precision_1_frame']:>10.1%}{row['f1']:>7.2f}{show(row['chance_f1'], '.2f'):>8}"
            f"{with_interval(row['above_chance'], row['above_chance_ci95']):>24}{row['within_40ms']:>8.1%}"
            f"{row['bounce_f1']:>8.2f}{row['pulse_f1']:>7.2f}{row['s_per_clip']:>7}"
        )
    print()
    comparisons = []
    for mode, mode_lag, sync in (("text", lag, 1.0), ("text", lag, 2.0), ("text", lag, 3.5),
                                 ("video-to-audio", None, 1.0), ("audio-to-video", None, 1.0)):  # fmt: skip
        joint, baseline = found_by_row["joint", mode, sync, mode_lag], found_by_row["sequential", mode, 1.0, mode_lag]
        compared = {"mode": mode, "sync_guidance": sync, "audio_lag": mode_lag}
        compared.update(joint_minus_sequential(joint, baseline, frame_ms))
        comparisons.append(compared)
        print(
            f"{mode}{f' (sync guidance {sync:g})' if mode == 'text' else ''}: joint minus sequential, F1 above "
            f"chance: {with_interval(compared['difference'], compared['ci95'])}"
        )
    if args.json:
        payload = {
            "clips": len(scenes),
            "seconds": args.seconds,
            "steps": args.steps,
            "audio_lag": lag,
            "frame_ms": frame_ms,
            "checkpoint": str(args.checkpoint),
            "baseline": str(args.baseline),
            "rows": rows,
            "joint_minus_sequential": comparisons,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
