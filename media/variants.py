"""Platform variants: one master in, every platform's deliverable out, from one decode.

`render_variants` is the fan-out:

1. **Group** the platforms whose render is identical (`PlatformSpec.render_key`: the 9:16 platforms
   when no captions are burned in, for example): each group is encoded once and copied to its
   other platforms; one loudness measurement pass (audio only) per distinct loudness target.
2. **Analyse once** (`media.reframe.analyse_subjects`): shots, faces, motion, generator hints. The
   groups whose window cannot move (the master's own aspect, a centred or a fitted render) do not
   need it: their ffmpeg run starts first and encodes while the analysis decodes, so both cores work.
3. **One ffmpeg run** for the other groups decodes the master once and splits it into every group's
   branch: its crop path (per-frame windows sent to ``crop`` by a ``sendcmd`` file; padded shots fitted
   over a blurred copy, switched on the timeline), burned-in captions (an ASS file), its own x264
   encoder (ffmpeg runs encoders in their own threads, so a run of several keeps the cores busy with
   one x264 thread each), its audio (two-pass loudness) and a contact sheet and thumbnails cut from
   the encoded branch.
4. **Check** each output: re-probed, loudness measured independently (``ebur128``, true peak),
   crop path written as JSON and drawn for the report, SRT + WebVTT sidecars when there are captions.

Reframing: see `media.reframe` (a smooth crop path that keeps faces and what moves in frame; a padded
shot when they cannot fit). Policy "fit" always pads, "centre" always crops in the middle.

Loudness is two-pass EBU R128: `loudnorm` measures the source, then the render pass applies the
measured values in linear mode (one gain, dynamics untouched) when that gain keeps the true peak under
the platform's ceiling. Peaky sound that one gain cannot lift that far (linear mode then stops short:
−17.3 LUFS for a −14 target was seen) gets a gain + peak limiter tuned by audio-only measurement passes
instead, followed by loudnorm in linear mode with the limited sound's own measurement as the
true-peak safety (a single-pass, dynamic loudnorm there would undo the work: on a 12 s spot with a
wide loudness range it came out at −17.4 LUFS).

Nothing a user wrote reaches a filter string: caption text goes through the ASS file, crop windows
through the sendcmd file, and the paths of both are escaped for the filter graph (`filter_path`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from syncreel.media.captions import Cue, fonts_dir, layout_cues, write_ass, write_srt, write_vtt
from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import BITEXACT, run
from syncreel.media.probe import MediaInfo, probe
from syncreel.media.qc import parse_ebur128
from syncreel.media.reframe import (
    CropPath,
    SourceAnalysis,
    SubjectHint,
    analyse_subjects,
    cover_crop_size,
    draw_crop_path,
    plan_crop_path,
)
from syncreel.media.shots import Shot
from syncreel.schemas.platforms import X264_PRESETS, PlatformSpec

MAX_CROP_LOSS = 0.25
PEAK_REPAIR_TRIES = 2  # re-encodes of the sound when the AAC encode still passed the true-peak ceiling
PEAK_REPAIR_MARGIN_DB = 0.3
AAC_HEADROOM_DB = 0.5  # AAC's reconstruction overshoots the true peak of what it was given by ~0.1-0.3 dB
LOUDNESS_RANGE_LU = 11.0  # loudnorm's LRA target; wide enough that linear mode is rarely refused
BACKGROUND_DOWNSCALE = 8  # the blurred background is built at 1/8 size: cheap, and blurry anyway
BACKGROUND_BLUR_SIGMA = 6.0
BACKGROUND_BRIGHTNESS = -0.08  # a slightly darker background lets the fitted picture stand out
THUMBNAILS = 6  # per deliverable, evenly spread; the contact sheet tiles them 3 × 2
THUMBNAIL_WIDTH = 360


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
        f"{_loudnorm(spec)}:measured_I={float(measured['input_i']):g}:measured_TP={float(measured['input_tp']):g}:"
        f"measured_LRA={float(measured['input_lra']):g}:measured_thresh={float(measured['input_thresh']):g}:"
        f"offset={float(measured['target_offset']):g}:linear=true"
    )


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


def filter_path(path: Path) -> str:
    """A file path as a filter option value inside a filter graph: escaped for the option parser
    (``\\ ' :``) and then for the graph parser (``\\ ' [ ] , ;``)."""
    value = re.sub(r"([\\':])", r"\\\1", str(path))
    return re.sub(r"([\\'\[\],;])", r"\\\1", value)


@dataclass(frozen=True)
class Loudness:
    """The source's loudness (pass 1) and the deliverable's, measured independently (ebur128)."""

    target_lufs: float
    ceiling_dbtp: float
    input_lufs: float | None  # None: no sound, or digital silence
    input_true_peak_dbtp: float | None
    output_lufs: float | None = None
    output_true_peak_dbtp: float | None = None
    output_lra_lu: float | None = None
    limited: bool = False  # a gain + limiter was needed to reach the target under the ceiling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VariantResult:
    platform: str
    path: Path
    info: MediaInfo
    crop_path: CropPath
    loudness: Loudness
    same_render_as: str | None = None  # the platform whose encode this file is a copy of
    files: dict[str, Path] = field(default_factory=dict)  # crop_path, crop_drawing, contact_sheet, srt, vtt, …
    thumbnails: tuple[Path, ...] = ()
    # Wall seconds of the fan-out's stages (analysis + loudness pass 1, the encode, the checks), shared
    # by every platform of one `render_variants` call.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def input_lufs(self) -> float | None:
        return self.loudness.input_lufs

    @property
    def output_lufs(self) -> float | None:
        return self.loudness.output_lufs

    @property
    def target_lufs(self) -> float:
        return self.loudness.target_lufs

    def to_dict(self) -> dict[str, Any]:
        """JSON: the file, its probe, loudness, crop path summary and side files (the per-frame windows
        are in ``files["crop_path"]``)."""
        return {
            "platform": self.platform,
            "path": str(self.path),
            "info": self.info.to_dict(),
            "loudness": self.loudness.to_dict(),
            "reframe": self.crop_path.summary(),
            "same_render_as": self.same_render_as,
            "files": {name: str(p) for name, p in self.files.items()},
            "thumbnails": [str(p) for p in self.thumbnails],
            "timings": {stage: round(seconds, 3) for stage, seconds in self.timings.items()},
        }


@dataclass
class _Group:
    """Platforms with one render: the first one's spec is encoded, the others get copies."""

    platforms: list[str]
    spec: PlatformSpec
    crop: CropPath | None = None
    measured: dict[str, str] | None = None
    limited_gain: tuple[float, dict[str, str]] | None = None

    @property
    def name(self) -> str:
        return self.platforms[0]


