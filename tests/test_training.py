"""model.train on the tiny config: both stages run, the checkpoint loads, training resumes, the
sequential baseline reuses the joint model's frame codec, and the curve is plotted."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from model.builtin import CHECKPOINT
from model.checkpoint import load_checkpoint, load_codec_state
from model.config import sequential, tiny
from model.train import encode_frames, train, world_batch


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
    monkeypatch.setattr("model.train.SAVE_EVERY", 10)
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

    monkeypatch.setattr("model.train.world_batch", counting)
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
