"""model.train on the tiny config: both stages run, the checkpoint loads, training resumes, the
sequential baseline reuses the joint model's frame codec, and the curve is plotted."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from syncreel.model.builtin import CHECKPOINT
from syncreel.model.checkpoint import load_checkpoint, load_codec_state
from syncreel.model.config import sequential, small, tiny
from syncreel.model.train import BatchStream, encode_frames, train, world_batch


def test_training_writes_a_loadable_checkpoint_resumes_and_plots(tmp_path, monkeypatch):
    out = tmp_path / "ck.safetensors"
    common = dict(batch=2, seconds=1.0, lr=1e-3, seed=0)
    train(tiny(), codec_minutes=0.02, minutes=5, max_steps=20, out=out, **common)
    model, provenance = load_checkpoint(out)
    assert provenance["steps"] == 20 and provenance["codec_steps"] > 0 and model.config == tiny()
    rows = list(csv.DictReader((tmp_path / "ck.csv").open()))
    assert {r["stage"] for r in rows} == {"codec", "flow"} and rows[-1]["step"] == "20"
    assert all(float(r["loss"]) > 0 for r in rows)
    plot = Image.open(tmp_path / "ck.png")
    colours = np.unique(np.asarray(plot.convert("RGB")).reshape(-1, 3), axis=0)
    assert plot.size == (900, 420) and len(colours) > 5  # drawn, not blank

    # resuming continues the step count and keeps the first curve; interim saves carry the new count
    monkeypatch.setattr("syncreel.model.train.SAVE_EVERY", 10)
    train(tiny(), codec_minutes=0.02, minutes=5, max_steps=20, out=out, resume=out, **common)
    assert load_checkpoint(out)[1]["steps"] == 40
    assert (tmp_path / "ck-resumed.csv").is_file() and (tmp_path / "ck.csv").is_file()

    # the sequential baseline: no cross-modal weights, the same frame codec
    baseline = tmp_path / "sequential.safetensors"
    train(sequential(tiny()), codec_minutes=0, minutes=5, max_steps=10, out=baseline, codec_from=out, **common)
    seq_model, seq_provenance = load_checkpoint(baseline)
    assert seq_model.config.cross_modal is False
    assert seq_provenance["codec_steps"] == load_checkpoint(out)[1]["codec_steps"]  # taken over, not retrained
    for name, tensor in load_codec_state(out).items():
        assert torch.equal(seq_model.video_codec.state_dict()[name], tensor), name


def test_data_echo_takes_several_steps_per_generated_batch(tmp_path, monkeypatch):
    made = []
    real_batch = world_batch

    def counting(*args, **kwargs):
        made.append(args[2])  # the batch size asked for
        return real_batch(*args, **kwargs)

    monkeypatch.setattr("syncreel.model.train.world_batch", counting)
    out = tmp_path / "echo.safetensors"
    train(tiny(), codec_minutes=0, minutes=5, max_steps=9, out=out, batch=2, seconds=1.0, lr=1e-3, seed=0, echo=3)
    assert made == [2, 2, 2]  # 9 steps from 3 batches; the fourth batch (the long one) would come next
    assert load_checkpoint(out)[1]["echo"] == 3
    with pytest.raises(ValueError, match="echo must be at least 1"):
        train(tiny(), codec_minutes=0, minutes=5, max_steps=1, out=out, batch=2, seconds=1.0, lr=1e-3, seed=0, echo=0)


def test_codec_latents_for_training_match_float32_ones():
    model = load_checkpoint(CHECKPOINT)[0]  # the shipped codec
    frames = world_batch(np.random.default_rng(1), model.config, 2, 1.0)[0]
    with torch.no_grad():
        exact = model.video_codec.encode(frames.flatten(0, 1)).unflatten(0, frames.shape[:2]).transpose(1, 2)
    fast = encode_frames(model.video_codec, frames)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert (fast - exact).pow(2).mean().sqrt() < 0.01 * exact.std()


def test_batch_stream_gives_the_same_batches_with_workers():
    plain = BatchStream(tiny(), 2, 1.0, seed=3, long_every=2)
    ahead = BatchStream(tiny(), 2, 1.0, seed=3, workers=1, long_every=2)
    try:
        for _ in range(3):
            (frames, audio, captions, _), (frames_w, audio_w, captions_w, _) = plain.next(), ahead.next()
            assert captions == captions_w and frames.shape == frames_w.shape and audio.shape == audio_w.shape
            for clip, clip_w, caption in zip(frames, frames_w, captions, strict=True):
                # espeak-ng's speech (so the talking mouth) varies by a few ms per process; "" is a dropped caption
                if caption and "talking" not in caption:
                    assert (clip - clip_w).abs().max() < 1e-3  # half precision on the way between processes
    finally:
        ahead.close()
    assert [plain._shape(job) for job in range(4)] == [(2, 1.0), (1, 2.0), (2, 1.0), (1, 2.0)]
    assert ahead.waited_s > 0


def test_a_larger_picture_starts_from_a_smaller_pictures_checkpoint(tmp_path):
    common = dict(batch=2, seconds=1.0, lr=1e-3, seed=0)
    smaller = tmp_path / "small.safetensors"
    train(tiny(), codec_minutes=0.02, minutes=5, max_steps=2, out=smaller, **common)
    larger = replace(tiny(), frame_size=32, codec_factor=8)  # the same 4 × 4 latent grid
    out = tmp_path / "large.safetensors"
    split = train(
        larger, codec_minutes=0.02, minutes=5, max_steps=3, out=out, init_from=smaller, codec_teacher=smaller, **common
    )
    model, provenance = load_checkpoint(out)
    assert model.config.frame_size == 32 and provenance["steps"] == 3 and provenance["steps_before"] == 2
    assert provenance["initialised_from"] == str(smaller) and provenance["codec_teacher"] == str(smaller)
    # the codec learned the teacher's normalised latents, so it keeps no normalisation of its own
    assert torch.all(model.video_codec.latent_mean == 0) and torch.all(model.video_codec.latent_std == 1)
    assert split["steps"] == 3 and 0 <= split["data_wait_s"] <= split["seconds"]
    with pytest.raises(ValueError, match="not this network"):
        train(replace(tiny(), frame_size=16, latent_channels=8), codec_minutes=0.01, minutes=0, max_steps=0,
              out=tmp_path / "x.safetensors", codec_teacher=smaller, **common)  # fmt: skip


def test_small_keeps_a_twelve_by_twelve_latent_grid_at_any_picture_size():
    assert small() == small(48) and (small(48).codec_factor, small(96).codec_factor) == (4, 8)
    assert small(96).latent_height == small(48).latent_height == 12
    with pytest.raises(ValueError, match="48"):
        small(64)
