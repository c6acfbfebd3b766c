"""Platform variants: reframe the spot to a platform's frame and encode it exactly to its spec.

Reframing rule: scale the source to *cover* the target frame and crop, when that crop cuts at most
``MAX_CROP_LOSS`` (25 %) of the source's width or height — 4:3 → 1:1 or 16:9 → 2:1 crop. Otherwise the
crop would cut the subject (16:9 → 9:16 keeps only 32 % of the width, 16:9 → 1:1 56 %, 16:9 → 4:5 45 %),
so the whole picture is *fitted* inside the frame over a blurred, scaled copy of itself — never black
bars. The crop window is centred on ``focus`` (the frame centre unless a subject tracker says otherwise).

Loudness is two-pass EBU R128: `loudnorm` measures the source, then the render pass applies the
measured values in linear mode (one gain, dynamics untouched) when that gain keeps the true peak under
the platform's ceiling. Peaky sound that one gain cannot lift that far (linear mode then stops short:
−17.3 LUFS for a −14 target was seen) gets a gain + peak limiter tuned by audio-only measurement passes
instead, followed by loudnorm in linear mode with the limited sound's own measurement as the
true-peak safety (a single-pass, dynamic loudnorm there would undo the work: on a 12 s spot with a
wide loudness range it came out at −17.4 LUFS).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from media.errors import MediaError
from media.ffmpeg import BITEXACT, run
from media.probe import MediaInfo, probe
from schemas.platforms import PlatformSpec

MAX_CROP_LOSS = 0.25
AAC_HEADROOM_DB = 0.5  # AAC's reconstruction overshoots the true peak of what it was given by ~0.1-0.3 dB
LOUDNESS_RANGE_LU = 11.0  # loudnorm's LRA target; wide enough that linear mode is rarely refused
BACKGROUND_DOWNSCALE = 8  # the blurred background is built at 1/8 size: cheap, and blurry anyway
BACKGROUND_BLUR_SIGMA = 6.0
BACKGROUND_BRIGHTNESS = -0.08  # a slightly darker background lets the fitted picture stand out


@dataclass(frozen=True)
class Reframe:
    """How a source frame becomes a target frame.

    mode "crop": (x, y, width, height) is the window of the *source* that is scaled to the target.
    mode "pad": (x, y, width, height) is where the whole, scaled source sits in the *target* frame.
    """

    mode: Literal["crop", "pad"]
    x: int
    y: int
    width: int
    height: int
    kept_share: float  # share of the source picture that stays visible

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VariantResult:
    path: Path
    info: MediaInfo
    reframe: Reframe
    input_lufs: float | None  # integrated loudness of the source (pass 1); None for silence
    input_true_peak_dbtp: float | None
    target_lufs: float
    output_lufs: float | None  # what loudnorm measured on its output in the render pass

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "info": self.info.to_dict()}


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def plan_reframe(
    src_w: int,
    src_h: int,
    spec: PlatformSpec,
    *,
    max_crop_loss: float = MAX_CROP_LOSS,
    focus: tuple[float, float] = (0.5, 0.5),
) -> Reframe:
    """Crop or pad (see the module docstring). ``focus`` is the point of interest as fractions of the
    source width and height; the crop window is centred on it as far as the frame allows."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"source size must be positive, got {src_w}×{src_h}")
    cover = max(spec.width / src_w, spec.height / src_h)
    crop_w = min(src_w, _even(spec.width / cover))
    crop_h = min(src_h, _even(spec.height / cover))
    loss = max(1 - crop_w / src_w, 1 - crop_h / src_h)
    if loss <= max_crop_loss + 1e-9:
        x = min(max(0, round(focus[0] * src_w - crop_w / 2)), src_w - crop_w)
        y = min(max(0, round(focus[1] * src_h - crop_h / 2)), src_h - crop_h)
        return Reframe("crop", x, y, crop_w, crop_h, round(crop_w * crop_h / (src_w * src_h), 4))
    fit = min(spec.width / src_w, spec.height / src_h)
    fit_w, fit_h = min(spec.width, _even(src_w * fit)), min(spec.height, _even(src_h * fit))
    return Reframe("pad", (spec.width - fit_w) // 2, (spec.height - fit_h) // 2, fit_w, fit_h, 1.0)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _video_filter(reframe: Reframe, spec: PlatformSpec) -> str:
    size = f"{spec.width}:{spec.height}"
    tail = f"fps={_rate(spec.fps)},setsar=1,format={spec.pix_fmt}"
    if reframe.mode == "crop":
        crop = f"crop={reframe.width}:{reframe.height}:{reframe.x}:{reframe.y}"
        return f"[0:v]{crop},scale={size}:flags=lanczos,{tail}[v]"
    small = f"{_even(spec.width / BACKGROUND_DOWNSCALE)}:{_even(spec.height / BACKGROUND_DOWNSCALE)}"
    return (
        f"[0:v]split=2[bg][fg];"
        f"[bg]scale={small}:force_original_aspect_ratio=increase:flags=bilinear,crop={small},"
        f"gblur=sigma={BACKGROUND_BLUR_SIGMA},eq=brightness={BACKGROUND_BRIGHTNESS},"
        f"scale={size}:flags=bicubic[blur];"
        f"[fg]scale={reframe.width}:{reframe.height}:flags=lanczos[picture];"
        f"[blur][picture]overlay={reframe.x}:{reframe.y},{tail}[v]"
    )


def _loudnorm_json(stderr: str, path: Path) -> dict[str, str]:
    """The JSON block that loudnorm prints at the end of a pass."""
    match = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not match:
        raise MediaError(path, "loudnorm printed no measurement")
    return json.loads(match.group(0))


def _number(value: str) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _peak_target(spec: PlatformSpec) -> float:
    """The true peak aimed at: under the ceiling by the headroom AAC encoding overshoots into."""
    return spec.true_peak_dbtp - AAC_HEADROOM_DB


def _loudnorm(spec: PlatformSpec) -> str:
    return f"loudnorm=I={spec.loudness_lufs}:TP={_peak_target(spec)}:LRA={LOUDNESS_RANGE_LU}"


def measure_loudness(src: Path, spec: PlatformSpec, pre_filter: str = "") -> dict[str, str]:
    """Pass 1: integrated loudness, range, true peak and gating threshold of the source's audio
    (after ``pre_filter``, when given)."""
    chain = f"{pre_filter},{_loudnorm(spec)}" if pre_filter else _loudnorm(spec)
    stderr = run(
        ["-i", str(src), "-map", "0:a:0", "-af", f"{chain}:print_format=json", "-f", "null", "-"],
        what="loudness measurement",
        path=src,
    )
    return _loudnorm_json(stderr, src)


def linear_fits(spec: PlatformSpec, measured: dict[str, str]) -> bool:
    """Whether one gain to the target keeps the true peak under the ceiling."""
    peak = _number(measured["input_tp"])
    return peak is None or peak + spec.loudness_lufs - float(measured["input_i"]) <= _peak_target(spec)


def _gain_and_limit(gain_db: float, spec: PlatformSpec) -> str:
    # A sample-peak limiter a further 0.5 dB down: inter-sample peaks rise above sample peaks.
    limit = 10 ** ((_peak_target(spec) - 0.5) / 20)
    return f"volume={gain_db:.3f}dB,alimiter=limit={limit:.4f}:attack=2:release=50:level=false"


def limited_gain(src: Path, spec: PlatformSpec, measured: dict[str, str], tries: int = 4) -> tuple[float, dict]:
    """The gain that, followed by a peak limiter, lands on the target loudness: peaky sound that one
    linear gain cannot lift without passing the ceiling. Limiting eats some loudness, so the gain is
    corrected from a measurement of the limited result (audio-only passes, fast). Returns the gain and
    the measurement of the sound it gives."""
    gain = spec.loudness_lufs - float(measured["input_i"])
    limited = measure_loudness(src, spec, _gain_and_limit(gain, spec))
    for _ in range(tries):
        reached = _number(limited["input_i"])
        if reached is None or abs(reached - spec.loudness_lufs) <= 0.3:
            break
        gain += spec.loudness_lufs - reached
        limited = measure_loudness(src, spec, _gain_and_limit(gain, spec))
    return gain, limited


def _linear_loudnorm(spec: PlatformSpec, measured: dict[str, str]) -> str:
    """Second-pass loudnorm: one gain from the first pass's measurement, dynamics untouched."""
    return (
        f"{_loudnorm(spec)}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}:"
        f"measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}:"
        f"offset={measured['target_offset']}:linear=true:print_format=json"
    )


def _audio_filter(src: Path, spec: PlatformSpec, measured: dict[str, str] | None, seconds: float) -> str:
    layout = "mono" if spec.audio_channels == 1 else "stereo"
    if measured is None:  # a spot without sound still gets the audio track the platform expects
        return f"anullsrc=r={spec.audio_rate}:cl={layout},atrim=duration={seconds:.6f}[a]"
    tail = f"aresample={spec.audio_rate},aformat=sample_fmts=fltp:channel_layouts={layout}[a]"
    if _number(measured["input_i"]) is None:  # digital silence has no loudness to normalize; QC flags it
        return f"[0:a]{tail}"
    if not linear_fits(spec, measured):
        gain, limited = limited_gain(src, spec, measured)
        return f"[0:a]{_gain_and_limit(gain, spec)},{_linear_loudnorm(spec, limited)},{tail}"
    return f"[0:a]{_linear_loudnorm(spec, measured)},{tail}"


def _encoder_args(spec: PlatformSpec, x264_preset: str) -> list[str]:
    gop = max(1, round(spec.gop_seconds * spec.fps))
    return [
        "-c:v", "libx264", "-preset", x264_preset, "-profile:v", spec.h264_profile, "-level:v", spec.h264_level,
        "-pix_fmt", spec.pix_fmt, "-crf", str(spec.crf),
        "-maxrate", f"{spec.maxrate_kbps}k", "-bufsize", f"{spec.bufsize_kbps}k",
        # A fixed GOP: a keyframe every gop_seconds, no scene-cut keyframes in between.
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", f"{spec.audio_bitrate_kbps}k", "-ar", str(spec.audio_rate),
        "-ac", str(spec.audio_channels),
    ]  # fmt: skip


def render_variant(src: Path, spec: PlatformSpec, out: Path, *, x264_preset: str = "veryfast") -> VariantResult:
    """Reframe and encode ``src`` to ``spec`` in one ffmpeg pass, after a loudness measurement pass."""
    src, out = Path(src), Path(out)
    if spec.video_codec != "h264" or spec.audio_codec != "aac":
        raise MediaError(
            out,
            f"only H.264 + AAC deliverables are rendered, {spec.name} asks for {spec.video_codec} + {spec.audio_codec}",
        )
    info = probe(src)
    if info.video is None or info.is_image:
        raise MediaError(src, "a spot needs a video stream")
    reframe = plan_reframe(info.video.width, info.video.height, spec)
    measured = measure_loudness(src, spec) if info.audio is not None else None
    seconds = info.video.duration_s or info.duration_s
    graph = f"{_video_filter(reframe, spec)};{_audio_filter(src, spec, measured, seconds)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    streams = ["-filter_complex", graph, "-map", "[v]", "-map", "[a]"]
    faststart = ["-movflags", "+faststart"] if spec.faststart else []
    stderr = run(
        ["-i", str(src), *streams, *_encoder_args(spec, x264_preset), *BITEXACT, *faststart, "-y", str(out)],
        what=f"rendering the {spec.name} variant",
        path=src,
    )
    input_lufs = _number(measured["input_i"]) if measured else None
    output_lufs = _number(_loudnorm_json(stderr, src)["output_i"]) if input_lufs is not None else None
    return VariantResult(
        path=out,
        info=probe(out),
        reframe=reframe,
        input_lufs=input_lufs,
        input_true_peak_dbtp=_number(measured["input_tp"]) if measured else None,
        target_lufs=spec.loudness_lufs,
        output_lufs=output_lufs,
    )
