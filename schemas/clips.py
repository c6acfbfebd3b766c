"""A generated clip as one record: picture and sound of the same duration, plus provenance.

What every generation backend returns (model.generator.Generator.generate) and what media.encode writes
as the master MP4; it lives here, below both, so that neither library imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
