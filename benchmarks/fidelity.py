"""Fidelity of a campaign's masters to its brief: the presenter, the packshot, sharpness, the spoken lines
and lip-sync, per scene and language, each figure judged against its threshold.

    python benchmarks/fidelity.py [--brief examples/briefs/lumen-fizz.yaml] [--state DIR] [--json FILE]

Runs the brief once on the embedded defaults in a temporary directory (SQLite + a local asset folder),
or reads an existing run's state with ``--state DIR`` (DIR/state.db and DIR/assets, as benchmarks/rerun.py
lays them out; the newest run), then measures each kept master (the attempt its scene job settled on):

- identity: the character-consistency measure (media/consistency.py: colour-histogram intersection of
  the largest face) of every master frame with a face against the presenter photo; pass when at least
  95% of those frames score ≥ 0.85;
- packshot: PSNR of the product's region in every decoded master frame against the packshot at the
  scale the compositor reports (the generation's ``composition.placements``), over its opaque pixels;
  pass when at least 95% of the frames where it shows reach 32 dB;
- sharpness: the variance of the Laplacian of each reference's region (8 frames spread over the clip)
  over the reference resampled to the same scale, on the reference's opaque pixels; pass when the lowest
  ratio is ≥ 0.5;
- each line: speech in the master's dialogue stem (the stems WAV beside it) found by the voice analysis'
  speech detector (media/analysis.speech_segments); pass when it starts within one frame of ``start_s``
  and its speech lasts at least 90% of the synthesized line's (the line spoken again by the same engine
  and voice, measured the same way);
- lip-sync: the QA's offset and confidence of the kept master, and the ablation: the same master with
  the presenter held still (``FaceMotion.still``, mouth closed) over its own frames and sound, scored by
  the same gate, which must fail it.

Prints one row per measure; the exit status is 0 when every row passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from syncreel.media.syncqa import SyncExpectation

ROOT = Path(__file__).resolve().parents[1]

MIN_IDENTITY, MIN_IDENTITY_SHARE = 0.85, 0.95
MIN_PSNR_DB, MIN_PSNR_SHARE = 32.0, 0.95
MIN_SHARPNESS_RATIO = 0.5
SHARPNESS_FRAMES = 8
MIN_LINE_SHARE = 0.9
MASK_MARGIN = 2  # pixels eroded off a reference's matte: its soft edge blends with what is behind


# -- measures: pure functions over arrays (tests/benchmarks/test_fidelity.py) ----------------------------------------
def identity(frames: list[Any], photo: np.ndarray, detector: Any) -> dict[str, Any]:
    """Similarity of the largest face in each frame (av.VideoFrame) to the photo's face: the
    character-consistency measure per frame, and the share of frames with a face at ≥ MIN_IDENTITY."""
    import av

    from syncreel.media.consistency import appearance

    reference, _ = appearance(
        av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[..., :3]), format="rgb24"), detector
    )
    scores = []
    for frame in frames:
        signature, found = appearance(frame, detector)
        if found:
            scores.append(float(np.minimum(signature, reference).sum()))
    share = float(np.mean(np.array(scores) >= MIN_IDENTITY)) if scores else 0.0
    return {
        "frames": len(frames),
        "with_face": len(scores),
        "median": round(float(np.median(scores)), 3) if scores else None,
        "p5": round(float(np.percentile(scores, 5)), 3) if scores else None,
        "share_ok": round(share, 3),
        "pass": bool(scores) and share >= MIN_IDENTITY_SHARE,
    }


def packshot_fidelity(frames: list[np.ndarray], packshot: np.ndarray, placements: list[Any]) -> dict[str, Any]:
    """PSNR of the packshot's region in each frame under its placement (media.compose.packshot_psnr)."""
    from syncreel.media.compose import packshot_psnr

    scores = [packshot_psnr(frames[p.frame], packshot, p) for p in placements if p.frame < len(frames)]
    shown = np.array([s for s in scores if s is not None], np.float64)
    share = float(np.mean(shown >= MIN_PSNR_DB)) if shown.size else 0.0
    finite = shown[np.isfinite(shown)]
    return {
        "frames": len(scores),
        "shown": int(shown.size),
        "median_db": _db(np.percentile(shown, 50, method="lower")) if shown.size else None,
        "p5_db": _db(np.percentile(shown, 5, method="lower")) if shown.size else None,
        "min_finite_db": round(float(finite.min()), 2) if finite.size else None,
        "share_ok": round(share, 3),
        "pass": bool(shown.size) and share >= MIN_PSNR_SHARE,
    }


def _db(value: float) -> float | str:
    """A PSNR for the table and JSON: "inf" where the region is pixel-exact."""
    return round(float(value), 2) if np.isfinite(value) else "inf"


