"""The dual-tower model on tiny configs with fixed seeds: shapes in every mode, init, coupling, positions,
objective, sampler, guidance, inpainting, save/load, training, and the builtin backend's contract."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from syncreel.model.backends import get_generator
from syncreel.model.builtin import CHECKPOINT, BuiltinGenerator
from syncreel.model.checkpoint import CheckpointError, load_checkpoint, load_codec_state, save_checkpoint
from syncreel.model.codecs import decode_audio, decode_video, encode_audio, encode_video, fit_square
from syncreel.model.config import DualTowerConfig, base, sequential, small, tiny
from syncreel.model.flow_matching import (
    Guidance,
    KnownParts,
    TrainingModes,
    flow_matching_loss,
    sample,
    shift_time,
    time_grid,
)
from syncreel.model.generator import GenerationRequest, ReferenceInput
from syncreel.model.layers import Attention, time_window_bias
from syncreel.model.transformer import AUDIO_MIN_T, DualTowerTransformer, tokenize
from syncreel.model.world import STEMS

ASSETS = Path(__file__).resolve().parents[2] / "examples" / "briefs" / "assets"


def make_model(seed: int = 0, randomize: bool = False, config: DualTowerConfig | None = None) -> DualTowerTransformer:
    torch.manual_seed(seed)
    model = DualTowerTransformer(config or tiny()).eval()
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
    audio = torch.randn(batch, config.stems, config.n_mels, mel, generator=generator)
    return video, audio


def context(model: DualTowerTransformer, texts: list[str]):
    config = model.config
    return model.encode_context(tokenize(texts, config.text_vocab, config.max_text_tokens))


def test_forward_shapes_for_both_towers():
    model = make_model(randomize=True)
    video, audio = inputs(model.config, batch=2)
    ctx = context(model, ["a can pops open", ""])
    v, a = model(video, audio, torch.rand(2), torch.rand(2), *ctx)
    assert v.shape == video.shape and a.shape == audio.shape == (2, 3, 16, 200)
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_zero_init_predicts_zero_velocity_for_video_and_a_silent_clean_audio():
    # Video: velocity prediction, zero at init. Audio: clean-latent prediction (see the transformer's
    # forward), zero at init, so its velocity is x_t / t — what a clean latent of zeros implies.
    model = make_model()
    video, audio = inputs(model.config)
    t = torch.tensor([0.4])
    v, a = model(video, audio, torch.rand(1), t, *context(model, ["hello"]))
    assert v.abs().max() == 0
    assert torch.allclose(a, audio / 0.4)
    _, a_small_t = model(video, audio, torch.rand(1), torch.tensor([0.0]), *context(model, ["hello"]))
    assert torch.isfinite(a_small_t).all() and torch.allclose(a_small_t, audio / AUDIO_MIN_T)


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
        # per sample: a batch of two, coupled and uncoupled, gives each its own answer
        mixed = model(
            video.repeat(2, 1, 1, 1, 1), audio.repeat(2, 1, 1, 1), t.repeat(2), t.repeat(2),
            ctx[0].repeat(2, 1, 1), ctx[1].repeat(2, 1), cross_modal=torch.tensor([True, False]),
        )[0]  # fmt: skip
    assert (coupled - coupled_other).abs().max() > 1e-4
    assert torch.equal(solo, solo_other)
    assert torch.allclose(mixed[0], coupled[0], atol=1e-5) and torch.allclose(mixed[1], solo[0], atol=1e-5)


def test_sequential_baseline_has_no_cross_modal_attention():
    model = make_model(randomize=True, config=sequential(tiny()))
    names = [name for name, _ in model.named_parameters()]
    assert not any(".a2v." in n or ".v2a." in n for n in names)
    video, audio = inputs(model.config)
    ctx = context(model, ["a drum hit"])
    t = torch.tensor([0.5])
    with torch.no_grad():
        first = model(video, audio, t, t, *ctx)[0]
        changed = model(video, audio + torch.randn_like(audio), t, t, *ctx)[0]
    assert torch.equal(first, changed)


def test_same_instant_gets_same_temporal_phase_in_both_towers():
    # At 2 latent frames/s and 25 audio tokens/s, frame centres (0.25 s, 0.75 s, ...) coincide with
    # audio token centres... only where they do: check the nearest token, and one 0.5 s later.
    config = replace(tiny(), latent_fps=2.0)
    model = DualTowerTransformer(config)
    video_times = model.video_seconds(8, torch.device("cpu"))
    audio_times = model.audio_seconds(100, torch.device("cpu"))
    video_angles = model._time_angles(video_times)
    audio_angles = model._time_angles(audio_times)
    frame = 3
    token = int(torch.argmin((audio_times - video_times[frame]).abs()))
    assert math.isclose(audio_times[token].item(), video_times[frame].item(), abs_tol=1e-6)
    for head in video_angles:
        assert torch.allclose(video_angles[head][frame], audio_angles[head][token])
    later = int(torch.argmin((audio_times - video_times[frame] - 0.5).abs()))
    head = config.video_dim // config.video_heads
    assert not torch.allclose(video_angles[head][frame], audio_angles[head][later])


def test_cross_modal_time_window_weights_the_same_instant_most():
    # With content-blind queries (zero q projection) attention weights come from the time window alone:
    # an audio token at 1.0 s reads the video frame at 1.0 s, hardly those 0.5 s away.
    video_seconds = torch.tensor([0.5, 1.0, 1.5])
    audio_seconds = torch.tensor([1.0])
    bias = time_window_bias(audio_seconds, video_seconds, heads=2, width_s=0.08)
    assert bias.shape == (2, 1, 3)
    assert bias[:, 0, 1].eq(0).all() and bias[0, 0, 0] < bias[1, 0, 0] < 0  # the second head is wider
    attention = Attention(8, 2, context_dim=8)
    with torch.no_grad():
        attention.q.weight.zero_(), attention.q.bias.zero_()
        attention.kv.weight[8:] = torch.eye(8)  # values are the frames themselves
        attention.kv.bias.zero_()
        attention.out.weight.copy_(torch.eye(8)), attention.out.bias.zero_()
        frames = torch.zeros(1, 3, 8)
        frames[0, 1] = 1.0  # only the frame at 1.0 s carries a signal
        windowed = attention(torch.zeros(1, 1, 8), frames, bias=bias)[0, 0]
        plain = attention(torch.zeros(1, 1, 8), frames)[0, 0]
    assert torch.allclose(plain, torch.full((8,), 1 / 3), atol=1e-6)  # no window: every frame alike
    assert windowed[:4].min() > 0.999 and windowed[4:].min() > 0.98  # head 0 (0.08 s), head 1 (0.16 s)


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


def test_training_modes_pick_the_clean_stream_and_audio_loss_is_the_clean_latent_error():
    model = make_model()  # zero-initialised heads: the audio head predicts a clean latent of zeros
    video, audio = inputs(model.config, batch=3)
    ctx = context(model, ["one", "two", "three"])
    generator = torch.Generator().manual_seed(0)
    _, v2a = flow_matching_loss(model, video, audio, *ctx, modes=TrainingModes(1.0, 0.0), generator=generator)
    _, a2v = flow_matching_loss(model, video, audio, *ctx, modes=TrainingModes(0.0, 1.0), generator=generator)
    assert v2a["video"] == 0.0 and v2a["audio"] > 0  # the video was clean in every sample: nothing to predict
    assert a2v["audio"] == 0.0 and a2v["video"] > 0
    # The audio error is measured on the clean latent, not on the velocity: with a predicted clean latent
    # of zeros it is the mean square of the audio itself, whatever the flow times drawn.
    assert v2a["audio"] == pytest.approx(audio.pow(2).mean().item(), rel=1e-4)
    for bad in (dict(video_to_audio=0.7, audio_to_video=0.4), dict(video_to_audio=-0.1), dict(cross_modal_dropout=2)):
        with pytest.raises(ValueError, match="training mode shares"):
            TrainingModes(**bad)


def test_time_grid_lets_the_audio_trail_the_video():
    same_v, same_a = time_grid(8, 3.0, 0.0, torch.device("cpu"))
    assert torch.equal(same_v, same_a) and torch.equal(same_v, shift_time(torch.linspace(1, 0, 9), 3.0))
    video_t, audio_t = time_grid(12, 3.0, 0.5, torch.device("cpu"))
    assert video_t[0] == audio_t[0] == 1 and video_t[-1] == audio_t[-1] == 0
    assert (video_t <= audio_t).all() and (video_t.diff() <= 0).all() and (audio_t.diff() <= 0).all()
    assert audio_t[1] == 1 and video_t[1] < 1  # the picture starts first ...
    assert video_t[-2] == 0 and audio_t[-2] > 0  # ... and is clean while the sound still forms
    led_v, led_a = time_grid(12, 3.0, -0.5, torch.device("cpu"))  # negative: the picture trails the sound
    assert torch.equal(led_v, audio_t) and torch.equal(led_a, video_t)
    for bad in (1.5, -1.2):
        with pytest.raises(ValueError, match="audio_lag"):
            time_grid(8, 3.0, bad, torch.device("cpu"))


def test_sampler_with_audio_lag_is_deterministic_and_ignored_when_a_stream_is_given():
    model = make_model(randomize=True)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    run_sampler(model, seed=3, audio_lag=1.0, steps=4)
    assert len(calls) == 8  # steps are per stream: a lag of 1 doubles the schedule
    calls.clear()
    lagged = run_sampler(model, seed=3, audio_lag=0.4, steps=4)
    assert torch.equal(lagged[1], run_sampler(model, seed=3, audio_lag=0.4, steps=4)[1])
    assert not torch.allclose(lagged[1], run_sampler(model, seed=3, steps=4)[1])
    given = KnownParts(video=inputs(model.config, seed=9)[0])
    assert torch.equal(
        run_sampler(model, seed=3, steps=4, known=given)[1],
        run_sampler(model, seed=3, steps=4, known=given, audio_lag=0.4)[1],
    )


def run_sampler(model, seed=0, seconds=2.0, **kwargs):
    video, audio = inputs(model.config, seconds=seconds)
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
    plain = run_sampler(model, guidance=Guidance(video=1.0, audio=1.0, sync=1.0))
    guided = run_sampler(model, guidance=Guidance(video=4.0, audio=1.0))
    audio_guided = run_sampler(model, guidance=Guidance(video=1.0, audio=4.0))
    synced = run_sampler(model, guidance=Guidance(video=1.0, audio=1.0, sync=2.0))
    assert not torch.allclose(plain[0], guided[0])
    assert not torch.allclose(plain[1], audio_guided[1])
    assert not torch.allclose(plain[0], synced[0]) and not torch.allclose(plain[1], synced[1])
    # Sync guidance is v + (s - 1)(v_coupled - v_uncoupled): for one step from the same noise it is
    # exactly that combination of the two single passes.
    video, audio = inputs(model.config)
    cond = context(model, ["a can"])
    t = torch.ones(1)
    with torch.no_grad():
        v_c, a_c = model(video, audio, t, t, *cond)
        v_s, a_s = model(video, audio, t, t, *cond, cross_modal=False)
    from syncreel.model.flow_matching import _guided_velocity

    v, a = _guided_velocity(model, video, audio, t, t, cond, cond, Guidance(1.0, 1.0, 3.5))
    assert torch.allclose(v, v_c + 2.5 * (v_c - v_s), atol=1e-5) and torch.allclose(
        a, a_c + 2.5 * (a_c - a_s), atol=1e-5
    )


def test_sync_guidance_is_a_no_op_for_the_sequential_baseline():
    model = make_model(randomize=True, config=sequential(tiny()))
    plain = run_sampler(model, guidance=Guidance(sync=1.0))
    pushed = run_sampler(model, guidance=Guidance(sync=3.5))
    assert torch.equal(plain[0], pushed[0]) and torch.equal(plain[1], pushed[1])


def test_heun_differs_from_euler_and_bad_solver_is_refused():
    model = make_model(randomize=True)
    assert not torch.allclose(run_sampler(model)[0], run_sampler(model, solver="heun")[0])
    with pytest.raises(ValueError, match="solver"):
        run_sampler(model, solver="rk4")
    with pytest.raises(ValueError, match="steps"):
        run_sampler(model, steps=0)


@pytest.mark.parametrize("mode", ["text", "image", "audio_to_video", "video_to_audio", "extension"])
def test_every_mode_gives_the_right_shapes_and_keeps_what_is_known(mode):
    model = make_model(randomize=True)
    video, audio = inputs(model.config, seed=5)
    known = {
        "text": KnownParts(),
        "image": KnownParts(video_prefix=video[:, :, :1]),
        "audio_to_video": KnownParts(audio=audio),
        "video_to_audio": KnownParts(video=video),
        "extension": KnownParts(video_prefix=video[:, :, :3], audio_prefix=audio[..., :12]),
    }[mode]
    out_video, out_audio = run_sampler(model, known=known)
    assert out_video.shape == video.shape and out_audio.shape == audio.shape
    assert torch.isfinite(out_video).all() and torch.isfinite(out_audio).all()
    if mode == "image":
        assert torch.equal(out_video[:, :, :1], video[:, :, :1])
    if mode == "extension":
        assert torch.equal(out_video[:, :, :3], video[:, :, :3]) and torch.equal(out_audio[..., :12], audio[..., :12])
        assert not torch.allclose(out_video[:, :, 3:], video[:, :, 3:])
    if mode == "video_to_audio":
        assert torch.equal(out_video, video) and not torch.allclose(out_audio, audio)


def test_audio_to_video_returns_the_given_audio_bit_for_bit():
    model = make_model(randomize=True)
    video, audio = inputs(model.config, seed=9)
    audio = audio * 0.37 + 0.1  # arbitrary values: nothing may round them
    for solver in ("euler", "heun"):
        out_video, out_audio = run_sampler(model, known=KnownParts(audio=audio), solver=solver, steps=4)
        assert torch.equal(out_audio, audio)
        assert out_video.shape == video.shape
    # ...and the video it makes depends on that audio (the towers are coupled)
    other = run_sampler(model, known=KnownParts(audio=audio.flip(-1)), steps=4)[0]
    assert not torch.allclose(out_video, other)
    with pytest.raises(ValueError, match="nothing to generate"):
        run_sampler(model, known=KnownParts(audio=audio, video=video))


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
        replace(tiny(), patch_h=3)
    with pytest.raises(ValueError, match="power of two"):
        replace(tiny(), codec_factor=3)
    assert small().audio_dim < small().video_dim and base().depth > small().depth
    assert small().audio_token_fps == 25 and small().latent_fps * 2 == small().audio_token_fps
    assert sequential(small()).cross_modal is False and small().cross_modal is True


def test_audio_codec_round_trip_with_stems():
    config = small()
    t = torch.arange(config.sample_rate * 2) / config.sample_rate
    tones = torch.stack([0.5 * torch.sin(2 * math.pi * hz * t) for hz in (440, 1000, 2500)])
    mel = encode_audio(tones, config)
    assert mel.shape == (3, config.n_mels, 101)
    waves = decode_audio(mel, config, generator=torch.Generator().manual_seed(0))
    assert waves.shape[0] == 3
    for wave, hz in zip(waves, (440, 1000, 2500), strict=True):
        peak_hz = torch.fft.rfft(wave).abs().argmax().item() * config.sample_rate / len(wave)
        assert abs(peak_hz - hz) < 0.05 * hz


def test_video_codec_shapes_and_fitting_a_square_into_any_frame():
    model = make_model(config=small())
    frames = np.zeros((5, 36, 64, 3), np.uint8)
    latents = encode_video(model.video_codec, torch.from_numpy(frames), 48)
    assert latents.shape == (4, 5, 12, 12)
    out = decode_video(model.video_codec, latents, 10, 90, 160)
    assert out.shape == (10, 90, 160, 3) and out.dtype == np.uint8
    square = -torch.ones(1, 3, 8, 8)
    square[..., :, 4:] = 1.0  # left half black, right half white
    wide = fit_square(square, 90, 160)
    assert wide.shape == (1, 3, 90, 160)
    # the square sits whole in the middle (90 × 90 from column 35); the sides are a dim blur, never white
    assert wide[0, :, 45, 40].max() < -0.9 and wide[0, :, 45, 120].min() > 0.9
    assert wide[0, :, :, :30].max() < 0.3


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    save_checkpoint(make_model(randomize=True), path, steps=3)
    return path


@pytest.fixture(scope="module")
def builtin():
    return get_generator("builtin")


def request(**overrides) -> GenerationRequest:
    fields = dict(
        scene_id="s",
        language="en",
        prompt="a red ball bouncing in a studio, a thump on every bounce",
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
    )
    return GenerationRequest(**{**fields, **overrides})


def test_builtin_backend_contract(builtin):
    clip = builtin.generate(request())
    assert clip.frames.shape == (18, 90, 160, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (1, 72_000) and clip.audio.dtype == np.float32
    peak = np.abs(clip.audio).max()
    assert 0.6 < peak <= 0.71  # peak-normalised to -3 dBFS: never silent, never clipped
    assert clip.stem_names == STEMS and clip.stems.shape == (3, 72_000)
    assert np.allclose(clip.stems.sum(0), clip.audio[0], atol=1e-5)  # the stems sum to the mix
    assert all(isinstance(t, float) for t in clip.event_times_s) and clip.unused_reference_roles == ()
    assert clip.model_version == builtin.model_version and clip.parameters["mode"] == "text-to-audio+video"
    assert clip.parameters["trained"] is CHECKPOINT.is_file()
    assert clip.model_version.endswith("-untrained") is not CHECKPOINT.is_file()
    again = builtin.generate(request())
    assert np.array_equal(clip.frames, again.frames) and np.array_equal(clip.audio, again.audio)
    other = builtin.generate(request(seed=8))
    assert not np.array_equal(clip.frames, other.frames)
    # a role training never gave the model is reported, not silently used; unknown words likewise
    product = ReferenceInput("c", "image", "product", ASSETS / "can.png")
    with_product = builtin.generate(request(references=(product,), prompt="a red ball, Lumen Fizz"))
    assert with_product.unused_reference_roles == ("product",)
    assert with_product.parameters["prompt_read"] == "a red ball , fizz"
    assert with_product.parameters["prompt_words_unknown"] == ["lumen"]


@pytest.mark.parametrize(
    ("role", "kind", "asset", "mode"),
    [
        ("first_frame", "image", "presenter.png", "image-to-audio+video"),
        ("voice", "audio", "music.m4a", "audio-to-video"),
        ("footage", "video", "bounce.mp4", "video-to-audio"),
        ("continue", "video", "bounce.mp4", "extension"),
    ],
)
def test_builtin_modes_from_reference_roles(tiny_checkpoint, role, kind, asset, mode):
    backend = BuiltinGenerator(tiny_checkpoint)
    # 5 s is longer than one 4 s window: the clip is made in two, the second continuing the first
    req = request(references=(ReferenceInput("r", kind, role, ASSETS / asset),), duration_s=5.0)
    video, audio, used = backend.generate_latents(req)
    config = backend.config
    assert used == mode
    assert video.shape == (config.latent_channels, 20, config.latent_height, config.latent_width)
    assert audio.shape == (config.stems, config.n_mels, round(5.0 * config.mel_fps))
    clip = backend.generate(req)
    assert clip.frames.shape == (60, 90, 160, 3) and clip.parameters["mode"] == mode


def test_builtin_keeps_a_given_voice_bit_for_bit_as_the_dialogue_stem(tiny_checkpoint):
    backend = BuiltinGenerator(tiny_checkpoint)
    voice = ReferenceInput("v", "audio", "voice", ASSETS / "music.m4a")
    _, audio, mode = backend.generate_latents(request(references=(voice,), duration_s=5.0))
    from syncreel.model.builtin import _decode_audio

    config = backend.config
    given = encode_audio(torch.from_numpy(_decode_audio(voice.path, config.sample_rate)), config)
    take = min(given.shape[-1], audio.shape[-1])
    assert mode == "audio-to-video"
    assert torch.equal(audio[STEMS.index("dialogue"), :, :take], given[:, :take])
    # the other stems are held silent rather than generated over the voice
    assert audio[STEMS.index("effects")].unique().numel() == 1


def test_checkpoint_round_trip_and_backend_loads_it(tiny_checkpoint):
    loaded, provenance = load_checkpoint(tiny_checkpoint)
    model = make_model(randomize=True)
    assert provenance == {"steps": 3} and loaded.config == model.config
    assert torch.equal(run_sampler(model)[0], run_sampler(loaded)[0])
    assert load_codec_state(tiny_checkpoint).keys() == model.video_codec.state_dict().keys()
    backend = BuiltinGenerator(tiny_checkpoint)
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
    # A sequential checkpoint read as a joint one: the missing cross-modal weights are named.
    joint_config = tmp_path / "joint-config.safetensors"
    save_file(
        _sequential_state(tmp_path),
        str(joint_config),
        metadata={"format": "syncreel-dualtower/1", "config": json.dumps(tiny().to_dict()), "provenance": "{}"},
    )
    with pytest.raises(CheckpointError, match="missing blocks.0.a2v"):
        load_checkpoint(joint_config)
    foreign = tmp_path / "foreign.safetensors"
    save_file(state, str(foreign), metadata={"format": "somebody-else/3"})
    with pytest.raises(CheckpointError, match="format 'somebody-else/3'"):
        load_checkpoint(foreign)
    unknown = tmp_path / "unknown.safetensors"
    save_file(state, str(unknown), metadata={"format": "syncreel-dualtower/1", "config": json.dumps({"wings": 2})})
    with pytest.raises(CheckpointError, match="fields this code does not know: wings"):
        load_checkpoint(unknown)


def _sequential_state(tmp_path: Path) -> dict[str, torch.Tensor]:
    path = tmp_path / "sequential.safetensors"
    save_checkpoint(make_model(config=sequential(tiny())), path)
    from safetensors.torch import load_file

    return load_file(str(path))
