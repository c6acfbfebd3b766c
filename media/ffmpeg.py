"""Running ffmpeg: the binary that imageio-ffmpeg ships, argument lists only, errors as MediaError."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
import imageio_ffmpeg

from media.errors import MediaError

# Reproducible files: no encoder version strings or creation times, so equal inputs give equal bytes.
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]
_ERROR_LINE = re.compile(r"error|invalid|failed|cannot|could not|no such|not found|unsupported|corrupt", re.I)
_TAIL_LINES = 4


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _failure_tail(stderr: str) -> str:
    """ffmpeg's last words that say what went wrong: error lines when there are some (an encoder's
    closing statistics can follow the real error), else the last lines."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line) and line != "Conversion failed!"]
    return " | ".join((errors or lines)[-_TAIL_LINES:])


def run(args: list[str] | Any, *, what: str, path: str | Path, timeout: float = 3600) -> str:
    """Run ffmpeg quietly with an argument list (or an ffmpeg-python graph) and return its stderr,
    where the analysis filters print. A failure raises MediaError naming ``path``, with ffmpeg's
    last error lines."""
    if not isinstance(args, list):
        args = ffmpeg_python.compile(args, cmd=ffmpeg_exe())[1:]
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(path, f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        raise MediaError(path, f"{what} failed: {_failure_tail(done.stderr)}")
    return done.stderr
