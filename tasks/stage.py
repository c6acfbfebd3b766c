"""The stage seam: what every task shares, so that a task only says what its stage does.

- **The runtime** of a worker process: settings, the run-state database, the asset store, a scratch folder.
- **Progress events**: stages report what they start and finish; a display (the CLI) may listen. With no
  listener an event costs a function call; across processes Prefect's own task-run states tell the story.
- **Cache keys**: a stage's output is named by a hash of its inputs, its parameters and the source code of
  the library modules that compute it (plus the model version for generation).
- **The memo**: key → output record in syncreel's own database (``task_outputs``), written only after
  the output's asset is safely in the store, so a crash at any point leaves either nothing or a complete
  output; a re-run finds every finished output and redoes only the rest.
- **Records**: a remembered output back as the typed record a task returns.
- **Logs**: `run_logger`, the one place a log line is made, names the run, campaign, scene and language on
  each line; a stage logs each progress event it reports (started, done, recalled, flagged, failed).
- **Retries** for the stages whose work crosses the network.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, TypeVar, cast

from prefect.client.schemas.objects import State, TaskRun
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.tasks import Task, exponential_backoff
from prefect.utilities.annotations import opaque
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncreel.media.probe import MediaInfo
from syncreel.schemas.errors import InputError, RunConflict
from syncreel.schemas.records import CampaignPlan
from syncreel.schemas.requests import SceneRequest
from syncreel.schemas.settings import Settings, get_settings
from syncreel.store import lease, runs
from syncreel.store.assets import AssetStore, open_store
from syncreel.store.db import make_engine, session_scope, upgrade_database

RecordT = TypeVar("RecordT", bound=BaseModel)
T = TypeVar("T")

# Bump to invalidate every cached output at once (a change in how stages fit together).
PIPELINE_VERSION = "1"


# --- the runtime --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    store: AssetStore
    work_dir: Path

    @contextmanager
    def session(self) -> Iterator[Session]:
        lease.check_held()  # a process whose run was taken over writes nothing more (store/lease.py)
        with session_scope(self.engine) as session:
            yield session

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        """A private temporary folder under the work dir, removed afterwards whatever happens."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


_lock = threading.Lock()
_runtimes: dict[tuple[str, str, str], Runtime] = {}


def get_runtime(settings: Settings | None = None) -> Runtime:
    """The process-wide runtime for the current settings; migrates the database on first use."""
    settings = settings or get_settings()
    key = (settings.database_url, settings.storage_url, str(settings.work_dir))
    with _lock:
        if key not in _runtimes:
            upgrade_database(settings.database_url)
            work_dir = settings.work_dir.resolve()
            _runtimes[key] = Runtime(
                settings=settings,
                engine=make_engine(settings.database_url),
                store=open_store(settings.storage_url, cache_dir=work_dir / "cache"),
                work_dir=work_dir,
            )
        return _runtimes[key]


def owner_id() -> str:
    """Who holds a run: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- progress events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "ingest" | "speak" | "generate" | "qa_master" | "assemble" | "render" | "qa_deliverable" | "publish"
    item: str  # e.g. "presenter/en" or "en/tiktok"
    status: str  # "started" | "done" | "cached" | "flagged" (finished, QA failed) | "failed" (raised)
    detail: str = ""


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


def emit(stage: str, item: str, status: str, detail: str = "") -> None:
    event = ProgressEvent(stage, item, status, detail)
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _listeners_lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners.remove(listener)


# --- logs ---------------------------------------------------------------------------------------------


class RunLog(logging.LoggerAdapter):
    """A logger whose every line begins with what it is about, ``[run=… campaign=… scene=… language=…]``
    (Prefect's API keeps a line's message, not its attributes, so that is what an operator searches);
    handlers in this process also find them as the record's ``syncreel_run``, ``syncreel_campaign``, …"""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        about = {name: value for name, value in (self.extra or {}).items() if value is not None}
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **{f"syncreel_{k}": v for k, v in about.items()}}
        tag = " ".join(f"{name}={value}" for name, value in about.items())
        return (f"[{tag}] {msg}" if tag else msg), kwargs


def run_logger(plan: CampaignPlan | None = None, scene: str | None = None, language: str | None = None) -> RunLog:
    """The logger of what runs now, bound to a run (and a scene and language where a line is about one).

    Inside a flow or task run it is Prefect's run logger: its lines go to the Prefect API under that run
    (the UI's Logs tab) besides this process's handlers. Outside a run (a library call, the CLI) it is the
    standard library's ``syncreel`` logger."""
    base: logging.Logger | logging.LoggerAdapter
    try:
        base = get_run_logger()
    except MissingContextError:
        base = logging.getLogger("syncreel")
    about = {
        "run": plan.run_id if plan is not None else None,
        "campaign": plan.brief.campaign_id if plan is not None else None,
        "scene": scene,
        "language": language,
    }
    return RunLog(base, about)


