"""The ltx2 backend offline: a tiny random-weight LTX-2 pipeline built in code (tests/fixtures/ltx2_random.py),
saved with save_pretrained and loaded back from that folder as the backend does, with HF_HUB_OFFLINE=1
and every non-loopback connection refused.

The request mapping (grid snapping, crop and trim back, prompt, reference placement, continue context)
is tested as pure functions; the backend's output (frames, waveform at the vocoder's real rate, resampled,
in every mode), the arguments each pipeline is called with (checked against the installed ``__call__``),
its dtype / offload / tiling options, its out-of-memory handling and its errors on the tiny pipeline; and
a small campaign through the real flow (marked slow) with its masters probed.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import shutil
import socket
import sqlite3
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from syncreel.media.probe import probe
from syncreel.model.backends import get_generator
from syncreel.model.generator import (
    GenerationRequest,
    GeneratorOutOfMemory,
    GeneratorUnavailable,
    ReferenceInput,
)
from syncreel.model.ltx2 import (
    LTX2Generator,
    _check_audio_rate,
    _tail_frames,
    build_prompt,
    check_weights,
    context_frames,
    crop_and_trim,
    fit_waveform,
    grid_size,
    language_name,
    place_on_grid,
    plan_references,
    snap_frames,
    weights_digest,
)
from syncreel.schemas.settings import Settings, get_settings
from tests.fixtures.briefs import small_brief

pytest.importorskip("diffusers", reason="the ltx2 extra is not installed (pip install -e '.[ltx2]')")

ASSETS = Path(__file__).resolve().parents[2] / "examples" / "briefs" / "assets"
# The tiny pipeline has two transformer blocks: spatio-temporal guidance perturbs the second.
OPTIONS_ENV = {"SYNCREEL_LTX2_STG_BLOCKS": "[1]"}


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1, and any connection to a host other than this one fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connect = socket.socket.connect

    def loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test is offline: refused a connection to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from tests.fixtures.ltx2_random import build_random_pipeline, tiny

    folder = tmp_path_factory.mktemp("ltx2") / "weights"
    build_random_pipeline(tiny(), seed=0).save_pretrained(folder)
    return folder


def options(weights: Path) -> dict[str, object]:
    """The backend's options as the settings give them for this folder."""
    return Settings(backend="ltx2", ltx2_path=weights, ltx2_stg_blocks=(1,)).generator_options()


@pytest.fixture
def ltx2(weights, offline) -> LTX2Generator:
    generator = get_generator("ltx2", options(weights))
    assert isinstance(generator, LTX2Generator)
    return generator


@pytest.fixture
def calls(monkeypatch) -> dict[str, list[dict[str, object]]]:
    """Each LTX-2 pipeline call's keyword arguments, by pipeline class name (the calls still run); a name
    the installed pipeline's ``__call__`` does not take fails the call."""
    from diffusers import LTX2ConditionPipeline, LTX2ImageToVideoPipeline, LTX2Pipeline

    recorded: dict[str, list[dict[str, object]]] = {}
    for cls in (LTX2Pipeline, LTX2ImageToVideoPipeline, LTX2ConditionPipeline):
        accepted = set(inspect.signature(cls.__call__).parameters)

        def record(self, *args, _original=cls.__call__, _name=cls.__name__, _accepted=accepted, **kwargs):
            assert not set(kwargs) - _accepted, f"{_name} takes no {sorted(set(kwargs) - _accepted)}"
            recorded.setdefault(_name, []).append(kwargs)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", record)
    return recorded


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def request(**fields) -> GenerationRequest:
    values = {
        "scene_id": "s", "language": "es", "prompt": "A can on a table. Brand: Lumen Fizz. Tone: bright.",
        "duration_s": 1.0, "width": 80, "height": 48, "fps": 8.0, "sample_rate": 48000, "seed": 7, "steps": 2,
        "dialogue": (("presenter", "Abre la luz."),), "sound_cues": ((0.5, "can tab pop"),),
    }  # fmt: skip
    return GenerationRequest(**(values | fields))


