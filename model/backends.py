"""The generation backends by name, and one instance of each per worker process (``get_generator``).

The table names every backend syncreel ships; each is imported when it is first asked for, so that
choosing a backend loads only its own packages (torch for both, diffusers only inside an
``LTX2Generator``). Tests and benchmarks add their own with ``register_backend``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from syncreel.model.generator import Generator


def _builtin() -> type[Generator]:
    from syncreel.model.builtin import BuiltinGenerator

    return BuiltinGenerator


def _ltx2() -> type[Generator]:
    from syncreel.model.ltx2 import LTX2Generator

    return LTX2Generator


# name → a function that imports the backend's module and returns its class
_BACKENDS: dict[str, Callable[[], type[Generator]]] = {"builtin": _builtin, "ltx2": _ltx2}
_INSTANCES: dict[tuple[str, tuple[tuple[str, object], ...]], Generator] = {}
_lock = threading.Lock()


def register_backend(cls: type[Generator]) -> type[Generator]:
    """Add (or replace) the backend ``cls.name``; usable as a class decorator."""
    _BACKENDS[cls.name] = lambda: cls
    return cls


def get_generator(name: str, options: Mapping[str, object] | None = None) -> Generator:
    """The process-wide instance of a backend for these constructor ``options`` (weights load once per
    worker; schemas.settings.Settings.generator_options gives a backend's options from the settings)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; available: {', '.join(sorted(_BACKENDS))}")
    key = (name, tuple(sorted((options or {}).items())))
    with _lock:  # two threads asking at once must not load the weights twice
        if key not in _INSTANCES:
            _INSTANCES[key] = _BACKENDS[name]()(**(options or {}))
        return _INSTANCES[key]
