"""The media commands on real files: `syncreel qa` on the calibration clips, `syncreel analyze` on a click
track, `syncreel variants` on a master with a cut (JSON reports, thresholds, exit codes, errors by name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncreel.cli import app
from tests.fixtures.music import click_track, write_wav
from tests.fixtures.subjects import subject_master

FRAME_MS = 40.0


@pytest.fixture(scope="module")
def cut_master(tmp_path_factory: pytest.TempPathFactory):
    return subject_master(tmp_path_factory.mktemp("commands") / "cut.mp4", "cut")


def test_cli_qa_json_has_every_score(fast_set) -> None:
    case = fast_set["lip_plus180ms"][0]
    result = CliRunner().invoke(app, ["qa", case.path, "--json"])
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
    result = CliRunner().invoke(app, ["qa", synced])
    assert result.exit_code == 0, result.output
    assert "lipsync" in result.output and "in_sync" in result.output
    late = fast_set["lip_plus180ms"][0].path
    assert CliRunner().invoke(app, ["qa", late, "--max-audio-late-ms", "250"]).exit_code == 0


def test_cli_qa_names_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(app, ["qa", str(tmp_path / "missing.mp4"), str(broken)])
    assert result.exit_code == 2
    assert "missing.mp4: no such file" in result.output and "broken.mp4" in result.output


def test_analyze_command_prints_json_and_fails_on_a_bad_file(tmp_path: Path) -> None:
    samples, _ = click_track(120.0, 6.0, 0.5)
    track = write_wav(tmp_path / "bed.wav", samples)
    done = CliRunner().invoke(app, ["analyze", "--json", str(track)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["music"]["tempo_bpm"] == pytest.approx(120, abs=1)
    shown = CliRunner().invoke(app, ["analyze", str(track)])
    assert "tempo 120.0 BPM" in shown.output and "downbeats (4/4" in shown.output
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n")
    failed = CliRunner().invoke(app, ["analyze", "--json", str(bad)])
    assert failed.exit_code == 2 and "error" in json.loads(failed.output)[0]


def test_cli_variants_json_reports_spec_checks_loudness_and_crop_windows(cut_master, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("tiktok: {width: 270, height: 480}\nsquare: {width: 270, height: 270}\n")
    srt = tmp_path / "lines.srt"
    srt.write_text('1\n00:00:00,200 --> 00:00:01,500\nQuote "this": [now] 100% {\\b1}\n', encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["variants", str(cut_master[0]), "-p", "tiktok", "-p", "square", "--out", str(tmp_path / "out"),
         "--overrides", str(overrides), "--captions", str(srt), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # the still background only warns (frozen picture)
    report = json.loads(result.stdout)
    assert [r["platform"] for r in report] == ["tiktok", "square"]
    for entry in report:
        assert entry["verdict"] != "fail", [c for c in entry["checks"] if c["verdict"] == "fail"]
        assert {c["check"] for c in entry["checks"]} >= {"frame_size", "fps", "codecs", "loudness", "true_peak"}
        assert entry["loudness"]["output_lufs"] == pytest.approx(-14.0, abs=1.0)
        assert len(entry["crop_windows"]) == 90 and set(entry["crop_windows"][0]) == {"x", "y", "w", "h", "mode"}
        assert Path(entry["files"]["srt"]).is_file()
    bad = CliRunner().invoke(app, ["variants", str(cut_master[0]), "-p", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown platform" in bad.output
