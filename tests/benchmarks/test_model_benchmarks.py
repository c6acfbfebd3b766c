"""The model benchmarks run end to end on tiny untrained checkpoints and write the JSON they print
(the real figures come from the shipped checkpoints; see docs/model.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from syncreel.model.checkpoint import save_checkpoint
from syncreel.model.config import sequential, tiny
from syncreel.model.transformer import DualTowerTransformer

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    joint, baseline = folder / "joint.safetensors", folder / "sequential.safetensors"
    save_checkpoint(DualTowerTransformer(tiny()), joint)
    save_checkpoint(DualTowerTransformer(sequential(tiny())), baseline)
    return joint, baseline


def test_model_sync_reports_every_row(checkpoints, tmp_path):
    joint, baseline = checkpoints
    out = tmp_path / "sync.json"
    printed = run(
        "model_sync.py", "--checkpoint", str(joint), "--baseline", str(baseline), "--clips", "2", "--steps", "1",
        "--seconds", "2", "--audio-lag", "1", "--json", str(out),
    )  # fmt: skip
    figures = json.loads(out.read_text())
    lag = 1.0  # with a lag, the text rows are also measured without it
    assert [(r["model"], r["mode"], r["sync_guidance"], r["audio_lag"]) for r in figures["rows"]] == [
        ("world (ground truth)", "-", None, None), ("joint", "text", 1.0, lag), ("joint", "text", 2.0, lag),
        ("joint", "text", 3.5, lag), ("sequential", "text", 1.0, lag), ("joint", "text", 1.0, 0.0),
        ("sequential", "text", 1.0, 0.0), ("joint", "video-to-audio", 1.0, None),
        ("sequential", "video-to-audio", 1.0, None), ("joint", "audio-to-video", 1.0, None),
        ("sequential", "audio-to-video", 1.0, None),
    ]  # fmt: skip
    low, high = figures["rows"][0]["above_chance_ci95"]  # the world's own clips: well above chance
    assert low <= figures["rows"][0]["above_chance"] <= high
    # Given streams come back as given: the video-to-audio rows see the world's own picture events,
    # the audio-to-video rows its own sounds.
    by_mode = {(r["model"], r["mode"]): r for r in figures["rows"]}
    assert by_mode["joint", "video-to-audio"]["visual_events"] == figures["rows"][0]["visual_events"]
    truth = figures["rows"][0]
    assert truth["visual_events"] > 0 and truth["within_1_frame"] > 0.5  # the detectors work on real clips
    assert truth["chance_f1"] is not None  # two clips of each kind: one's picture against the other's sound
    compared = figures["joint_minus_sequential"]
    assert [(c["mode"], c["sync_guidance"]) for c in compared] == [
        ("text", 1.0), ("text", 2.0), ("text", 3.5), ("video-to-audio", 1.0), ("audio-to-video", 1.0)
    ]  # fmt: skip
    assert all(c["ci95"][0] <= c["ci95"][1] for c in compared)
    assert "joint minus sequential" in printed
    assert "world (ground truth)" in printed and "±1 frame" in printed


def test_model_cpu_and_gpu_benchmarks_write_their_figures(checkpoints, tmp_path):
    out = tmp_path / "cpu.json"
    run("model_cpu.py", "--checkpoint", str(checkpoints[0]), "--seconds", "1", "--steps", "1", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 and all(r["generate_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    out = tmp_path / "gpu.json"
    run("model_gpu.py", "--device", "cpu", "--config", "tiny", "--batch", "1", "--seconds", "1", "--steps", "1",
        "--json", str(out))  # fmt: skip
    figures = json.loads(out.read_text())
    assert figures["measured"] and figures["rows"][0]["tflop_per_step"] >= 0
    assert figures["rows"][0]["tokens_per_s"] > 0


def test_joint_minus_sequential_is_paired_over_the_same_clips():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from model_sync import joint_minus_sequential

    rng = np.random.default_rng(1)
    events = [tuple(sorted(rng.uniform(0, 4, 5).round(3))) for _ in range(12)]
    on_the_events = [(e, tuple(t + 0.01 for t in e)) for e in events]
    ignoring_them = [(e, tuple(sorted(rng.uniform(0, 4, 5).round(3)))) for e in events]
    better = joint_minus_sequential(on_the_events, ignoring_them, frame_ms=80)
    assert better["difference"] > 0.5 and better["ci95"][0] > 0.3  # sound on every event, against sound anywhere
    same = joint_minus_sequential(ignoring_them, ignoring_them, frame_ms=80)
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0]}  # paired draws: identical rows differ by nothing
