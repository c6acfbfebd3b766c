"""The sync scorers on benchmarks/calibration.py's clips (real MP4s written by media/encode.py): the
recovered offset within one frame (40 ms) on every positive case, each negative rejected with its
own status; and `syncreel qa` on them.

The fast set is built once per test run (about 25 s on 2 shared cores) into pytest's cache folder and
reused while the recipe (the calibration script, the encoder, the world and speech code) is
unchanged; ``-m slow`` scores every shift of the full set."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from syncreel.cli import app
from syncreel.media.faces import FaceTracker
from syncreel.media.syncqa import SyncReport, score_sync
from typer.testing import CliRunner

FRAME_MS = 40.0
EARLY_MS, LATE_MS = 45.0, 125.0  # the brief's defaults (ITU-R BT.1359)


def _folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("syncreel-calibration")) if cache is not None else tmp_path_factory.mktemp("calibration")


def _scored(cases: list) -> dict[str, tuple[object, SyncReport]]:
    tracker = FaceTracker()
    return {
        case.name: (
            case,
            score_sync(case.path, speaker_expected=case.kind == "lipsync", events_s=case.events_s, tracker=tracker),
        )
        for case in cases
    }


@pytest.fixture(scope="module")
def fast_set(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, calibration: ModuleType) -> dict:
    return _scored(calibration.build(_folder(request, tmp_path_factory)))


@pytest.fixture(scope="module")
def full_set(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, calibration: ModuleType) -> dict:
    return _scored(calibration.build(_folder(request, tmp_path_factory), full=True))


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


runner = CliRunner()


def test_cli_qa_json_has_every_score(fast_set) -> None:
    case = fast_set["lip_plus180ms"][0]
    result = runner.invoke(app, ["qa", case.path, "--json"])
    assert result.exit_code == 1, result.output  # audio 180 ms late fails
    records = json.loads(result.stdout[result.stdout.index("[") :])
    checks = {check["check"]: check for check in records[0]["checks"]}
    assert {"duration", "codecs", "loudness", "true_peak", "lipsync", "sfx_sync"} <= set(checks)
    lip = checks["lipsync"]
    assert lip["verdict"] == "fail" and lip["metrics"]["status"] == "audio_late"
    assert lip["metrics"]["offset_ms"] == pytest.approx(180, abs=FRAME_MS)
    assert len(lip["metrics"]["windows"]) >= 2 and len(lip["metrics"]["correlation"]) == 31
    assert records[0]["verdict"] == "fail"


def test_cli_qa_passes_a_synced_clip_and_takes_thresholds(fast_set) -> None:
    synced = fast_set["lip_plus000ms"][0].path
    result = runner.invoke(app, ["qa", synced])
    assert result.exit_code == 0, result.output
    assert "lipsync" in result.output and "in_sync" in result.output
    late = fast_set["lip_plus180ms"][0].path
    assert runner.invoke(app, ["qa", late, "--max-audio-late-ms", "250"]).exit_code == 0


def test_cli_qa_names_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    result = runner.invoke(app, ["qa", str(tmp_path / "missing.mp4"), str(broken)])
    assert result.exit_code == 2
    assert "missing.mp4: no such file" in result.output and "broken.mp4" in result.output
