"""The whole pipeline: a small real campaign through the Prefect flow, a cached re-run, and a crash.

These start real processes and a Prefect server, so they are marked slow; CI runs them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from syncreel.schemas.settings import embedded_environment
from tests.fixtures.briefs import small_brief

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"

pytestmark = pytest.mark.slow


def env_for(state: Path) -> dict[str, str]:
    (state / "prefect").mkdir(parents=True, exist_ok=True)
    return {**os.environ, **embedded_environment(state)}


def syncreel(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncreel.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        return {
            "vcodec": video.codec_context.name,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "acodec": audio.codec_context.name,
            "rate": audio.codec_context.sample_rate,
        }


def check_campaign_complete(state: Path, out: Path, run_json: dict) -> None:
    db = state / "state.db"
    assert run_json["status"] in ("succeeded", "needs_review"), run_json
    assert query(db, "select count(*) from campaign_runs") == [(1,)]
    # One deliverable row per language × platform, each with a real H.264 + AAC file of the platform's size.
    rows = query(db, "select language, platform from deliverables order by 1, 2")
    assert rows == [("en", "square"), ("en", "tiktok"), ("es", "square"), ("es", "tiktok")]
    sizes = {"tiktok": (216, 384), "square": (240, 240)}
    for language, platform in rows:
        file = out / "small-test" / language / f"small-test_{language}_{platform}.mp4"
        info = probe(file)
        assert (info["vcodec"], info["acodec"]) == ("h264", "aac")
        assert (info["width"], info["height"]) == sizes[platform]
    # Nothing half-done: no generation still "running", no scene job stuck before QA.
    assert query(db, "select count(*) from generations where status != 'succeeded'") == [(0,)]
    assert query(db, "select count(*) from scene_jobs where status not in ('passed', 'needs_review')") == [(0,)]
    # Every asset row points at a file that exists, and no temp files linger in the store.
    for (uri,) in query(db, "select uri from assets"):
        assert Path(uri.removeprefix("file://")).is_file(), uri
    assert not [p for p in (state / "assets").rglob("*") if p.is_file() and ".tmp" in p.name]
    manifest = json.loads((out / "small-test" / "manifest.json").read_text())
    assert run_json["run_id"] in (out / "small-test" / "report.html").read_text()  # the QA report beside it
    assert len(manifest["deliverables"]) == 4 and manifest["run_id"] == run_json["run_id"]
    for entry in manifest["deliverables"]:
        assert Path(entry["url"].removeprefix("file://")).is_file()
        assert entry["qa"]["verdict"] in ("pass", "warn", "fail") and entry["spec"]["name"] == entry["platform"]


def test_campaign_runs_end_to_end_then_rerun_is_fully_cached(tmp_path):
    brief = small_brief(tmp_path)
    state, out = tmp_path / "state", tmp_path / "out"
    env = env_for(state)
    first = syncreel("run", str(brief), "--out", str(out), "--json", env=env)
    assert first.returncode in (0, 3), first.stdout + first.stderr
    summary = json.loads(first.stdout)
    check_campaign_complete(state, out, summary)
    assert summary["generated"] >= 4 and summary["reused"] == 0  # 4 scenes, and any regenerations

    second = syncreel("run", str(brief), "--out", str(out), "--json", env=env)
    again = json.loads(second.stdout)
    assert again["run_id"] == summary["run_id"]
    assert again["generated"] == 0 and again["reused"] == summary["generated"]
    assert not any(d["cached"] is False for d in again["deliverables"])
    assert [d["sha256"] for d in again["deliverables"]] == [d["sha256"] for d in summary["deliverables"]]
    check_campaign_complete(state, out, again)
    assert query(state / "state.db", "select attempts from campaign_runs") == [(2,)]

    shown = syncreel("show", summary["run_id"][:8], "--json", env=env)
    detail = json.loads(shown.stdout)
    assert len(detail["deliverables"]) == 4 and len(detail["scene_jobs"]) == 4
    assert {row["verdict"] for row in detail["qa_results"]} <= {"pass", "warn", "fail"}
    listed = syncreel("runs", env=env)
    assert summary["run_id"] in listed.stdout

    # What a person reads in an 80-column terminal: a table row per deliverable, none wrapped.
    shown_run = syncreel("run", str(brief), "--out", str(out), env={**env, "COLUMNS": "80"})
    assert shown_run.returncode in (0, 3), shown_run.stdout + shown_run.stderr
    lines = shown_run.stdout.splitlines()
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 4 and max(len(line) for line in rows) <= 80, shown_run.stdout
    assert {tuple(cell.strip() for cell in row.strip("│").split("│"))[:2] for row in rows} == {
        ("en", "square"),
        ("en", "tiktok"),
        ("es", "square"),
        ("es", "tiktok"),
    }
    assert f"files: {out / 'small-test'}/<language>/small-test_<language>_<platform>.mp4" in lines


def test_sigkill_during_generation_then_rerun_completes_without_duplicates(tmp_path):
    brief = small_brief(tmp_path, scene_seconds=3.0)
    state, out = tmp_path / "state", tmp_path / "out"
    env = env_for(state)
    db = state / "state.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "syncreel.cli", "run", str(brief), "--out", str(out), "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        killed_while_generating = False
        while time.monotonic() < deadline and process.poll() is None:
            if db.exists():
                try:
                    done = query(db, "select count(*) from generations where status = 'succeeded'")[0][0]
                    busy = query(db, "select count(*) from scene_jobs where status = 'generating'")[0][0]
                except sqlite3.OperationalError:  # tables not migrated yet
                    done = busy = 0
                if done >= 1 and busy >= 1:
                    os.killpg(process.pid, signal.SIGKILL)
                    killed_while_generating = True
                    break
            time.sleep(0.05)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert killed_while_generating, "the run finished or stalled before a scene was mid-generation"
    assert query(db, "select status from campaign_runs") == [("running",)]
    assert not (out / "small-test" / "manifest.json").exists()

    resumed = syncreel("run", str(brief), "--out", str(out), "--json", env=env)
    assert resumed.returncode in (0, 3), resumed.stdout + resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["reused"] >= 1, "the scene finished before the kill must not be generated again"
    check_campaign_complete(state, out, summary)
    assert query(db, "select count(*) = count(distinct cache_key) from generations") == [(1,)]
    assert query(db, "select count(distinct scene_id || language) from generations") == [(4,)]
