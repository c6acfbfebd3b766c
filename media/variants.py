"""Platform variants: reframe the spot to a platform's frame and encode it exactly to its spec.

Reframing rule (subject-aware tracking comes later; this is the centred first cut): scale to cover
the target frame and crop the centre when that keeps at least `MIN_KEPT_AREA` of the source picture
(16:9 → 9:16 keeps 32%, → 4:5 45%, → 1:1 56%); otherwise fit the whole picture and fill the rest with
a blurred, scaled copy of the frame — never black bars.

Loudness is two-pass EBU R128: `loudnorm` measures the source, then the render pass applies the
measured values (linear mode) to reach the platform's integrated target under its true-peak ceiling.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from media.errors import MediaError
from media.ffmpeg import BITEXACT, run
from media.probe import MediaInfo, probe
from schemas.platforms import PlatformSpec

MIN_KEPT_AREA = 0.30
LOUDNESS_RANGE_LU = 11.0


@dataclass(frozen=True)
class Reframe:
    mode: str  # "crop" | "pad"
    x: int  # crop: the source window; pad: where the fitted picture sits in the target frame
    y: int
    width: int
    height: int
    kept_area: float  # share of the source picture that stays visible

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VariantResult:
    path: Path
    info: MediaInfo
    reframe: Reframe
    input_lufs: float | None
    output_lufs: float | None


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def plan_reframe(src_w: int, src_h: int, spec: PlatformSpec) -> Reframe:
    cover = max(spec.width / src_w, spec.height / src_h)
    crop_w, crop_h = min(src_w, _even(spec.width / cover)), min(src_h, _even(spec.height / cover))
    kept = crop_w * crop_h / (src_w * src_h)
    if kept >= MIN_KEPT_AREA:
        return Reframe("crop", (src_w - crop_w) // 2, (src_h - crop_h) // 2, crop_w, crop_h, round(kept, 4))
    fit = min(spec.width / src_w, spec.height / src_h)
    fit_w, fit_h = min(spec.width, _even(src_w * fit)), min(spec.height, _even(src_h * fit))
    return Reframe("pad", (spec.width - fit_w) // 2, (spec.height - fit_h) // 2, fit_w, fit_h, 1.0)


def _video_filter(reframe: Reframe, spec: PlatformSpec) -> str:
    size = f"{spec.width}:{spec.height}"
    tail = f"fps={spec.fps},setsar=1,format={spec.pix_fmt}"
    if reframe.mode == "crop":
        return (
            f"[0:v]crop={reframe.width}:{reframe.height}:{reframe.x}:{reframe.y},scale={size}:flags=lanczos,{tail}[v]"
        )
    return (
        f"[0:v]split[bg][fg];[bg]scale={size}:force_original_aspect_ratio=increase,crop={size},"
        f"boxblur=luma_radius=min(h\\,w)/20:luma_power=2[blur];"
        f"[fg]scale={reframe.width}:{reframe.height}:flags=lanczos[pic];"
        f"[blur][pic]overlay={reframe.x}:{reframe.y},{tail}[v]"
    )


def _loudnorm_json(stderr: str, path: Path) -> dict[str, str]:
    match = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not match:
        raise MediaError(path, "loudness measurement printed no result")
    return json.loads(match.group(0))


def _number(value: str) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def measure_loudness(src: Path, spec: PlatformSpec) -> dict[str, str]:
    """Pass 1: EBU R128 integrated loudness, range, true peak and threshold of the source audio."""
    stderr = run(
        [
            "-i",
            str(src),
            "-vn",
            "-af",
            f"loudnorm=I={spec.loudness_lufs}:TP={spec.true_peak_dbtp}:LRA={LOUDNESS_RANGE_LU}:print_format=json",
            "-f",
            "null",
            "-",
        ],
        what="loudness measurement",
        path=src,
    )
    return _loudnorm_json(stderr, src)


def render_variant(src: Path, spec: PlatformSpec, out: Path, *, x264_preset: str = "veryfast") -> VariantResult:
    """Reframe and encode ``src`` to ``spec`` in one ffmpeg pass (after a loudness measurement)."""
    info = probe(src)
    if info.video is None or info.audio is None:
        raise MediaError(src, "a spot needs both a video and an audio stream")
    reframe = plan_reframe(info.video.width, info.video.height, spec)
    measured = measure_loudness(src, spec)
    input_lufs = _number(measured["input_i"])
    audio = f"aresample={spec.audio_rate}"
    if input_lufs is not None:  # silence has no loudness to normalize; QA will flag it
        audio = (
            f"loudnorm=I={spec.loudness_lufs}:TP={spec.true_peak_dbtp}:LRA={LOUDNESS_RANGE_LU}:"
            f"measured_I={measured['input_i']}:measured_TP={measured['input_tp']}:"
            f"measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}:"
            f"offset={measured['target_offset']}:linear=true:print_format=json,{audio}"
        )
    gop = max(1, round(spec.gop_seconds * spec.fps))
    stderr = run(
        [
            "-i",
            str(src),
            "-filter_complex",
            f"{_video_filter(reframe, spec)};[0:a]{audio}[a]",
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            x264_preset,
            "-profile:v",
            spec.h264_profile,
            "-level:v",
            spec.h264_level,
            "-pix_fmt",
            spec.pix_fmt,
            "-crf",
            str(spec.crf),
            "-maxrate",
            f"{spec.maxrate_kbps}k",
            "-bufsize",
            f"{spec.bufsize_kbps}k",
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-sc_threshold",
            "0",
            "-c:a",
            spec.audio_codec,
            "-b:a",
            f"{spec.audio_bitrate_kbps}k",
            "-ar",
            str(spec.audio_rate),
            "-ac",
            str(spec.audio_channels),
            *BITEXACT,
            *(["-movflags", "+faststart"] if spec.faststart else []),
            "-y",
            str(out),
        ],
        what=f"rendering the {spec.name} variant",
        path=src,
    )
    output_lufs = None
    if input_lufs is not None:
        output_lufs = _number(_loudnorm_json(stderr, src)["output_i"])
    return VariantResult(
        path=Path(out), info=probe(out), reframe=reframe, input_lufs=input_lufs, output_lufs=output_lufs
    )
