"""The dual-tower model on tiny configs with fixed seeds: shapes, init, coupling, positions, objective,
sampler, guidance, inpainting, save/load, and the builtin backend's contract."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.builtin import CHECKPOINT, BuiltinGenerator
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.codecs import decode_audio, decode_video, encode_audio, encode_video
from model.config import DualTowerConfig, base, small, tiny
from model.flow_matching import Guidance, KnownParts, flow_matching_loss, sample
from model.generator import GenerationRequest, ReferenceInput, get_generator
from model.transformer import DualTowerTransformer, tokenize
from model.world import sample_clip

ASSETS = Path(__file__).resolve().parents[1] / "examples" / "briefs" / "assets"


def make_model(seed: int = 0, randomize: bool = False) -> DualTowerTransformer:
    torch.manual_seed(seed)
    model = DualTowerTransformer(tiny()).eval()
    if randomize:  # move off the zero-initialised gates and heads so every path carries signal
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "modulation" in name or "head" in name:
                    param.normal_(0, 0.2)
    return model


def inputs(config: DualTowerConfig, seconds: float = 2.0, batch: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    frames = int(seconds * config.latent_fps)
    mel = int(seconds * config.mel_fps) // config.audio_patch * config.audio_patch
    video = torch.randn(
        batch, config.latent_channels, frames, config.latent_height, config.latent_width, generator=generator
    )
    audio = torch.randn(batch, config.n_mels, mel, generator=generator)
    return video, audio


def context(model: DualTowerTransformer, texts: list[str]):
    config = model.config
    return model.encode_context(tokenize(texts, config.text_vocab, config.max_text_tokens))


def test_forward_shapes_for_both_towers():
    model = make_model(randomize=True)
    video, audio = inputs(model.config, batch=2)
    ctx = context(model, ["a can pops open", ""])
    v, a = model(video, audio, torch.rand(2), torch.rand(2), *ctx)
    assert v.shape == video.shape and a.shape == audio.shape
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_zero_init_predicts_zero_velocity():
    model = make_model()
    video, audio = inputs(model.config)
    v, a = model(video, audio, torch.rand(1), torch.rand(1), *context(model, ["hello"]))
    assert v.abs().max() == 0 and a.abs().max() == 0


def test_audio_reaches_video_only_through_cross_modal_attention():
    model = make_model(randomize=True)
    video, audio = inputs(model.config)
    ctx = context(model, ["a drum hit"])
    t = torch.tensor([0.5])
    other_audio = audio + torch.randn_like(audio)
    with torch.no_grad():
        coupled = model(video, audio, t, t, *ctx)[0]
        coupled_other = model(video, other_audio, t, t, *ctx)[0]
        solo = model(video, audio, t, t, *ctx, cross_modal=False)[0]
        solo_other = model(video, other_audio, t, t, *ctx, cross_modal=False)[0]
    assert (coupled - coupled_other).abs().max() > 1e-4
    assert torch.equal(solo, solo_other)


def test_same_instant_gets_same_temporal_phase_in_both_towers():
    # At 2 latent frames/s and 50 audio tokens/s, frame centres (0.25 s, 0.75 s, ...) coincide with
    # audio token centres, so "the same instant" exists in both towers.
    config = replace(tiny(), latent_fps=2.0)
    model = DualTowerTransformer(config)
    video_times = model.video_seconds(8, torch.device("cpu"))
    audio_times = model.audio_seconds(100, torch.device("cpu"))
    video_angles = model._time_angles(video_times)
    audio_angles = model._time_angles(audio_times)
    # A video frame's centre and the audio token whose centre is the same instant share every angle.
    frame = 3
    token = int(torch.argmin((audio_times - video_times[frame]).abs()))
    assert math.isclose(audio_times[token].item(), video_times[frame].item(), abs_tol=1e-6)
    for head in video_angles:
        assert torch.allclose(video_angles[head][frame], audio_angles[head][token])
    # ...and a token 0.5 s later does not.
    later = int(torch.argmin((audio_times - video_times[frame] - 0.5).abs()))
    head = config.video_dim // config.video_heads
    assert not torch.allclose(video_angles[head][frame], audio_angles[head][later])


def test_loss_decreases_when_fitting_a_fixed_batch():
    torch.manual_seed(0)
    model = DualTowerTransformer(tiny())
    video, audio = inputs(model.config, batch=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        generator = torch.Generator().manual_seed(step % 4)
        loss, _ = flow_matching_loss(model, video, audio, *context(model, ["one", "two"]), generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])


def run_sampler(model, seed=0, **kwargs):
    config = model.config
    video, audio = inputs(config)
    cond, uncond = context(model, ["a can"]), context(model, [""])
    return sample(
        model,
        tuple(video.shape),
        tuple(audio.shape),
        cond,
        uncond,
        steps=kwargs.pop("steps", 3),
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def test_sampler_is_deterministic_per_seed():
    model = make_model(randomize=True)
    a = run_sampler(model, seed=1)
    b = run_sampler(model, seed=1)
    c = run_sampler(model, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_guidance_scales_and_sync_guidance_change_the_result():
    model = make_model(randomize=True)
    plain = run_sampler(model, guidance=Guidance(video=1.0, audio=1.0))
    guided = run_sampler(model, guidance=Guidance(video=4.0, audio=1.0))
    audio_guided = run_sampler(model, guidance=Guidance(video=1.0, audio=4.0))
    synced = run_sampler(model, guidance=Guidance(video=1.0, audio=1.0, sync=2.0))
    assert not torch.allclose(plain[0], guided[0])
    assert not torch.allclose(plain[1], audio_guided[1])
    assert not torch.allclose(plain[0], synced[0]) and not torch.allclose(plain[1], synced[1])


def test_heun_differs_from_euler_and_bad_solver_is_refused():
    model = make_model(randomize=True)
    assert not torch.allclose(run_sampler(model)[0], run_sampler(model, solver="heun")[0])
    with pytest.raises(ValueError, match="solver"):
        run_sampler(model, solver="rk4")


def test_inpainting_keeps_known_first_frame_and_audio():
    model = make_model(randomize=True)
    video, audio = inputs(model.config, seed=5)
    known = KnownParts(first_frame=video[:, :, :1], audio=audio)
    out_video, out_audio = run_sampler(model, known=known)
    assert torch.allclose(out_video[:, :, :1], video[:, :, :1])
    assert torch.allclose(out_audio, audio)
    assert not torch.allclose(out_video[:, :, 1:], video[:, :, 1:])


def test_state_dict_round_trip_gives_identical_output():
    model = make_model(randomize=True)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = DualTowerTransformer(tiny()).eval()
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(run_sampler(model)[0], run_sampler(clone)[0])


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="divisible"):
        replace(tiny(), video_dim=50)
    with pytest.raises(ValueError, match="patch"):
        replace(tiny(), latent_height=5)
    assert small().audio_dim < small().video_dim and base().depth > small().depth
    assert small().audio_token_fps == 25


def test_codecs_round_trip():
    config = small()
    t = torch.arange(config.sample_rate * 2) / config.sample_rate
    wave = decode_audio(encode_audio(0.5 * torch.sin(2 * math.pi * 440 * t), config), config)
    peak_hz = torch.fft.rfft(wave).abs().argmax().item() * config.sample_rate / len(wave)
    assert abs(peak_hz - 440) < 20
    frames = np.zeros((6, 36, 64, 3), np.uint8)
    frames[:, :, 32:] = 255
    out = decode_video(encode_video(torch.from_numpy(frames), config), 6, 36, 64)
    assert out.shape == (6, 36, 64, 3) and out[:, :, :24].max() < 40 and out[:, :, 40:].min() > 215


@pytest.fixture(scope="module")
def builtin():
    return get_generator("builtin")


def request(**overrides) -> GenerationRequest:
    fields = dict(
        scene_id="s",
        language="en",
        prompt="a can on a table",
        duration_s=1.5,
        width=160,
        height=90,
        fps=12,
        sample_rate=48_000,
        seed=7,
        steps=2,
        references=(
            ReferenceInput("p", "image", "character", ASSETS / "presenter.png"),
            ReferenceInput("b", "video", "motion", ASSETS / "bounce.mp4"),
            ReferenceInput("m", "audio", "music", ASSETS / "music.m4a"),
        ),
        sound_cues=((0.5, "pop"),),
    )
    return GenerationRequest(**{**fields, **overrides})


def test_builtin_backend_contract(builtin):
    clip = builtin.generate(request())
    assert clip.frames.shape == (18, 90, 160, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (1, 72_000) and clip.audio.dtype == np.float32
    peak = np.abs(clip.audio).max()
    assert 0.6 < peak <= 0.71  # peak-normalised to -3 dBFS: never silent, never clipped
    assert clip.event_times_s == (0.5,) and clip.unused_reference_roles == ()
    assert clip.model_version == builtin.model_version
    assert clip.parameters["trained"] is CHECKPOINT.is_file()
    assert clip.model_version.endswith("-untrained") is not CHECKPOINT.is_file()
    again = builtin.generate(request())
    assert np.array_equal(clip.frames, again.frames) and np.array_equal(clip.audio, again.audio)
    other = builtin.generate(request(seed=8))
    assert not np.array_equal(clip.frames, other.frames)


def test_builtin_keeps_a_given_voice(builtin):
    voice = ReferenceInput("v", "audio", "voice", ASSETS / "music.m4a")
    with_voice = builtin.generate(request(references=(voice,), duration_s=2.0))
    without = builtin.generate(request(references=(), duration_s=2.0))
    assert not np.array_equal(with_voice.audio, without.audio)
    assert with_voice.audio.shape == without.audio.shape == (1, 96_000)


def test_checkpoint_round_trip_and_backend_loads_it(tmp_path):
    model = make_model(randomize=True)
    path = tmp_path / "ck.safetensors"
    save_checkpoint(model, path, steps=3)
    loaded, provenance = load_checkpoint(path)
    assert provenance == {"steps": 3} and loaded.config == model.config
    assert torch.equal(run_sampler(model)[0], run_sampler(loaded)[0])
    backend = BuiltinGenerator(path)
    assert backend.trained and not backend.model_version.endswith("-untrained")
    clip = backend.generate(request(references=(), duration_s=1.0, steps=1))
    assert clip.parameters["trained"] is True and clip.frames.shape == (12, 90, 160, 3)


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    model = make_model(randomize=True)
    path = tmp_path / "half.safetensors"
    save_checkpoint(model, path, dtype=torch.float16)
    loaded, _ = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.allclose(next(iter(loaded.parameters())), next(iter(model.parameters())), atol=1e-2)


def test_corrupt_or_mismatched_checkpoints_are_refused_clearly(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt.safetensors: not a readable safetensors file"):
        load_checkpoint(corrupt)
    good = tmp_path / "good.safetensors"
    save_checkpoint(make_model(), good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_checkpoint(truncated)
    # Weights from one config under another config's metadata: every mismatch is named.
    from safetensors.torch import load_file, save_file

    other = replace(tiny(), video_dim=64)
    state = load_file(str(good))
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(
        state,
        str(mismatched),
        metadata={"format": "syncreel-dualtower/1", "config": json.dumps(other.to_dict()), "provenance": "{}"},
    )
    with pytest.raises(CheckpointError, match="weights do not match the config") as caught:
        load_checkpoint(mismatched)
    assert "blocks.0.a2v.out.weight: shape (48, 48), the network has (64, 64)" in str(caught.value)
    assert "more" in str(caught.value)
    foreign = tmp_path / "foreign.safetensors"
    save_file(state, str(foreign), metadata={"format": "somebody-else/3"})
    with pytest.raises(CheckpointError, match="format 'somebody-else/3'"):
        load_checkpoint(foreign)


def test_world_clips_are_seeded_and_sound_follows_sight():
    config = small()
    args = (2.0, config.latent_fps, config.latent_height, config.latent_width, config.sample_rate)
    first = sample_clip(np.random.default_rng(11), *args)
    again = sample_clip(np.random.default_rng(11), *args)
    assert first.caption == again.caption and np.array_equal(first.frames, again.frames)
    assert first.frames.shape == (12, 12, 20, 3) and first.audio.shape == (32_000,)
    assert first.frames.min() >= -1 and first.frames.max() <= 1
    assert first.event_times_s, "every world scene has events"
    envelope = np.abs(first.audio)
    for at in first.event_times_s:  # each event is heard where it happens
        start = int(at * config.sample_rate)
        assert envelope[start : start + 800].max() > 4 * (envelope[:1600].mean() + 1e-4) or start < 1600


def test_training_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    from model.train import train

    out = tmp_path / "ck.safetensors"
    common = dict(minutes=5, batch=2, seconds=1.0, lr=1e-3, seed=0, out=out)
    train(tiny(), max_steps=10, log=tmp_path / "curve.csv", **common)
    model, provenance = load_checkpoint(out)
    assert provenance["steps"] == 10 and model.config == tiny()
    assert (tmp_path / "curve.csv").read_text().splitlines()[1].startswith("10,")
    train(tiny(), max_steps=10, log=tmp_path / "more.csv", resume=out, **common)
    assert load_checkpoint(out)[1]["steps"] == 20
