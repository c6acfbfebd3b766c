"""The run lock's logic on SQLite and the local PostgreSQL: who is alive, the heartbeat thread, takeover,
stand-down and giving a run up (store/runs.py, store/lease.py). Fast: short leases, no campaign."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from syncreel.schemas.errors import user_message
from syncreel.schemas.settings import Settings
from syncreel.store import lease, runs
from syncreel.store.db import make_engine, session_scope, upgrade_database
from syncreel.store.models import CampaignRun, RunStatus, utcnow

HOST = socket.gethostname()
ME = f"{HOST}:{os.getpid()}"


@pytest.fixture
def engine(db_url):
    upgrade_database(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sleeper():
    """A live process on this host, to name as a run's owner."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.wait()


def claim(engine, owner: str = ME, lease_seconds: float = 300.0) -> tuple[str, int]:
    with session_scope(engine) as session:
        run = runs.claim_run(
            session,
            run_key="k1",
            campaign_id="c1",
            brief={"campaign_id": "c1"},
            brief_source=None,
            owner=owner,
            lease_seconds=lease_seconds,
        )
        return run.id, run.attempts


def age_heartbeat(engine, run_id: str, seconds: float) -> None:
    with session_scope(engine) as session:
        session.get_one(CampaignRun, run_id).heartbeat_at = utcnow() - timedelta(seconds=seconds)


def row(engine, run_id: str) -> CampaignRun:
    with session_scope(engine) as session:
        run = session.get_one(CampaignRun, run_id)
        session.expunge(run)
        return run


def test_an_owner_is_alive_while_its_heartbeat_is_fresh_and_on_this_host_its_process_exists():
    fresh, stale = utcnow() - timedelta(seconds=5), utcnow() - timedelta(seconds=11)
    assert runs.owner_alive(ME, fresh, 10) and not runs.owner_alive(ME, stale, 10)
    assert runs.owner_alive("elsewhere:1", fresh, 10) and not runs.owner_alive("elsewhere:1", stale, 10)
    assert not runs.owner_alive(None, fresh, 10) and not runs.owner_alive(ME, None, 10)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not runs.owner_alive(f"{HOST}:{gone.pid}", fresh, 10)  # dead on this host: known at once


def test_a_stopped_owner_keeps_the_run_for_its_lease_then_loses_it(engine, sleeper):
    owner = f"{HOST}:{sleeper.pid}"
    run_id, _ = claim(engine, owner=owner)
    os.kill(sleeper.pid, signal.SIGSTOP)  # its PID stays; its heartbeat stops
    with pytest.raises(runs.RunLocked, match=f"produced by {owner}.*300 s") as refused:
        claim(engine)
    assert owner in user_message(refused.value)  # shown to the user as it is
    age_heartbeat(engine, run_id, 301)
    assert claim(engine) == (run_id, 2)


def test_this_very_process_cannot_claim_a_run_it_is_producing(engine):
    run_id, _ = claim(engine)
    with pytest.raises(runs.RunLocked, match=ME):
        claim(engine)
    age_heartbeat(engine, run_id, 301)
    assert claim(engine)[1] == 2


def test_the_heartbeat_thread_keeps_a_run_alive_past_its_lease(engine):
    run_id, attempt = claim(engine, lease_seconds=1.5)
    lease.hold(engine, run_id, ME, attempt, 1.5)
    try:
        first = row(engine, run_id).heartbeat_at
        time.sleep(2.0)  # past the lease: beats every 0.5 s kept it fresh
        assert row(engine, run_id).heartbeat_at > first
        with pytest.raises(runs.RunLocked):
            claim(engine, owner="elsewhere:1", lease_seconds=1.5)
        lease.check_held()
    finally:
        lease.release(run_id)


def test_the_heartbeat_thread_learns_of_a_takeover_and_the_owner_stands_down(engine):
    run_id, attempt = claim(engine, lease_seconds=1.5)
    held = lease.hold(engine, run_id, ME, attempt, 1.5)
    try:
        with session_scope(engine) as session:  # what a taker's claim writes
            run = session.get_one(CampaignRun, run_id)
            run.owner, run.attempts = "elsewhere:7", attempt + 1
        deadline = time.monotonic() + 5
        while held.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(lease.RunTakenOver, match="taken over by elsewhere:7 .attempt 2") as stood_down:
            lease.check_held()
        assert "stands down" in user_message(stood_down.value)
    finally:
        lease.release(run_id)
    after = row(engine, run_id)
    assert (after.owner, after.attempts, after.status) == ("elsewhere:7", 2, RunStatus.running)  # untouched


def test_a_resumed_owner_asks_the_database_before_its_next_write(engine):
    """No thread here: the lease is the state of a process that was stopped for longer than the lease."""
    run_id, attempt = claim(engine)
    stopped = lease.RunLease(engine, run_id, ME, attempt, lease_seconds=1.0)
    stopped.check()  # just confirmed: no question asked
    age_heartbeat(engine, run_id, 2)
    assert claim(engine, owner="elsewhere:7", lease_seconds=1.0) == (run_id, 2)
    stopped.check()  # confirmed under half the lease ago: still trusted
    time.sleep(0.6)
    with pytest.raises(lease.RunTakenOver, match="elsewhere:7"):
        stopped.check()


def test_an_owner_that_finished_its_run_is_not_taken_over(engine):
    run_id, attempt = claim(engine)
    held = lease.RunLease(engine, run_id, ME, attempt, lease_seconds=1.0)
    with session_scope(engine) as session:
        runs.finish_run(session, run_id, RunStatus.succeeded)
    time.sleep(0.6)
    held.check()
    assert held.ended and held.lost is None


def test_release_gives_up_a_run_left_running_so_the_next_claim_need_not_wait(engine):
    run_id, attempt = claim(engine)
    held = lease.hold(engine, run_id, ME, attempt, 300)
    lease.release(run_id)
    assert held.ended and row(engine, run_id).owner is None
    assert claim(engine, owner="elsewhere:7") == (run_id, 2)
    lease.release(run_id)  # no longer held: nothing to do
    assert row(engine, run_id).owner == "elsewhere:7"


def test_heartbeat_is_refused_to_an_earlier_attempt(engine):
    run_id, attempt = claim(engine)
    with session_scope(engine) as session:
        assert runs.heartbeat(session, run_id, ME, attempt) is None
        assert runs.heartbeat(session, run_id, ME, attempt + 1).attempts == attempt


def test_the_lease_setting_has_a_floor(monkeypatch):
    monkeypatch.setenv("SYNCREEL_LEASE_SECONDS", "6")
    assert Settings().lease_seconds == 6
    monkeypatch.setenv("SYNCREEL_LEASE_SECONDS", "2")
    with pytest.raises(ValidationError, match="lease_seconds"):
        Settings()
