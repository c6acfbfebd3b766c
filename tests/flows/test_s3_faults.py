"""The S3 store stopped mid-upload and started again: the campaign finishes, nothing lost or duplicated.

`syncreel run` in its own process on the embedded SQLite state (no Prefect server), its assets on an S3 API
server on 127.0.0.1: moto behind a journal (tests/fixtures/s3_server.py), so that a server killed and started
again still holds every object it acknowledged, as S3 would. The server is SIGKILLed as soon as the first
scene's master is stored (the scene's stems upload comes right after it), and started on the same port
OUTAGE_S seconds later. Marked slow (one campaign, about a minute on two cores).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.fixtures.stack import (
    ROOT,
    check_stored_once,
    free_port,
    kill_tree,
    s3_objects,
    start,
    stop,
    tiny_brief,
    wait_for,
)

pytestmark = pytest.mark.slow

BUCKET = "syncreel-faults"
OUTAGE_S = 4.0  # how long the port stays closed before the new server starts (which takes 1-3 s more)


def start_s3(port: int, journal: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    server = start(
        [sys.executable, "-m", "tests.fixtures.s3_server", "--port", str(port), "--journal", str(journal)], env, log
    )

    def listening() -> bool:
        assert server.poll() is None, log.read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 60, "the S3 server", 0.1)
    return server


def test_s3_stopped_mid_upload_and_restarted_loses_and_duplicates_nothing(tmp_path: Path):
    port, journal, logs = free_port(), tmp_path / "s3.journal", tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "SYNCREEL_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "SYNCREEL_STORAGE_URL": f"s3://{BUCKET}/assets",
        "SYNCREEL_WORK_DIR": str(tmp_path / "work"),
    }
    for name in ("PREFECT_API_URL", "SYNCREEL_GPU_DEPLOYMENT"):
        env.pop(name, None)
    servers = [start_s3(port, journal, env, logs / "s3-first.log")]
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    brief = tiny_brief(tmp_path / "brief.yaml", "s3-fault", scenes=3)
    command = [sys.executable, "-m", "syncreel.cli", "run", str(brief), "--json", "--out", str(tmp_path / "out")]
    with (logs / "run.out").open("w") as out, (logs / "run.err").open("w") as err:
        run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
    try:
        wait_for(
            lambda: run.poll() is not None or "/master/" in journal.read_text(),
            600,
            "the first master in the store",
            0.1,
        )
        assert run.poll() is None, (logs / "run.err").read_text()[-4000:]
        kill_tree(servers[0].pid)
        servers[0].wait(timeout=10)
        stopped_at, stored_before = time.monotonic(), len(journal.read_text().splitlines())
        time.sleep(OUTAGE_S)
        servers.append(start_s3(port, journal, env, logs / "s3-second.log"))
        outage = time.monotonic() - stopped_at
        run.wait(timeout=600)
        objects = s3_objects(client, BUCKET)
    finally:
        stop([run, *servers])
    assert run.returncode in (0, 3), (logs / "run.err").read_text()[-4000:]
    outcome = json.loads((logs / "run.out").read_text())
    assert outcome["status"] in ("succeeded", "needs_review"), outcome
    stored_after = len(journal.read_text().splitlines()) - stored_before
    assert f"replayed {stored_before} writes" in (logs / "s3-second.log").read_text()
    assert stored_after > 0  # the run went on storing after the restart
    check_stored_once(env["SYNCREEL_DATABASE_URL"], objects, BUCKET, outcome["run_id"])
    assert f"assets/runs/{outcome['run_id']}/manifest.json" in objects
    print(
        f"S3 down {outage:.1f} s after {stored_before} writes; the run stored {stored_after} more and finished "
        f"{outcome['status']}: {len(objects)} objects, each once"
    )
