"""Technical QC: one ffmpeg analysis pass, then checks that compare it with what was expected.

`measure()` runs blackdetect + freezedetect on the picture and silencedetect + astats + ebur128 (true
peak) on the sound in a single decode. A check is any callable with a `name` that turns
(probe, measurements, expectation) into a `CheckResult`; `TECHNICAL_CHECKS` is the default set, and
later checks (lip-sync, sound-effect sync) plug into the same interface.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from media.ffmpeg import run
from media.probe import MediaInfo, probe
from schemas.platforms import PlatformSpec

Verdict = Literal["pass", "warn", "fail"]
SILENCE_DB = -50.0
BLACK_PIXEL_THRESHOLD = 0.10


@dataclass(frozen=True)
class QCMeasurements:
    duration_s: float
    black: list[tuple[float, float]] = field(default_factory=list)  # (start, end) seconds
    frozen: list[tuple[float, float]] = field(default_factory=list)
    silent: list[tuple[float, float]] = field(default_factory=list)
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    integrated_lufs: float | None = None
    loudness_range_lu: float | None = None
    true_peak_dbtp: float | None = None

    @staticmethod
    def total(spans: list[tuple[float, float]]) -> float:
        return sum(end - start for start, end in spans)


@dataclass(frozen=True)
class CheckResult:
    check: str
    verdict: Verdict
    metrics: dict[str, Any]
    message: str


@dataclass(frozen=True)
class Expectation:
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    duration_tolerance_s: float = 0.1
    video_codec: str | None = "h264"
    audio_codec: str | None = "aac"
    audio_rate: int | None = None
    audio_channels: int | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    max_file_mb: float | None = None
    loudness_lufs: float | None = None
    loudness_tolerance_lu: float = 2.0
    true_peak_dbtp: float | None = None

    @classmethod
    def for_platform(cls, spec: PlatformSpec, duration_s: float, *, loudness_tolerance_lu: float = 2.0) -> Expectation:
        return cls(
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            duration_s=duration_s,
            duration_tolerance_s=max(0.1, 2 / spec.fps),
            video_codec=spec.video_codec,
            audio_codec=spec.audio_codec,
            audio_rate=spec.audio_rate,
            audio_channels=spec.audio_channels,
            min_duration_s=spec.min_duration_s,
            max_duration_s=spec.max_duration_s,
            max_file_mb=spec.max_file_mb,
            loudness_lufs=spec.loudness_lufs,
            loudness_tolerance_lu=loudness_tolerance_lu,
            true_peak_dbtp=spec.true_peak_dbtp,
        )

    @classmethod
    def for_master(cls, width: int, height: int, fps: float, duration_s: float) -> Expectation:
        return cls(width=width, height=height, fps=fps, duration_s=duration_s, duration_tolerance_s=max(0.1, 2 / fps))


def _spans(stderr: str, start_pattern: str, end_pattern: str, duration: float) -> list[tuple[float, float]]:
    starts = [float(v) for v in re.findall(start_pattern, stderr)]
    ends = [float(v) for v in re.findall(end_pattern, stderr)]
    return [(start, ends[i] if i < len(ends) else duration) for i, start in enumerate(starts)]


def _last_float(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    if not found:
        return None
    value = float(found[-1])
    return value if math.isfinite(value) else None


def measure(path: Path, info: MediaInfo | None = None) -> QCMeasurements:
    """Everything the technical checks need, from one decode of the file."""
    info = info or probe(path)
    graph, maps = [], []
    if info.video is not None and not info.is_image:
        graph.append(f"[0:v]blackdetect=d=0.1:pix_th={BLACK_PIXEL_THRESHOLD},freezedetect=n=0.003:d=1[vq]")
        maps += ["-map", "[vq]"]
    if info.audio is not None:
        graph.append(f"[0:a]silencedetect=n={SILENCE_DB}dB:d=0.3,astats=metadata=0,ebur128=peak=true[aq]")
        maps += ["-map", "[aq]"]
    if not graph:
        return QCMeasurements(duration_s=info.duration_s)
    stderr = run(
        ["-i", str(path), "-filter_complex", ";".join(graph), *maps, "-f", "null", "-"], what="QC analysis", path=path
    )
    duration = info.duration_s
    summary = stderr[stderr.rfind("Summary:") :] if "Summary:" in stderr else ""
    overall = stderr[stderr.rfind("Overall") :] if "Overall" in stderr else ""
    return QCMeasurements(
        duration_s=duration,
        black=[(float(a), float(b)) for a, b in re.findall(r"black_start:([\d.]+) black_end:([\d.]+)", stderr)],
        frozen=_spans(stderr, r"freeze_start: ([\d.]+)", r"freeze_end: ([\d.]+)", duration),
        silent=_spans(stderr, r"silence_start: (-?[\d.]+)", r"silence_end: ([\d.]+)", duration),
        peak_dbfs=_last_float(r"Peak level dB: (-?[\d.]+|-?inf)", overall),
        rms_dbfs=_last_float(r"RMS level dB: (-?[\d.]+|-?inf)", overall),
        integrated_lufs=_last_float(r"I:\s+(-?[\d.]+|-?inf) LUFS", summary),
        loudness_range_lu=_last_float(r"LRA:\s+(-?[\d.]+) LU", summary),
        true_peak_dbtp=_last_float(r"Peak:\s+(-?[\d.]+|-?inf) dBFS", summary),
    )


class QACheck(Protocol):
    name: str

    def __call__(self, info: MediaInfo, qc: QCMeasurements, expect: Expectation) -> CheckResult: ...


@dataclass(frozen=True)
class _Check:
    name: str
    fn: Callable[[MediaInfo, QCMeasurements, Expectation], tuple[Verdict, dict[str, Any], str]]

    def __call__(self, info: MediaInfo, qc: QCMeasurements, expect: Expectation) -> CheckResult:
        verdict, metrics, message = self.fn(info, qc, expect)
        return CheckResult(self.name, verdict, metrics, message)


def check(name: str) -> Callable[[Callable[..., tuple[Verdict, dict[str, Any], str]]], _Check]:
    def wrap(fn: Callable[..., tuple[Verdict, dict[str, Any], str]]) -> _Check:
        return _Check(name, fn)

    return wrap


@check("duration")
def _duration(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    d = info.duration_s
    metrics = {"duration_s": round(d, 3), "expected_s": e.duration_s}
    if e.duration_s is not None and abs(d - e.duration_s) > e.duration_tolerance_s:
        return "fail", metrics, f"lasts {d:.2f} s; expected {e.duration_s:.2f} ± {e.duration_tolerance_s:.2f} s"
    if e.max_duration_s is not None and d > e.max_duration_s:
        return "fail", metrics, f"lasts {d:.2f} s; the platform accepts at most {e.max_duration_s:g} s"
    if e.min_duration_s is not None and d < e.min_duration_s:
        return "fail", metrics, f"lasts {d:.2f} s; the platform needs at least {e.min_duration_s:g} s"
    return "pass", metrics, f"lasts {d:.2f} s"


@check("frame_size")
def _frame_size(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    if info.video is None:
        return "fail", {}, "no video stream"
    got = (info.video.width, info.video.height)
    metrics = {"width": got[0], "height": got[1], "expected": [e.width, e.height]}
    if e.width is not None and got != (e.width, e.height):
        return "fail", metrics, f"frame is {got[0]}×{got[1]}; expected {e.width}×{e.height}"
    return "pass", metrics, f"frame is {got[0]}×{got[1]}"


@check("fps")
def _fps(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    if info.video is None:
        return "fail", {}, "no video stream"
    metrics = {"fps": round(info.video.fps, 3), "expected": e.fps}
    if e.fps is not None and abs(info.video.fps - e.fps) > 0.01:
        return "fail", metrics, f"{info.video.fps:g} fps; expected {e.fps:g}"
    return "pass", metrics, f"{info.video.fps:g} fps"


@check("codecs")
def _codecs(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    video = info.video.codec if info.video else None
    audio = info.audio.codec if info.audio else None
    metrics = {
        "video_codec": video,
        "audio_codec": audio,
        "pix_fmt": info.video.pix_fmt if info.video else None,
        "audio_rate": info.audio.sample_rate if info.audio else None,
        "audio_channels": info.audio.channels if info.audio else None,
    }
    problems = []
    if e.video_codec and video != e.video_codec:
        problems.append(f"video codec {video}, expected {e.video_codec}")
    if e.audio_codec and audio and audio != e.audio_codec:
        problems.append(f"audio codec {audio}, expected {e.audio_codec}")
    if e.audio_rate and info.audio and info.audio.sample_rate != e.audio_rate:
        problems.append(f"audio at {info.audio.sample_rate} Hz, expected {e.audio_rate}")
    if e.audio_channels and info.audio and info.audio.channels != e.audio_channels:
        problems.append(f"{info.audio.channels} audio channels, expected {e.audio_channels}")
    if problems:
        return "fail", metrics, "; ".join(problems)
    return "pass", metrics, f"{video} + {audio}"


@check("audio_present")
def _audio_present(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    if info.audio is None:
        return "fail", {}, "no audio stream"
    return "pass", {"audio_s": round(info.audio.duration_s, 3)}, "audio stream present"


@check("not_silent")
def _not_silent(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    silent = qc.total(qc.silent)
    share = silent / qc.duration_s if qc.duration_s else 1.0
    metrics = {
        "silent_s": round(silent, 3),
        "silent_share": round(share, 3),
        "spans": qc.silent,
        "threshold_db": SILENCE_DB,
    }
    if info.audio is None or share > 0.5 or qc.peak_dbfs is None:
        return "fail", metrics, f"silent for {share:.0%} of the clip (below {SILENCE_DB:g} dB)"
    if silent > 0:
        return "warn", metrics, f"silent for {silent:.2f} s ({share:.0%})"
    return "pass", metrics, "no silent stretch"


@check("not_black")
def _not_black(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    black = qc.total(qc.black)
    share = black / qc.duration_s if qc.duration_s else 1.0
    metrics = {"black_s": round(black, 3), "black_share": round(share, 3), "spans": qc.black}
    if share > 0.5:
        return "fail", metrics, f"black for {share:.0%} of the clip"
    if black > 0:
        return "warn", metrics, f"black for {black:.2f} s ({share:.0%})"
    return "pass", metrics, "no black stretch"


@check("frozen")
def _frozen(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    frozen = qc.total(qc.frozen)
    metrics = {"frozen_s": round(frozen, 3), "spans": qc.frozen}
    if frozen > 0:
        return "warn", metrics, f"picture frozen for {frozen:.2f} s"
    return "pass", metrics, "picture moves throughout"


@check("clipping")
def _clipping(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    metrics = {"peak_dbfs": qc.peak_dbfs}
    if qc.peak_dbfs is not None and qc.peak_dbfs >= -0.01:
        return "warn", metrics, f"sample peak at {qc.peak_dbfs:.2f} dBFS: likely clipped"
    return "pass", metrics, "no clipping"


@check("loudness")
def _loudness(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    metrics = {"integrated_lufs": qc.integrated_lufs, "lra_lu": qc.loudness_range_lu, "target": e.loudness_lufs}
    if e.loudness_lufs is None:
        return "pass", metrics, f"integrated {qc.integrated_lufs} LUFS (no target)"
    if qc.integrated_lufs is None:
        return "fail", metrics, "no measurable loudness"
    off = qc.integrated_lufs - e.loudness_lufs
    if abs(off) > e.loudness_tolerance_lu:
        return (
            "fail",
            metrics,
            (
                f"integrated {qc.integrated_lufs:.1f} LUFS; expected {e.loudness_lufs:g} "
                f"± {e.loudness_tolerance_lu:g} LU"
            ),
        )
    return "pass", metrics, f"integrated {qc.integrated_lufs:.1f} LUFS"


@check("true_peak")
def _true_peak(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    metrics = {"true_peak_dbtp": qc.true_peak_dbtp, "ceiling": e.true_peak_dbtp}
    if e.true_peak_dbtp is not None and qc.true_peak_dbtp is not None and qc.true_peak_dbtp > e.true_peak_dbtp + 0.2:
        return "fail", metrics, f"true peak {qc.true_peak_dbtp:.1f} dBTP; ceiling {e.true_peak_dbtp:g} dBTP"
    return "pass", metrics, f"true peak {qc.true_peak_dbtp} dBTP"


@check("file_size")
def _file_size(info: MediaInfo, qc: QCMeasurements, e: Expectation):
    mb = info.size_bytes / 1e6
    metrics = {"size_mb": round(mb, 3), "max_mb": e.max_file_mb}
    if e.max_file_mb is not None and mb > e.max_file_mb:
        return "fail", metrics, f"{mb:.1f} MB; the platform accepts at most {e.max_file_mb:g} MB"
    return "pass", metrics, f"{mb:.2f} MB"


TECHNICAL_CHECKS: tuple[QACheck, ...] = (
    _duration,
    _frame_size,
    _fps,
    _codecs,
    _audio_present,
    _not_silent,
    _not_black,
    _frozen,
    _clipping,
    _loudness,
    _true_peak,
    _file_size,
)


def run_checks(path: Path, expect: Expectation, checks: Sequence[QACheck] = TECHNICAL_CHECKS) -> list[CheckResult]:
    """Probe and measure ``path`` once, then run every check on it."""
    info = probe(path)
    qc = measure(path, info)
    return [c(info, qc, expect) for c in checks]
