"""The `Generator` interface: one scene request in, one synchronized clip (frames + waveform) out.

Every backend (`builtin`, `ltx2`) implements it; model.backends holds them by name. The flow never sees
tensors: a task turns the `MasterClip` (schemas/clips.py) into an MP4 in the asset store
(``media.encode.write_master``) and passes the URI on. Plain dataclasses only, so `model/` stays free
of Prefect and pydantic.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from syncreel.schemas.clips import MasterClip


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
