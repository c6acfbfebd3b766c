"""The fan-out: every platform from one decode, identical renders encoded once, each deliverable
re-probed against its spec, loudness measured independently, side files written; and the CLI."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from syncreel.media.probe import probe
from syncreel.media.qc import measure
from syncreel.media.variants import render_variants
from syncreel.schemas.platforms import PLATFORMS, resolve_platforms
from tests.fixtures.subjects import subject_master

SCALE = 4  # the registry's sizes / 4: the same aspects, fast to encode


def small_specs(names: list[str]) -> dict:
    def shrunk(side: int) -> int:
        return side // SCALE // 2 * 2

    return {
        name: PLATFORMS[name].model_copy(
            update={"width": shrunk(PLATFORMS[name].width), "height": shrunk(PLATFORMS[name].height)}
        )
        for name in names
    }


@pytest.fixture(scope="module")
def cut_master(tmp_path_factory: pytest.TempPathFactory):
    return subject_master(tmp_path_factory.mktemp("fanout") / "cut.mp4", "cut")


@pytest.fixture(scope="module")
def rendered(cut_master, tmp_path_factory: pytest.TempPathFactory):
    specs = small_specs(list(PLATFORMS))
    out = tmp_path_factory.mktemp("variants")
    return specs, render_variants(cut_master[0], specs, out)


def test_identical_renders_are_encoded_once(rendered) -> None:
    specs, results = rendered
    assert list(results) == list(specs)
    shared = {name: r.same_render_as for name, r in results.items() if r.same_render_as}
    assert shared == {"instagram_reels": "tiktok", "youtube_shorts": "tiktok", "facebook_feed": "instagram_feed"}
    assert results["instagram_reels"].path.read_bytes() == results["tiktok"].path.read_bytes()


def test_every_deliverable_meets_its_spec_on_a_fresh_probe(rendered) -> None:
    specs, results = rendered
    for name, result in results.items():
        spec, info = specs[name], probe(result.path, count_frames=True)
        assert info.video is not None and info.audio is not None
        assert (info.video.width, info.video.height) == (spec.width, spec.height), name
        assert info.video.fps == pytest.approx(spec.fps)
        assert info.video.frames == 90  # 3 s at 30 fps
        assert (info.video.codec, info.video.profile, info.video.pix_fmt) == ("h264", "High", "yuv420p")
        assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48_000, 2)
        assert info.duration_s == pytest.approx(3.0, abs=0.05)
        with result.path.open("rb") as handle:
            assert b"moov" in handle.read(64)  # +faststart


def test_loudness_measured_independently_is_on_target(rendered) -> None:
    specs, results = rendered
    for name in ("tiktok", "instagram_feed", "square", "youtube", "web"):
        result, spec = results[name], specs[name]
        qc = measure(result.path)  # ebur128 with true peak, not the loudnorm that made it
        assert qc.integrated_lufs == pytest.approx(spec.loudness_lufs, abs=1.0), name
        assert qc.true_peak_dbtp is not None and qc.true_peak_dbtp <= spec.true_peak_dbtp, name
        assert result.loudness.output_lufs == pytest.approx(qc.integrated_lufs, abs=0.2)
        assert result.loudness.input_lufs is not None and result.loudness.target_lufs == spec.loudness_lufs
    assert results["web"].loudness.output_lufs == pytest.approx(-16.0, abs=1.0)


def test_crop_path_side_files_and_thumbnails(rendered, cut_master) -> None:
    specs, results = rendered
    tiktok = results["tiktok"]
    crop = json.loads(tiktok.files["crop_path"].read_text())
    assert crop["mode"] == "mixed" and len(crop["frames"]) == 90
    assert {frame[4] for frame in crop["frames"][:40]} == {"crop"}  # one face: cropped around it
    assert {frame[4] for frame in crop["frames"][50:]} == {"pad"}  # two faces far apart: padded
    assert tiktok.crop_path.max_step_px <= 0.02 * 640
    assert len(tiktok.thumbnails) == 6 and all(p.is_file() for p in results["instagram_reels"].thumbnails)
    sheet = Image.open(tiktok.files["contact_sheet"])
    assert sheet.size[0] > 3 * 360 and sheet.size[1] > 2 * 360 * 16 / 9
    assert Image.open(tiktok.files["crop_drawing"]).size[0] >= 320
    # The padded half shows the whole picture over a blurred copy: no black bars.
    import av

    with av.open(str(tiktok.path)) as container:
        frame = [f for _, f in zip(range(80), container.decode(video=0), strict=False)][-1].to_ndarray(format="rgb24")
    assert frame[5, frame.shape[1] // 2].max() > 20


def test_a_brief_can_override_and_add_platforms() -> None:
    registry = resolve_platforms(
        {"tiktok": {"max_duration_s": 30, "burn_captions": False}, "kiosk": {"width": 1080, "height": 1920}}
    )
    assert registry["tiktok"].max_duration_s == 30 and registry["tiktok"].width == 1080
    assert registry["kiosk"].label == "kiosk" and registry["kiosk"].reframe == "subject"
    assert registry["tiktok"].render_key() != registry["instagram_reels"].render_key()  # one burns captions
    assert PLATFORMS["tiktok"].render_key() == PLATFORMS["instagram_reels"].render_key()  # same safe zone
    assert PLATFORMS["tiktok"].render_key() != PLATFORMS["youtube_shorts"].render_key()  # safe zones differ
    assert PLATFORMS["tiktok"].render_key(with_captions=False) == PLATFORMS["youtube_shorts"].render_key(
        with_captions=False
    )