def _check_preset(x264_preset: str, out_dir: Path) -> None:
    """The platform specs are closed sets already (schemas/platforms.py); the preset is the one other
    value that reaches the encoder's arguments."""
    if x264_preset not in X264_PRESETS:
        raise MediaError(out_dir, f"unknown x264 preset {x264_preset!r}; accepted: {', '.join(X264_PRESETS)}")


def _groups(specs: Mapping[str, PlatformSpec], with_captions: bool) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for name, spec in specs.items():
        key = json.dumps(spec.render_key(with_captions=with_captions), sort_keys=True)
        if key in groups:
            groups[key].platforms.append(name)
        else:
            groups[key] = _Group([name], spec)
    return list(groups.values())


def _output_frames(info: MediaInfo, fps: float) -> int:
    video = info.video
    assert video is not None
    seconds = video.frames / video.fps if video.frames and video.fps else video.duration_s or info.duration_s
    return max(1, round(seconds * fps))


def _crop_commands(crop: CropPath, label: str) -> str:
    """sendcmd lines that move ``crop@label`` to each frame's window, only where it changes (frame k's
    command half a frame before its time)."""
    lines, previous = [], None
    for k, (window, mode) in enumerate(zip(crop.windows, crop.modes, strict=True)):
        if mode != "crop":
            continue
        x, y = int(window[0]), int(window[1])
        if (x, y) != previous and k > 0:
            lines.append(f"{max(0.0, (k - 0.5) / crop.fps):.6f} crop@{label} x {x}, crop@{label} y {y};")
        previous = (x, y)
    return "\n".join(lines) + "\n"


