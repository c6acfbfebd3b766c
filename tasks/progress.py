"""In-process progress events: stages report what they start and finish; a display may listen.

The CLI subscribes to draw its progress view; nothing else depends on it, and with no listener an
event costs a function call. (Across processes, Prefect's own task-run states tell the same story.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "ingest" | "speak" | "generate" | "qa_master" | "assemble" | "render" | "qa_deliverable" | "publish"
    item: str  # e.g. "presenter/en" or "en/tiktok"
    status: str  # "started" | "done" | "cached" | "flagged" (finished, QA failed) | "failed" (raised)
    detail: str = ""


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def emit(stage: str, item: str, status: str, detail: str = "") -> None:
    event = ProgressEvent(stage, item, status, detail)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
