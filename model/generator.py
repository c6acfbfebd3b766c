"""The `Generator` interface: one scene request in, one synchronized clip (frames + waveform) out.

Every backend (`builtin`, `ltx2`) implements it. The flow never sees tensors: a task turns the
`MasterClip` into an MP4 in the asset store (``media.encode.write_master``) and passes the URI on.
Plain dataclasses and numpy only, so `model/` stays free of Prefect and pydantic.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReferenceInput:
    """A normalized reference handed to a backend: a local file plus what it is for."""

    id: str
    kind: str  # "image" | "video" | "audio"
    role: str  # "character" | "motion" | "music" | "voice" | "style" | "product" | "background"
    path: Path


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a backend needs for one scene in one language."""

    scene_id: str
    language: str
    prompt: str
    duration_s: float
    width: int
    height: int
    fps: float
    sample_rate: int
    seed: int
    dialogue: tuple[tuple[str, str], ...] = ()  # (speaker, text in this language)
    sound_cues: tuple[tuple[float, str], ...] = ()  # (time in seconds, description)
    references: tuple[ReferenceInput, ...] = ()
    negative_prompt: str = ""
    steps: int = 8
    video_guidance: float = 3.0
    audio_guidance: float = 3.0
    sync_guidance: float = 1.0  # 1.0 = off; above 1 pushes away from the uncoupled prediction

    @property
    def num_frames(self) -> int:
        return max(1, round(self.duration_s * self.fps))

    @property
    def num_samples(self) -> int:
        return max(1, round(self.duration_s * self.sample_rate))


@dataclass
class MasterClip:
    """A generated clip: picture and sound of the same duration, plus provenance.

    frames: (T, H, W, 3) uint8 RGB. audio: (C, N) float32 in [-1, 1].
    """

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    backend: str
    model_version: str
    seed: int
    parameters: dict[str, object] = field(default_factory=dict)
    # Roles of references the backend could not use; the run record names them instead of dropping them.
    unused_reference_roles: tuple[str, ...] = ()
    # Sound-event times (s) in the clip (for the built-in model: onsets found in its effects stem),
    # for the sound-effect sync check.
    event_times_s: tuple[float, ...] = ()
    # The audio as separate stems that sum to ``audio`` (mono): (len(stem_names), N) float32, or None
    # when the backend makes only a mix.
    stems: np.ndarray | None = None
    stem_names: tuple[str, ...] = ()
    # The backend's own pictures before they were fitted into the master frame, (T, h, w, 3) uint8 at
    # the clip's frame count: what a compositor reads the generated motion from (media/compose.py).
    # None for a backend that renders at the master size itself.
    native_frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        if self.audio.ndim != 2 or self.audio.dtype != np.float32:
            raise ValueError(f"audio must be (C, N) float32, got {self.audio.shape} {self.audio.dtype}")
        if self.stems is not None and (
            self.stems.ndim != 2 or self.stems.shape != (len(self.stem_names), self.audio.shape[-1])
        ):
            raise ValueError(
                f"stems must be (len(stem_names), N) = ({len(self.stem_names)}, {self.audio.shape[-1]}),"
                f" got {self.stems.shape}"
            )
        if self.native_frames is not None and (
            self.native_frames.ndim != 4
            or self.native_frames.shape[0] != self.frames.shape[0]
            or self.native_frames.shape[-1] != 3
            or self.native_frames.dtype != np.uint8
        ):
            raise ValueError(
                f"native_frames must be (T, h, w, 3) uint8 with T = {self.frames.shape[0]},"
                f" got {self.native_frames.shape} {self.native_frames.dtype}"
            )

    @property
    def duration_s(self) -> float:
        return self.frames.shape[0] / self.fps


class Generator(abc.ABC):
    """A generation backend. Instances are created once per worker process and reused."""

    name: str

    @property
    @abc.abstractmethod
    def model_version(self) -> str:
        """Identifies the weights and code: part of every generation's cache key."""

    @property
    def supported_roles(self) -> frozenset[str]:
        """Reference roles this backend consumes; the rest are reported as unused."""
        return frozenset()

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> MasterClip:
        """Generate one clip. Deterministic for a given request (seed included) on the same device."""


class GeneratorUnavailable(RuntimeError):
    """A backend cannot start in this process: its weights or its packages are missing. The message says
    which setting to change or what to install."""


class GeneratorOutOfMemory(RuntimeError):
    """The device ran out of memory even after the backend's own retry with less memory."""


_BACKENDS: dict[str, type[Generator]] = {}
_INSTANCES: dict[tuple[str, tuple[tuple[str, object], ...]], Generator] = {}
_lock = threading.Lock()


def register_backend(cls: type[Generator]) -> type[Generator]:
    _BACKENDS[cls.name] = cls
    return cls


def get_generator(name: str, options: Mapping[str, object] | None = None) -> Generator:
    """The process-wide instance of a backend for these constructor ``options`` (weights load once per
    worker; schemas.settings.Settings.generator_options gives a backend's options from the settings)."""
    _import_builtin_backends()
    if name not in _BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; available: {', '.join(sorted(_BACKENDS))}")
    key = (name, tuple(sorted((options or {}).items())))
    with _lock:  # two threads asking at once must not load the weights twice
        if key not in _INSTANCES:
            _INSTANCES[key] = _BACKENDS[name](**(options or {}))
        return _INSTANCES[key]


def _import_builtin_backends() -> None:
    # Registers "builtin" and "ltx2"; model.ltx2 imports diffusers only when an LTX2Generator is made.
    from syncreel.model import builtin, ltx2  # noqa: F401
