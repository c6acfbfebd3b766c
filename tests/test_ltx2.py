"""The ltx2 backend offline: a tiny random-weight LTX-2 pipeline built in code (model/ltx2_random.py),
saved with save_pretrained and loaded back from that folder as the backend does, with HF_HUB_OFFLINE=1
and every non-loopback connection refused.

The request mapping (grid snapping, crop and trim back, prompt, references) is tested as pure
functions; the backend's output (frames, waveform at the vocoder's real rate, resampled, in every mode),
its out-of-memory retry and its errors on the tiny pipeline; and a small campaign through the real
flow (marked slow) with its masters probed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_campaign import small_brief

from media.probe import probe
from model.generator import (
    GenerationRequest,
    GeneratorOutOfMemory,
    GeneratorUnavailable,
    ReferenceInput,
    get_generator,
)
from model.ltx2 import (
    LTX2Generator,
    _check_audio_rate,
    build_prompt,
    check_weights,
    context_frames,
    crop_and_trim,
    fit_waveform,
    grid_size,
    language_name,
    plan_references,
    snap_frames,
)
from schemas.settings import Settings, get_settings

ASSETS = Path(__file__).resolve().parents[1] / "examples" / "briefs" / "assets"
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
    from model.ltx2_random import build_random_pipeline, tiny

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


def test_prompt_quotes_each_line_in_its_language_and_lists_the_cues():
    prompt = build_prompt(request(dialogue=(("presenter", "Abre la luz."), ("narrator", "¡Ya!"))))
    assert prompt == (
        "A can on a table. Brand: Lumen Fizz. Tone: bright. "
        'presenter says in Spanish: "Abre la luz." narrator says in Spanish: "¡Ya!" '
        "Sounds: at 0.5 s, can tab pop."
    )
    assert build_prompt(request(dialogue=(), sound_cues=())) == "A can on a table. Brand: Lumen Fizz. Tone: bright."
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
    # Through the settings, as a worker meets it.
    monkeypatch.setenv("SYNCREEL_BACKEND", "ltx2")
    monkeypatch.delenv("SYNCREEL_LTX2_PATH", raising=False)
    settings = Settings()
    with pytest.raises(GeneratorUnavailable, match="SYNCREEL_LTX2_PATH"):
        get_generator(settings.backend, settings.generator_options())


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
def test_text_to_audio_video_gives_the_requested_clip_at_the_requested_rate(ltx2):
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


def test_first_frame_and_continue_go_through_their_pipelines(ltx2):
    image = ReferenceInput("face", "image", "first_frame", ASSETS / "presenter.png")
    product = ReferenceInput("can", "image", "product", ASSETS / "can.png")
    clip = ltx2.generate(request(references=(image, product), sample_rate=24_000))
    assert clip.parameters["mode"] == "image-to-audio+video" and clip.unused_reference_roles == ("product",)
    assert clip.frames.shape == (8, 48, 80, 3) and clip.audio.shape == (2, 24_000)
    assert type(ltx2._pipelines["image-to-audio+video"]).__name__ == "LTX2ImageToVideoPipeline"

    video = ReferenceInput("bounce", "video", "continue", ASSETS / "bounce.mp4")
    clip = ltx2.generate(request(references=(video, image), fps=10.0, duration_s=0.5))
    assert clip.parameters["mode"] == "extension" and clip.unused_reference_roles == ("first_frame",)
    assert clip.parameters["context_frames"] == 9  # about 1 s of the video's end, as 8k + 1 frames
    assert clip.parameters["generated"]["frames"] == 17  # 9 + the clip's 5, up to 8k + 1
    assert clip.frames.shape == (5, 48, 80, 3) and clip.audio.shape == (2, 24_000)
    assert type(ltx2._pipelines["extension"]).__name__ == "LTX2ConditionPipeline"


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
    generator._pipelines["text-to-audio+video"] = _RunsOutOfMemory(base, times=2)
    with pytest.raises(GeneratorOutOfMemory, match="SYNCREEL_LTX2_CPU_OFFLOAD=true") as caught:
        generator.generate(request())
    assert "96×64×9" in str(caught.value)


# -- the GPU benchmark's own parts ----------------------------------------------------------------------
def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ltx2_gpu.py"
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
    from flows.campaign import produce_campaign

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
        ("presenter", "en"): 'presenter says in English: "Summer tastes lighter with Lumen Fizz."',
        ("presenter", "es"): 'presenter says in Spanish: "El verano sabe más ligero con Lumen Fizz."',
        ("tagline", "en"): 'narrator says in English: "Open the light."',
        ("tagline", "es"): 'narrator says in Spanish: "Abre la luz."',
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
