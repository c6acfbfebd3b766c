"""Technical QC: one analysis pass, then checks that compare it with what was expected.

`measure()` decodes the picture once in this process (`media.tracks.analyse`: black and frozen
stretches, by blackdetect's and freezedetect's definitions) while ffmpeg runs silencedetect + astats +
ebur128 (true peak) on the sound in its own; `measure_with_tracks()` hands back the decoded tracks
too, so the sync scores (`media.syncqa`) share that one decode. A check is any callable with a ``name`` that turns
(probe, measurements, expectation) into a `CheckResult` (the `QACheck` protocol); `TECHNICAL_CHECKS` is
the default set, and later checks (lip-sync, sound-effect sync) plug into the same interface — write
them as classes, or as functions decorated with `qa_check("name")`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from syncreel.media.faces import FaceTracker
from syncreel.media.ffmpeg import run
from syncreel.media.probe import MediaInfo, probe
from syncreel.media.tracks import ClipTracks, Span, analyse
from syncreel.schemas.platforms import PlatformSpec

Verdict = Literal["pass", "warn", "fail"]

SILENCE_DB = -50.0  # silencedetect noise floor
SILENCE_MIN_S = 0.3
MOSTLY = 0.5  # black or silent for more than this share of the clip fails
CLIP_PEAK_DBFS = -0.1  # a sample peak this close to full scale is taken as clipped
TRUE_PEAK_CODEC_SLACK_DB = 0.5  # AAC can overshoot a limiter's ceiling a little: warn, don't fail
GATED_SILENCE_LUFS = -70.0  # ebur128 reports the absolute gate for a silent programme
_FLOAT = r"(-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|inf|nan))"


@dataclass(frozen=True)
class QCMeasurements:
    duration_s: float
    black: tuple[Span, ...] = ()
    frozen: tuple[Span, ...] = ()
    silent: tuple[Span, ...] = ()
    peak_dbfs: float | None = None  # sample peak; None when there is no audio or it is digital silence
    rms_dbfs: float | None = None
    flat_factor: float | None = None  # astats: consecutive samples at the peak, the signature of clipping
    integrated_lufs: float | None = None  # None when there is no audio or it is below the absolute gate
    loudness_range_lu: float | None = None
    true_peak_dbtp: float | None = None

    def total(self, spans: Sequence[Span]) -> float:
        return sum(end - start for start, end in spans)

    def share(self, spans: Sequence[Span]) -> float:
        return self.total(spans) / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckResult:
    check: str
    verdict: Verdict
    metrics: dict[str, Any]  # JSON-safe: numbers, strings, lists, None
    message: str  # a sentence naming the value found and what was expected


@dataclass(frozen=True)
class Expectation:
    """What a file should be; every field is optional and a check skips what is not set."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    duration_tolerance_s: float = 0.1
    video_codec: str | None = "h264"
    audio_codec: str | None = "aac"
    pix_fmt: str | None = None
    video_profile: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    max_file_mb: float | None = None
    loudness_lufs: float | None = None
    loudness_tolerance_lu: float = 1.0
    true_peak_dbtp: float | None = None
    # a master with the spot's music bed laid under it later: its quiet stretches are gaps between its
    # lines and effects, which the bed fills; they are reported (warn), and only a clip with no sound at
    # all fails. The deliverable, with the bed, is held to the rule.
    bed_under: bool = False

    @classmethod
    def for_platform(
        cls, spec: PlatformSpec, duration_s: float | None, *, loudness_tolerance_lu: float = 1.0
    ) -> Expectation:
        """A deliverable for ``spec`` that should last ``duration_s`` (the spot's length) within two frames."""
        return cls(
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            duration_s=duration_s,
            duration_tolerance_s=max(0.1, 2 / spec.fps),
            video_codec=spec.video_codec,
            audio_codec=spec.audio_codec,
            pix_fmt=spec.pix_fmt,
            video_profile=spec.h264_profile if spec.video_codec == "h264" else None,
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
    def for_master(
        cls, width: int, height: int, fps: float, duration_s: float, *, bed_under: bool = False
    ) -> Expectation:
        """A generated master: its frame, rate and length; loudness is set later, per platform.
        ``bed_under``: the spot lays a music bed under it (see the field)."""
        return cls(
            width=width,
            height=height,
            fps=fps,
            duration_s=duration_s,
            duration_tolerance_s=max(0.1, 2 / fps),
            pix_fmt="yuv420p",
            audio_rate=48_000,
            bed_under=bed_under,
        )


def _finite(value: str | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _last(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return _finite(found[-1]) if found else None


def _spans(stderr: str, start_key: str, end_key: str, duration: float) -> tuple[Span, ...]:
    """Pair each start with the next end; a stretch still open at the end of the file runs to its end."""
    events = sorted(
        [(m.start(), "start", float(m.group(1))) for m in re.finditer(start_key + _FLOAT, stderr)]
        + [(m.start(), "end", float(m.group(1))) for m in re.finditer(end_key + _FLOAT, stderr)]
    )
    spans, opened = [], None
    for _, kind, seconds in events:
        if kind == "start":
            opened = max(0.0, seconds)
        elif opened is not None:
            spans.append((round(opened, 3), round(seconds, 3)))
            opened = None
    if opened is not None:
        spans.append((round(opened, 3), round(duration, 3)))
    return tuple(spans)


@dataclass(frozen=True)
class R128Summary:
    """What ffmpeg's ``ebur128=peak=true`` filter reports for a whole programme."""

    integrated_lufs: float | None  # None below the absolute gate (silence)
    loudness_range_lu: float | None
    true_peak_dbtp: float | None


def parse_ebur128(stderr: str) -> R128Summary:
    """The summary ffmpeg's ebur128 filter prints last in its log (Nones where it is missing or not finite)."""
    summary = stderr[stderr.rfind("Summary:") :] if "Summary:" in stderr else ""
    integrated = _last(r"I:\s+" + _FLOAT + r" LUFS", summary)
    return R128Summary(
        integrated_lufs=integrated if integrated is not None and integrated > GATED_SILENCE_LUFS else None,
        loudness_range_lu=_last(r"LRA:\s+" + _FLOAT + r" LU", summary),
        true_peak_dbtp=_last(r"Peak:\s+" + _FLOAT + r" dBFS", summary),
    )


def _measure_sound(path: Path, info: MediaInfo) -> dict[str, Any]:
    """QCMeasurements' sound fields from one ffmpeg pass over the first audio stream ({} without one)."""
    if info.audio is None:
        return {}
    graph = (
        f"[0:a:0]silencedetect=n={SILENCE_DB}dB:d={SILENCE_MIN_S},"
        "astats=metadata=0:measure_perchannel=none,ebur128=peak=true:framelog=verbose[aq]"
    )
    stderr = run(["-i", str(path), "-filter_complex", graph, "-map", "[aq]", "-f", "null", "-"],
                 what="QC analysis", path=path)  # fmt: skip
    overall = stderr[stderr.rfind("Overall") :] if "Overall" in stderr else ""
    return {
        "silent": _spans(stderr, r"silence_start: ", r"silence_end: ", info.duration_s),
        "peak_dbfs": _last(r"Peak level dB: " + _FLOAT, overall),
        "rms_dbfs": _last(r"RMS level dB: " + _FLOAT, overall),
        "flat_factor": _last(r"Flat factor: " + _FLOAT, overall),
        **asdict(parse_ebur128(stderr)),
    }


def measure_with_tracks(
    path: Path, info: MediaInfo | None = None, *, sync: bool = False, tracker: FaceTracker | None = None
) -> tuple[QCMeasurements, ClipTracks | None]:
    """Everything the technical checks need, and with ``sync`` the tracks the sync scores compare
    (face landmarks through ``tracker``, motion, sound), from one decode of the picture in this thread
    while ffmpeg measures the sound in its own process."""
    path = Path(path)
    info = info or probe(path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        sound = pool.submit(_measure_sound, path, info)
        picture = info.video is not None and not info.is_image
        tracks = analyse(path, faces=sync, sound=sync, tracker=tracker) if picture or sync else None
        measured = QCMeasurements(
            duration_s=info.duration_s,
            black=tracks.black if tracks else (),
            frozen=tracks.frozen if tracks else (),
            **sound.result(),
        )
    return measured, tracks if sync else None


def measure(path: Path, info: MediaInfo | None = None) -> QCMeasurements:
    """Everything the technical checks need, from one decode of the file (video, audio, or both)."""
    return measure_with_tracks(path, info)[0]


class QACheck(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, info: MediaInfo, qc: QCMeasurements, expect: Expectation) -> CheckResult: ...


Outcome = tuple[Verdict, dict[str, Any], str]
CheckFunction = Callable[[MediaInfo, QCMeasurements, Expectation], Outcome]


@dataclass(frozen=True)
class FunctionCheck:
    """A QACheck made from a function that returns (verdict, metrics, message)."""

    name: str
    evaluate: CheckFunction

    def __call__(self, info: MediaInfo, qc: QCMeasurements, expect: Expectation) -> CheckResult:
        verdict, metrics, message = self.evaluate(info, qc, expect)
        return CheckResult(self.name, verdict, metrics, message)


def qa_check(name: str) -> Callable[[CheckFunction], FunctionCheck]:
    def wrap(evaluate: CheckFunction) -> FunctionCheck:
        return FunctionCheck(name, evaluate)

    return wrap


def _spans_json(spans: Sequence[Span]) -> list[list[float]]:
    return [[start, end] for start, end in spans]


@qa_check("duration")
def check_duration(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    d = info.duration_s
    metrics = {"duration_s": round(d, 3), "expected_s": e.duration_s, "tolerance_s": e.duration_tolerance_s}
    if e.duration_s is not None and abs(d - e.duration_s) > e.duration_tolerance_s:
        return "fail", metrics, f"lasts {d:.2f} s; expected {e.duration_s:.2f} ± {e.duration_tolerance_s:.2f} s"
    if e.max_duration_s is not None and d > e.max_duration_s:
        return "fail", metrics, f"lasts {d:.2f} s; expected at most {e.max_duration_s:g} s"
    if e.min_duration_s is not None and d < e.min_duration_s:
        return "fail", metrics, f"lasts {d:.2f} s; expected at least {e.min_duration_s:g} s"
    return "pass", metrics, f"lasts {d:.2f} s as expected"


@qa_check("frame_size")
def check_frame_size(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    if info.video is None:
        return "fail", {"width": None, "height": None}, "no video stream; expected a picture"
    width, height = info.video.width, info.video.height
    metrics = {"width": width, "height": height, "expected_width": e.width, "expected_height": e.height}
    if (e.width is not None and width != e.width) or (e.height is not None and height != e.height):
        return "fail", metrics, f"frame is {width}×{height}; expected {e.width}×{e.height}"
    return "pass", metrics, f"frame is {width}×{height} as expected"


@qa_check("fps")
def check_fps(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    if info.video is None:
        return "fail", {"fps": None, "expected": e.fps}, "no video stream; expected a picture"
    fps = info.video.fps
    metrics = {"fps": round(fps, 3), "expected": e.fps}
    if e.fps is not None and abs(fps - e.fps) > 0.01:
        return "fail", metrics, f"runs at {fps:g} fps; expected {e.fps:g} fps"
    return "pass", metrics, f"runs at {fps:g} fps"


@qa_check("codecs")
def check_codecs(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    video, audio = info.video, info.audio
    found = {
        "video_codec": video.codec if video else None,
        "pix_fmt": video.pix_fmt if video else None,
        "video_profile": video.profile if video else None,
        "audio_codec": audio.codec if audio else None,
        "audio_rate": audio.sample_rate if audio else None,
        "audio_channels": audio.channels if audio else None,
    }
    wanted = {
        "video_codec": e.video_codec,
        "pix_fmt": e.pix_fmt,
        "video_profile": e.video_profile,
        "audio_codec": e.audio_codec if audio else None,  # a missing track is audio_present's to judge
        "audio_rate": e.audio_rate if audio else None,
        "audio_channels": e.audio_channels if audio else None,
    }
    problems = [
        f"{key.replace('_', ' ')} is {found[key]}, expected {value}"
        for key, value in wanted.items()
        if value is not None and str(found[key]).lower() != str(value).lower()
    ]
    metrics = {**found, "expected": wanted}
    if problems:
        return "fail", metrics, "; ".join(problems)
    return "pass", metrics, f"{found['video_codec']} {found['pix_fmt']} + {found['audio_codec']} as expected"


@qa_check("audio_present")
def check_audio_present(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    if info.audio is None:
        return "fail", {"audio_s": None}, "no audio stream; expected a soundtrack"
    return "pass", {"audio_s": round(info.audio.duration_s, 3)}, f"audio stream of {info.audio.duration_s:.2f} s"


@qa_check("not_silent")
def check_not_silent(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    if info.audio is None:
        return "fail", {"silent_share": 1.0}, "no audio stream, so the clip is silent throughout"
    silent, share = qc.total(qc.silent), qc.share(qc.silent)
    metrics = {
        "silent_s": round(silent, 3),
        "silent_share": round(share, 3),
        "spans": _spans_json(qc.silent),
        "threshold_db": SILENCE_DB,
        "peak_dbfs": qc.peak_dbfs,
    }
    if qc.peak_dbfs is None or (share > MOSTLY and not e.bed_under):
        return (
            "fail",
            metrics,
            (f"silent (below {SILENCE_DB:g} dB) for {share:.0%} of the clip; expected at most {MOSTLY:.0%}"),
        )
    if silent > 0 and e.bed_under:
        return "warn", metrics, f"quiet for {silent:.2f} s ({share:.0%} of the clip), under the music bed"
    if silent > 0:
        return "warn", metrics, f"silent for {silent:.2f} s ({share:.0%} of the clip)"
    return "pass", metrics, "no silent stretch"


@qa_check("not_black")
def check_not_black(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    if info.video is None:
        return "fail", {"black_share": 1.0}, "no video stream, so the picture is black throughout"
    black, share = qc.total(qc.black), qc.share(qc.black)
    metrics = {"black_s": round(black, 3), "black_share": round(share, 3), "spans": _spans_json(qc.black)}
    if share > MOSTLY:
        return "fail", metrics, f"black for {share:.0%} of the clip; expected at most {MOSTLY:.0%}"
    if black > 0:
        return "warn", metrics, f"black for {black:.2f} s ({share:.0%} of the clip)"
    return "pass", metrics, "no black stretch"


@qa_check("frozen")
def check_frozen(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    frozen = qc.total(qc.frozen)
    metrics: dict[str, Any] = {"frozen_s": round(frozen, 3), "frozen_share": round(qc.share(qc.frozen), 3)}
    metrics["spans"] = _spans_json(qc.frozen)
    if frozen > 0:
        return "warn", metrics, f"picture frozen for {frozen:.2f} s; expected motion throughout"
    return "pass", metrics, "picture moves throughout"


@qa_check("clipping")
def check_clipping(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    metrics = {"peak_dbfs": qc.peak_dbfs, "flat_factor": qc.flat_factor, "threshold_dbfs": CLIP_PEAK_DBFS}
    if qc.peak_dbfs is not None and qc.peak_dbfs >= CLIP_PEAK_DBFS:
        return (
            "warn",
            metrics,
            (f"sample peak at {qc.peak_dbfs:.2f} dBFS: likely clipped; expected below {CLIP_PEAK_DBFS:g} dBFS"),
        )
    if qc.peak_dbfs is None:
        return "pass", metrics, "no audio signal, so nothing clips"
    return "pass", metrics, f"sample peak {qc.peak_dbfs:.2f} dBFS, below {CLIP_PEAK_DBFS:g} dBFS: no clipping"


@qa_check("loudness")
def check_loudness(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    lufs = qc.integrated_lufs
    metrics = {"integrated_lufs": lufs, "lra_lu": qc.loudness_range_lu, "target_lufs": e.loudness_lufs}
    metrics["tolerance_lu"] = e.loudness_tolerance_lu
    if e.loudness_lufs is None:
        found = "not measurable" if lufs is None else f"{lufs:.1f} LUFS"
        return "pass", metrics, f"integrated loudness {found} (no target set)"
    if lufs is None:
        return "fail", metrics, f"no measurable loudness; expected {e.loudness_lufs:g} LUFS"
    if abs(lufs - e.loudness_lufs) > e.loudness_tolerance_lu:
        return (
            "fail",
            metrics,
            (f"integrated loudness {lufs:.1f} LUFS; expected {e.loudness_lufs:g} ± {e.loudness_tolerance_lu:g} LU"),
        )
    return "pass", metrics, f"integrated loudness {lufs:.1f} LUFS, within {e.loudness_tolerance_lu:g} LU of target"


@qa_check("true_peak")
def check_true_peak(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    peak, ceiling = qc.true_peak_dbtp, e.true_peak_dbtp
    metrics = {"true_peak_dbtp": peak, "ceiling_dbtp": ceiling}
    if peak is None:
        return "pass", metrics, "no true peak: the sound is silent or absent"
    if ceiling is None:
        return "pass", metrics, f"true peak {peak:.2f} dBTP (no ceiling set)"
    if peak <= ceiling:
        return "pass", metrics, f"true peak {peak:.2f} dBTP, under the {ceiling:g} dBTP ceiling"
    message = f"true peak {peak:.2f} dBTP; expected at most {ceiling:g} dBTP"
    return ("warn" if peak <= ceiling + TRUE_PEAK_CODEC_SLACK_DB else "fail"), metrics, message


@qa_check("file_size")
def check_file_size(info: MediaInfo, qc: QCMeasurements, e: Expectation) -> Outcome:
    mb = info.size_bytes / 1e6
    metrics = {"size_mb": round(mb, 3), "max_mb": e.max_file_mb}
    if e.max_file_mb is not None and mb > e.max_file_mb:
        return "fail", metrics, f"file is {mb:.1f} MB; expected at most {e.max_file_mb:g} MB"
    return "pass", metrics, f"file is {mb:.2f} MB"


TECHNICAL_CHECKS: tuple[QACheck, ...] = (
    check_duration,
    check_frame_size,
    check_fps,
    check_codecs,
    check_audio_present,
    check_not_silent,
    check_not_black,
    check_frozen,
    check_clipping,
    check_loudness,
    check_true_peak,
    check_file_size,
)


def run_checks(path: Path, expect: Expectation, checks: Sequence[QACheck] = TECHNICAL_CHECKS) -> list[CheckResult]:
    """Probe and measure ``path`` once, then run every check on it."""
    info = probe(path)
    return evaluate(info, measure(path, info), expect, checks)


def evaluate(
    info: MediaInfo, qc: QCMeasurements, expect: Expectation, checks: Sequence[QACheck] = TECHNICAL_CHECKS
) -> list[CheckResult]:
    """Every check on a file already probed and measured."""
    return [check(info, qc, expect) for check in checks]
