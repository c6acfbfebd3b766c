"""Technical QC: one analysis pass finds black, frozen and silent stretches and measures loudness; the
checks turn that into verdicts with messages naming the value and the expectation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncreel.media.assemble import assemble_spot
from syncreel.media.ffmpeg import run
from syncreel.media.probe import MediaInfo
from syncreel.media.qc import (
    TECHNICAL_CHECKS,
    CheckResult,
    Expectation,
    QCMeasurements,
    measure,
    qa_check,
    run_checks,
)
from syncreel.media.tracks import BLACK_PIXEL_THRESHOLD, FREEZE_MIN_S, FREEZE_NOISE
from syncreel.media.variants import render_variant
from syncreel.schemas.platforms import PLATFORMS
from tests.fixtures.synth import synth_media


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qc")


@pytest.fixture(scope="module")
def good(folder: Path) -> Path:
    return synth_media(folder / "good.mp4", duration_s=2.0, size=(160, 90), fps=25)


@pytest.fixture(scope="module")
def black_silent(folder: Path) -> Path:
    return synth_media(folder / "black.mp4", duration_s=2.0, size=(160, 90), fps=25, picture="black", sound="silence")


@pytest.fixture(scope="module")
def half_black(folder: Path, good: Path) -> Path:
    """1 s of picture and tone, then 1 s of black picture with silence."""
    first = synth_media(folder / "part1.mp4", duration_s=1.0, size=(160, 90), fps=25)
    second = synth_media(folder / "part2.mp4", duration_s=1.0, size=(160, 90), fps=25, picture="black", sound="silence")
    assemble_spot([first, second], folder / "half_black.mp4")
    return folder / "half_black.mp4"


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.check: result for result in results}


def test_measure_clean_clip(good: Path) -> None:
    qc = measure(good)
    assert qc.black == () and qc.frozen == () and qc.silent == ()
    assert qc.peak_dbfs == pytest.approx(-18.0, abs=0.5)  # the synth tone's peak survives AAC
    assert qc.integrated_lufs is not None and -25 < qc.integrated_lufs < -15
    assert qc.true_peak_dbtp == pytest.approx(-18.0, abs=0.6)


def test_measure_finds_black_frozen_and_silent_stretches(black_silent: Path) -> None:
    qc = measure(black_silent)
    assert len(qc.black) == 1 and qc.black[0][0] == 0.0 and qc.black[0][1] >= 1.9
    assert qc.total(qc.frozen) >= 1.9
    assert qc.silent == ((0.0, 2.0),)
    assert qc.peak_dbfs is None and qc.integrated_lufs is None


def test_measure_locates_black_and_silence_inside_a_clip(half_black: Path) -> None:
    qc = measure(half_black)
    assert len(qc.black) == 1 and qc.black[0][0] == pytest.approx(1.0, abs=0.05)
    assert len(qc.silent) == 1 and qc.silent[0][0] == pytest.approx(1.0, abs=0.05)
    assert qc.silent[0][1] == pytest.approx(2.0, abs=0.05)
    checks = _by_name(run_checks(half_black, Expectation.for_master(160, 90, 25, 2.0)))
    assert checks["not_black"].verdict == "warn"  # half the clip: noticed, not yet over the 50 % bar
    assert checks["not_silent"].verdict == "warn"


def test_a_quiet_master_under_a_music_bed_warns_and_a_mute_one_still_fails(folder: Path, black_silent: Path) -> None:
    """0.5 s of tone then 1.5 s of silence: a line and the quiet after it. Alone it fails (75% silent);
    with the spot's music bed to be laid under it the gap is reported, not failed; no sound at all fails."""
    first = synth_media(folder / "line.mp4", duration_s=0.5, size=(160, 90), fps=25)
    rest = synth_media(folder / "gap.mp4", duration_s=1.5, size=(160, 90), fps=25, sound="silence")
    quiet = assemble_spot([first, rest], folder / "quiet.mp4").path
    alone = _by_name(run_checks(quiet, Expectation.for_master(160, 90, 25, 2.0)))["not_silent"]
    assert alone.verdict == "fail" and "expected at most 50%" in alone.message
    bed = _by_name(run_checks(quiet, Expectation.for_master(160, 90, 25, 2.0, bed_under=True)))["not_silent"]
    assert bed.verdict == "warn" and "under the music bed" in bed.message
    assert bed.metrics["silent_share"] > 0.6
    mute = _by_name(run_checks(black_silent, Expectation.for_master(160, 90, 25, 2.0, bed_under=True)))
    assert mute["not_silent"].verdict == "fail"


