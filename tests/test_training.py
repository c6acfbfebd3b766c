"""model.train on the tiny config: both stages run, the checkpoint loads, training resumes, the
sequential baseline reuses the joint model's frame codec, and the curve is plotted."""

from __future__ import annotations

import csv

import numpy as np
import torch
from PIL import Image

from model.checkpoint import load_checkpoint, load_codec_state
from model.config import sequential, tiny
from model.train import train


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
