"""Write a generated clip (frames + waveform) as the master MP4: H.264 yuv420p + AAC, same duration."""

from __future__ import annotations

import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from syncreel.audio import resample
from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import BITEXACT, run
from syncreel.media.probe import MediaInfo, probe
from syncreel.schemas.clips import MasterClip

MASTER_AUDIO_RATE = 48_000
MASTER_AUDIO_BITRATE = 256_000


def _stereo(audio: np.ndarray) -> np.ndarray:
    """(C, N) float → (2, N): mono is duplicated, extra channels beyond the first two dropped."""
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    return audio[:2]


def fit_audio(audio: np.ndarray, sample_rate: int, duration_s: float) -> np.ndarray:
    """The master's sound: (2, N) float32 at 48 kHz, clipped to [-1, 1], padded with silence or
    trimmed to exactly ``duration_s``."""
    audio = resample(_stereo(np.asarray(audio, dtype=np.float32)), sample_rate, MASTER_AUDIO_RATE)
    samples = round(duration_s * MASTER_AUDIO_RATE)
    audio = np.pad(audio, ((0, 0), (0, max(0, samples - audio.shape[1]))))[:, :samples]
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _validate(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, path: Path) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(path, f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    count, height, width = frames.shape[:3]
    if count == 0 or width % 2 or height % 2:
        raise MediaError(path, f"need at least one frame of even size (4:2:0), got {count} of {width}×{height}")
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise MediaError(path, f"audio must be (C, N) with C ≥ 1, got {audio.shape}")
    if fps <= 0 or sample_rate <= 0:
        raise MediaError(path, f"fps and sample rate must be positive, got {fps} and {sample_rate}")


def write_master(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, path: Path) -> MediaInfo:
    """Encode a master: ``frames`` (T, H, W, 3) uint8 RGB, ``audio`` (C, N) float32 in [-1, 1].

    H.264 yuv420p (crf 18, preset fast) + AAC 48 kHz stereo, faststart. The sound is resampled to 48 kHz
    and padded or trimmed to exactly T / fps seconds. The same arrays give the same bytes.
    """
    path = Path(path)
    _validate(frames, audio, fps, sample_rate, path)
    count, height, width = frames.shape[:3]
    rate = Fraction(fps).limit_denominator(1001)
    sound = fit_audio(audio, sample_rate, count / rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Encoded by the ffmpeg binary in its own process, fed raw RGB frames and samples: in-process PyAV
    # encodes differed byte-wise depending on what the process had encoded before, and masters are
    # content-addressed. One x264 thread, because x264's output depends on the thread count.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".master-") as scratch:
        video_raw, audio_raw = Path(scratch) / "video.rgb", Path(scratch) / "audio.f32"
        with video_raw.open("wb") as handle:
            handle.write(np.ascontiguousarray(frames).tobytes())
        audio_raw.write_bytes(np.ascontiguousarray(sound.T, dtype="<f4").tobytes())  # interleaved stereo
        run(
            ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", str(video_raw),
             "-f", "f32le", "-ar", str(MASTER_AUDIO_RATE), "-ac", "2", "-i", str(audio_raw),
             "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-crf", "18", "-preset", "fast", "-threads", "1",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", str(MASTER_AUDIO_BITRATE),
             "-t", f"{float(count / rate):.6f}", *BITEXACT, "-movflags", "+faststart", "-y", str(path)],
            what="writing the master",
            path=path,
        )  # fmt: skip
    return probe(path)


def write_master_clip(clip: MasterClip, path: Path) -> MediaInfo:
    """``write_master`` for a generator's MasterClip."""
    return write_master(clip.frames, clip.audio, clip.fps, clip.sample_rate, path)


def write_stems(stems: np.ndarray, sample_rate: int, path: Path) -> Path:
    """(S, N) float stems → one S-channel 16-bit PCM WAV (channel i = stem i), for later stages to mix."""
    if stems.ndim != 2 or not np.isfinite(stems).all():
        raise MediaError(path, f"stems must be a finite (stems, samples) array, got shape {stems.shape}")
    pcm = (np.clip(stems, -1.0, 1.0) * 32767).round().astype("<i2").T  # interleaved (N, S)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(stems.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    return path
