"""Reference analysis on generated media with known answers: click tracks, spoken bursts, a clip with
a cut, a face photo, flat colours."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from syncreel.media import analysis, beats
from tests.fixtures.clips import clip_with_a_cut
from tests.fixtures.music import click_track, write_wav

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("bpm", "start_s"), [(90.0, 0.25), (120.0, 0.5), (128.0, 0.37), (141.5, 0.1), (174.0, 0.6)])
def test_click_track_tempo_beats_and_downbeats(tmp_path: Path, bpm: float, start_s: float) -> None:
    samples, truth = click_track(bpm, 16.0, start_s)
    result = analysis.analyse_music(write_wav(tmp_path / "clicks.wav", samples))
    assert result["tempo_bpm"] == pytest.approx(bpm, abs=1.0)
    found = np.asarray(result["beats_s"])
    assert len(found) == len(truth)
    errors = np.abs(found - truth)
    assert errors.max() < 0.020, f"beats off by up to {errors.max() * 1000:.1f} ms"
    np.testing.assert_allclose(result["downbeats_s"], truth[::4], atol=0.020)
    assert result["beats_per_bar"] == 4 and result["downbeat_confidence"] > 0.3
    json.dumps(result)


def test_sections_split_where_the_arrangement_changes(tmp_path: Path) -> None:
    rate = 48_000
    samples, truth = click_track(120.0, 16.0, 0.0, rate)
    t = np.arange(samples.size) / rate
    second_half = t >= 8.0
    samples[second_half] += 0.2 * np.sign(np.sin(2 * np.pi * 880 * t[second_half]))  # a bright lead enters
    result = analysis.analyse_music(write_wav(tmp_path / "song.wav", samples / 1.5))
    starts = [section["start_s"] for section in result["sections"]]
    assert starts[0] == 0.0 and len(starts) == 2 and starts[1] == pytest.approx(8.0, abs=0.03)
    assert result["sections"][1]["level_db"] > result["sections"][0]["level_db"]


def test_voice_segments_and_level(tmp_path: Path) -> None:
    rate = 48_000
    rng = np.random.default_rng(3)
    samples = 0.001 * rng.standard_normal(5 * rate).astype(np.float32)  # room noise
    spoken = [(0.5, 1.7), (2.2, 3.0), (3.6, 4.5)]
    for start, end in spoken:
        n = int((end - start) * rate)
        t = np.arange(n) / rate
        syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)  # four syllables a second, no gap inside a phrase
        voice = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
        samples[int(start * rate) : int(start * rate) + n] += (0.2 * syllables * voice).astype(np.float32)
    result = analysis.analyse_voice(write_wav(tmp_path / "vo.wav", samples))
    segments = [(s["start_s"], s["end_s"]) for s in result["speech_segments"]]
    assert len(segments) == 3
    for (start, end), (true_start, true_end) in zip(segments, spoken, strict=True):
        assert start == pytest.approx(true_start, abs=0.05) and end == pytest.approx(true_end, abs=0.05)
    assert result["speech_s"] == pytest.approx(2.9, abs=0.15)
    assert -24 < result["speech_level_dbfs"] < -14


def test_motion_energy_track_and_shot_boundary(tmp_path: Path) -> None:
    result = analysis.analyse_motion(clip_with_a_cut(tmp_path / "cut.mp4"))
    assert result["frames"] == 48 and result["shots"] == 2
    assert result["shot_boundaries_s"] == [pytest.approx(30 / 24, abs=1 / 24)]
    energy = np.asarray(result["motion_energy"])
    assert energy[2:29].min() > 5 and energy[32:].max() < 1  # moving, then still
    xs = [point[0] for point in result["motion_track"][2:29]]
    assert xs[-1] > xs[0] + 0.3  # the motion track follows the square to the right


def test_image_face_box_and_dominant_colours(tmp_path: Path) -> None:
    portrait = analysis.analyse_image(ROOT / "examples" / "briefs" / "assets" / "presenter.png")
    assert portrait["faces"], "the presenter photo shows a face"
    x0, y0, x1, y1 = portrait["faces"][0]["box"]
    assert 0 <= x0 < 0.5 < x1 <= 1 and 0 <= y0 < 0.5 < y1 <= 1 and portrait["faces"][0]["score"] > 0.7

    flat = np.zeros((90, 120, 3), np.uint8)
    flat[:, :80] = (0x0F, 0x6E, 0x73)
    flat[:, 80:] = (0xF6, 0xF1, 0xE4)
    path = tmp_path / "flat.png"
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 120, 90, "rgb24"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(flat, format="rgb24")), *stream.encode()]:
            container.mux(packet)
    colours = analysis.analyse_image(path)
    assert colours["faces"] == []
    top = colours["dominant_colours"][:2]
    assert [c["hex"] for c in top] == ["#0F6E73", "#F6F1E4"]
    assert top[0]["share"] == pytest.approx(2 / 3, abs=0.02)


def test_analyse_reference_by_role_and_analyse_file(tmp_path: Path) -> None:
    samples, _ = click_track(120.0, 6.0, 0.5)
    track = write_wav(tmp_path / "bed.wav", samples)
    assert analysis.analyse_reference(track, "audio", "music")["type"] == "music"
    assert analysis.analyse_reference(track, "audio", "voice")["type"] == "voice"
    assert analysis.analyse_reference(track, "audio", "sfx")["onsets_s"][0] == pytest.approx(0.5, abs=0.02)
    everything = analysis.analyse_file(track)
    assert {"music", "voice"} <= set(everything) and "motion" not in everything
    clip = analysis.analyse_file(clip_with_a_cut(tmp_path / "c.mp4"))
    assert clip["motion"]["shots"] == 2 and "image" in clip and "music" not in clip
    assert beats.RATE == 16_000