# -- the request mapping ------------------------------------------------------------------------------
def test_grid_snaps_up_to_32_px_and_8k_plus_1_frames():
    grid = grid_size(640, 360, 96)
    assert (grid.width, grid.height, grid.frames) == (640, 384, 97)
    assert (grid.crop_left, grid.crop_top, grid.lead_frames) == (0, 12, 0)
    grid = grid_size(1080, 1920, 121)  # vertical full HD renders 1088 wide and 1920 tall
    assert (grid.width, grid.height, grid.frames, grid.crop_left) == (1088, 1920, 121, 4)
    assert [snap_frames(n) for n in (1, 2, 9, 10, 17, 18)] == [1, 9, 9, 17, 17, 25]
    # A continue video's context frames come first and count towards the grid.
    grid = grid_size(192, 108, 18, lead_frames=9)
    assert (grid.frames, grid.lead_frames) == (33, 9)
    assert context_frames(available=100, fps=24) == 17 and context_frames(available=5, fps=24) == 1
    assert context_frames(available=100, fps=12) == 9
    with pytest.raises(ValueError, match="positive size"):
        grid_size(0, 360, 10)


def test_crop_and_trim_keep_the_centre_window_after_the_context():
    grid = grid_size(40, 20, 5, lead_frames=1)  # generated 64 × 32 × 9
    frames = np.arange(9 * 32 * 64 * 3, dtype=np.int64).reshape(9, 32, 64, 3).astype(np.uint8)
    kept = crop_and_trim(frames, grid, 40, 20, 5)
    assert kept.shape == (5, 20, 40, 3)
    np.testing.assert_array_equal(kept, frames[1:6, 6:26, 12:52])
    with pytest.raises(RuntimeError, match="too few"):
        crop_and_trim(frames[:3], grid, 40, 20, 5)


def test_a_reference_fills_the_kept_window_as_framed_at_the_requested_size():
    grid = grid_size(80, 48, 9)  # generated 96 × 64: the kept window is [8:56, 8:88]
    assert (grid.crop_top, grid.crop_left) == (8, 8)
    gradient = np.stack(np.meshgrid(np.arange(160), np.arange(96)), -1)
    same_shape = Image.fromarray(np.dstack([gradient, np.zeros((96, 160))]).astype(np.uint8))  # 5:3, as 80 × 48
    canvas = place_on_grid(same_shape, grid, 80, 48)
    assert canvas.shape == (64, 96, 3) and canvas.dtype == np.uint8
    np.testing.assert_array_equal(canvas[8:56, 8:88], np.asarray(same_shape.resize((80, 48), Image.Resampling.LANCZOS)))
    np.testing.assert_array_equal(canvas[:8], canvas[8:16][::-1])  # the margin mirrors the picture
    np.testing.assert_array_equal(canvas[:, :8], canvas[:, 8:16][:, ::-1])
    # A wider picture: its own sides fill the horizontal margin; the kept window is the centred cover.
    wide = Image.fromarray(np.dstack([np.tile(np.arange(256), (48, 1))] * 3).astype(np.uint8))  # 256 × 48
    canvas = place_on_grid(wide, grid, 80, 48)
    np.testing.assert_array_equal(canvas[8:56, 8:88], np.asarray(ImageOps.fit(wide, (80, 48))))
    np.testing.assert_array_equal(canvas[8, :, 0], np.arange(80, 176))
    # A frame of a clip made at the requested size lands in the window unchanged: a continuation has no seam.
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8))
    np.testing.assert_array_equal(place_on_grid(frame, grid, 80, 48)[8:56, 8:88], np.asarray(frame))


def test_continue_context_is_the_videos_last_second_at_the_requested_rate():
    path = ASSETS / "bounce.mp4"  # 72 frames at 24 fps
    with av.open(str(path)) as container:
        every = [np.asarray(frame.to_image()) for frame in container.decode(video=0)]
    tail = _tail_frames(path, fps=10.0)
    assert len(tail) == 9  # 1 s at 10 fps, down to 8k + 1
    picks = [71 - round((8 - i) * 2.4) for i in range(9)]  # every 2.4th source frame, ending on the last
    for image, pick in zip(tail, picks, strict=True):
        np.testing.assert_array_equal(np.asarray(image), every[pick])


