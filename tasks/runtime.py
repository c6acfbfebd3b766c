"""What every task shares in one worker process: settings, the run-state database, the asset store,
a scratch folder, and the memo that makes every stage idempotent.

Idempotence: a stage's output is named by a cache key, a hash of the stage's inputs, its parameters and
the source code of the library modules that compute it (plus the model version for generation). The
key → output mapping lives in syncreel's own database (``task_outputs``), written only after the
output's asset is safely in the store, so a crash at any point leaves either nothing or a complete
output; a re-run finds every finished output and redoes only the rest.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from syncreel.schemas.settings import Settings, get_settings
from syncreel.store import runs
from syncreel.store.assets import AssetStore, StoredAsset, open_store
from syncreel.store.db import make_engine, session_scope, upgrade_database

RecordT = TypeVar("RecordT", bound=BaseModel)

# Bump to invalidate every cached output at once (a change in how stages fit together).
PIPELINE_VERSION = "1"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    store: AssetStore
    work_dir: Path

    @contextmanager
    def session(self) -> Iterator[Session]:
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


def recall(rt: Runtime, key: str) -> dict[str, Any] | None:
    """A finished output for this key, if its asset is still in the store."""
    with rt.session() as session:
        output = runs.get_output(session, key)
        if output is None:
            return None
        record, uri = dict(output.record), output.record.get("uri")
    if uri and not rt.store.exists(uri):
        return None
    return record


def remember(
    rt: Runtime,
    key: str,
    stage: str,
    record: dict[str, Any],
    asset_id: int | None = None,
    settle: Callable[[Session], object] | None = None,
) -> dict[str, Any]:
    """Store an output record; when two workers race, the first one's record wins and is returned.

    ``settle`` writes more rows in the same transaction (e.g. marking the generation that made the output
    succeeded), so a crash can never leave one written without the other."""
    with rt.session() as session:
        if settle is not None:
            settle(session)
        return dict(runs.put_output(session, cache_key=key, stage=stage, record=record, asset_id=asset_id).record)


def store_asset(
    rt: Runtime, path: Path, kind: str, media_info: dict[str, Any] | None = None
) -> tuple[StoredAsset, int]:
    """Put a file in the asset store (content-addressed) and record it; returns the asset and its row id."""
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
        return stored, row.id


def to_record(cls: type[RecordT], stored: dict[str, Any], **fields: Any) -> RecordT:
    """Build a task record from a remembered output (keeping the fields it declares) plus ``fields``."""
    return cls.model_validate({**{k: v for k, v in stored.items() if k in cls.model_fields}, **fields})


def memoized(
    rt: Runtime,
    stage: str,
    key: str,
    produce: Callable[[], tuple[dict[str, Any], int | None]],
    settle: Callable[[Session], object] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Return (record, cached): the remembered output for ``key``, or produce and remember it
    (``settle``, called only after producing, commits with the record; see ``remember``)."""
    found = recall(rt, key)
    if found is not None:
        return found, True
    record, asset_id = produce()
    return remember(rt, key, stage, record, asset_id, settle), False