def _frames_expression(ranges: Sequence[tuple[int, int]]) -> str:
    """Frames [start, end) as a filter expression over ``n`` (to be single-quoted in the graph)."""
    return "+".join(f"between(n,{a},{b - 1})" for a, b in ranges) or "0"


def _pad_chain(source: str, spec: PlatformSpec, src_w: int, src_h: int, label: str) -> str:
    fit = plan_reframe(src_w, src_h, spec, max_crop_loss=0.0)
    size = f"{spec.width}:{spec.height}"
    small = f"{_even(spec.width / BACKGROUND_DOWNSCALE)}:{_even(spec.height / BACKGROUND_DOWNSCALE)}"
    return (
        f"{source}split=2[{label}bg][{label}fg];"
        f"[{label}bg]scale={small}:force_original_aspect_ratio=increase:flags=bilinear,crop={small},"
        f"gblur=sigma={BACKGROUND_BLUR_SIGMA},eq=brightness={BACKGROUND_BRIGHTNESS},"
        f"scale={size}:flags=bicubic[{label}blur];"
        f"[{label}fg]scale={fit.width}:{fit.height}:flags=bicubic[{label}pic];"
        f"[{label}blur][{label}pic]overlay={fit.x}:{fit.y}"
    )


def _video_graph(group: _Group, index: int, src: MediaInfo, scratch: Path, ass: Path | None) -> list[str]:
    """The graph of group ``index``: from [0:v] to [venc{index}], [vsheet{index}] and [vth{index}]."""
    spec, crop = group.spec, group.crop
    assert crop is not None and src.video is not None
    src_w, src_h = src.video.width, src.video.height
    label = f"g{index}"
    head = f"[0:v]fps={_rate(spec.fps)},"
    crop_ranges = [(s.start, s.end) for s in crop.shots if s.mode == "crop"]
    crop_w, crop_h = crop.crop_size
    chains: list[str] = []
    if crop_ranges:
        first = next(w for w, m in zip(crop.windows, crop.modes, strict=True) if m == "crop")
        commands = _crop_commands(crop, label)
        send = ""
        if commands.strip():
            command_file = scratch / f"{group.name}.cmd"
            command_file.write_text(commands)
            send = f"sendcmd=f={filter_path(command_file)},"
        crop_chain = (
            f"{send}crop@{label}=w={crop_w}:h={crop_h}:x={int(first[0])}:y={int(first[1])},"
            f"scale={spec.width}:{spec.height}:flags=bicubic"
        )
    if not crop_ranges:
        chains.append(_pad_chain(head, spec, src_w, src_h, label) + f"[{label}out]")
    elif len(crop_ranges) == len(crop.shots):
        chains.append(f"{head}{crop_chain}[{label}out]")
    else:  # some shots padded: both branches, the crop shown over the pad on its shots' frames
        chains.append(f"{head}split=2[{label}c][{label}p]")
        chains.append(f"[{label}c]{crop_chain}[{label}crop]")
        chains.append(_pad_chain(f"[{label}p]", spec, src_w, src_h, f"{label}p") + f"[{label}pad]")
        chains.append(f"[{label}pad][{label}crop]overlay=0:0:enable='{_frames_expression(crop_ranges)}'[{label}out]")
    tail = "setsar=1"
    if ass is not None:
        fonts = fonts_dir()
        tail += f",ass=filename={filter_path(ass)}" + (f":fontsdir={filter_path(fonts)}" if fonts else "")
    frames = len(crop.modes)
    picks = sorted({min(frames - 1, int((k + 0.5) * frames / THUMBNAILS)) for k in range(THUMBNAILS)})
    thumb_h = _even(THUMBNAIL_WIDTH * spec.height / spec.width)
    chains.append(f"[{label}out]{tail},format={spec.pix_fmt},split=2[venc{index}][{label}sel]")
    chains.append(
        f"[{label}sel]select='{_frames_expression([(p, p + 1) for p in picks])}',"
        f"scale={THUMBNAIL_WIDTH}:{thumb_h}:flags=bicubic,split=2[vth{index}][{label}tile];"
        f"[{label}tile]tile=3x2:padding=4:color=0x181818[vsheet{index}]"
    )
    return chains


