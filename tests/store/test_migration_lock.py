"""Migrations under a lock: several processes migrating a fresh database at the same moment (each process
migrates at its first use) all succeed, and the schema is at the head once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from syncreel.store.db import alembic_config, make_engine
from syncreel.store.models import Base

PROCESSES = 4
# Each process imports the store, says it is ready, and waits for the word to migrate, so that all of
# them reach the empty database together.
MIGRATE = """
import sys, time
from pathlib import Path
from syncreel.store.db import upgrade_database
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
upgrade_database(url)
"""


def test_processes_migrating_a_fresh_database_at_once_all_succeed_and_migrate_once(db_url, tmp_path: Path):
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(PROCESSES)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, db_url, str(flag), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        outcomes = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    failures = [err for process, (_, err) in zip(processes, outcomes, strict=True) if process.returncode != 0]
    assert not failures, failures[0]
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    engine = make_engine(db_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert versions == [(head,)] and diff == []