def masked_laplacian_variance(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the Laplacian of the luma (0..255) over ``mask`` (the same measure as
    media.compose.laplacian_variance, restricted to a reference's pixels)."""
    from syncreel.media.compose import LUMA

    laplacian = ndimage.laplace(rgb[..., :3].astype(np.float32) @ LUMA)
    return float(laplacian[mask].var()) if mask.any() else 0.0


def sharpness(frame: np.ndarray, reference: np.ndarray, placement: Any) -> float | None:
    """Laplacian variance of the frame's region under ``placement`` over the reference's (RGBA, already at
    the placement's scale), on the reference's opaque pixels inside the frame; None when none shows."""
    x, y = placement.x, placement.y
    height, width = frame.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + reference.shape[1]), min(height, y + reference.shape[0])
    if x1 - x0 <= 2 * MASK_MARGIN or y1 - y0 <= 2 * MASK_MARGIN:
        return None
    part = reference[y0 - y : y1 - y, x0 - x : x1 - x]
    mask = ndimage.binary_erosion(part[..., 3] == 255, iterations=MASK_MARGIN, border_value=0)
    own = masked_laplacian_variance(part, mask)
    return masked_laplacian_variance(frame[y0:y1, x0:x1], mask) / own if own > 0 else None


def speech_span(
    samples: np.ndarray, rate: int, begin_s: float = 0.0, end_s: float | None = None
) -> tuple[float, float] | None:
    """(first start, last end) in seconds of the speech detected in ``samples`` between begin_s and end_s."""
    from syncreel.media.analysis import speech_segments

    segments = [
        (start, end)
        for start, end in speech_segments(samples, rate)
        if start >= begin_s and (end_s is None or start < end_s)
    ]
    return (segments[0][0], segments[-1][1]) if segments else None


def line_timing(
    stem: np.ndarray, rate: int, start_s: float, next_s: float | None, synthesized: np.ndarray, fps: float
) -> dict[str, Any]:
    """Where a line's speech is in the dialogue stem against its ``start_s``, and how long it lasts
    against the synthesized line's own speech."""
    frame = 1.0 / fps
    found = speech_span(stem, rate, max(0.0, start_s - 0.5), next_s)
    own = speech_span(synthesized, rate)
    own_s = own[1] - own[0] if own else 0.0
    if found is None:
        return {
            "onset_s": None,
            "delay_ms": None,
            "speech_s": 0.0,
            "synth_speech_s": round(own_s, 3),
            "share": 0.0,
            "pass": False,
        }
    delay = found[0] - start_s
    share = (found[1] - found[0]) / own_s if own_s else 0.0
    return {
        "onset_s": round(found[0], 3),
        "delay_ms": round(delay * 1000, 1),
        "speech_s": round(found[1] - found[0], 3),
        "synth_speech_s": round(own_s, 3),
        "share": round(share, 3),
        "pass": abs(delay) <= frame and share >= MIN_LINE_SHARE,
    }


# -- a run's masters ----------------------------------------------------------------------------------
@dataclass
class Master:
    scene_id: str
    language: str
    attempt: int
    path: Path
    stems: Path | None
    stem_names: list[str]
    composition: dict[str, Any]
    event_times_s: list[float]


def kept_masters(run_id: str | None = None) -> tuple[str, str, list[Master]]:
    """(run id, status, the master each scene job kept) from the configured state."""
    from sqlalchemy import select

    from syncreel.store import runs
    from syncreel.store.models import Asset, Generation, SceneJob, TaskOutput
    from syncreel.tasks.stage import get_runtime

    rt = get_runtime()
    masters = []
    with rt.session() as session:
        run = runs.get_run(session, run_id)
        jobs = session.scalars(select(SceneJob).where(SceneJob.run_id == run.id)).all()
        for job in sorted(jobs, key=lambda j: (j.scene_id, j.language)):
            if job.generation_id is None:
                continue
            generation = session.get(Generation, job.generation_id)
            asset = session.get(Asset, generation.asset_id)
            output = session.scalars(select(TaskOutput).where(TaskOutput.cache_key == generation.cache_key)).first()
            record = output.record if output is not None else {}
            stems = record.get("stems_uri")
            masters.append(
                Master(
                    job.scene_id,
                    job.language,
                    int(generation.parameters.get("attempt", 0)),
                    rt.store.fetch(asset.uri),
                    rt.store.fetch(stems) if stems else None,
                    list(record.get("stem_names", [])),
                    generation.parameters.get("composition", {}),
                    list(generation.parameters.get("event_times_s", [])),
                )
            )
        return run.id, str(run.status), masters


def lipsync_figures(run_id: str, master: Master) -> dict[str, Any] | None:
    """The QA's lip-sync numbers for the master's attempt."""
    from syncreel.store import runs
    from syncreel.tasks.stage import get_runtime

    subject = f"master:{master.scene_id}:{master.language}:a{master.attempt}"
    with get_runtime().session() as session:
        row = next((r for r in runs.qa_results(session, run_id) if r.subject == subject and r.check == "lipsync"), None)
        if row is None:
            return None
        return {
            "verdict": row.verdict,
            "offset_ms": _rounded(row.metrics.get("offset_ms"), 1),
            "confidence": _rounded(row.metrics.get("confidence"), 3),
            "status": row.metrics.get("status"),
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def decode(path: Path) -> tuple[list[Any], float]:
    from syncreel.media.probe import open_input

    with open_input(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        return list(container.decode(video=0)), fps


def reference_file(brief: Any, ref_id: str) -> Path:
    uri = brief.reference(ref_id).uri
    uri = uri.removeprefix("file://")
    path = Path(uri)
    return path if path.is_absolute() else Path(brief.base_uri.removeprefix("file://")) / path


def held_still(
    master: Master, frames: np.ndarray, fps: float, references: Any, sync: SyncExpectation, folder: Path
) -> dict[str, Any]:
    """The master's presenter held still (mouth closed, no head motion) over its own frames and sound,
    encoded like a master and judged by the lip-sync gate."""
    from syncreel.media.compose import FaceMotion, compose_scene
    from syncreel.media.encode import write_master
    from syncreel.media.normalize import read_audio
    from syncreel.media.syncqa import score_sync

    count = len(frames)
    still = compose_scene(frames, np.zeros((count, 1, 1, 3), np.uint8), references, face=FaceMotion.still(count))
    audio, rate = read_audio(master.path, 48_000, layout="stereo")
    path = folder / f"still-{master.scene_id}-{master.language}.mp4"
    write_master(still.frames, audio, fps, rate, path)
    report = score_sync(path, sync)
    return {
        "verdict": report.lipsync_verdict.verdict,
        "status": report.lipsync_verdict.status,
        "offset_ms": None if report.lipsync.offset_ms is None else round(report.lipsync.offset_ms, 1),
        "confidence": None if report.lipsync.confidence is None else round(report.lipsync.confidence, 3),
    }


def measure(brief_path: Path, run_id: str | None = None) -> dict[str, Any]:
    from syncreel import media
    from syncreel.media.compose import SceneReferences, packshot_at, placements_from, read_image, scaled
    from syncreel.media.faces import FaceDetector
    from syncreel.media.mix import RATE, read_stems
    from syncreel.media.syncqa import ANY_CLIP
    from syncreel.schemas.brief import load_brief
    from syncreel.schemas.settings import get_settings
    from syncreel.tasks.inputs import line_voice, sync_expectation

    brief = load_brief(brief_path)
    run, status, masters = kept_masters(run_id)
    detector = FaceDetector()
    rows: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="syncreel-fidelity-"))
    for master in masters:
        scene = next(s for s in brief.scenes if s.id == master.scene_id)
        where = f"{master.scene_id}/{master.language}"
        roles = {brief.reference(r).role: r for r in scene.references if brief.reference(r).kind == "image"}
        images = {role: read_image(reference_file(brief, ref)) for role, ref in roles.items()}
        decoded, fps = decode(master.path)
        rgb = [frame.to_ndarray(format="rgb24") for frame in decoded]
        placements = {role: placements_from(items) for role, items in master.composition.get("placements", {}).items()}

        if "character" in images:
            figures = identity(decoded, images["character"], detector)
            value = f"{figures['share_ok']:.0%} ≥ 0.85 (median {figures['median']}, p5 {figures['p5']}; "
            value += f"{figures['with_face']}/{figures['frames']} with a face)"
            rows.append(_row(where, "identity", value, "≥ 95% of frames", figures))
        if "product" in images and placements.get("product"):
            figures = packshot_fidelity(rgb, images["product"], placements["product"])
            value = f"{figures['share_ok']:.0%} ≥ 32 dB (median {figures['median_db']}, p5 {figures['p5_db']} dB; "
            value += f"shown in {figures['shown']}/{figures['frames']})"
            rows.append(_row(where, "packshot PSNR", value, "≥ 95% of frames", figures))
        for role in ("character", "product"):
            if role not in images or not placements.get(role):
                continue
            image = images[role]
            sampled = placements[role][:: max(1, len(placements[role]) // SHARPNESS_FRAMES)]
            ratios = []
            for placement in sampled:
                at_scale = packshot_at(image, placement.scale) if role == "product" else scaled(image, placement.scale)
                ratio = sharpness(rgb[placement.frame], at_scale, placement)
                if ratio is not None:
                    ratios.append(ratio)
            low = min(ratios) if ratios else 0.0
            figures = {"ratios": [round(r, 3) for r in ratios], "pass": bool(ratios) and low >= MIN_SHARPNESS_RATIO}
            value = f"lowest ratio {low:.2f} over {len(ratios)} frames"
            rows.append(_row(where, f"sharpness {role}", value, "≥ 0.50 of the reference", figures))

        if scene.dialogue:
            stems = read_stems(master.stems) if master.stems else None
            dialogue = (
                stems[master.stem_names.index("dialogue")]
                if stems is not None and "dialogue" in master.stem_names
                else None
            )
            engine = media.speech.engine_for(master.language, get_settings().piper_voices)
            starts = media.speech.line_starts([line.start_s for line in scene.dialogue], scene.duration_s)
            for number, (start, line) in enumerate(zip(starts, scene.dialogue, strict=True)):
                synthesized = engine.speak(
                    line.text[master.language], line_voice(brief, line.speaker, master.language), RATE
                )
                following = starts[number + 1] if number + 1 < len(starts) else None
                if dialogue is None:
                    figures = {"pass": False, "delay_ms": None, "speech_s": 0.0, "synth_speech_s": None, "share": 0.0}
                else:
                    figures = line_timing(dialogue, RATE, start, following, synthesized, fps)
                value = f"starts {figures['delay_ms']} ms after start_s {start:g}; "
                value += f"{figures['speech_s']} s of {figures['synth_speech_s']} s ({figures['share']:.0%})"
                threshold = f"±{1000 / fps:.0f} ms, ≥ 90%"
                rows.append(_row(where, f"line {number + 1} ({line.speaker})", value, threshold, figures))

        if any(line.on_screen for line in scene.dialogue):
            qa = lipsync_figures(run, master)
            if qa is not None:
                value = f"offset {qa['offset_ms']} ms, confidence {qa['confidence']} ({qa['status']})"
                figures = {**qa, "pass": qa["verdict"] == "pass"}
                rows.append(_row(where, "lip-sync (QA)", value, "the gate passes", figures))
            if "character" in images:
                background = next((images[r] for r in ("background", "style") if r in images), None)
                references = SceneReferences(
                    character=images["character"], product=images.get("product"), background=background
                )
                sync = sync_expectation(brief, scene, master) or ANY_CLIP
                ablation = held_still(master, np.stack(rgb), fps, references, sync, scratch)
                value = f"offset {ablation['offset_ms']} ms, confidence {ablation['confidence']} ({ablation['status']})"
                figures = {**ablation, "pass": ablation["verdict"] == "fail"}
                rows.append(_row(where, "lip-sync held still", value, "the gate fails", figures))
    return {"brief": str(brief_path), "run_id": run, "run_status": status, "rows": rows}


def _row(scene: str, measure: str, value: str, threshold: str, figures: dict[str, Any]) -> dict[str, Any]:
    """A table row: ``figures["pass"]`` is its verdict, the rest goes to the JSON."""
    return {
        "scene": scene,
        "measure": measure,
        "value": value,
        "threshold": threshold,
        "pass": bool(figures["pass"]),
        "figures": {k: v for k, v in figures.items() if k != "pass"},
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("scene", "measure", "value", "threshold", "verdict")
    table = [{**row, "verdict": "pass" if row["pass"] else "FAIL"} for row in rows]
    widths = [max(len(h), *(len(str(r[h])) for r in table)) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in table:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brief", type=Path, default=ROOT / "examples" / "briefs" / "lumen-fizz.yaml")
    parser.add_argument("--state", type=Path, help="An existing run's state folder (state.db, assets/): no new run.")
    parser.add_argument("--run", help="The run id (default: the newest in the state).")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    state = args.state or Path(tempfile.mkdtemp(prefix="syncreel-bench-"))
    from syncreel.schemas.settings import embedded_environment

    os.environ.update(embedded_environment(state))
    run_seconds = None
    if args.state is None:
        from syncreel.flows.campaign import produce_campaign
        from syncreel.schemas.brief import load_brief

        started = time.perf_counter()
        produce_campaign(load_brief(args.brief))
        run_seconds = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    result = measure(args.brief, args.run)
    result["run_seconds"], result["measure_seconds"] = run_seconds, round(time.perf_counter() - started, 1)
    rows = result["rows"]
    print_table(rows)
    passed = sum(row["pass"] for row in rows)
    print(
        f"{passed}/{len(rows)} rows pass  brief: {args.brief.name}, run {result['run_id']} ({result['run_status']}), "
        f"state: {state}; run {run_seconds} s, measures {result['measure_seconds']} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
