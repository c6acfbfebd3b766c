"""The sync scorers on tests/fixtures/calibration.py's clips (real MP4s written by media/encode.py): the
recovered offset within one frame (40 ms) on every positive case, each negative rejected with its
own status (`syncreel qa` on them: tests/cli/test_media_commands.py).

The fast set is built once per test run (about 25 s on 2 shared cores) into pytest's cache folder and
reused while the recipe (the calibration script, the encoder, the world and speech code) is
unchanged; ``-m slow`` scores every shift of the full set."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from syncreel.media.syncqa import SyncReport

FRAME_MS = 40.0
EARLY_MS, LATE_MS = 45.0, 125.0  # the brief's defaults (ITU-R BT.1359)


@pytest.fixture(scope="module")
def full_set(calibration_folder: Path, calibration: ModuleType) -> dict:
    return calibration.score_cases(calibration.build(calibration_folder, full=True))


def expected_status(true_offset_ms: float) -> str:
    if true_offset_ms < -EARLY_MS:
        return "audio_early"
    return "audio_late" if true_offset_ms > LATE_MS else "in_sync"


def _score_and_verdict(case, report: SyncReport) -> tuple:
    if case.kind == "lipsync":
        return report.lipsync, report.lipsync_verdict
    return report.sfx, report.sfx_verdict


def check_positives(scored: dict, kind: str) -> None:
    problems, count = [], 0
    for case, report in scored.values():
        if case.kind != kind or case.negative:
            continue
        count += 1
        score, verdict = _score_and_verdict(case, report)
        error = None if score.offset_ms is None else score.offset_ms - case.true_offset_ms
        if error is None or abs(error) > FRAME_MS or verdict.status != expected_status(case.true_offset_ms):
            problems.append(f"{case.name}: found {score.offset_ms} ms ({verdict.status}), true {case.true_offset_ms}")
    assert count >= 3
    assert not problems, "\n".join(problems)


def check_negatives(scored: dict, kind: str) -> None:
    problems, count = [], 0
    for case, report in scored.values():
        if case.kind != kind or not case.negative:
            continue
        count += 1
        _, verdict = _score_and_verdict(case, report)
        rejected = verdict.verdict == "fail" or case.expected_status in ("no_motion", "no_onsets")
        if verdict.status != case.expected_status or not rejected:
            problems.append(f"{case.name}: {verdict.status}/{verdict.verdict}, expected {case.expected_status}")
    assert count >= 2
    assert not problems, "\n".join(problems)


def test_lipsync_offsets_within_a_frame(fast_set) -> None:
    check_positives(fast_set, "lipsync")


def test_lipsync_negatives_rejected(fast_set) -> None:
    check_negatives(fast_set, "lipsync")


def test_sfx_offsets_within_a_frame(fast_set) -> None:
    check_positives(fast_set, "sfx")


def test_sfx_negatives_rejected(fast_set) -> None:
    check_negatives(fast_set, "sfx")


def test_confidence_separates_matched_from_mismatched_speech(fast_set) -> None:
    matched = [r.lipsync.confidence for c, r in fast_set.values() if c.kind == "lipsync" and not c.negative]
    mismatched = fast_set["lip_mismatched"][1].lipsync.confidence
    assert min(matched) > 0.7 and mismatched < 0.4


def test_drifting_clip_drifts_50_ms_per_second(fast_set) -> None:
    report = fast_set["lip_drifting"][1]
    assert report.lipsync.drift_ms_per_s == pytest.approx(50, abs=8)
    offsets = [w.offset_ms for w in report.lipsync.windows]
    assert offsets == sorted(offsets) and offsets[-1] - offsets[0] > 200  # the curve a report plots


def test_small_face_and_24fps_are_tracked_throughout(fast_set) -> None:
    for name in ("lip_smallface_minus100ms", "lip_24fps_minus160ms"):
        assert fast_set[name][1].lipsync.face_share > 0.95, name


def test_event_table_offsets(fast_set) -> None:
    case, report = fast_set["sfx_plus200ms"]
    rows = [row for row in report.sfx.events if row.offset_ms is not None]
    assert len(rows) >= 0.8 * len(case.events_s)
    assert sorted(row.offset_ms for row in rows)[len(rows) // 2] == pytest.approx(200, abs=15)


@pytest.mark.slow
def test_full_calibration_set(full_set) -> None:
    for kind in ("lipsync", "sfx"):
        check_positives(full_set, kind)
        check_negatives(full_set, kind)