def test_prompt_quotes_each_line_in_its_language_and_lists_the_cues():
    prompt = build_prompt(request(dialogue=(("presenter", "Abre la luz."), ("narrator", "¡Ya!"))))
    assert prompt == (
        "A can on a table. Brand: Lumen Fizz. Tone: bright. "
        'presenter says in Spanish: "Abre la luz." narrator says in Spanish: "¡Ya!" '
        "Sounds: at 0.5 s, can tab pop."
    )
    assert build_prompt(request(dialogue=(), sound_cues=())) == "A can on a table. Brand: Lumen Fizz. Tone: bright."
    # After 0.9 s of a continue video's context the cue comes 0.9 s later in the generated clip.
    assert build_prompt(request(dialogue=()), offset_s=0.9).endswith("Sounds: at 1.4 s, can tab pop.")
    assert language_name("pt-BR") == "Portuguese (BR)" and language_name("xx") == "xx"


def test_references_first_frame_and_continue_are_used_the_rest_reported():
    image = ReferenceInput("face", "image", "first_frame", ASSETS / "presenter.png")
    clip = ReferenceInput("bounce", "video", "continue", ASSETS / "bounce.mp4")
    product = ReferenceInput("can", "image", "product", ASSETS / "can.png")
    music = ReferenceInput("theme", "audio", "music", ASSETS / "music.m4a")
    plan = plan_references((image, product, music))
    assert (plan.mode, plan.first_frame, plan.used, plan.unused_roles) == (
        "image-to-audio+video", image, ("face",), ("music", "product"),
    )  # fmt: skip
    plan = plan_references((image, clip))  # the clip starts where the video ends: no first frame of its own
    assert (plan.mode, plan.continue_from, plan.used, plan.unused_roles) == (
        "extension", clip, ("bounce",), ("first_frame",),
    )  # fmt: skip
    assert plan_references(()).mode == "text-to-audio+video"


def test_audio_is_resampled_cut_after_the_context_and_padded():
    rate = 24_000
    wave = np.sin(2 * np.pi * 440 * np.arange(rate) / rate)[None].repeat(2, 0).astype(np.float32)  # 1 s
    fitted = fit_waveform(wave, rate, 48_000, start_s=0.25, samples=48_000)
    assert fitted.shape == (2, 48_000) and fitted.dtype == np.float32
    assert np.abs(fitted[:, :30_000]).max() > 0.9 and not fitted[:, 36_100:].any()  # 0.75 s of sound, then silence
    _check_audio_rate(49_200, 25 / 12, 24_000)  # the causal audio VAE ends 33 ms short: fine
    with pytest.raises(RuntimeError, match="output_sampling_rate=16000"):
        _check_audio_rate(800, 2.0, 16_000)  # a config claiming 16 kHz for a 400 Hz vocoder


