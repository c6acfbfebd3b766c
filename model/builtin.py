"""The `builtin` backend: the dual-tower transformer at the `small()` size, on whatever device is here.

Weights come from `model/checkpoints/builtin.safetensors` (trained by `python -m model.train` on the
procedural world of model/world.py) when that file exists; otherwise the network is initialised from a
fixed seed, which is deterministic but untrained — the run record says so (`parameters["trained"] =
False`, and the model version ends in `-untrained`).

Clip length: the latent is sized to the requested duration (latent_fps frames, 25 audio tokens per
second); the shared time axis in seconds keeps positions meaningful at any length up to the 20 s
period of the slowest rotary frequency.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from model.checkpoint import load_checkpoint
from model.codecs import decode_audio, decode_video, encode_audio, encode_video
from model.config import DualTowerConfig, small
from model.flow_matching import Guidance, KnownParts, sample
from model.generator import GenerationRequest, Generator, MasterClip, ReferenceInput, register_backend
from model.transformer import DualTowerTransformer, ReferenceTensor, tokenize

CHECKPOINT = Path(__file__).with_name("checkpoints") / "builtin.safetensors"
INIT_SEED = 20261123


def _decode_frames(path: Path, limit: int | None = None) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
    return np.stack(frames)


def _decode_audio(path: Path, rate: int) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [f.to_ndarray()[0] for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return wave
    positions = np.arange(round(len(wave) * target / rate)) * (rate / target)
    return np.interp(positions, np.arange(len(wave)), wave).astype(np.float32)


@register_backend
class BuiltinGenerator(Generator):
    name = "builtin"

    def __init__(
        self, checkpoint: Path | None = CHECKPOINT, *, config: DualTowerConfig | None = None, device: str | None = None
    ):
        """Load ``checkpoint`` when it exists; otherwise (or with checkpoint=None) build ``config``
        (default ``small()``) from the fixed initialisation seed."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.trained = checkpoint is not None and Path(checkpoint).is_file()
        if self.trained:
            self.model, self.provenance = load_checkpoint(checkpoint)
            self._weights_id = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:12]
        else:
            torch.manual_seed(INIT_SEED)
            self.model, self.provenance = DualTowerTransformer(config or small()), {}
            config_json = json.dumps(self.model.config.to_dict(), sort_keys=True)
            self._weights_id = hashlib.sha256(config_json.encode()).hexdigest()[:12] + "-untrained"
        self.config = self.model.config
        self.model.to(self.device).eval()

    @property
    def model_version(self) -> str:
        return f"builtin-dualtower-{self._weights_id}"

    @property
    def supported_roles(self) -> frozenset[str]:
        return frozenset(
            {"character", "style", "product", "background", "first_frame", "motion", "music", "voice", "sfx"}
        )

    # -- references ------------------------------------------------------------------------------
    def _reference_tensor(self, ref: ReferenceInput) -> ReferenceTensor:
        c = self.config
        if ref.kind == "image":
            image = torch.from_numpy(_decode_frames(ref.path, limit=1)[0]).permute(2, 0, 1).float() / 127.5 - 1
            size = c.reference_image_size
            return ReferenceTensor("image", ref.role, F.interpolate(image[None], size=(size, size), mode="area")[0])
        if ref.kind == "video":
            frames = torch.from_numpy(_decode_frames(ref.path)).permute(0, 3, 1, 2).float() / 127.5 - 1
            pick = torch.linspace(0, len(frames) - 1, c.reference_video_frames).round().long()
            return ReferenceTensor("video", ref.role, F.interpolate(frames[pick], size=(16, 16), mode="area"))
        mel = encode_audio(torch.from_numpy(_decode_audio(ref.path, c.sample_rate)), c)
        pooled = F.adaptive_avg_pool1d(mel[None], c.reference_audio_tokens)[0]
        return ReferenceTensor("audio", ref.role, pooled)

    def _known_parts(self, request: GenerationRequest, mel_frames: int) -> KnownParts:
        """First-frame image → image-to-video; a voice track → audio-to-video (the voice is kept)."""
        c = self.config
        first = next((r for r in request.references if r.role == "first_frame"), None)
        voice = next((r for r in request.references if r.role == "voice"), None)
        first_frame = audio = None
        if first is not None:
            frames = torch.from_numpy(_decode_frames(first.path, limit=1))
            first_frame = encode_video(frames, c)[:, :1][None].to(self.device)
        if voice is not None:
            mel = encode_audio(torch.from_numpy(_decode_audio(voice.path, c.sample_rate)), c)
            mel = F.pad(mel, (0, max(0, mel_frames - mel.shape[-1])), value=mel.min().item())[:, :mel_frames]
            audio = mel[None].to(self.device)
        return KnownParts(first_frame=first_frame, audio=audio)

    def _prompt(self, request: GenerationRequest) -> str:
        parts = [request.prompt]
        parts += [f'{speaker} says: "{line}"' for speaker, line in request.dialogue]
        parts += [f"at {at:g} s: {cue}" for at, cue in request.sound_cues]
        return " ".join(parts)

    # -- generation ------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> MasterClip:
        c = self.config
        started = time.perf_counter()
        latent_frames = max(2, math.ceil(request.duration_s * c.latent_fps))
        mel_frames = max(c.audio_patch, math.ceil(request.duration_s * c.mel_fps / c.audio_patch) * c.audio_patch)
        references = [self._reference_tensor(r) for r in request.references]
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        with torch.inference_mode():
            text = tokenize([self._prompt(request)], c.text_vocab, c.max_text_tokens).to(self.device)
            empty = tokenize([request.negative_prompt], c.text_vocab, c.max_text_tokens).to(self.device)
            cond = self.model.encode_context(text, [references])
            uncond = self.model.encode_context(empty)
            video, audio = sample(
                self.model,
                (1, c.latent_channels, latent_frames, c.latent_height, c.latent_width),
                (1, c.n_mels, mel_frames),
                cond,
                uncond,
                steps=request.steps,
                guidance=Guidance(request.video_guidance, request.audio_guidance, request.sync_guidance),
                known=self._known_parts(request, mel_frames),
                generator=generator,
            )
            frames = decode_video(video[0].cpu(), request.num_frames, request.height, request.width)
            wave = decode_audio(audio[0].cpu(), c, generator=generator).numpy()
        wave = _resample(wave, c.sample_rate, request.sample_rate)
        wave = np.pad(wave, (0, max(0, request.num_samples - len(wave))))[: request.num_samples]
        peak = float(np.abs(wave).max())
        wave = wave * (10 ** (-3 / 20) / peak) if peak > 0 else wave  # peak at -3 dBFS
        return MasterClip(
            frames=frames,
            audio=wave[None].astype(np.float32),
            fps=request.fps,
            sample_rate=request.sample_rate,
            backend=self.name,
            model_version=self.model_version,
            seed=request.seed,
            parameters={
                "trained": self.trained,
                "config": "small" if c == small() else "custom",
                "latent_frames": latent_frames,
                "mel_frames": mel_frames,
                "references_used": [r.id for r in request.references],
                "seconds": round(time.perf_counter() - started, 3),
            },
            unused_reference_roles=tuple(sorted({r.role for r in request.references} - self.supported_roles)),
            event_times_s=tuple(at for at, _ in request.sound_cues),
        )
