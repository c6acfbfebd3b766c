"""The run lock with real `syncreel run` processes on one brief and one embedded state (SQLite, a local
asset folder), each process with its own Prefect home and output folder as if on its own machine:

- the owner stopped (SIGSTOP) past a short lease: a second run takes over and finishes; the owner,
  resumed (SIGCONT) while the taker works, stands down without writing anything;
- two runs started at once: one produces, the other refuses and names the live owner.

Afterwards the deliverable is there once, every asset row's file exists and no row is left running.
The brief is the small one cut to one language and one platform (two scenes); each test takes about
1.5 minutes on two cores, most of it two Prefect start-ups and one campaign.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from syncreel.schemas.settings import embedded_environment
from tests.fixtures.briefs import small_brief
from tests.flows.test_campaign import probe, query

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 6  # the settings' floor is 5 s; the owner writes its heartbeat every 2 s

pytestmark = pytest.mark.slow


def lean_brief(folder: Path) -> Path:
    """The small brief in English for TikTok only: two scenes, one spot, one deliverable."""
    path = small_brief(folder)
    data = yaml.safe_load(path.read_text())
    data["languages"], data["platforms"] = ["en"], ["tiktok"]
    data["platform_overrides"] = {"tiktok": data["platform_overrides"]["tiktok"]}
    for scene in data["scenes"]:
        for line in scene.get("dialogue", []):
            line["text"] = {"en": line["text"]["en"]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Run(NamedTuple):
    """A ``syncreel run`` process: its own output folder, and the files its stdout and stderr go to."""

    process: subprocess.Popen[bytes]
    out: Path
    stdout: Path
    stderr: Path

    def summary(self) -> dict:
        return json.loads(self.stdout.read_text())


def start_run(brief: Path, state: Path, name: str) -> Run:
    """``syncreel run BRIEF --json`` in its own process group, with its own Prefect home and output folder."""
    env = {
        **os.environ,
        **embedded_environment(state),
        "PREFECT_HOME": str(state / f"prefect-{name}"),
        "SYNCREEL_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    (state / f"prefect-{name}").mkdir(parents=True, exist_ok=True)
    folder = state.parent
    out, stdout, stderr = folder / f"out-{name}", folder / f"{name}.json", folder / f"{name}.err"
    with stdout.open("wb") as stdout_file, stderr.open("wb") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncreel.cli", "run", str(brief), "--out", str(out), "--json"],
            env=env,
            cwd=ROOT,
            stdout=stdout_file,
            stderr=stderr_file,
            start_new_session=True,
        )
    return Run(process, out, stdout, stderr)


def wait_for(condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:  # not migrated yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_all(*runs: Run) -> None:
    for run in runs:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGCONT)
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


def owner_name(run: Run) -> str:
    return f"{socket.gethostname()}:{run.process.pid}"


def check_produced_once(state: Path, run: Run, attempts: int) -> None:
    """The campaign finished by ``run``: its deliverable once, in the store and exported, every asset
    row's file present, no temporary file left, no run, scene or generation row left running."""
    db, summary = state / "state.db", run.summary()
    assert summary["status"] in ("succeeded", "needs_review"), summary
    assert query(db, "select status, attempts, owner from campaign_runs") == [(summary["status"], attempts, None)]
    assert query(db, "select language, platform from deliverables") == [("en", "tiktok")]
    assert query(db, "select count(*) from assets where kind = 'deliverable'") == [(1,)]
    assert query(db, "select count(*) from generations where status != 'succeeded'") == [(0,)]
    assert query(db, "select count(*) from scene_jobs where status not in ('passed', 'needs_review')") == [(0,)]
    for (uri,) in query(db, "select uri from assets"):
        assert Path(uri.removeprefix("file://")).is_file(), uri
    assert not [path for path in (state / "assets").rglob("*") if path.is_file() and ".tmp" in path.name]
    exported = run.out / "small-test" / "en" / "small-test_en_tiktok.mp4"
    assert sorted(run.out.rglob("*.mp4")) == [exported]
    info = probe(exported)
    assert (info["vcodec"], info["acodec"], info["width"], info["height"]) == ("h264", "aac", 216, 384)
    manifest = json.loads((run.out / "small-test" / "manifest.json").read_text())
    assert manifest["run_id"] == summary["run_id"] and len(manifest["deliverables"]) == 1


def test_an_owner_stopped_past_its_lease_is_taken_over_and_stands_down_when_resumed(tmp_path):
    brief = lean_brief(tmp_path)
    state = tmp_path / "state"
    db = state / "state.db"
    owner = start_run(brief, state, "owner")
    taker = None
    try:
        # Stopped mid-generation: one scene made, the next one's compute under way.
        wait_for(
            lambda: (
                db.exists()
                and query(db, "select count(*) from generations where status = 'succeeded'")[0][0] >= 1
                and query(db, "select count(*) from scene_jobs where status = 'generating'")[0][0] >= 1
            ),
            "the owner to be mid-generation",
        )
        os.kill(owner.process.pid, signal.SIGSTOP)
        time.sleep(LEASE_SECONDS + 1)
        taker = start_run(brief, state, "taker")
        wait_for(lambda: query(db, "select attempts from campaign_runs") == [(2,)], "the takeover")
        assert query(db, "select owner from campaign_runs") == [(owner_name(taker),)]
        os.kill(owner.process.pid, signal.SIGCONT)  # while the taker works

        assert owner.process.wait(timeout=240) == 1
        stood_down = owner.stderr.read_text()
        assert f"was taken over by {owner_name(taker)}" in stood_down, stood_down
        assert taker.process.wait(timeout=400) in (0, 3), taker.stderr.read_text()
    finally:
        stop_all(owner, *([taker] if taker else []))
    check_produced_once(state, taker, attempts=2)
    assert taker.summary()["reused"] >= 1, "the scene the owner finished is not generated again"
    assert not owner.out.exists()  # the owner exported nothing


def test_two_runs_of_one_brief_started_at_once_produce_it_once(tmp_path):
    brief = lean_brief(tmp_path)
    state = tmp_path / "state"
    both = [start_run(brief, state, "first"), start_run(brief, state, "second")]
    try:
        codes = [run.process.wait(timeout=400) for run in both]
    finally:
        stop_all(*both)
    produced = [run for run, code in zip(both, codes, strict=True) if code in (0, 3)]
    refused = [run for run, code in zip(both, codes, strict=True) if code == 1]
    assert len(produced) == 1 and len(refused) == 1, codes
    refusal = refused[0].stderr.read_text()
    assert f"is being produced by {owner_name(produced[0])}" in refusal, refusal
    check_produced_once(state, produced[0], attempts=1)
    assert not refused[0].out.exists()
