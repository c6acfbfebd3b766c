"""The procedural world the built-in model learns from, its speech, and the event detectors that
benchmarks/model_sync.py measures sync with."""

from __future__ import annotations

import numpy as np
import pytest

from syncreel.audio import audio_onsets, match_events
from syncreel.espeak import SpeechError, synthesize
from syncreel.model.config import small
from syncreel.model.events import sync_figures, visual_events
from syncreel.model.world import STEMS, face, loudness_envelope, mouth_mask, sample_clip

CONFIG = small()


def clip(kind: str, seed: int = 11, seconds: float = 4.0):
    return sample_clip(
        np.random.default_rng(seed), seconds, CONFIG.latent_fps, CONFIG.frame_size, CONFIG.sample_rate, kind
    )


def test_speech_is_synthesised_offline_and_bad_input_is_refused():
    wave = synthesize("Open the light.", 16_000)
    assert wave.dtype == np.float32 and 0.4 < len(wave) / 16_000 < 2.5
    assert 0.05 < np.abs(wave).max() <= 1.0
    again = synthesize("Open the light.", 16_000)  # espeak-ng jitters by a few milliseconds, no more
    assert abs(len(again) - len(wave)) < 0.02 * len(wave)
    slower = synthesize("Open the light.", 16_000, words_per_minute=100)
    assert len(slower) > 1.3 * len(wave)
    with pytest.raises(SpeechError, match="no voice 'xx-nope'"):
        synthesize("hello", 16_000, voice="xx-nope")
    with pytest.raises(SpeechError, match="no text"):
        synthesize("   ", 16_000)


@pytest.mark.parametrize("kind", ["bounce", "pulse", "talk"])
def test_world_clips_are_seeded_with_stems_that_sum_to_the_mix(kind):
    first, again = clip(kind), clip(kind)
    assert first.kind == kind and first.caption == again.caption
    assert np.array_equal(first.frames, again.frames) and np.array_equal(first.stems, again.stems)
    assert first.frames.shape == (50, 48, 48, 3) and first.frames.min() >= -1 and first.frames.max() <= 1
    assert first.stems.shape == (len(STEMS), 64_000) and np.allclose(first.audio, first.stems.sum(0))
    assert first.event_times_s, "every world scene has events"
    ambience = first.stems[STEMS.index("ambience")]
    assert 0.01 < np.sqrt(np.mean(ambience**2)) < 0.05  # every setting has its bed of sound
    sounding = STEMS.index("dialogue") if kind == "talk" else STEMS.index("effects")
    silent = STEMS.index("effects") if kind == "talk" else STEMS.index("dialogue")
    assert np.abs(first.stems[sounding]).max() > 0.3 and not first.stems[silent].any()
    assert clip(kind, seed=12).caption != first.caption or not np.array_equal(clip(kind, seed=12).frames, first.frames)


def test_each_visible_event_is_heard_where_it_happens():
    for kind in ("bounce", "pulse"):
        scene = clip(kind)
        effects = scene.stems[STEMS.index("effects")]
        quiet = np.abs(effects[:800]).mean() + 1e-4
        for at in scene.event_times_s:
            start = int(at * CONFIG.sample_rate)
            assert np.abs(effects[start : start + 800]).max() > 20 * quiet


def test_talking_face_is_the_astronaut_and_the_mouth_follows_the_speech():
    scene = clip("talk", seed=3)
    photo = face(CONFIG.frame_size) * 2 - 1
    changed = np.abs(scene.frames - photo[None]).sum(-1) > 0.05  # (T, H, W): pixels the mouth repaints
    rows, cols = np.nonzero(changed.any(0))
    assert rows.min() > 0.45 * CONFIG.frame_size and rows.max() < 0.7 * CONFIG.frame_size  # the mouth region only
    assert cols.min() > 0.35 * CONFIG.frame_size and cols.max() < 0.65 * CONFIG.frame_size
    opening = changed.sum((1, 2)).astype(float)
    times = (np.arange(len(opening)) + 0.5) / CONFIG.latent_fps
    envelope = loudness_envelope(scene.stems[STEMS.index("dialogue")], CONFIG.sample_rate, times)
    assert np.corrcoef(opening, envelope)[0, 1] > 0.8
    assert mouth_mask(48, 0.0).max() == 0 and mouth_mask(48, 1.0).max() > 0.95


@pytest.mark.parametrize("kind", ["bounce", "pulse"])
def test_detectors_find_the_world_s_own_events(kind):
    """On ground-truth clips the detectors land within half a video frame (the floor of the measure)."""
    frame_ms = 1000 / CONFIG.latent_fps
    for seed in range(4):
        scene = clip(kind, seed=seed)
        onsets = audio_onsets(scene.stems[STEMS.index("effects")], CONFIG.sample_rate)
        truth = match_events(scene.event_times_s, onsets, window_s=0.02)
        assert truth.unmatched_visual == 0  # every real event's sound is found within 20 ms
        seen = visual_events((scene.frames + 1) * 127.5, CONFIG.latent_fps, kind)
        assert seen, f"no {kind} events seen in seed {seed}"
        matched = match_events(seen, onsets)
        assert matched.matched == len(seen)
        assert max(abs(o) for o in matched.offsets_ms) <= frame_ms / 2 + 1
    with pytest.raises(ValueError, match="no visual event detector"):
        visual_events(scene.frames, CONFIG.latent_fps, "talk")


def test_matching_pairs_nearest_first_and_counts_the_rest():
    result = match_events((1.0, 2.0, 3.0), (1.02, 2.3, 2.95, 5.0), window_s=0.1)
    assert result.offsets_ms == pytest.approx((20.0, -50.0)) and result.matched == 2
    assert result.unmatched_visual == 1 and result.unmatched_audio == 2
    assert audio_onsets(np.zeros(16_000, np.float32), 16_000) == ()


def test_sync_figures_reward_sound_where_the_picture_has_events_and_not_sound_everywhere():
    scenes = [sample_clip(np.random.default_rng(300 + i), 4.0, CONFIG.latent_fps, CONFIG.frame_size,
                          CONFIG.sample_rate, kind) for i, kind in enumerate(["bounce", "pulse"] * 3)]  # fmt: skip
    frame_ms = 1000 / CONFIG.latent_fps
    pairs = [
        (visual_events((s.frames + 1) * 127.5, CONFIG.latent_fps, s.kind), audio_onsets(s.stems[1], CONFIG.sample_rate))
        for s in scenes
    ]
    truth = sync_figures(pairs, frame_ms)
    mismatched = sync_figures([(pairs[i][0], pairs[(i + 2) % 6][1]) for i in range(6)], frame_ms)
    everywhere = sync_figures([(v, tuple(np.arange(0, 4, 0.05))) for v, _ in pairs], frame_ms)
    assert truth["within_1_frame"] > 0.9 and truth["f1"] > 2 * mismatched["f1"]
    assert everywhere["within_1_frame"] == 1.0 and everywhere["precision_1_frame"] < 0.2  # recall alone is fooled
    assert everywhere["f1"] < truth["f1"] / 2
