"""How well and how fast the sync scorers measure: over tests/fixtures/calibration.py's full set, the
offset error on clips with a known shift, the share of faulty clips rejected with the right status,
and the speed on this CPU as a realtime factor for a 1080p 25 fps talking-face clip.

    python benchmarks/qa.py [--cache DIR] [--seconds 8] [--json FILE]

The clips are written once into ``--cache`` (default .syncreel/calibration) and reused while the
recipe is unchanged. Speed: seconds of clip scored per second of wall time — the sync scores (a
decode: face landmarks on every frame, motion, sound) and the technical QC (a decode for black and
frozen pictures, ffmpeg's pass over the sound) apart, one after the other (two decodes), and
together from one decode (`media.syncqa.qa_checks`, as the pipeline runs them); on a shared machine,
the load average printed beside it says how shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncreel.media.faces import FaceTracker  # noqa: E402
from syncreel.media.probe import probe  # noqa: E402
from syncreel.media.qc import Expectation, run_checks  # noqa: E402
from syncreel.media.syncqa import ANY_CLIP, qa_checks, score_sync  # noqa: E402
from tests.fixtures import calibration  # noqa: E402

FRAME_MS = 40.0
EARLY_MS, LATE_MS = 45.0, 125.0


def _expected(true_offset_ms: float) -> str:
    if true_offset_ms < -EARLY_MS:
        return "audio_early"
    return "audio_late" if true_offset_ms > LATE_MS else "in_sync"


def accuracy(cases: list, tracker: FaceTracker) -> tuple[dict, list[dict]]:
    """Score every case; the figures per kind and a row per clip."""
    rows = []
    for case in cases:
        report = score_sync(case.path, calibration.expectation(case), tracker=tracker)
        score, verdict = (
            (report.lipsync, report.lipsync_verdict) if case.kind == "lipsync" else (report.sfx, report.sfx_verdict)
        )
        row = {
            "case": case.name,
            "kind": case.kind,
            "truth": case.expected_status or case.true_offset_ms,
            "offset_ms": None if score.offset_ms is None else round(score.offset_ms, 1),
            "confidence": None if score.confidence is None else round(score.confidence, 3),
            "status": verdict.status,
            "verdict": verdict.verdict,
        }
        if case.negative:
            row["ok"] = verdict.status == case.expected_status
        else:
            row["error_ms"] = None if score.offset_ms is None else round(score.offset_ms - case.true_offset_ms, 1)
            row["ok"] = row["error_ms"] is not None and abs(row["error_ms"]) <= FRAME_MS
            row["ok"] = row["ok"] and verdict.status == _expected(case.true_offset_ms)
        rows.append(row)
    figures = {}
    for kind in ("lipsync", "sfx"):
        positives = [r for r in rows if r["kind"] == kind and "error_ms" in r]
        negatives = [r for r in rows if r["kind"] == kind and "error_ms" not in r]
        errors = [abs(r["error_ms"]) for r in positives if r["error_ms"] is not None]
        figures[kind] = {
            "positives": len(positives),
            "mean_abs_error_ms": round(float(np.mean(errors)), 1) if errors else None,
            "max_abs_error_ms": round(float(np.max(errors)), 1) if errors else None,
            "within_1_frame": round(sum(r["ok"] for r in positives) / len(positives), 3) if positives else None,
            "negatives": len(negatives),
            "negatives_rejected": round(sum(r["ok"] for r in negatives) / len(negatives), 3) if negatives else None,
        }
    return figures, rows


def speed(folder: Path, seconds: float, tracker: FaceTracker) -> dict:
    """Realtime factors for a 1920×1080 25 fps clip of a talking face (the face about 500 px wide)."""
    path = folder / f"speed_1080p_{seconds:g}s.mp4"
    if not path.is_file():
        line = " ".join(calibration.LINES[i] for i in range(int(seconds // 1.2) + 1))
        clip = calibration.lipsync_clip(path.with_suffix(".tmp.mp4"), line=line, voice="en", size=(1920, 1080),
                                        face_px=1000, at=(0.5, 0.5))  # fmt: skip
        clip.rename(path)
    duration = probe(path).duration_s
    load = os.getloadavg()[0]
    start = time.perf_counter()
    score_sync(path, tracker=tracker)
    sync_s = time.perf_counter() - start
    start = time.perf_counter()
    run_checks(path, Expectation())  # probe, measure, every technical check
    qc_s = time.perf_counter() - start
    start = time.perf_counter()
    qa_checks(path, Expectation(), ANY_CLIP, tracker=tracker)  # both from one decode, as the pipeline runs them
    both_s = time.perf_counter() - start
    return {
        "clip": "1920x1080 25 fps talking face",
        "duration_s": round(duration, 2),
        "sync_seconds": round(sync_s, 2),
        "sync_realtime_factor": round(duration / sync_s, 2),
        "qc_seconds": round(qc_s, 2),
        "qc_realtime_factor": round(duration / qc_s, 2),
        "total_realtime_factor": round(duration / both_s, 2),
        "total_seconds": round(both_s, 2),
        "one_after_the_other_realtime_factor": round(duration / (sync_s + qc_s), 2),
        "cpus": os.cpu_count(),
        "load_average": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".syncreel" / "calibration")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the 1080p speed clip")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    started = time.perf_counter()
    cases = calibration.build(args.cache, full=True)
    built_s = time.perf_counter() - started
    tracker = FaceTracker()
    figures, rows = accuracy(cases, tracker)
    timing = speed(args.cache, args.seconds, tracker)

    print(f"calibration set: {len(cases)} clips (built or reused in {built_s:.0f} s) under {args.cache}")
    print(f"{'case':28} {'truth':>13} {'found ms':>9} {'conf':>6}  {'status':13} ok")
    for row in rows:
        truth = row["truth"] if isinstance(row["truth"], str) else f"{row['truth']:+.0f} ms"
        found = "–" if row["offset_ms"] is None else f"{row['offset_ms']:+.0f}"
        conf = "–" if row["confidence"] is None else f"{row['confidence']:.2f}"
        print(f"{row['case']:28} {truth:>13} {found:>9} {conf:>6}  {row['status']:13} {'yes' if row['ok'] else 'NO'}")
    print()
    print(f"{'scorer':9} {'positives':>9} {'mean |err| ms':>14} {'max |err| ms':>13} {'within 40 ms':>13} "
          f"{'negatives':>9} {'rejected':>9}")  # fmt: skip
    for kind, f in figures.items():
        print(f"{kind:9} {f['positives']:>9} {f['mean_abs_error_ms']!s:>14} {f['max_abs_error_ms']!s:>13} "
              f"{f['within_1_frame']:>13.0%} {f['negatives']:>9} {f['negatives_rejected']:>9.0%}")  # fmt: skip
    print()
    print(f"speed on this CPU ({timing['cpus']} cores, load average {timing['load_average']}), "
          f"{timing['clip']}, {timing['duration_s']} s:")  # fmt: skip
    print(f"  sync scores   {timing['sync_seconds']:6.2f} s  {timing['sync_realtime_factor']:5.2f}× realtime")
    print(f"  technical QC  {timing['qc_seconds']:6.2f} s  {timing['qc_realtime_factor']:5.2f}× realtime")
    print(f"  one, then the other {timing['sync_seconds'] + timing['qc_seconds']:6.2f} s  "
          f"{timing['one_after_the_other_realtime_factor']:5.2f}× realtime")  # fmt: skip
    print(f"  together      {timing['total_seconds']:6.2f} s  "
          f"{timing['total_realtime_factor']:5.2f}× realtime (one decode, as the pipeline runs them; "
          f"target ≥ 5×)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"accuracy": figures, "cases": rows, "speed": timing}, indent=2))


if __name__ == "__main__":
    main()
