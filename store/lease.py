"""The run lock's live half: the process that claimed a run keeps it for as long as the campaign lasts,
and stands down as soon as it learns that the run was taken over.

`runs.claim_run` gives a run to one process (``host:pid``) and counts the attempt. `hold` starts a
`RunLease` for that attempt: a daemon thread renews the run's heartbeat every third of the lease, and
only while the row still names this owner and attempt. Another process may take the run over once the
owner is dead (`runs.owner_alive`): on the same host when its PID is gone, anywhere when its heartbeat is
older than the lease. A takeover counts a new attempt, and the attempt number is what fences the old
owner out.

An owner that was stopped (SIGSTOP, a frozen VM, a debugger) past its lease and then resumed must not
write into the run its taker now produces. Every stage goes through `check_held` before it touches the
database or the asset store (tasks/stage.py): it raises `RunTakenOver` once the lease is known lost, and
when the last confirmed heartbeat is older than half the lease it asks the database first, so a resumed
process learns the news before its next write, whichever of its threads wakes first.

A lease is the process's, not a thread's: losing one means the whole process was stalled, so
`check_held` stops every campaign this process still holds.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from syncreel.schemas.errors import RunConflict
from syncreel.store import runs
from syncreel.store.db import session_scope

log = logging.getLogger(__name__)

# How long `release` waits for a heartbeat in flight before giving the claim up.
JOIN_SECONDS = 10.0


class RunTakenOver(RunConflict):
    """Another process took over the run this process was producing: this one writes nothing more."""


class RunLease:
    """One process's hold on one run attempt: its heartbeat thread and what it last learned."""

    def __init__(self, engine: Engine, run_id: str, owner: str, attempt: int, lease_seconds: float):
        self.engine, self.run_id, self.owner, self.attempt = engine, run_id, owner, attempt
        self.lease_seconds = lease_seconds
        self.lost: str | None = None  # why this process stands down, once it knows
        self.ended = False  # this process finished the run (or gave it up): nothing left to renew
        self._confirmed = time.monotonic()  # when the database last said the run is ours
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def renew(self) -> None:
        """Write the heartbeat, or learn why it cannot be: the run was taken over (``lost``) or this
        process finished it (``ended``). Database errors propagate."""
        with self._renewing:
            if self.lost or self.ended:
                return
            asked = time.monotonic()
            with session_scope(self.engine) as session:
                run = runs.heartbeat(session, self.run_id, self.owner, self.attempt)
                standing = None if run is None else (run.owner, run.attempts, run.status)
            if standing is None:  # renewed, and committed
                self._confirmed = asked
                return
            taker, attempts, status = standing
            if attempts == self.attempt:  # still our attempt, no longer running: we finished or released it
                self.ended = True
                return
            self.lost = (
                f"run {self.run_id} was taken over by {taker or 'another process'} (attempt {attempts}, now "
                f"{status}) while this process ({self.owner}, attempt {self.attempt}) wrote no heartbeat "
                f"for over its {self.lease_seconds:g} s lease; this process stands down and writes nothing more"
            )
            log.error("%s", self.lost)

    def check(self) -> None:
        """Raise `RunTakenOver` when the run is no longer this process's; ask the database first when
        the last confirmed heartbeat is older than half the lease (this process may have been stopped)."""
        if not self.lost and not self.ended and time.monotonic() - self._confirmed > self.lease_seconds / 2:
            self.renew()
        if self.lost:
            raise RunTakenOver(self.lost)

    def stop(self) -> None:
        """End the heartbeat; when the run is still this attempt's and running (the flow ended without
        finishing it, e.g. suspended), give the claim up so that the next claim need not wait."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)
        with self._renewing:
            if self.lost or self.ended:
                return
            self.ended = True
            with session_scope(self.engine) as session:
                runs.release_claim(session, self.run_id, self.owner, self.attempt)

    def _keep(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - a database hiccup: try again at the next beat
                log.warning(
                    "run %s: heartbeat not written (%s: %s); trying again", self.run_id, type(exc).__name__, exc
                )
            if self.lost or self.ended:
                return


_held: dict[str, RunLease] = {}
_held_lock = threading.Lock()


def hold(engine: Engine, run_id: str, owner: str, attempt: int, lease_seconds: float) -> RunLease:
    """Keep this process's claim on ``run_id`` (attempt ``attempt``) alive until `release`."""
    lease = RunLease(engine, run_id, owner, attempt, lease_seconds)
    with _held_lock:
        earlier = _held.pop(run_id, None)
        _held[run_id] = lease
    if earlier is not None:  # an older attempt of this process, superseded by the claim just made
        earlier.lost = f"run {run_id}: attempt {earlier.attempt} was superseded by attempt {attempt}"
        earlier.stop()
    lease.start()
    return lease


def release(run_id: str) -> None:
    """Stop holding ``run_id`` (its flow has ended). Never raises: it runs while a flow unwinds."""
    with _held_lock:
        lease = _held.pop(run_id, None)
    if lease is None:
        return
    try:
        lease.stop()
    except Exception as exc:  # noqa: BLE001 - the run stays claimed until its heartbeat ages past the lease
        log.warning("run %s: claim not given up (%s: %s)", run_id, type(exc).__name__, exc)


def check_held() -> None:
    """Raise `RunTakenOver` when any run this process holds was taken over (see the module doc)."""
    with _held_lock:
        leases = list(_held.values())
    for lease in leases:
        lease.check()