# -- weights and packages -----------------------------------------------------------------------------
def test_missing_or_incomplete_weights_say_which_setting_and_what_is_missing(weights, tmp_path, monkeypatch):
    with pytest.raises(GeneratorUnavailable, match="set SYNCREEL_LTX2_PATH"):
        check_weights(None)
    with pytest.raises(GeneratorUnavailable, match="is not a directory"):
        check_weights(tmp_path / "nowhere")
    with pytest.raises(GeneratorUnavailable, match="no model_index.json"):
        check_weights(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(weights, broken)
    (broken / "vocoder" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(GeneratorUnavailable) as caught:
        check_weights(broken)
    assert "tokenizer/: missing" in str(caught.value) and "vocoder/: no weights" in str(caught.value)
    # A sharded download cut short: the index names a shard that is not there.
    cut = tmp_path / "cut"
    shutil.copytree(weights, cut)
    index = {"metadata": {}, "weight_map": {"proj_in.weight": "diffusion_pytorch_model-00002-of-00002.safetensors"}}
    (cut / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(GeneratorUnavailable, match=r"transformer/: 1 of 1 weight shards missing"):
        check_weights(cut)
    # Through the settings, as a worker meets it.
    monkeypatch.setenv("SYNCREEL_BACKEND", "ltx2")
    monkeypatch.delenv("SYNCREEL_LTX2_PATH", raising=False)
    settings = Settings()
    with pytest.raises(GeneratorUnavailable, match="SYNCREEL_LTX2_PATH"):
        get_generator(settings.backend, settings.generator_options())


def test_a_truncated_weights_file_is_an_error_naming_the_folder(weights, tmp_path, offline):
    truncated = tmp_path / "truncated"
    shutil.copytree(weights, truncated)
    # A download cut short: transformers reads the text encoder's file and raises safetensors' own error.
    weights_file = truncated / "text_encoder" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with pytest.raises(GeneratorUnavailable, match=f"SYNCREEL_LTX2_PATH={truncated}: cannot load LTX-2"):
        LTX2Generator(truncated, stg_blocks=(1,))


def test_the_weights_digest_follows_the_weights_not_the_download_cache(weights, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(weights, copy)
    digest = weights_digest(copy)
    (copy / ".cache" / "huggingface").mkdir(parents=True)
    (copy / ".cache" / "huggingface" / "vocoder.lock").write_text("")
    assert weights_digest(copy) == digest
    config = json.loads((copy / "vocoder" / "config.json").read_text())
    (copy / "vocoder" / "config.json").write_text(json.dumps(config | {"output_sampling_rate": 48_000}))
    assert weights_digest(copy) != digest


def test_without_diffusers_the_error_says_what_to_install(weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    with pytest.raises(GeneratorUnavailable, match=r"pip install -e '\.\[ltx2\]'"):
        LTX2Generator(weights)


def test_bad_options_name_their_setting(weights, offline):
    with pytest.raises(ValueError, match="SYNCREEL_LTX2_STG_BLOCKS"):
        LTX2Generator(weights, stg_blocks=(28,))  # the tiny transformer has 2 blocks
    with pytest.raises(ValueError, match="SYNCREEL_LTX2_DTYPE"):
        LTX2Generator(weights, dtype="int8")


def test_settings_give_the_ltx2_options_and_nothing_for_builtin(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNCREEL_BACKEND", "ltx2")
    monkeypatch.setenv("SYNCREEL_LTX2_PATH", str(tmp_path))
    monkeypatch.setenv("SYNCREEL_LTX2_CPU_OFFLOAD", "true")
    monkeypatch.setenv("SYNCREEL_LTX2_STG_BLOCKS", "[29]")
    assert Settings().generator_options() == {
        "weights": tmp_path, "dtype": "auto", "cpu_offload": True, "vae_tiling": False, "stg_scale": 1.0,
        "stg_blocks": (29,),
    }  # fmt: skip
    assert Settings(backend="builtin").generator_options() == {}


# -- the backend on the tiny pipeline -----------------------------------------------------------------
def test_text_to_audio_video_gives_the_requested_clip_at_the_requested_rate(ltx2, weights):
    assert get_generator("ltx2", options(weights)) is ltx2  # loaded once per process, then reused
    clip = ltx2.generate(request())
    assert clip.frames.shape == (8, 48, 80, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (2, 48_000) and clip.audio.dtype == np.float32
    assert (clip.fps, clip.sample_rate, clip.duration_s) == (8.0, 48_000, 1.0)
    assert clip.stems is None and clip.backend == "ltx2" and clip.model_version.startswith("ltx2-")
    assert clip.parameters["generated"] == {"width": 96, "height": 64, "frames": 9}
    assert clip.parameters["vocoder_rate"] == 24_000  # the vocoder's output rate, not the 16 kHz mel rate
    assert clip.parameters["mode"] == "text-to-audio+video" and clip.unused_reference_roles == ()
    assert 'says in Spanish: "Abre la luz."' in clip.parameters["prompt"]
    assert np.abs(clip.audio).max() > 0 and clip.frames.std() > 0
    again = ltx2.generate(request())
    np.testing.assert_array_equal(again.frames, clip.frames)  # the seed fixes the clip
    np.testing.assert_array_equal(again.audio, clip.audio)
    assert not np.array_equal(ltx2.generate(request(seed=8)).frames, clip.frames)


def test_the_request_reaches_the_pipeline_under_the_names_it_accepts(ltx2, calls):
    from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

    ltx2.generate(request(fps=12.0, steps=3, video_guidance=4.0, audio_guidance=6.5, sync_guidance=2.0))
    ltx2.generate(request(negative_prompt="blurry, on-screen text", video_guidance=0.0, audio_guidance=0.5))
    first, second = calls["LTX2Pipeline"]  # each checked against the installed __call__'s parameters
    assert first["prompt"] == build_prompt(request()) and first["negative_prompt"] == DEFAULT_NEGATIVE_PROMPT
    assert second["negative_prompt"] == "blurry, on-screen text"
    assert (first["width"], first["height"], first["num_frames"], first["frame_rate"]) == (96, 64, 17, 12.0)
    assert (first["num_inference_steps"], first["guidance_scale"], first["audio_guidance_scale"]) == (3, 4.0, 6.5)
    assert first["modality_scale"] == first["audio_modality_scale"] == 2.0
    assert first["stg_scale"] == first["audio_stg_scale"] == 1.0 and first["spatio_temporal_guidance_blocks"] == [1]
    assert first["generator"].initial_seed() == 7 and first["generator"].device.type == "cpu"
    assert (first["output_type"], first["return_dict"]) == ("np", False)
    # Below 1 a scale would push towards the negative prompt: 1 (no guidance) is the floor.
    assert second["guidance_scale"] == second["audio_guidance_scale"] == 1.0


def test_first_frame_and_continue_go_through_their_pipelines(ltx2, calls):
    image = ReferenceInput("face", "image", "first_frame", ASSETS / "presenter.png")
    product = ReferenceInput("can", "image", "product", ASSETS / "can.png")
    clip = ltx2.generate(request(references=(image, product), sample_rate=24_000))
    assert clip.parameters["mode"] == "image-to-audio+video" and clip.unused_reference_roles == ("product",)
    assert clip.frames.shape == (8, 48, 80, 3) and clip.audio.shape == (2, 24_000)
    (call,) = calls["LTX2ImageToVideoPipeline"]
    assert isinstance(call["image"], Image.Image) and call["image"].size == (96, 64)
    # The kept 80 × 48 window of the generated 96 × 64 starts on the image as framed at 80 × 48, not zoomed in.
    with Image.open(image.path) as reference:
        framed = np.asarray(ImageOps.fit(reference.convert("RGB"), (80, 48), Image.Resampling.LANCZOS))
    assert _mean_difference(np.asarray(call["image"])[8:56, 8:88], framed) < 2

    video = ReferenceInput("bounce", "video", "continue", ASSETS / "bounce.mp4")
    clip = ltx2.generate(request(references=(video, image), fps=10.0, duration_s=0.5))
    assert clip.parameters["mode"] == "extension" and clip.unused_reference_roles == ("first_frame",)
    assert clip.parameters["context_frames"] == 9  # about 1 s of the video's end, as 8k + 1 frames
    assert clip.parameters["generated"]["frames"] == 17  # 9 + the clip's 5, up to 8k + 1
    assert clip.frames.shape == (5, 48, 80, 3) and clip.audio.shape == (2, 24_000)
    (call,) = calls["LTX2ConditionPipeline"]
    (condition,) = call["conditions"]
    assert (condition.index, condition.strength) == (0, 1.0)
    assert condition.frames.shape == (9, 64, 96, 3) and condition.frames.dtype == np.uint8
    with av.open(str(video.path)) as container:
        *_, last = (frame.to_image() for frame in container.decode(video=0))
    framed = np.asarray(ImageOps.fit(last, (80, 48), Image.Resampling.LANCZOS))
    assert _mean_difference(condition.frames[-1, 8:56, 8:88], framed) < 2  # the video's last frame, framed alike
    # The cue at 0.5 s of the clip comes after the 9 context frames (0.9 s at 10 fps) in the generated one.
    assert "at 1.4 s, can tab pop" in call["prompt"] and clip.parameters["prompt"] == call["prompt"]


class _RunsOutOfMemory:
    """A pipeline that raises CUDA's out-of-memory error ``times`` times, then runs."""

    def __init__(self, pipeline, times: int):
        self.pipeline, self.times = pipeline, times

    def set_progress_bar_config(self, **kwargs):
        self.pipeline.set_progress_bar_config(**kwargs)

    def __call__(self, **kwargs):
        if self.times:
            self.times -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.pipeline(**kwargs)


def test_out_of_memory_is_retried_once_with_smaller_vae_tiles_then_explained(weights, offline):
    generator = LTX2Generator(weights, stg_blocks=(1,))
    reference = generator.generate(request())
    base = generator._pipelines["text-to-audio+video"]
    generator._pipelines["text-to-audio+video"] = _RunsOutOfMemory(base, times=1)
    clip = generator.generate(request())
    assert base.vae.use_tiling and base.vae.tile_sample_min_width == 256 and base.vae.use_framewise_decoding
    assert clip.parameters["vae_tiling"] and clip.parameters["memory_relief"] == ["VAE tiling at 256 px, frame-wise"]
    # The retry starts from the same seed (and 256 px tiles cover this small picture whole): the same clip.
    np.testing.assert_array_equal(clip.frames, reference.frames)
    np.testing.assert_array_equal(clip.audio, reference.audio)
    # The retry's settings really decode a clip wider than a tile and longer than a frame batch.
    wide = generator.generate(request(width=300, duration_s=2.5))  # generated 320 × 64 × 25
    assert wide.frames.shape == (20, 48, 300, 3) and wide.audio.shape == (2, 120_000) and wide.frames.std() > 0
    generator._pipelines["text-to-audio+video"] = _RunsOutOfMemory(base, times=2)
    with pytest.raises(GeneratorOutOfMemory, match="SYNCREEL_LTX2_CPU_OFFLOAD=true") as caught:
        generator.generate(request())
    assert "96×64×9" in str(caught.value)


def _record_offload(monkeypatch) -> list[tuple[str, str]]:
    """enable_model_cpu_offload replaced by a record of (pipeline class, device) — this machine has no GPU."""
    from diffusers import LTX2ConditionPipeline, LTX2ImageToVideoPipeline, LTX2Pipeline

    offloads: list[tuple[str, str]] = []
    for cls in (LTX2Pipeline, LTX2ImageToVideoPipeline, LTX2ConditionPipeline):
        monkeypatch.setattr(
            cls,
            "enable_model_cpu_offload",
            lambda self, device=None: offloads.append((type(self).__name__, str(device))),
        )
    return offloads


def test_dtype_offload_and_tiling_options_are_applied(weights, offline, monkeypatch):
    generator = LTX2Generator(weights, dtype="bfloat16", vae_tiling=True, cpu_offload=True, stg_blocks=(1,))
    pipe = generator.pipeline
    models = (pipe.transformer, pipe.text_encoder, pipe.connectors, pipe.vae, pipe.audio_vae, pipe.vocoder)
    assert {model.dtype for model in models} == {torch.bfloat16} and "-bfloat16-" in generator.model_version
    assert generator.vae_tiling and pipe.vae.use_tiling
    assert not generator.cpu_offload  # on a CPU there is nothing to offload from
    offloads = _record_offload(monkeypatch)
    # With offload the weights stay in CPU memory at load, so a "cuda" backend can be built here.
    on_gpu = LTX2Generator(weights, device="cuda", cpu_offload=True, stg_blocks=(1,))
    assert on_gpu.cpu_offload and all(p.device.type == "cpu" for p in on_gpu.pipeline.transformer.parameters())
    for mode in ("text-to-audio+video", "text-to-audio+video", "extension", "text-to-audio+video"):
        on_gpu._pipeline(mode)
    # Hooks go on once per pipeline switch (the pipelines share the modules, so the hooks move with them).
    assert offloads == [("LTX2Pipeline", "cuda"), ("LTX2ConditionPipeline", "cuda"), ("LTX2Pipeline", "cuda")]


def test_models_that_do_not_fit_the_gpu_together_load_with_cpu_offload(weights, offline, monkeypatch):
    from diffusers import LTX2Pipeline

    move = LTX2Pipeline.to

    def out_of_memory_on_cuda(self, *args, **kwargs):
        if any(str(arg).startswith("cuda") for arg in args):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")
        return move(self, *args, **kwargs)

    monkeypatch.setattr(LTX2Pipeline, "to", out_of_memory_on_cuda)
    offloads = _record_offload(monkeypatch)
    generator = LTX2Generator(weights, device="cuda", stg_blocks=(1,))
    assert generator.cpu_offload and generator.memory_relief == (
        "model CPU offload (the models do not fit in GPU memory together)",
    )
    generator._pipeline("text-to-audio+video")
    assert offloads == [("LTX2Pipeline", "cuda")]


# -- the GPU benchmark's own parts ----------------------------------------------------------------------
def _benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ltx2_gpu.py"
    spec = importlib.util.spec_from_file_location("ltx2_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ltx2_gpu_benchmark_says_unmeasured_without_cuda_and_runs_tiny_on_a_cpu(tmp_path, offline, capsys):
    benchmark = _benchmark()
    args = benchmark.parse_args([])
    assert (args.width, args.height, args.frames, args.fps, args.stg_blocks) == (768, 512, 121, 24.0, [28])
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--tiny", "--weights", str(tmp_path)])
    with pytest.raises(SystemExit):  # LTX-2.0's full size in float32 on a CPU: 120 GB of random weights
        benchmark.parse_args(["--device", "cpu"])
    # A folder that is not a checkpoint: the backend's message, no traceback, exit 1.
    assert benchmark.main(["--device", "cpu", "--weights", str(tmp_path)]) == 1
    assert "no model_index.json" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert benchmark.main(["--json", str(tmp_path / "none.json")]) == 0
        assert "unmeasured" in capsys.readouterr().out
        assert json.loads((tmp_path / "none.json").read_text()) == {"measured": False, "reason": "no CUDA device"}
    out = tmp_path / "tiny.json"
    argv = ["--tiny", "--device", "cpu", "--width", "96", "--height", "64", "--frames", "9", "--steps", "2"]
    assert benchmark.main([*argv, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    row = figures["rows"][0]
    assert figures["measured"] and row["size"] == "96×64×9" and row["transformer_calls_per_step"] == 2.0  # CFG + STG
    assert row["s_per_step"] > 0 and row["s_per_generated_s"] > 0 and row["clip_s"] == 0.375
    assert "s per gen s" in capsys.readouterr().out


# -- through the flow ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_campaign_through_the_flow_on_the_ltx2_backend(harness, embedded_state, weights, offline, monkeypatch):
    from syncreel.flows.campaign import produce_campaign

    monkeypatch.setenv("SYNCREEL_BACKEND", "ltx2")
    monkeypatch.setenv("SYNCREEL_LTX2_PATH", str(weights))
    for name, value in OPTIONS_ENV.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    summary = produce_campaign(str(small_brief(embedded_state)))  # 2 scenes × en, es; 192×108 at 12 fps, 1.5 s
    assert summary.status in ("succeeded", "needs_review")
    assert len(summary.deliverables) == 4 and all(
        Path(d.uri.removeprefix("file://")).is_file() for d in summary.deliverables
    )
    with sqlite3.connect(embedded_state / "state" / "state.db") as db:
        rows = db.execute(
            "select g.scene_id, g.language, g.backend, g.parameters, a.uri from generations g "
            "join assets a on a.id = g.asset_id where g.status = 'succeeded'"
        ).fetchall()
    assert {(scene, language) for scene, language, *_ in rows} == {
        ("presenter", "en"), ("presenter", "es"), ("tagline", "en"), ("tagline", "es"),
    }  # fmt: skip
    lines = {
        ("presenter", "en"): 'presenter says in English: "Taste the light."',
        ("presenter", "es"): 'presenter says in Spanish: "Sabe a luz."',
        ("tagline", "en"): 'narrator says in English: "Taste the light."',
        ("tagline", "es"): 'narrator says in Spanish: "Sabe a luz."',
    }
    unused = {"presenter": ["character", "music", "product"], "tagline": ["motion", "music", "product"]}
    for scene, language, backend, parameters, uri in rows:
        parameters = json.loads(parameters)
        assert backend == "ltx2" and parameters["vocoder_rate"] == 24_000
        assert parameters["generated"] == {"width": 192, "height": 128, "frames": 25}  # 192×108×18 on the grid
        assert parameters["unused_reference_roles"] == unused[scene]
        assert lines[scene, language] in parameters["prompt"] and "Tone: bright, playful" in parameters["prompt"]
        info = probe(uri.removeprefix("file://"), count_frames=True)
        assert (info.video.width, info.video.height, info.video.frames, info.video.fps) == (192, 108, 18, 12.0)
        assert info.audio.sample_rate == 48_000 and info.audio.channels == 2
        assert info.duration_s == pytest.approx(1.5, abs=0.03)
        assert info.audio.duration_s == pytest.approx(1.5, abs=0.03)
    get_settings.cache_clear()
