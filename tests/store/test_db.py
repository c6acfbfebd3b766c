"""Run state on SQLite and on the local PostgreSQL: migrations, transitions, idempotent upserts, locks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select

from syncreel.store import runs
from syncreel.store.db import alembic_config, make_engine, session_scope, upgrade_database
from syncreel.store.models import (
    Base,
    Deliverable,
    InvalidTransition,
    QAResult,
    RunStatus,
    SceneStatus,
    TaskOutput,
    utcnow,
)

BRIEF = {"campaign_id": "c1", "title": "t"}


@pytest.fixture
def engine(db_url):
    upgrade_database(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def claim(session, key="k1", owner=None, lease=300.0):
    return runs.claim_run(
        session,
        run_key=key,
        campaign_id="c1",
        brief=BRIEF,
        brief_source=None,
        owner=owner or f"{socket.gethostname()}:{os.getpid()}",
        lease_seconds=lease,
    )


def test_single_migration_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1


def test_upgrade_head_is_idempotent_and_matches_the_models(db_url):
    upgrade_database(db_url)
    upgrade_database(db_url)  # a second run is a no-op
    engine = make_engine(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert diff == []
    assert {
        "campaign_runs",
        "scene_jobs",
        "assets",
        "generations",
        "deliverables",
        "qa_results",
        "task_outputs",
    } <= tables


def test_claim_creates_once_and_counts_attempts(engine):
    with session_scope(engine) as session:
        first = claim(session)
        run_id = first.id
        assert first.status == RunStatus.running and first.attempts == 1
        runs.finish_run(session, run_id, RunStatus.succeeded, manifest_uri="file:///m.json")
    with session_scope(engine) as session:
        again = claim(session)
        assert again.id == run_id and again.attempts == 2 and again.status == RunStatus.running
        assert again.manifest_uri == "file:///m.json"
        assert session.scalar(select(func.count()).select_from(type(again))) == 1


def test_live_owner_locks_dead_owner_is_taken_over(engine):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = f"{socket.gethostname()}:{sleeper.pid}"
        with session_scope(engine) as session:
            claim(session, owner=live)
        with session_scope(engine) as session, pytest.raises(runs.RunLocked, match=live):
            claim(session)
    finally:
        sleeper.kill()
        sleeper.wait()
    with session_scope(engine) as session:  # the owner is gone: take over
        assert claim(session).attempts == 2
    # Another host: alive while its heartbeat is fresh, dead once the lease has passed.
    with session_scope(engine) as session:
        run = claim(session, key="k2", owner="elsewhere:123")
        run_id = run.id
    with session_scope(engine) as session, pytest.raises(runs.RunLocked):
        claim(session, key="k2")
    with session_scope(engine) as session:
        session.get(type(run), run_id).heartbeat_at = utcnow() - timedelta(seconds=600)
    with session_scope(engine) as session:
        assert claim(session, key="k2", lease=300).attempts == 2


def test_invalid_transitions_are_refused(engine):
    with session_scope(engine) as session:
        run = claim(session)
        job = runs.ensure_scene_job(session, run.id, "s1", "en")
        with pytest.raises(InvalidTransition, match="pending to passed"):
            runs.set_scene_status(session, job.id, SceneStatus.passed)
        runs.set_scene_status(session, job.id, SceneStatus.generating)
        runs.set_scene_status(session, job.id, SceneStatus.generated)
        runs.set_scene_status(session, job.id, SceneStatus.passed)
        assert job.attempts == 1
        runs.finish_run(session, run.id, RunStatus.succeeded)
        with pytest.raises(InvalidTransition, match="succeeded to failed"):
            runs.finish_run(session, run.id, RunStatus.failed)


def test_upserts_never_duplicate(engine):
    with session_scope(engine) as session:
        run = claim(session)
        a1 = runs.record_asset(session, sha256="a" * 64, uri="file:///x", kind="deliverable", size_bytes=10)
        a2 = runs.record_asset(session, sha256="a" * 64, uri="file:///x", kind="deliverable", size_bytes=10)
        assert a1.id == a2.id
        b = runs.record_asset(session, sha256="b" * 64, uri="file:///y", kind="deliverable", size_bytes=11)
        for asset in (a1, b):  # a re-render replaces the row's asset, never adds a row
            runs.record_deliverable(
                session,
                run_id=run.id,
                language="en",
                platform="tiktok",
                spec={},
                asset_id=asset.id,
                cache_key="render:x",
            )
            runs.record_qa(
                session,
                run_id=run.id,
                subject="deliverable:en:tiktok",
                check="loudness",
                verdict="pass" if asset is b else "fail",
                metrics={"lufs": -14},
                message="ok",
            )
        assert (
            runs.ensure_scene_job(session, run.id, "s1", "en").id
            == runs.ensure_scene_job(session, run.id, "s1", "en").id
        )
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Deliverable)) == 1
        assert session.scalar(select(Deliverable.asset_id)) == b.id
        assert session.scalars(select(QAResult.verdict)).all() == ["pass"]


def test_first_output_writer_wins(engine):
    with session_scope(engine) as session:
        runs.put_output(session, cache_key="render:1", stage="render", record={"uri": "first"})
    with session_scope(engine) as session:
        kept = runs.put_output(session, cache_key="render:1", stage="render", record={"uri": "second"})
        assert kept.record == {"uri": "first"}
        assert session.scalar(select(func.count()).select_from(TaskOutput)) == 1


def test_generation_row_is_reused_after_a_crash(engine):
    with session_scope(engine) as session:
        run = claim(session)
        fields = dict(
            cache_key="gen:1",
            run_id=run.id,
            scene_id="s1",
            language="en",
            backend="builtin",
            model_version="v",
            seed=1,
            parameters={"steps": 2},
        )
        crashed = runs.start_generation(session, **fields)  # the process dies here
        crashed_id = crashed.id
    with session_scope(engine) as session:
        again = runs.start_generation(session, **fields)
        assert again.id == crashed_id and again.status == "running"
        done = runs.finish_generation(
            session, again.id, seconds=1.5, asset_id=None, parameters_update={"trained": False}
        )
        assert done.status == "succeeded" and done.parameters == {"steps": 2, "trained": False}


def test_run_lookup_by_prefix_and_detail(engine):
    with session_scope(engine) as session:
        first = claim(session, key="k1")
        second = claim(session, key="k2")
        runs.ensure_scene_job(session, first.id, "s1", "en")
    with session_scope(engine) as session:
        assert runs.get_run(session, first.id[4:10]).id == first.id
        assert runs.get_run(session, first.id).id == first.id
        assert runs.get_run(session).id in (first.id, second.id)
        with pytest.raises(LookupError, match="no run matches"):
            runs.get_run(session, "zzzz")
        with pytest.raises(LookupError, match="several runs"):
            runs.get_run(session, "run-")
        detail = runs.run_detail(session, first.id)
        assert detail["run"]["id"] == first.id and len(detail["scene_jobs"]) == 1