def _audio_graph(group: _Group, index: int, source: str | None, seconds: float) -> str:
    spec, measured = group.spec, group.measured
    layout = "mono" if spec.audio_channels == 1 else "stereo"
    out = f"[aenc{index}]"
    if source is None or measured is None:  # a master without sound still gets the track platforms expect
        return f"anullsrc=r={spec.audio_rate}:cl={layout},atrim=duration={seconds:.6f}{out}"
    tail = f"aresample={spec.audio_rate},aformat=sample_fmts=fltp:channel_layouts={layout}{out}"
    if _number(measured["input_i"]) is None:  # digital silence has no loudness to normalize; QC flags it
        return f"{source}{tail}"
    if group.limited_gain is not None:
        gain, limited = group.limited_gain
        return f"{source}{_gain_and_limit(gain, spec)},{_linear_loudnorm(spec, limited)},{tail}"
    return f"{source}{_linear_loudnorm(spec, measured)},{tail}"


def _measure_group_loudness(src: Path, groups: list[_Group]) -> None:
    """Pass 1 for every distinct loudness target (audio-only passes), plus the limiter tuning where
    one linear gain would pass the ceiling."""
    by_target: dict[tuple[float, float], tuple[dict[str, str], tuple[float, dict[str, str]] | None]] = {}
    for group in groups:
        spec = group.spec
        key = (spec.loudness_lufs, spec.true_peak_dbtp)
        if key not in by_target:
            measured = measure_loudness(src, spec)
            fits = _number(measured["input_i"]) is None or linear_fits(spec, measured)
            by_target[key] = (measured, None if fits else limited_gain(src, spec, measured))
        group.measured, group.limited_gain = by_target[key]