# --- cache keys ---------------------------------------------------------------------------------------


@cache
def code_fingerprint(*modules: ModuleType) -> str:
    """Hash of the modules' source: editing how a stage computes its output invalidates its cache."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def cache_key(stage: str, *parts: Any) -> str:
    payload = json.dumps([PIPELINE_VERSION, stage, parts], sort_keys=True, default=str)
    return f"{stage}:{hashlib.sha256(payload.encode()).hexdigest()[:40]}"


def dispatch_key(request: SceneRequest) -> str:
    """Where a dispatched generation's master is remembered: one per run attempt, scene, language and
    attempt (flows/scene.py writes it, flows/dispatch.py reads it)."""
    plan = request.plan
    return cache_key("dispatch", plan.run_id, plan.attempt, request.scene_id, request.language, request.attempt)


# --- the memo -----------------------------------------------------------------------------------------

Settle = Callable[[Session], object]


class Output(NamedTuple):
    """A stage output: its record, and whether it was found remembered rather than made now."""

    record: dict[str, Any]
    cached: bool


def _uris(record: Any) -> list[str]:
    """Every stored file a record names: the values of its ``uri`` keys, at any depth."""
    if isinstance(record, dict):
        found = [record["uri"]] if isinstance(record.get("uri"), str) else []
        return found + [uri for key, value in record.items() if key != "uri" for uri in _uris(value)]
    if isinstance(record, list):
        return [uri for item in record for uri in _uris(item)]
    return []


def _in_store(rt: Runtime, record: dict[str, Any]) -> bool:
    return all(rt.store.exists(uri) for uri in _uris(record))


def recall(rt: Runtime, key: str) -> dict[str, Any] | None:
    """A finished output for this key, if every file it names is still in this store."""
    with rt.session() as session:
        output = runs.get_output(session, key)
        if output is None:
            return None
        record = dict(output.record)
    return record if _in_store(rt, record) else None


def remember(rt: Runtime, key: str, record: dict[str, Any], settle: Settle | None = None) -> dict[str, Any]:
    """Store an output record (its stage is the key's prefix, its asset the record's ``asset_id``); when
    two workers race, the first one's record wins and is returned, unless a file it names is gone from
    this store (a stale output, e.g. remembered by a run that stored elsewhere): this record replaces it.

    ``settle`` writes more rows in the same transaction (e.g. marking the generation that made the output
    succeeded), so a crash can never leave one written without the other."""
    stage = key.split(":", 1)[0]
    with rt.session() as session:
        if settle is not None:
            settle(session)
        kept = runs.put_output(session, cache_key=key, stage=stage, record=record, asset_id=record.get("asset_id"))
        if kept.record != record and not _in_store(rt, kept.record):  # a stale output: its files are gone
            kept.record, kept.asset_id = record, record.get("asset_id")
        return dict(kept.record)


def memoized(rt: Runtime, key: str, produce: Callable[[], dict[str, Any]]) -> Output:
    """The remembered output for ``key``, or ``produce()``'s record, remembered."""
    found = recall(rt, key)
    if found is not None:
        return Output(found, cached=True)
    return Output(remember(rt, key, produce()), cached=False)


@dataclass(frozen=True)
class StoredFile:
    """A file in the asset store (content-addressed) with its ``assets`` row."""

    uri: str
    sha256: str
    size_bytes: int
    asset_id: int

    def fields(self) -> dict[str, Any]:
        """What an output record says of its asset."""
        return {"uri": self.uri, "sha256": self.sha256, "asset_id": self.asset_id}


def store_asset(rt: Runtime, path: Path, kind: str, media_info: dict[str, Any] | None = None) -> StoredFile:
    """Put a file in the asset store (content-addressed) and record it. The same bytes stored before
    under another kind (a one-scene spot's stems are its scene's) have their row already: that row's
    object is the asset, and the copy just written under this kind's key is removed, so every object
    in the store is exactly one row's."""
    lease.check_held()
    stored = rt.store.put_file(path, kind=kind)
    with rt.session() as session:
        row = runs.record_asset(
            session,
            sha256=stored.sha256,
            uri=stored.uri,
            kind=kind,
            size_bytes=stored.size_bytes,
            media_info=media_info,
        )
        if row.uri != stored.uri:
            if rt.store.exists(row.uri):
                rt.store.delete(stored.uri)
            else:  # the row's object was lost: this copy takes its place
                row.uri = stored.uri
        return StoredFile(uri=row.uri, sha256=stored.sha256, size_bytes=stored.size_bytes, asset_id=row.id)


# --- records ------------------------------------------------------------------------------------------


def clip_fields(info: MediaInfo) -> dict[str, Any]:
    """What an output record says of a clip it wrote: its length, frame size and rate."""
    if info.video is None:
        raise ValueError(f"{info.path}: written without a picture")
    return {
        "duration_s": info.duration_s,
        "width": info.video.width,
        "height": info.video.height,
        "fps": info.video.fps,
    }


