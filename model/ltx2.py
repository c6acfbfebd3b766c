"""The `ltx2` backend: Lightricks' LTX-2 joint audio-video model through diffusers, weights from a local folder.

    SYNCREEL_BACKEND=ltx2 SYNCREEL_LTX2_PATH=/models/LTX-2 syncreel run brief.yaml

The weights are a diffusers-format checkpoint directory (``model_index.json`` and the scheduler, vae,
audio_vae, text_encoder, tokenizer, connectors, transformer and vocoder folders, as ``hf download
Lightricks/LTX-2 --local-dir DIR`` leaves them). They are read with ``local_files_only``: this backend
never contacts a hub, and a missing or incomplete folder is an error that names what is missing.
diffusers and transformers are imported only when the backend is created (``pip install -e '.[ltx2]'``).

One request becomes one pipeline call:
- prompt: the scene prompt (with the brand and its tone, as tasks/generate.py writes it), each dialogue
  line quoted with its speaker and language, and the sound cues with their times (in the generated clip's
  time, so after a continue video's context frames); the negative prompt is the brief's, or LTX-2's own
  default when the brief gives none;
- size: width and height rounded up to the model's grid (multiples of 32), frames up to 8k + 1, then the
  picture centre-cropped and the clip trimmed back to exactly what was asked;
- the brief's video and audio guidance are LTX-2's per-modality CFG scales, its sync guidance is LTX-2's
  modality-isolation guidance (a push away from the prediction with the audio↔video attention off; 1 =
  off); spatio-temporal guidance comes from the settings;
- references: a ``first_frame`` image goes through `LTX2ImageToVideoPipeline` (the clip starts on it),
  a ``continue`` video through `LTX2ConditionPipeline` (its last frames are the clip's first latent
  frames, generated again and cut off, so the scene continues that clip). Either is scaled to cover the
  requested size and placed where the kept window lies on the grid, the margin mirrored, so the kept
  clip starts on the reference as framed at the requested size. Every other role — and a first_frame
  beside a continue — is reported in ``unused_reference_roles``.
- sound: the vocoder's waveform at its real output rate (``vocoder.config.output_sampling_rate``, 24 kHz
  for LTX-2.0, 48 kHz with the bandwidth-extension vocoder; not the 16 kHz mel rate), resampled to the
  request's rate. LTX-2 makes a mix, no stems.

GPU: bf16 on CUDA (float32 on a CPU) unless set otherwise; model CPU offload and VAE tiling as options.
Models that do not fit on the GPU together are loaded with model CPU offload instead. A CUDA
out-of-memory error while generating is retried once with the VAE tiled at half the default tile size,
frame by frame, and model CPU offload on; those settings then stay for the worker's later requests. A
second one fails with a message that says what to change.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from syncreel.audio import resample
from syncreel.model.generator import (
    GenerationRequest,
    Generator,
    GeneratorOutOfMemory,
    GeneratorUnavailable,
    ReferenceInput,
)
from syncreel.schemas.clips import MasterClip

# LTX-2's grid: its VAE compresses 32× in space and 8× in time, with one extra (causal) first frame.
SPATIAL_MULTIPLE = 32
TEMPORAL_MULTIPLE = 8
# How much of a ``continue`` video conditions the extension: about this long, as 8k + 1 frames.
CONTINUE_CONTEXT_S = 1.0
# Roles this backend consumes; every other one is reported unused.
SUPPORTED_ROLES = frozenset({"first_frame", "continue"})
PIPELINE_CLASSES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline", "LTX2ConditionPipeline")
# A component folder is complete with its config and (for models) at least one weights file.
COMPONENT_FILES: dict[str, tuple[tuple[str, ...], bool]] = {
    "scheduler": (("scheduler_config.json",), False),
    "tokenizer": (("tokenizer.json", "tokenizer.model"), False),
    "text_encoder": (("config.json",), True),
    "connectors": (("config.json",), True),
    "transformer": (("config.json",), True),
    "vae": (("config.json",), True),
    "audio_vae": (("config.json",), True),
    "vocoder": (("config.json",), True),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# The pipeline's max_sequence_length: longer prompts are cut to this many tokens.
MAX_PROMPT_TOKENS = 1024
# The retry after an out-of-memory error: VAE tiles of half the default 512 px, overlapping by 64 px.
RETRY_TILE_PX = 256
RETRY_TILE_STRIDE_PX = 192
# A few names for the dialogue's language, so the text encoder reads "in Spanish" rather than "in es".
LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ru": "Russian", "sv": "Swedish", "tr": "Turkish", "zh": "Chinese",
}  # fmt: skip
INSTALL_HINT = "pip install -e '.[ltx2]' (or pip install 'syncreel[ltx2]')"
# Part of model_version: bump it when a change in this file changes the clips for the same request.
REVISION = 2


# -- the request as the pipeline sees it (pure functions) ----------------------------------------------
@dataclass(frozen=True)
class GridSize:
    """What is generated (on the model's grid) and the window of it that is kept."""

    width: int
    height: int
    frames: int
    crop_left: int  # the kept picture starts here...
    crop_top: int
    lead_frames: int  # ...and the kept clip after this many frames (a continue video's context)


def snap_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def snap_frames(count: int, multiple: int = TEMPORAL_MULTIPLE) -> int:
    """The smallest ``multiple`` · k + 1 frame count ≥ ``count``."""
    return max(0, math.ceil((count - 1) / multiple)) * multiple + 1


def grid_size(
    width: int,
    height: int,
    frames: int,
    *,
    lead_frames: int = 0,
    spatial: int = SPATIAL_MULTIPLE,
    temporal: int = TEMPORAL_MULTIPLE,
) -> GridSize:
    """``width`` × ``height`` × ``frames`` (after ``lead_frames`` of context) on the model's grid."""
    if width < 1 or height < 1 or frames < 1:
        raise ValueError(f"a clip needs a positive size and frame count, got {width}×{height}×{frames}")
    grid_width, grid_height = snap_up(width, spatial), snap_up(height, spatial)
    return GridSize(
        width=grid_width,
        height=grid_height,
        frames=snap_frames(lead_frames + frames, temporal),
        crop_left=(grid_width - width) // 2,
        crop_top=(grid_height - height) // 2,
        lead_frames=lead_frames,
    )


def context_frames(available: int, fps: float, temporal: int = TEMPORAL_MULTIPLE) -> int:
    """How many of a continue video's last frames condition the extension: 8k + 1, at most about
    CONTINUE_CONTEXT_S and at most what the video has."""
    count = min(available, max(1, round(CONTINUE_CONTEXT_S * fps)))
    return (count - 1) // temporal * temporal + 1


def language_name(code: str) -> str:
    primary, _, region = code.partition("-")
    name = LANGUAGE_NAMES.get(primary.lower(), code)
    return f"{name} ({region})" if region and name != code else name


def build_prompt(request: GenerationRequest, offset_s: float = 0.0) -> str:
    """The scene prompt, then each line of dialogue quoted in the request's language, then the sound cues.
    ``offset_s``: how far into the generated clip the request's own time starts (a continue video's context)."""
    parts = [request.prompt.strip()]
    language = language_name(request.language)
    parts += [f'{speaker} says in {language}: "{line}"' for speaker, line in request.dialogue]
    if request.sound_cues:
        cues = "; ".join(f"at {at + offset_s:g} s, {description}" for at, description in request.sound_cues)
        parts.append(f"Sounds: {cues}.")
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class ReferencePlan:
    mode: str  # "text-to-audio+video" | "image-to-audio+video" | "extension"
    first_frame: ReferenceInput | None
    continue_from: ReferenceInput | None
    used: tuple[str, ...]  # reference ids
    unused_roles: tuple[str, ...]


def plan_references(references: tuple[ReferenceInput, ...]) -> ReferencePlan:
    """Which references condition the clip. A continue video wins over a first_frame image (the clip's
    first frames are the video's last ones); all other roles, and any second reference of a role, go unused."""
    continue_from = next((r for r in references if r.role == "continue" and r.kind == "video"), None)
    first_frame = next((r for r in references if r.role == "first_frame" and r.kind == "image"), None)
    if continue_from is not None:
        first_frame = None
    used = tuple(r.id for r in (continue_from, first_frame) if r is not None)
    unused = sorted({r.role for r in references if r.id not in used})
    mode = "extension" if continue_from else "image-to-audio+video" if first_frame else "text-to-audio+video"
    return ReferencePlan(mode, first_frame, continue_from, used, tuple(unused))


def crop_and_trim(frames: np.ndarray, grid: GridSize, width: int, height: int, count: int) -> np.ndarray:
    """(F, H', W', 3) generated frames → the requested (count, height, width, 3) window."""
    window = frames[grid.lead_frames : grid.lead_frames + count]
    window = window[:, grid.crop_top : grid.crop_top + height, grid.crop_left : grid.crop_left + width]
    if window.shape[:3] != (count, height, width):
        raise RuntimeError(
            f"LTX-2 returned {frames.shape[0]} frames of {frames.shape[2]}×{frames.shape[1]}, "
            f"too few for {count} frames of {width}×{height} after {grid.lead_frames} context frames"
        )
    return np.ascontiguousarray(window)


def fit_waveform(wave: np.ndarray, rate: int, target_rate: int, start_s: float, samples: int) -> np.ndarray:
    """(C, N) audio at ``rate`` → (C, ``samples``) float32 at ``target_rate`` from ``start_s``: band-limited
    resampling, silence past the end (the causal audio VAE can end a few ms short of the video)."""
    wave = resample(wave, rate, target_rate)
    start = round(start_s * target_rate)
    wave = wave[:, start : start + samples]
    wave = np.pad(wave, ((0, 0), (0, samples - wave.shape[1])))
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def place_on_grid(image: Image.Image, grid: GridSize, width: int, height: int) -> np.ndarray:
    """(grid.height, grid.width, 3) uint8: ``image`` scaled to cover the kept ``width`` × ``height`` window
    (never stretched) and centred on it, so that window holds the reference as framed at the requested size;
    the margin around it shows more of the image where there is more, mirrors it where there is not."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    scaled = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    left = (size[0] - width) // 2 - grid.crop_left  # where the grid's canvas starts in the scaled image
    top = (size[1] - height) // 2 - grid.crop_top
    pad_top, pad_left = max(0, -top), max(0, -left)
    pad_bottom, pad_right = max(0, top + grid.height - size[1]), max(0, left + grid.width - size[0])
    padded = np.pad(scaled, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), mode="symmetric")
    top, left = top + pad_top, left + pad_left
    return np.ascontiguousarray(padded[top : top + grid.height, left : left + grid.width])


def _tail_frames(path: Path, fps: float, temporal: int = TEMPORAL_MULTIPLE) -> list[Image.Image]:
    """The last frames of a video at ``fps`` (nearest source frame), as many as context_frames allows. Only
    about the last CONTINUE_CONTEXT_S of the video is kept while decoding, however long it is."""
    import av  # only a continue video needs it; GPU machines that serve text-to-video need not install PyAV

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 24)
            tail: deque[av.VideoFrame] = deque(maxlen=math.ceil(CONTINUE_CONTEXT_S * rate) + 2)
            total = 0
            for frame in container.decode(video=0):
                tail.append(frame)
                total += 1
            if not total:
                raise ValueError(f"{path}: the continue video has no frames")
            count = context_frames(max(1, round(total / rate * fps)), fps, temporal)
            # Frame i of the context is (count - 1 - i) / fps before the video's last frame.
            back = [round((count - 1 - i) / fps * rate) for i in range(count)]
            return [tail[-1 - min(step, len(tail) - 1)].to_image() for step in back]
    except (av.FFmpegError, IndexError) as exc:
        raise ValueError(f"{path}: cannot read the continue video ({exc})") from exc


# -- the weights folder -----------------------------------------------------------------------------------
def check_weights(path: Path | None) -> dict[str, Any]:
    """The folder's model_index.json, after checking that every component LTX-2 needs is there."""
    if path is None:
        raise GeneratorUnavailable(
            "SYNCREEL_BACKEND=ltx2 needs LTX-2 weights on local disk: set SYNCREEL_LTX2_PATH to a "
            "diffusers-format checkpoint directory (model_index.json, transformer/, vae/, audio_vae/, "
            "text_encoder/, tokenizer/, connectors/, vocoder/, scheduler/). syncreel never downloads "
            "weights; fetch them once where there is network, e.g. hf download Lightricks/LTX-2 --local-dir DIR."
        )
    path = Path(path)
    if not path.is_dir():
        raise GeneratorUnavailable(f"SYNCREEL_LTX2_PATH={path} is not a directory")
    index_file = path / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except FileNotFoundError:
        raise GeneratorUnavailable(
            f"SYNCREEL_LTX2_PATH={path} holds no model_index.json: not a diffusers-format checkpoint"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise GeneratorUnavailable(f"{index_file}: unreadable ({exc})") from exc
    if index.get("_class_name") not in PIPELINE_CLASSES:
        raise GeneratorUnavailable(
            f"{index_file}: _class_name is {index.get('_class_name')!r}, not an LTX-2 pipeline "
            f"({', '.join(PIPELINE_CLASSES)})"
        )
    problems = []
    for component, (configs, has_weights) in COMPONENT_FILES.items():
        folder = path / component
        if not index.get(component) or index[component] == [None, None]:
            problems.append(f"{component}: not in model_index.json")
        elif not folder.is_dir():
            problems.append(f"{component}/: missing")
        elif not any((folder / name).is_file() for name in configs):
            problems.append(f"{component}/: no {' or '.join(configs)}")
        elif has_weights and not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
            problems.append(f"{component}/: no weights (*.safetensors)")
        else:
            problems += _missing_shards(folder)
    if problems:
        raise GeneratorUnavailable(f"SYNCREEL_LTX2_PATH={path} is incomplete: " + "; ".join(problems))
    return index


def _missing_shards(folder: Path) -> list[str]:
    """The shards a sharded checkpoint's ``*.index.json`` names that are not in ``folder`` (a download cut short)."""
    problems = []
    for index_file in sorted(folder.glob("*.index.json")):
        try:
            shards = set(json.loads(index_file.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            problems.append(f"{folder.name}/{index_file.name}: unreadable ({exc})")
            continue
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if missing:
            problems.append(f"{folder.name}/: {len(missing)} of {len(shards)} weight shards missing ({missing[0]}…)")
    return problems


def weights_digest(path: Path) -> str:
    """Identifies a weights folder without reading tens of GB: every config and tokenizer file whole,
    and each weights file's name, size and first and last MiB. Hidden files and folders (the ``.cache`` that
    ``hf download --local-dir`` leaves, with its locks) are not part of the weights."""
    digest = hashlib.sha256()
    files = (
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    for file in sorted(files):
        digest.update(str(file.relative_to(path)).encode())
        if file.suffix in WEIGHT_SUFFIXES:
            size = file.stat().st_size
            digest.update(str(size).encode())
            with file.open("rb") as handle:
                digest.update(handle.read(2**20))
                handle.seek(max(0, size - 2**20))
                digest.update(handle.read(2**20))
        elif file.suffix in (".json", ".model", ".txt"):
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


# -- the backend -----------------------------------------------------------------------------------------
class LTX2Generator(Generator):
    name = "ltx2"

    def __init__(
        self,
        weights: Path | str | None = None,
        *,
        dtype: str = "auto",
        cpu_offload: bool = False,
        vae_tiling: bool = False,
        stg_scale: float = 1.0,
        stg_blocks: tuple[int, ...] = (28,),
        device: str | None = None,
        pipeline: Any = None,
    ):
        """Load the pipeline from ``weights`` (see check_weights). ``dtype``: auto (bf16 on CUDA,
        float32 on a CPU), bfloat16, float16 or float32; ``stg_scale`` / ``stg_blocks``: LTX-2's
        spatio-temporal guidance (0 = off) and the transformer blocks it perturbs. ``pipeline``: an
        LTX2Pipeline already in memory instead of ``weights`` (benchmarks/ltx2_gpu.py's random weights,
        which never touch the disk), used in its own dtype."""
        if stg_scale < 0:
            raise ValueError(f"SYNCREEL_LTX2_STG_SCALE must be ≥ 0 (0 = off), got {stg_scale}")
        self.weights = Path(weights) if weights is not None else None
        if pipeline is None:
            check_weights(self.weights)
        try:
            import diffusers
            from diffusers import LTX2ConditionPipeline, LTX2ImageToVideoPipeline, LTX2Pipeline
        except ImportError as exc:
            raise GeneratorUnavailable(
                f"SYNCREEL_BACKEND=ltx2 needs diffusers and transformers ({exc}): {INSTALL_HINT}"
            ) from exc
        self._classes = {
            "text-to-audio+video": LTX2Pipeline,
            "image-to-audio+video": LTX2ImageToVideoPipeline,
            "extension": LTX2ConditionPipeline,
        }
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _resolve_dtype(dtype, self.device) if pipeline is None else pipeline.dtype
        self.cpu_offload = cpu_offload and self.device.type == "cuda"  # offload moves weights off a GPU
        self.stg_scale, self.stg_blocks = stg_scale, tuple(stg_blocks)
        self.memory_relief: tuple[str, ...] = ()  # what an out-of-memory retry turned on
        self._lock = threading.Lock()
        self._base = pipeline if pipeline is not None else self._load(LTX2Pipeline)
        layers = self._base.transformer.config.num_layers
        if stg_scale > 0 and (not self.stg_blocks or not all(0 <= b < layers for b in self.stg_blocks)):
            raise ValueError(
                f"SYNCREEL_LTX2_STG_BLOCKS={list(self.stg_blocks)}: this transformer has blocks 0–{layers - 1}"
                " (or set SYNCREEL_LTX2_STG_SCALE=0 to turn spatio-temporal guidance off)"
            )
        self._pipelines: dict[str, Any] = {"text-to-audio+video": self._base}  # by mode, made when first needed
        self._offloaded: str | None = None  # the pipeline whose offload hooks are on the shared modules
        if vae_tiling:
            self._base.vae.enable_tiling()
        if self.device.type == "cuda" and not self.cpu_offload:
            self._move_to_device()
        # Weights, library and what changes the numbers without being in the request.
        weights_id = weights_digest(self.weights) if pipeline is None and self.weights else _config_digest(self._base)
        guidance = f"stg{stg_scale:g}@{','.join(map(str, self.stg_blocks))}" if stg_scale > 0 else "stg0"
        dtype_name = str(self.dtype).removeprefix("torch.")
        self._version = f"ltx2-r{REVISION}-{weights_id}-diffusers{diffusers.__version__}-{dtype_name}-{guidance}"

    def _load(self, pipeline_class: Any) -> Any:
        """The pipeline from the weights folder, from local files only."""
        from safetensors import SafetensorError

        try:
            return pipeline_class.from_pretrained(str(self.weights), dtype=self.dtype, local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError, SafetensorError) as exc:
            raise GeneratorUnavailable(f"SYNCREEL_LTX2_PATH={self.weights}: cannot load LTX-2 ({exc})") from exc

    def _move_to_device(self) -> None:
        """All models onto the GPU; when they do not fit together, model CPU offload instead."""
        try:
            self._base.to(self.device)
            return
        except torch.cuda.OutOfMemoryError:
            pass  # handled outside the except block, so the partly moved tensors can be freed
        self._base.to("cpu")
        _free_device_memory()
        self.cpu_offload, self._offloaded = True, None
        self._add_relief("model CPU offload (the models do not fit in GPU memory together)")

    def _add_relief(self, what: str) -> None:
        if what not in self.memory_relief:
            self.memory_relief = (*self.memory_relief, what)

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def supported_roles(self) -> frozenset[str]:
        return SUPPORTED_ROLES

    @property
    def pipeline(self) -> Any:
        """The loaded LTX2Pipeline; the image-to-video and condition pipelines share its modules."""
        return self._base

    @property
    def vae_tiling(self) -> bool:
        return bool(self._base.vae.use_tiling)

    @property
    def output_sampling_rate(self) -> int:
        """The vocoder's real output rate (not the audio VAE's 16 kHz mel input rate)."""
        return int(self._base.vocoder.config.output_sampling_rate)

    # -- pipelines ------------------------------------------------------------------------------------
    def _pipeline(self, mode: str) -> Any:
        """The pipeline for ``mode``; the image-to-video and condition pipelines share the loaded modules."""
        if mode not in self._pipelines:
            self._pipelines[mode] = self._classes[mode](**self._base.components)
        pipe = self._pipelines[mode]
        pipe.set_progress_bar_config(disable=True)
        if self.cpu_offload and self._offloaded != mode:
            pipe.enable_model_cpu_offload(device=self.device)
            self._offloaded = mode
        return pipe

    def _grid_multiples(self) -> tuple[int, int]:
        base = self._base
        spatial = base.vae_spatial_compression_ratio * base.transformer_spatial_patch_size
        temporal = base.vae_temporal_compression_ratio * base.transformer_temporal_patch_size
        return math.lcm(SPATIAL_MULTIPLE, spatial), math.lcm(TEMPORAL_MULTIPLE, temporal)

    def _reduce_memory(self) -> None:
        """After an out-of-memory error: tile the VAE smaller and frame by frame, offload idle models."""
        vae = self._base.vae
        vae.enable_tiling(
            tile_sample_min_height=RETRY_TILE_PX,
            tile_sample_min_width=RETRY_TILE_PX,
            tile_sample_stride_height=RETRY_TILE_STRIDE_PX,
            tile_sample_stride_width=RETRY_TILE_STRIDE_PX,
        )
        vae.use_framewise_encoding = vae.use_framewise_decoding = True
        self._add_relief(f"VAE tiling at {RETRY_TILE_PX} px, frame-wise")
        if self.device.type == "cuda" and not self.cpu_offload:
            self.cpu_offload, self._offloaded = True, None
            self._add_relief("model CPU offload")

    def _run(self, mode: str, arguments: dict[str, Any], seed: int) -> tuple[Any, Any]:
        generator = torch.Generator(device="cpu").manual_seed(seed)  # the same noise on every device
        return self._pipeline(mode)(**arguments, generator=generator, output_type="np", return_dict=False)

    def _call(self, mode: str, arguments: dict[str, Any], seed: int, grid: GridSize) -> tuple[Any, Any]:
        """One pipeline call; after a CUDA out-of-memory error, once more with less memory (same seed)."""
        try:
            return self._run(mode, arguments, seed)
        except torch.cuda.OutOfMemoryError:
            pass  # retried outside the handler, so the failed attempt's tensors can be freed first
        _free_device_memory()
        self._reduce_memory()
        try:
            return self._run(mode, arguments, seed)
        except torch.cuda.OutOfMemoryError as exc:
            raise GeneratorOutOfMemory(
                f"LTX-2 ran out of GPU memory at {grid.width}×{grid.height}×{grid.frames} frames even with "
                f"{' and '.join(self.memory_relief)}. Make less at once (a smaller master size in the brief, or "
                "shorter scenes) or give the worker a larger GPU; SYNCREEL_LTX2_CPU_OFFLOAD=true and "
                "SYNCREEL_LTX2_VAE_TILING=true apply the retry's savings from the start."
            ) from exc

    # -- generation -----------------------------------------------------------------------------------
    def _arguments(self, request: GenerationRequest, prompt: str, grid: GridSize) -> dict[str, Any]:
        from diffusers.pipelines.ltx2.utils import DEFAULT_NEGATIVE_PROMPT

        # Below 1 a guidance scale is not guidance but its opposite, and LTX-2 reads an audio scale of 0
        # as "same as video": 1 is the floor (no guidance).
        video_guidance, audio_guidance = max(1.0, request.video_guidance), max(1.0, request.audio_guidance)
        modality_guidance = max(1.0, request.sync_guidance)
        return {
            "prompt": prompt,
            "negative_prompt": request.negative_prompt.strip() or DEFAULT_NEGATIVE_PROMPT,
            "width": grid.width,
            "height": grid.height,
            "num_frames": grid.frames,
            "frame_rate": float(request.fps),
            "num_inference_steps": request.steps,
            "guidance_scale": video_guidance,
            "audio_guidance_scale": audio_guidance,
            "modality_scale": modality_guidance,
            "audio_modality_scale": modality_guidance,
            "stg_scale": self.stg_scale,
            "audio_stg_scale": self.stg_scale,
            "spatio_temporal_guidance_blocks": list(self.stg_blocks) if self.stg_scale > 0 else None,
            "max_sequence_length": MAX_PROMPT_TOKENS,
        }

    def generate(self, request: GenerationRequest) -> MasterClip:
        started = time.perf_counter()
        plan = plan_references(request.references)
        spatial, temporal = self._grid_multiples()
        context = _tail_frames(plan.continue_from.path, request.fps, temporal) if plan.continue_from else []
        grid = grid_size(
            request.width, request.height, request.num_frames, lead_frames=len(context), spatial=spatial,
            temporal=temporal,
        )  # fmt: skip
        prompt = build_prompt(request, offset_s=grid.lead_frames / request.fps)
        arguments = self._arguments(request, prompt, grid) | _reference_arguments(plan, context, grid, request)
        with self._lock:  # the pipelines share one scheduler and one set of modules
            tokens = len(self._base.tokenizer(prompt).input_ids)
            video, audio = self._call(plan.mode, arguments, request.seed, grid)
            rate = self.output_sampling_rate
            # As this call ran: another thread's out-of-memory retry may change them afterwards.
            memory = {
                "cpu_offload": self.cpu_offload,
                "vae_tiling": self.vae_tiling,
                "memory_relief": list(self.memory_relief),
            }
        generated = (np.clip(video[0], 0.0, 1.0) * 255).round().astype(np.uint8)  # (F, H', W', 3)
        frames = crop_and_trim(generated, grid, request.width, request.height, request.num_frames)
        wave = audio[0].float().cpu().numpy()  # (C, N) at the vocoder's rate
        _check_audio_rate(wave.shape[-1], grid.frames / request.fps, rate)
        sound = fit_waveform(wave, rate, request.sample_rate, grid.lead_frames / request.fps, request.num_samples)
        return MasterClip(
            frames=frames,
            audio=sound,
            fps=request.fps,
            sample_rate=request.sample_rate,
            backend=self.name,
            model_version=self.model_version,
            seed=request.seed,
            parameters={
                "mode": plan.mode,
                "prompt": prompt,
                "prompt_tokens": tokens,
                "prompt_truncated": tokens > MAX_PROMPT_TOKENS,
                "generated": {"width": grid.width, "height": grid.height, "frames": grid.frames},
                "context_frames": grid.lead_frames,
                "vocoder_rate": rate,
                "guidance": {
                    "video": arguments["guidance_scale"],
                    "audio": arguments["audio_guidance_scale"],
                    "modality": arguments["modality_scale"],
                    "stg": self.stg_scale,
                },
                "dtype": str(self.dtype).removeprefix("torch."),
                "device": self.device.type,
                **memory,
                "references_used": list(plan.used),
                "seconds": round(time.perf_counter() - started, 3),
            },
            unused_reference_roles=plan.unused_roles,
        )


def _reference_arguments(
    plan: ReferencePlan, context: list[Image.Image], grid: GridSize, request: GenerationRequest
) -> dict[str, Any]:
    """The pipeline arguments the references give: the first frame as an image to start on, and a
    continued clip's last frames (``context``) as a condition at the start; each placed on the grid as
    the kept window frames it."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    arguments: dict[str, Any] = {}
    if plan.first_frame is not None:
        with Image.open(plan.first_frame.path) as image:
            on_grid = place_on_grid(image, grid, request.width, request.height)
        arguments["image"] = Image.fromarray(on_grid)  # a PIL image: the pipeline re-compresses it as trained
    if context:
        frames = np.stack([place_on_grid(frame, grid, request.width, request.height) for frame in context])
        arguments["conditions"] = [LTX2VideoCondition(frames=frames, index=0, strength=1.0)]
    return arguments


def _config_digest(pipeline: Any) -> str:
    """Identifies an in-memory pipeline by its components' classes and configs (its weights are random)."""

    def describe(part: Any) -> object:
        config = getattr(part, "config", None)
        if config is None:
            return type(part).__name__
        return config.to_dict() if hasattr(config, "to_dict") else dict(config)

    configs = {name: describe(part) for name, part in pipeline.components.items() if part is not None}
    return "memory-" + hashlib.sha256(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    choices = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in choices:
        raise ValueError(f"SYNCREEL_LTX2_DTYPE={name!r}: choose auto, {', '.join(choices)}")
    return choices[name]


def _check_audio_rate(samples: int, seconds: float, rate: int) -> None:
    """A vocoder config whose output_sampling_rate is not what the vocoder makes would play the sound at
    the wrong speed; the causal audio VAE only ends a few ms short, so a large mismatch is that error."""
    produced = samples / seconds
    if not 0.75 < produced / rate < 1.25:
        raise RuntimeError(
            f"the vocoder made {samples} samples for {seconds:.3f} s (~{produced:.0f} Hz) but its config says "
            f"output_sampling_rate={rate}: vocoder/config.json does not match its weights"
        )
