"""Write a generated clip (frames + waveform) as the master MP4: H.264 yuv420p + AAC, same duration."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from media.errors import MediaError
from media.probe import MediaInfo, probe

if TYPE_CHECKING:
    from model.generator import MasterClip

MASTER_AUDIO_RATE = 48_000


def resample_linear(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample (C, N) float32 by linear interpolation (the model's audio is band-limited well below
    either Nyquist, so this is transparent for masters)."""
    if rate == target or audio.shape[1] == 0:
        return audio
    count = round(audio.shape[1] * target / rate)
    positions = np.arange(count) * (rate / target)
    source = np.arange(audio.shape[1])
    return np.stack([np.interp(positions, source, channel) for channel in audio]).astype(np.float32)


def write_master(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, path: Path) -> MediaInfo:
    """Encode a master: ``frames`` (T, H, W, 3) uint8, ``audio`` (C, N) float32 in [-1, 1].

    Audio is resampled to 48 kHz stereo and padded or trimmed to exactly T / fps seconds.
    """
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(path, f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    count, height, width = frames.shape[:3]
    if count == 0 or width % 2 or height % 2:
        raise MediaError(path, f"need at least one frame of even size, got {count} frames of {width}×{height}")
    audio = resample_linear(np.clip(audio, -1, 1).astype(np.float32), sample_rate, MASTER_AUDIO_RATE)
    audio = np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    samples = round(count / fps * MASTER_AUDIO_RATE)
    audio = np.pad(audio, ((0, 0), (0, max(0, samples - audio.shape[1]))))[:, :samples]
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(
            str(path), "w", format="mp4", options={"movflags": "+faststart"}, container_options={"fflags": "+bitexact"}
        ) as container:
            video = container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "fast", "threads": "2"})
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            sound = container.add_stream("aac", rate=MASTER_AUDIO_RATE, layout="stereo")
            sound.bit_rate = 192_000
            for frame in frames:
                container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(video.encode())
            chunk = 1024
            for start in range(0, samples, chunk):
                block = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, start : start + chunk]), format="fltp", layout="stereo"
                )
                block.sample_rate, block.pts = MASTER_AUDIO_RATE, start
                block.time_base = Fraction(1, MASTER_AUDIO_RATE)
                container.mux(sound.encode(block))
            container.mux(sound.encode())
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot write master ({exc})") from None
    return probe(path)


def write_master_clip(clip: MasterClip, path: Path) -> MediaInfo:
    return write_master(clip.frames, clip.audio, clip.fps, clip.sample_rate, path)
