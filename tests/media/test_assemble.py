"""The edit: cuts snapped to a click track's beats (checked on the decoded spot), the layered mix with
per-layer gains, music ducked under dialogue by the configured amount."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from syncreel.media.analysis import analyse_music
from syncreel.media.assemble import assemble_layered, snap_cuts
from syncreel.media.encode import write_stems
from syncreel.media.mix import RATE, MixSettings, mix_spot, read_stems
from tests.fixtures.clips import FPS, cut_times, scene_clip
from tests.fixtures.music import click_track, write_wav


def test_snap_prefers_downbeats_within_the_tolerance() -> None:
    beats = [0.5 * k for k in range(20)]
    downbeats = beats[::4]  # 0, 2, 4, ...
    cuts = snap_cuts([2.2, 1.5, 3.0], 20.0, beats, downbeats, tolerance_s=0.25)
    assert [c.cut_s for c in cuts] == [
        2.0,
        3.5,
    ]  # 2.2 → downbeat 2.0; 3.7 → beat 3.5 (no downbeat near)
    assert [c.downbeat for c in cuts] == [True, False]
    far = snap_cuts([2.2, 1.5, 3.0], 20.0, beats, downbeats, tolerance_s=0.05)
    assert [c.cut_s for c in far] == [2.2, 3.7] and far[0].beat_s is None


def test_beat_synced_cuts_land_within_a_frame_of_the_beats(tmp_path: Path) -> None:
    bpm, first_beat = 120.0, 0.3
    clicks, truth = click_track(bpm, 10.0, first_beat)
    music = write_wav(tmp_path / "music.wav", 0.5 * clicks)
    grid = analyse_music(music)
    scenes = [scene_clip(tmp_path, i, s, []) for i, s in enumerate([2.15, 2.0, 2.4])]
    result = assemble_layered(
        [clip for clip, _ in scenes],
        tmp_path / "spot.mp4",
        stems=[stem for _, stem in scenes],
        stem_names=[("dialogue", "effects", "ambience")] * 3,
        music=music,
        beats_s=grid["beats_s"],
        downbeats_s=grid["downbeats_s"],
        beat_sync=True,
        snap_tolerance_s=0.3,
    )
    decoded = cut_times(Path(result.info.path))
    assert len(decoded) == 2
    for cut in decoded:
        assert np.abs(truth - cut).min() <= 1 / FPS, f"cut at {cut:.3f} s is off the beat grid"
    # Both nominal cuts (2.15 s, 4.15 s) have a downbeat (2.3 s, 4.3 s) within the tolerance.
    assert [c.downbeat for c in result.cuts] == [True, True]
    assert [round(c.cut_s, 3) for c in result.cuts] == [pytest.approx(2.292, abs=0.01), pytest.approx(4.292, abs=0.01)]
    assert result.info.video.frames == 52 + 48 + 58  # every master's frames: the spot's end does not move
    assert result.info.duration_s == pytest.approx(158 / FPS, abs=0.03)
    unsynced = assemble_layered([clip for clip, _ in scenes], tmp_path / "plain.mp4", music=music)
    assert [round(t, 3) for t in cut_times(tmp_path / "plain.mp4")] == [
        pytest.approx(2.167, abs=0.01),
        pytest.approx(4.167, abs=0.01),
    ]
    assert all(c.beat_s is None for c in unsynced.cuts)


def _rms_db(audio: np.ndarray) -> float:
    return 20 * float(np.log10(np.sqrt(np.mean(np.square(audio.astype(np.float64))))))


def test_music_ducks_under_dialogue_by_the_configured_amount(tmp_path: Path) -> None:
    lines = [(0.5, 1.8), (3.0, 4.2)]
    scene = scene_clip(tmp_path, 0, 5.5, lines)
    t = np.arange(round(5.5 * RATE)) / RATE
    bed = (0.4 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    music = write_wav(tmp_path / "bed.wav", bed)
    settings = MixSettings(music_db=-6.0, duck_db=9.0, dialogue_db=-3.0)
    result = assemble_layered(
        [scene[0]],
        tmp_path / "spot.mp4",
        stems=[scene[1]],
        stem_names=[("dialogue", "effects", "ambience")],
        music=music,
        mix=settings,
        stems_out=tmp_path / "spot-stems.wav",
    )
    names = result.stem_names
    layers = read_stems(result.stems)
    assert names == ("dialogue", "effects", "ambience", "music")
    music_layer = layers[names.index("music")]

    def window(start: float, end: float) -> np.ndarray:
        return music_layer[int(start * RATE) : int(end * RATE)]

    under = np.mean([_rms_db(window(s + 0.3, e - 0.05)) for s, e in lines])
    between = _rms_db(window(2.45, 2.8))
    assert between - under == pytest.approx(9.0, abs=1.0)
    before = _rms_db(window(0.0, 0.35))
    # The music layer at its own gain (a mono bed spreads over two channels at -3 dB each: constant power).
    assert before == pytest.approx(_rms_db(bed) - 6.0 - 3.0, abs=0.5)
    dialogue = layers[names.index("dialogue")]
    voice_db = 20 * np.log10(0.3 / np.sqrt(2))
    assert _rms_db(dialogue[int(0.6 * RATE) : int(1.7 * RATE)]) == pytest.approx(voice_db - 3.0, abs=0.3)
    assert result.mix["music_ducked_s"] > 2.0 and result.mix["music"] is True


def test_mix_crossfades_and_silent_scenes_keep_their_place() -> None:
    tone = np.full(RATE, 0.5, np.float32)
    mixed = mix_spot([{"dialogue": tone}, {}], [0.0, 1.0, 2.0], None, MixSettings(crossfade_s=0.02))
    assert mixed.mix.shape == (2, 2 * RATE)
    assert mixed.mix[0, RATE - 1] == pytest.approx(0.0, abs=1e-3)  # faded out at the cut
    assert mixed.mix[0, RATE // 2] == pytest.approx(0.5, abs=1e-3)
    assert np.abs(mixed.mix[:, RATE:]).max() == 0


def test_stems_at_another_rate_are_resampled(tmp_path: Path) -> None:
    t = np.arange(24_000) / 24_000
    stems = np.stack([0.5 * np.sin(2 * np.pi * 200 * t), np.zeros_like(t)]).astype(np.float32)
    read = read_stems(write_stems(stems, 24_000, tmp_path / "stems24.wav"))
    assert read.shape == (2, RATE)
    assert np.sqrt(np.mean(read[0] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
