"""Running ffmpeg: the binary that imageio-ffmpeg ships, argument lists only, errors as MediaError.

Every file given to ffmpeg (or to PyAV, through ``INPUT_OPTIONS``) is opened with a protocol and a
demuxer whitelist: the file protocol only, and demuxers that read one file and open nothing else. A
playlist, concat list, manifest, session description or image sequence given as a reference would
otherwise make ffmpeg read other files or URLs, wherever they are.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
import imageio_ffmpeg

from syncreel.media.errors import MediaError

# Reproducible files: no encoder version strings or creation times, so equal inputs give equal bytes.
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]

# Demuxers that read one file and open no other (a name matches a demuxer whose name lists it, such as
# "mov" for "mov,mp4,m4a,3gp,3g2,mj2"). Left out on purpose: hls, dash, concat, sdp, rtsp, image
# sequences' glob and pattern reading (image2 reads one file under ``pattern_type=none`` or a name that
# is no pattern), tee, and every text format.
SINGLE_FILE_DEMUXERS = (
    "mov", "matroska", "avi", "mpegts", "mpeg", "flv", "asf", "ogg", "ivf", "m4v", "h264", "hevc", "mjpeg",
    "wav", "w64", "flac", "mp3", "aac", "ac3", "eac3", "aiff", "caf", "au", "wv",
    "image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif", "apng",
)  # fmt: skip
INPUT_PROTOCOLS = "file"
ACCEPTED_CONTAINERS = (
    "a single media file such as MP4, MOV, MKV, WebM, AVI, MPEG-TS, WAV, FLAC, MP3, AAC, Ogg, "
    "PNG, JPEG, WebP, GIF, BMP or TIFF"
)
REFUSED_CONTAINER = f"not a single-file container of an accepted kind; accepted: {ACCEPTED_CONTAINERS}"
# Options for opening an untrusted file with PyAV (``av.open(..., container_options=INPUT_OPTIONS)``).
INPUT_OPTIONS = {
    "protocol_whitelist": INPUT_PROTOCOLS,
    "format_whitelist": ",".join(SINGLE_FILE_DEMUXERS),
    "pattern_type": "none",  # image2: a '%d' or '*' in the name is part of the name, never a sequence
}
_WHITELISTS = ["-protocol_whitelist", INPUT_PROTOCOLS, "-format_whitelist", INPUT_OPTIONS["format_whitelist"]]
# Inputs that syncreel generates itself (a lavfi source, raw frames and samples it wrote): no whitelist.
GENERATED_INPUT_FORMATS = {"lavfi", "rawvideo", "f32le"}
# Characters that make image2 read a name as a sequence or glob pattern on the command line.
_PATTERN_CHARS = set("%*?[{")

_ERROR_LINE = re.compile(r"error|invalid|failed|cannot|could not|no such|not found|unsupported|corrupt", re.I)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*'[^)]*\)")
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+")
_TAIL_LINES = 4
_LINE_CHARS = 160


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _failure_tail(stderr: str) -> str:
    """ffmpeg's own words for what went wrong, and nothing read from a file: its last error lines
    (an encoder's closing statistics can follow the real error), with quoted text (where a demuxer
    or parser echoes what it read) replaced by '…', indented lines (metadata, stream listings)
    dropped, and each line cut short."""
    errors = []
    for raw in stderr.splitlines():
        if not raw.strip() or raw[:1].isspace() or raw.strip() == "Conversion failed!":
            continue
        line = _QUOTED.sub("'…'", _ADDRESS.sub("", raw.strip()))
        if _ERROR_LINE.search(line) and line.isprintable():
            errors.append(line if len(line) <= _LINE_CHARS else f"{line[: _LINE_CHARS - 1]}…")
    return " | ".join(errors[-_TAIL_LINES:])


def _guard_inputs(args: list[str], aliases: Path) -> tuple[list[str], list[str]]:
    """``args`` with the protocol and demuxer whitelists before every ``-i`` that names a file, each
    file given by its absolute path (so no ``name:`` prefix reads as a protocol), through a symlink
    under ``aliases`` when its path holds a character image2 would read as a pattern. Also returns
    the files, in input order."""
    guarded: list[str] = []
    files: list[str] = []
    forced: str | None = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-f" and index + 1 < len(args):
            forced = args[index + 1]
        if arg != "-i" or index + 1 >= len(args):
            guarded.append(arg)
            index += 1
            continue
        source = args[index + 1]
        files.append(source)
        if forced in GENERATED_INPUT_FORMATS:
            guarded += ["-i", source]
        else:
            path = Path(source).absolute()
            if _PATTERN_CHARS & set(str(path)):
                suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", path.suffix) else ""
                alias = aliases / f"input{len(files)}{suffix}"
                alias.symlink_to(path)
                path = alias
            guarded += [*_WHITELISTS, "-i", str(path)]
        forced = None
        index += 2
    return guarded, files


def _refused_input(stderr: str, files: list[str]) -> str | None:
    """Whether ffmpeg refused an input for its protocol or container kind: the input when its log line
    says which, "" when it does not, None when nothing was refused."""
    for line in stderr.splitlines():
        if "not on whitelist" in line:
            found = re.match(r"\[in#(\d+)", line)
            number = int(found.group(1)) if found else len(files)
            return files[number] if number < len(files) else ""
    return None


def run(args: list[str] | Any, *, what: str, path: str | Path, timeout: float = 3600) -> str:
    """Run ffmpeg quietly with an argument list (or an ffmpeg-python graph) and return its stderr,
    where the analysis filters print. Every file input is opened under the whitelists (see the module
    docstring). A failure raises MediaError naming ``path`` (or the refused input), with ffmpeg's last
    error lines."""
    if not isinstance(args, list):
        args = ffmpeg_python.compile(args, cmd=ffmpeg_exe())[1:]
    with tempfile.TemporaryDirectory(prefix="syncreel-ffmpeg-") as aliases:
        guarded, files = _guard_inputs(args, Path(aliases))
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *guarded]
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MediaError(path, f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        refused = _refused_input(done.stderr, files)
        if refused is not None:
            raise MediaError(refused or path, f"{what} refused: {REFUSED_CONTAINER}")
        words = _failure_tail(done.stderr) or f"ffmpeg exited with status {done.returncode}"
        raise MediaError(path, f"{what} failed: {words}")
    return done.stderr