def to_record(cls: type[RecordT], stored: dict[str, Any], **fields: Any) -> RecordT:
    """Build a task record from a remembered output (keeping the fields it declares) plus ``fields``."""
    return cls.model_validate({**{k: v for k, v in stored.items() if k in cls.model_fields}, **fields})


def by_reference(value: T) -> T:
    """A record, or a list of records, as a task input that Prefect does not look inside (typed as the
    value itself: Prefect unwraps it before the task runs).

    Prefect walks every argument of a task run field by field, twice (for upstream futures, then to
    resolve them): the plan holds the whole brief, publish gets every record of the run, a deliverable
    its crop path; at 200 scenes on 2 cores that was ~6 ms a task and ~2 s before publish. Wrapped in
    ``opaque`` one by one, each record still links the task run to the one that made it."""
    if isinstance(value, list):
        return cast(T, [opaque(item) for item in value])
    return cast(T, opaque(value))


# --- a stage run --------------------------------------------------------------------------------------


class Stage:
    """One stage working on one item (``"presenter/en"``): its progress events, each also a log line of
    the run (``plan``; ``scene`` and ``language`` where the item is about them), and its memo."""

    def __init__(
        self,
        name: str,
        item: str,
        rt: Runtime | None = None,
        *,
        plan: CampaignPlan | None = None,
        scene: str | None = None,
        language: str | None = None,
    ):
        self.name, self.item = name, item
        self.rt = rt or get_runtime()
        self.log = run_logger(plan, scene, language)

    def _report(self, status: str, detail: str, level: int, said: str) -> None:
        emit(self.name, self.item, status, detail)
        self.log.log(level, "%s %s %s%s", self.name, self.item, said, f": {detail}" if detail else "")

    def start(self, detail: str = "") -> None:
        lease.check_held()
        self._report("started", detail, logging.INFO, "started")

    def finish(self, cached: bool = False, detail: str = "") -> None:
        if cached:
            self._report("cached", detail, logging.INFO, "recalled (made before, unchanged)")
        else:
            self._report("done", detail, logging.INFO, "done")

    def judged(self, failed: bool, detail: str = "", level: int | None = None) -> None:
        """A QA stage's end: ``flagged`` when what it judged failed (a WARNING line unless ``level``)."""
        if failed:
            self._report("flagged", detail, logging.WARNING if level is None else level, "failed QA")
        else:
            self._report("done", detail, logging.INFO if level is None else level, "passed QA")

    def fail(self, detail: str, level: int = logging.ERROR) -> None:
        self._report("failed", detail, level, "failed")

    @contextmanager
    def reporting(self, *errors: type[BaseException], level: int = logging.ERROR) -> Iterator[None]:
        """Report one of ``errors`` escaping the block as this item's failure (a line at ``level``), then
        let it go on."""
        try:
            yield
        except errors as exc:
            self.fail(str(exc), level)
            raise

    def memo(self, key: str, produce: Callable[[], dict[str, Any]]) -> Output:
        return memoized(self.rt, key, produce)


# --- retries ------------------------------------------------------------------------------------------

# For the stages whose work crosses the network (downloads, uploads): 3 more tries, 2 s, 4 s and 8 s
# later (±50 %), unless the input is at fault.
NETWORK_RETRIES = 3
NETWORK_BACKOFF = exponential_backoff(backoff_factor=2)
NETWORK_JITTER = 0.5


def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Whether a failed run may succeed when tried again: not when the input is at fault (InputError),
    nor when the run is another process's (RunConflict)."""
    return not isinstance(state.data, (InputError, RunConflict))


# For every other stage: 2 more tries, 3 s and 15 s later, only when a connection dropped under it (the
# database restarted or failed over, the asset store went away for a moment). Every stage is idempotent
# (its outputs are remembered by content), so a second try finishes what the first began.
CONNECTION_RETRIES = 2
CONNECTION_DELAYS: list[float] = [3.0, 15.0]


def connection_dropped(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Whether the run failed because a connection to the database or the asset store dropped: a
    disconnect SQLAlchemy reports (an OperationalError, or any DBAPI error that invalidated its
    connection) or an OS-level connection error, anywhere in the exception's chain."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    error: BaseException | None = state.data if isinstance(state.data, BaseException) else None
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, InputError | RunConflict):
            return False
        if isinstance(error, OperationalError | ConnectionError) or (
            isinstance(error, DBAPIError) and error.connection_invalidated
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


# --- the flow run -------------------------------------------------------------------------------------


def from_deployment() -> bool:
    """Whether this code runs in a flow run started from a deployment (a UI trigger, ``run_deployment``,
    ``submit``, the inbox, a schedule), which a worker can start again; not in a flow called in-process
    (``syncreel run``, a Python call) or outside any flow."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None