def measure_r128(path: Path) -> tuple[float | None, float | None, float | None]:
    """Integrated loudness (LUFS), true peak (dBTP) and loudness range (LU) of a file's sound, by
    ``ebur128`` (independent of the loudnorm that made it); Nones for silence or no sound."""
    stderr = run(
        ["-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
        what="loudness check",
        path=path,
    )
    r128 = parse_ebur128(stderr)
    return r128.integrated_lufs, r128.true_peak_dbtp, r128.loudness_range_lu


def _analysis_for(src: Path, groups: list[_Group], hints: Sequence[SubjectHint], faces: bool) -> SourceAnalysis:
    needs_subjects = any(g.spec.reframe == "subject" for g in groups)
    return analyse_subjects(src, hints=hints, faces=faces and needs_subjects)


def _follows_subjects(spec: PlatformSpec, info: MediaInfo) -> bool:
    """Whether the platform's crop path depends on what the analysis finds: a subject-following crop
    into another aspect. Fitted, centred and same-aspect renders hold one window throughout."""
    assert info.video is not None
    width, height = info.video.width, info.video.height
    return spec.reframe == "subject" and cover_crop_size(width, height, spec.width, spec.height) != (width, height)


def _uniform_analysis(info: MediaInfo) -> SourceAnalysis:
    """A one-shot, subject-free analysis: enough to plan the paths that `_follows_subjects` excludes."""
    assert info.video is not None
    frames = _output_frames(info, info.video.fps)
    return SourceAnalysis(
        width=info.video.width,
        height=info.video.height,
        fps=info.video.fps,
        frame_count=frames,
        shots=[Shot(0, frames)],
        faces=[[] for _ in range(frames)],
        motion=[None] * frames,
    )


def _plan_crop(group: _Group, analysis: SourceAnalysis, info: MediaInfo) -> CropPath:
    spec = group.spec
    frames = _output_frames(info, spec.fps)
    return plan_crop_path(analysis, (spec.width, spec.height), spec.fps, frames, policy=spec.reframe)


def render_variants(
    src: Path,
    specs: Mapping[str, PlatformSpec],
    out_dir: Path,
    *,
    cues: Sequence[Cue] = (),
    language: str | None = None,
    hints: Sequence[SubjectHint] = (),
    x264_preset: str = "veryfast",
    faces: bool = True,
    analysis: SourceAnalysis | None = None,
) -> dict[str, VariantResult]:
    """Every platform in ``specs`` from one decode of ``src`` (see the module docstring), written as
    ``out_dir/<platform>.mp4`` plus its side files. ``cues`` are burned in where the platform says
    so and written as ``<platform>.srt`` / ``.vtt`` sidecars for every platform."""
    src, out_dir = Path(src), Path(out_dir)
    if not specs:
        raise MediaError(out_dir, "no platforms to render")
    _check_preset(x264_preset, out_dir)
    info = probe(src)
    if info.video is None or info.is_image:
        raise MediaError(src, "a spot needs a video stream")
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = _groups(specs, with_captions=bool(cues))
    started = time.perf_counter()
    if info.audio is not None:
        _measure_group_loudness(src, groups)  # audio-only passes: every encode below needs their figures
    # renders whose window cannot move start encoding now, while the analysis decodes for the others
    early = [g for g in groups if not _follows_subjects(g.spec, info)] if analysis is None else []
    for group in early:
        group.crop = _plan_crop(group, _uniform_analysis(info), info)
    with tempfile.TemporaryDirectory(prefix="syncreel-variants-") as temporary, ThreadPoolExecutor(1) as pool:
        scratch = Path(temporary)
        first = pool.submit(_encode, src, info, early, out_dir, scratch, cues, x264_preset) if early else None
        analysis = analysis or _analysis_for(src, groups, hints, faces)
        analysed = time.perf_counter()
        for group in groups:
            planned, group.crop = group.crop, _plan_crop(group, analysis, info)  # the record: the real shots
            assert planned is None or (
                np.array_equal(planned.windows, group.crop.windows) and planned.modes == group.crop.modes
            )
        encoded = _encode(src, info, [g for g in groups if g not in early], out_dir, scratch, cues, x264_preset)
        if first is not None:
            encoded |= first.result()
    encoded_at = time.perf_counter()
    results: dict[str, VariantResult] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        checked = list(pool.map(lambda g: _finish(src, g, encoded[g.name], analysis, out_dir, cues, language), groups))
    timings = {
        "analysis_s": analysed - started,  # loudness passes and subject analysis (encoding may overlap)
        "encode_s": encoded_at - started,  # to the last encode's end, from the start
        "checks_s": time.perf_counter() - encoded_at,
    }
    for group_results in checked:
        for result in group_results:
            results[result.platform] = replace(result, timings=timings)
    return {name: results[name] for name in specs}


def _encode(
    src: Path,
    info: MediaInfo,
    groups: list[_Group],
    out_dir: Path,
    scratch: Path,
    cues: Sequence[Cue],
    x264_preset: str,
) -> dict[str, dict[str, Any]]:
    """One ffmpeg run: the master decoded once and fed to one filter graph per group (ffmpeg runs
    each graph, and each encoder, in a thread of its own: the scaling of one output does not wait for
    another's), each graph ending in its encoder, contact sheet and thumbnails."""
    if not groups:
        return {}
    has_audio = info.audio is not None
    # encoders side by side already fill the cores: x264's own frame threads would only add overhead
    # (5 encoders on 2 cores: 41–47 CPU s with one thread each, 48–49 s with x264's default)
    threads = ["-threads:v", str(max(1, (os.cpu_count() or 1) // len(groups)))] if len(groups) > 1 else []
    seconds = (info.video.frames / info.video.fps) if info.video and info.video.frames else info.duration_s
    graphs: list[str] = []
    outputs: list[str] = []
    made: dict[str, dict[str, Any]] = {}
    for index, group in enumerate(groups):
        spec = group.spec
        ass = None
        if cues and spec.burn_captions:
            ass = write_ass(layout_cues(cues, spec), spec, scratch / f"{group.name}.ass")
        graph = _video_graph(group, index, info, scratch, ass)
        graph.append(_audio_graph(group, index, "[0:a]" if has_audio else None, seconds))
        script = scratch / f"{group.name}.graph"
        script.write_text(";\n".join(graph))
        graphs += ["-/filter_complex", str(script)]
        target = out_dir / f"{group.name}.mp4"
        sheet = out_dir / f"{group.name}.contact.jpg"
        thumbs = out_dir / f"{group.name}.thumb-%02d.jpg"
        faststart = ["-movflags", "+faststart"] if spec.faststart else []
        outputs += ["-map", f"[venc{index}]", "-map", f"[aenc{index}]", *_encoder_args(spec, x264_preset), *threads]
        outputs += [*BITEXACT, *faststart, "-y", str(target)]
        outputs += ["-map", f"[vsheet{index}]", "-frames:v", "1", "-q:v", "3", "-update", "1", "-y", str(sheet)]
        outputs += ["-map", f"[vth{index}]", "-fps_mode", "passthrough", "-q:v", "3", "-y", str(thumbs)]
        made[group.name] = {"path": target, "contact_sheet": sheet, "thumbs": thumbs}
    run(
        ["-i", str(src), *graphs, *outputs],
        what=f"rendering {', '.join(p for g in groups for p in g.platforms)}",
        path=src,
    )
    return made


def _repair_true_peak(
    src: Path, path: Path, group: _Group, measured: tuple[float | None, float | None, float | None]
) -> tuple[float | None, float | None, float | None]:
    """The output's (LUFS, true peak, LRA), brought under the ceiling when the encode overshot it.

    AAC can overshoot the true peak of the sound it was given by far more than ``AAC_HEADROOM_DB`` on
    dense, limited sound (2.6 dB was measured on a spot with a 1 LU loudness range: −1.5 dBTP in, +1.1
    out). Then the peak is aimed lower by the overshoot, the sound limited to reach the same loudness,
    and only the sound encoded again (the picture is copied), up to ``PEAK_REPAIR_TRIES`` times."""
    spec = group.spec
    aimed = group
    for _ in range(PEAK_REPAIR_TRIES):
        peak = measured[1]
        if peak is None or peak <= spec.true_peak_dbtp or group.measured is None:
            break
        lowered = aimed.spec.model_copy(
            update={"true_peak_dbtp": aimed.spec.true_peak_dbtp - (peak - spec.true_peak_dbtp) - PEAK_REPAIR_MARGIN_DB}
        )
        aimed = replace(aimed, spec=lowered, limited_gain=limited_gain(src, lowered, group.measured))
        seconds = probe(path).duration_s
        temp = path.with_name(f".{path.stem}.peak{path.suffix}")
        faststart = ["-movflags", "+faststart"] if spec.faststart else []
        audio = ["-c:a", "aac", "-b:a", f"{spec.audio_bitrate_kbps}k", "-ar", str(spec.audio_rate)]
        run(
            ["-i", str(path), "-i", str(src), "-filter_complex", _audio_graph(aimed, 0, "[1:a:0]", seconds),
             "-map", "0:v:0", "-map", "[aenc0]", "-c:v", "copy", *audio, "-ac", str(spec.audio_channels),
             *BITEXACT, *faststart, "-y", str(temp)],
            what=f"re-encoding the sound of {path.name} under its true-peak ceiling",
            path=path,
        )  # fmt: skip
        temp.replace(path)
        measured = measure_r128(path)
        group.limited_gain = aimed.limited_gain
    return measured


def _finish(
    src: Path,
    group: _Group,
    encoded: dict[str, Any],
    analysis: SourceAnalysis,
    out_dir: Path,
    cues: Sequence[Cue],
    language: str | None,
) -> list[VariantResult]:
    """Probe, measure and document the group's file, then copy it (and its side files) to the group's
    other platforms."""
    crop = group.crop
    assert crop is not None
    path = encoded["path"]
    loudness = _loudness(group, _repair_true_peak(src, path, group, measure_r128(path)))
    info = probe(path)
    thumbs = tuple(sorted(out_dir.glob(f"{group.name}.thumb-*.jpg")))
    results = []
    for platform in group.platforms:
        target = out_dir / f"{platform}.mp4"
        if platform != group.name:
            shutil.copyfile(path, target)
        files, platform_thumbs = _side_files(platform, group, encoded["contact_sheet"], thumbs, out_dir)
        files |= _documents(platform, group.spec, crop, analysis, out_dir, cues, language)
        results.append(
            VariantResult(
                platform=platform,
                path=target,
                info=info if platform == group.name else probe(target),
                crop_path=crop,
                loudness=loudness,
                same_render_as=None if platform == group.name else group.name,
                files=files,
                thumbnails=platform_thumbs,
            )
        )
    return results


def _loudness(group: _Group, output: tuple[float | None, float | None, float | None]) -> Loudness:
    """The group's loudness record: its targets, the source as loudnorm measured it, and the output's
    (LUFS, true peak, LRA) as ebur128 measured it."""
    measured = group.measured
    output_lufs, output_peak, output_lra = output
    return Loudness(
        target_lufs=group.spec.loudness_lufs,
        ceiling_dbtp=group.spec.true_peak_dbtp,
        input_lufs=_number(measured["input_i"]) if measured else None,
        input_true_peak_dbtp=_number(measured["input_tp"]) if measured else None,
        output_lufs=output_lufs,
        output_true_peak_dbtp=output_peak,
        output_lra_lu=output_lra,
        limited=group.limited_gain is not None,
    )


def _side_files(
    platform: str, group: _Group, contact_sheet: Path, thumbs: tuple[Path, ...], out_dir: Path
) -> tuple[dict[str, Path], tuple[Path, ...]]:
    """The render's contact sheet and thumbnails under ``platform``'s name (copies, for a platform that
    shares another's render)."""
    if platform == group.name:
        return {"contact_sheet": contact_sheet}, thumbs
    sheet = shutil.copyfile(contact_sheet, out_dir / f"{platform}.contact.jpg")
    copies = tuple(shutil.copyfile(t, out_dir / t.name.replace(f"{group.name}.", f"{platform}.", 1)) for t in thumbs)
    return {"contact_sheet": sheet}, copies


def _documents(
    platform: str,
    spec: PlatformSpec,
    crop: CropPath,
    analysis: SourceAnalysis,
    out_dir: Path,
    cues: Sequence[Cue],
    language: str | None,
) -> dict[str, Path]:
    """The platform's crop path (JSON, and drawn when the analysis kept pictures) and its captions as
    SRT and WebVTT, wrapped as the burned-in text is."""
    crop_json = out_dir / f"{platform}.crop.json"
    crop_json.write_text(json.dumps({"platform": platform, **crop.to_dict()}))
    files = {"crop_path": crop_json}
    if analysis.pictures:
        files["crop_drawing"] = draw_crop_path(analysis, crop, out_dir / f"{platform}.crop.png")
    if cues:
        shown = layout_cues(cues, spec)
        files["srt"] = write_srt(shown, out_dir / f"{platform}.srt")
        files["vtt"] = write_vtt(shown, out_dir / f"{platform}.vtt", language)
    return files


def render_variant(src: Path, spec: PlatformSpec, out: Path, *, x264_preset: str = "veryfast") -> VariantResult:
    """One platform: `render_variants` for ``spec`` alone, the deliverable moved to ``out``."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".variant-", dir=out.parent if out.parent.exists() else None) as folder:
        result = render_variants(src, {spec.name: spec}, Path(folder), x264_preset=x264_preset)[spec.name]
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(result.path, out)
        return replace(result, path=out, info=probe(out), files={}, thumbnails=())