def test_black_and_frozen_stretches_match_ffmpegs_blackdetect_and_freezedetect(folder: Path) -> None:
    """The stretches come from the sync scores' decode (a subsampled luma grid); ffmpeg's own filters on
    every pixel are the reference: 1 s moving, 0.5 s black, 1.5 s a still colour, 1 s moving, at 720p."""
    parts = [
        synth_media(folder / "cross1.mp4", duration_s=1.0, size=(1280, 720), fps=25),
        synth_media(folder / "cross2.mp4", duration_s=0.5, size=(1280, 720), fps=25, picture="black"),
        synth_media(folder / "cross3.mp4", duration_s=1.5, size=(1280, 720), fps=25, picture="still"),
        synth_media(folder / "cross4.mp4", duration_s=1.0, size=(1280, 720), fps=25),
    ]
    clip = assemble_spot(parts, folder / "cross.mp4").path
    stderr = run(["-i", str(clip), "-vf", f"blackdetect=d=0.1:pix_th={BLACK_PIXEL_THRESHOLD},"
                  f"freezedetect=n={FREEZE_NOISE}:d={FREEZE_MIN_S}", "-an", "-f", "null", "-"],
                 what="reference", path=clip)  # fmt: skip
    black_ref = [tuple(map(float, m)) for m in re.findall(r"black_start:([\d.]+) black_end:([\d.]+)", stderr)]
    freeze_ref = list(zip(map(float, re.findall(r"freeze_start: ([\d.]+)", stderr)),
                          map(float, re.findall(r"freeze_end: ([\d.]+)", stderr)), strict=True))  # fmt: skip
    qc = measure(clip)
    assert len(black_ref) == len(qc.black) == 1 and len(freeze_ref) == len(qc.frozen) == 1
    assert qc.black[0] == pytest.approx(black_ref[0], abs=0.04) and qc.black[0] == pytest.approx((1.0, 1.5), abs=0.04)
    assert qc.frozen[0] == pytest.approx(freeze_ref[0], abs=0.04)
    assert qc.frozen[0] == pytest.approx((1.5, 3.0), abs=0.06)  # the joins move a cut by a frame at most


def test_measure_handles_files_without_audio_or_video(folder: Path) -> None:
    mute = synth_media(folder / "mute.mp4", duration_s=1.0, size=(160, 90), sound=None)
    qc = measure(mute)
    assert qc.peak_dbfs is None and qc.silent == () and qc.black == ()
    checks = _by_name(run_checks(mute, Expectation()))
    assert checks["audio_present"].verdict == "fail" and "no audio stream" in checks["audio_present"].message
    assert checks["not_silent"].verdict == "fail"
    assert checks["frame_size"].verdict == "pass"

    tone = synth_media(folder / "tone.wav", duration_s=1.0, level_db=-6)
    qc = measure(tone)
    assert qc.peak_dbfs == pytest.approx(-6.0, abs=0.1) and qc.black == ()
    checks = _by_name(run_checks(tone, Expectation(video_codec=None, audio_codec=None)))
    assert checks["frame_size"].verdict == "fail" and checks["not_silent"].verdict == "pass"


def test_black_silent_master_fails_with_readable_messages(black_silent: Path) -> None:
    results = run_checks(black_silent, Expectation.for_master(160, 90, 25, 2.0))
    assert [r.check for r in results] == [check.name for check in TECHNICAL_CHECKS]
    checks = _by_name(results)
    assert checks["not_black"].verdict == "fail"
    assert "black for 100% of the clip; expected at most 50%" in checks["not_black"].message
    assert checks["not_silent"].verdict == "fail" and "100%" in checks["not_silent"].message
    assert checks["frozen"].verdict == "warn"
    for check in ("duration", "frame_size", "fps", "codecs"):
        assert checks[check].verdict == "pass", checks[check].message
    json.dumps([r.metrics for r in results], allow_nan=False)  # metrics are JSON-safe


def test_expectations_that_are_not_met_fail(good: Path) -> None:
    expect = Expectation(
        width=320, height=180, fps=30, duration_s=5.0, audio_rate=44_100, loudness_lufs=-14.0, max_file_mb=0.001
    )
    checks = _by_name(run_checks(good, expect))
    assert checks["frame_size"].message == "frame is 160×90; expected 320×180"
    assert checks["fps"].message == "runs at 25 fps; expected 30 fps"
    assert checks["duration"].message.startswith("lasts 2.00 s; expected 5.00")
    assert "audio rate is 48000, expected 44100" in checks["codecs"].message
    assert checks["loudness"].verdict == "fail" and "expected -14 ± 1 LU" in checks["loudness"].message
    assert checks["file_size"].verdict == "fail"
    assert all(checks[name].verdict == "fail" for name in ("frame_size", "fps", "duration", "codecs"))


def test_clipping_warns(folder: Path) -> None:
    loud = synth_media(folder / "loud.wav", duration_s=1.0, level_db=0.0)
    checks = _by_name(run_checks(loud, Expectation(video_codec=None, audio_codec=None, true_peak_dbtp=-1.0)))
    assert checks["clipping"].verdict == "warn"
    assert checks["true_peak"].verdict == "fail"  # 0 dBTP is 1 dB over the ceiling


def test_rendered_variant_passes_its_platform_checks(good: Path, tmp_path: Path) -> None:
    spec = PLATFORMS["instagram_feed"].model_copy(update={"width": 216, "height": 270, "fps": 25.0})
    result = render_variant(good, spec, tmp_path / "feed.mp4")
    results = run_checks(result.path, Expectation.for_platform(spec, duration_s=2.0))
    failing = [(r.check, r.verdict, r.message) for r in results if r.verdict != "pass"]
    assert failing == []


def test_more_checks_plug_into_the_same_interface(good: Path) -> None:
    @dataclass(frozen=True)
    class MinimumHeight:
        name: str = "min_height"

        def __call__(self, info: MediaInfo, qc: QCMeasurements, expect: Expectation) -> CheckResult:
            height = info.video.height if info.video else 0
            verdict = "pass" if height >= 720 else "fail"
            return CheckResult(self.name, verdict, {"height": height}, f"{height} px tall; expected at least 720")

    @qa_check("has_motion")
    def has_motion(info: MediaInfo, qc: QCMeasurements, expect: Expectation):  # type: ignore[no-untyped-def]
        return ("pass" if not qc.frozen else "fail"), {}, "moves"

    results = _by_name(run_checks(good, Expectation(), checks=(*TECHNICAL_CHECKS, MinimumHeight(), has_motion)))
    assert results["min_height"].verdict == "fail" and results["has_motion"].verdict == "pass"
