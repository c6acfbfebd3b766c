"""Synthetic media for tests, examples and benchmarks: FFmpeg's lavfi test sources written to a file.

Pictures: ``testsrc2`` (moving colour pattern), ``black`` or ``still`` (one colour, frozen). Sound:
``sine`` (a tone at ``level_db`` dBFS peak), ``silence``, or none. The container and codecs follow
the file extension (.mp4/.mov → H.264 + AAC, .webm → VP9 + Opus, .wav/.flac/.m4a/.mp3 → audio only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from syncreel.media.ffmpeg import BITEXACT, run

Picture = Literal["testsrc2", "black", "still"]
Sound = Literal["sine", "silence"]

_VIDEO_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".mov": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus"],
}


def _picture_source(picture: Picture, size: tuple[int, int], fps: float, duration_s: float) -> str:
    dims = f"s={size[0]}x{size[1]}:r={fps}:d={duration_s}"
    return {
        "testsrc2": f"testsrc2={dims}",
        "black": f"color=c=black:{dims}",
        "still": f"color=c=0x3366cc:{dims}",
    }[picture]


def _sound_source(sound: Sound, rate: int, channels: int, duration_s: float, tone_hz: float, level_db: float) -> str:
    layout = "mono" if channels == 1 else "stereo"
    if sound == "silence":
        return f"anullsrc=r={rate}:cl={layout},atrim=duration={duration_s}"
    amplitude = 10 ** (level_db / 20)
    # aevalsrc gives an exact peak; one expression per channel.
    expression = "|".join([f"{amplitude:.6f}*sin(2*PI*{tone_hz}*t)"] * channels)
    return f"aevalsrc={expression}:s={rate}:d={duration_s}"


def synth_media(
    path: Path,
    *,
    duration_s: float = 2.0,
    picture: Picture | None = "testsrc2",
    size: tuple[int, int] = (320, 180),
    fps: float = 25.0,
    sound: Sound | None = "sine",
    sample_rate: int = 48_000,
    channels: int = 2,
    tone_hz: float = 440.0,
    level_db: float = -18.0,
    faststart: bool = False,
) -> Path:
    """Write a synthetic clip, still picture (.png/.jpg) or sound file to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        source = _picture_source(picture or "testsrc2", size, 1.0, 1.0)
        run(["-f", "lavfi", "-i", source, "-frames:v", "1", *BITEXACT, "-y", str(path)], what="synth", path=path)
        return path
    inputs, codecs = [], []
    if picture is not None and suffix in _VIDEO_CODECS:
        inputs += ["-f", "lavfi", "-i", _picture_source(picture, size, fps, duration_s)]
        codecs += ["-shortest"] if sound is not None else ["-an"]
    if sound is not None:
        inputs += ["-f", "lavfi", "-i", _sound_source(sound, sample_rate, channels, duration_s, tone_hz, level_db)]
    if not inputs:
        raise ValueError(f"nothing to write to {path}: no picture for {suffix} and no sound")
    codecs += _VIDEO_CODECS.get(suffix, [])
    if faststart:
        codecs += ["-movflags", "+faststart"]
    run([*inputs, *codecs, "-t", str(duration_s), *BITEXACT, "-y", str(path)], what="synth", path=path)
    return path
