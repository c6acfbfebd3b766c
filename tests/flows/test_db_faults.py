"""A campaign survives its Postgres going away mid-run: every connection to the run-state database is
reset while scenes are being generated and new ones are refused for a few seconds, as during a restart
or a failover (through a TCP proxy in front of the local PostgreSQL, tests/fixtures/proxy.py, so that the
server other tests share keeps running). The stage that lost its connection is tried again
(tasks/stage.py, ``connection_dropped``), the run lock's heartbeat writes again once the database is back,
and the run finishes with nothing lost or written twice. Marked slow (a small campaign, about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from syncreel.schemas.settings import embedded_environment
from tests.fixtures.briefs import small_brief
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.stack import query

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE_S = 4.0


@pytest.fixture
def database(postgres_url: str) -> Iterator[tuple[str, str, TcpProxy]]:
    """(direct URL, URL through the proxy, the proxy) of a database of this test's own."""
    base = make_url(postgres_url)
    name = f"{base.database}_faults"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    direct = base.set(database=name)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432)).start()
    try:
        yield (
            direct.render_as_string(hide_password=False),
            direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            proxy,
        )
    finally:
        proxy.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_campaign_survives_its_database_dropping_every_connection_mid_run(tmp_path: Path, database) -> None:
    direct, proxied, proxy = database
    brief = small_brief(tmp_path)
    state, out = tmp_path / "state", tmp_path / "out"
    (state / "prefect").mkdir(parents=True)
    env = {**os.environ, **embedded_environment(state), "SYNCREEL_DATABASE_URL": proxied}
    run = subprocess.Popen(
        [sys.executable, "-m", "syncreel.cli", "run", str(brief), "--out", str(out), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:
            with_tables = query(direct, "select to_regclass('generations') is not null")[0][0]
            if with_tables and query(direct, "select count(*) from generations")[0][0] >= 1:
                break
            time.sleep(0.2)
        assert run.poll() is None, "the run ended before its first generation: " + run.stderr.read()[-2000:]
        proxy.outage(OUTAGE_S)
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert proxy.dropped >= 1, "the outage cut no connection"
    assert run.returncode in (0, 3), stdout[-3000:] + stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["status"] in ("succeeded", "needs_review"), summary

    # Nothing lost: every deliverable once, each file present; every asset row's file present.
    rows = query(direct, "select language, platform, count(*) from deliverables group by 1, 2 order by 1, 2")
    assert rows == [("en", "square", 1), ("en", "tiktok", 1), ("es", "square", 1), ("es", "tiktok", 1)]
    for language, platform, _ in rows:
        assert (out / "small-test" / language / f"small-test_{language}_{platform}.mp4").stat().st_size > 1000
    for (uri,) in query(direct, "select uri from assets"):
        assert Path(uri.removeprefix("file://")).is_file(), uri
    # Nothing left half-done, nothing made twice.
    assert query(direct, "select status, owner from campaign_runs") == [(summary["status"], None)]
    assert query(direct, "select count(*) from generations where status = 'running'") == [(0,)]
    assert query(direct, "select count(*) from scene_jobs where status not in ('passed', 'needs_review')") == [(0,)]
    made = query(direct, "select count(*), count(distinct cache_key) from generations where status = 'succeeded'")
    assert made[0][0] == made[0][1], made
