"""Running ffmpeg: the binary that imageio-ffmpeg ships, argument lists only, errors as MediaError."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
import imageio_ffmpeg

from media.errors import MediaError

# Reproducible files: no encoder version strings or creation times, so equal inputs give equal bytes.
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def run(args: list[str] | Any, *, what: str, path: str | Path, timeout: float = 3600) -> str:
    """Run ffmpeg with an argument list (or an ffmpeg-python graph); return its stderr (the analysis
    filters print there). A failure raises MediaError naming ``path`` with ffmpeg's last words."""
    if not isinstance(args, list):
        args = ffmpeg_python.compile(args, cmd=ffmpeg_exe())[1:]
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(path, f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = " | ".join(line for line in done.stderr.strip().splitlines()[-4:])
        raise MediaError(path, f"{what} failed: {tail}")
    return done.stderr
