"""The `builtin` backend: the dual-tower transformer at the `small()` size, on whatever device is here.

The network, its picture size and frame codec included, is what the checkpoint's own config says
(model.checkpoint.load_checkpoint), so checkpoints trained at any ``small(frame_size)`` load alike.

Weights come from `model/checkpoints/builtin.safetensors` (trained by `python -m syncreel.model.train` on the
procedural world of model/world.py; see docs/model.md) when that file exists; otherwise
the network is initialised from a fixed seed, which is deterministic but untrained — the run record
says so (`parameters["trained"] = False`, and the model version ends in `-untrained`).

Modes, chosen by the references a scene gives (all through the same sampler, see flow_matching.py):
- none of the below: text (+ reference tokens) → audio and video together;
- an image with role ``first_frame``: image-to-audio+video (the clip starts on that picture);
- an audio with role ``voice``: audio-to-video (the voice is the dialogue stem, kept bit for bit);
- a video with role ``footage``: video-to-audio (foley for that clip; its picture is kept);
- a video with role ``continue``: extension (the scene continues that clip from its last frames).
References with the roles training used (character, motion, music) enter as context tokens; the
rest (product, style, background, sfx) are reported in ``unused_reference_roles``.

Prompts: the text encoder learned only the words of the world's captions (model/world.py), so the
prompt is reduced to those words before encoding; the run record keeps what was read
(``prompt_read``) and which words were left out (``prompt_words_unknown``).

Length: the model was trained on clips of 2 and 4 s. A longer scene is generated in windows of
WINDOW_S seconds, each continuing the last OVERLAP_S seconds of the one before (the extension mode),
so positions stay within what the network has seen.
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

from syncreel.audio import audio_onsets, resample
from syncreel.model.checkpoint import load_checkpoint
from syncreel.model.codecs import decode_audio, decode_video, encode_audio, encode_video, square_frames
from syncreel.model.config import DualTowerConfig, small
from syncreel.model.flow_matching import Guidance, KnownParts, sample
from syncreel.model.generator import GenerationRequest, Generator, ReferenceInput
from syncreel.model.transformer import (
    DualTowerTransformer,
    ReferenceTensor,
    audio_reference,
    image_reference,
    tokenize,
    video_reference,
    words,
)
from syncreel.model.world import STEMS, vocabulary
from syncreel.schemas.clips import MasterClip

CHECKPOINT = Path(__file__).with_name("checkpoints") / "builtin.safetensors"
INIT_SEED = 20261123
WINDOW_S = 4.0
OVERLAP_S = 0.8
# When both streams are generated, the sound's flow time trails the picture's by this much of the
# schedule (flow_matching.time_grid). 0: both are denoised together, each seeing the other at the same
# noise level — the shipped checkpoint's best (benchmarks/model_sync.py measures each lag; see
# docs/model.md: an earlier checkpoint did best at 1.0, the picture first).
AUDIO_LAG = 0.0
# Roles that set what is generated rather than conditioning it as tokens.
MODE_ROLES = ("first_frame", "voice", "footage", "continue")
# Roles that enter as context tokens: those model/train.py gives the world's clips.
TOKEN_ROLES = frozenset({"character", "motion", "music"})


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


class BuiltinGenerator(Generator):
    name = "builtin"

    def __init__(
        self,
        checkpoint: Path | None = CHECKPOINT,
        *,
        config: DualTowerConfig | None = None,
        device: str | None = None,
        audio_lag: float = AUDIO_LAG,
    ):
        """Load ``checkpoint`` when it exists; otherwise (or with checkpoint=None) build ``config``
        (default ``small()``) from the fixed initialisation seed. ``audio_lag``: how far the sound's
        flow time trails the picture's when both are generated (flow_matching.time_grid)."""
        self.audio_lag = audio_lag
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        weights = Path(checkpoint) if checkpoint is not None else None
        self.trained = weights is not None and weights.is_file()
        if weights is not None and self.trained:
            self.model, self.provenance = load_checkpoint(weights)
            self._weights_id = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        else:
            torch.manual_seed(INIT_SEED)
            self.model, self.provenance = DualTowerTransformer(config or small()), {}
            config_json = json.dumps(self.model.config.to_dict(), sort_keys=True)
            self._weights_id = hashlib.sha256(config_json.encode()).hexdigest()[:12] + "-untrained"
        self.config = self.model.config
        self.model.to(self.device).eval()

    @property
    def model_version(self) -> str:
        """The weights' hash, and the sampling schedule when the sound trails the picture: either changes
        what a seed gives, so either is part of every cache key that holds a generation."""
        lag = f"-lag{self.audio_lag:g}" if self.audio_lag else ""
        return f"builtin-dualtower-{self._weights_id}{lag}"

    @property
    def supported_roles(self) -> frozenset[str]:
        """The mode roles, and the token roles training gave it (a talking character's photo, a bounce's
        motion, a beat as music); product, style, background and sfx references are reported unused."""
        return frozenset(MODE_ROLES) | TOKEN_ROLES

    # -- references ---------------------------------------------------------------------------------
    def _reference_tensor(self, ref: ReferenceInput) -> ReferenceTensor:
        c = self.config
        if ref.kind == "image":
            return image_reference(
                square_frames(torch.from_numpy(_decode_frames(ref.path, limit=1)), c.frame_size)[0], ref.role, c
            )
        if ref.kind == "video":
            return video_reference(square_frames(torch.from_numpy(_decode_frames(ref.path)), c.frame_size), ref.role, c)
        return audio_reference(torch.from_numpy(_decode_audio(ref.path, c.sample_rate)), ref.role, c)

    def _video_latents(self, path: Path) -> torch.Tensor:
        """A video file at the model's latent frame rate (nearest frames) → (C, T, h, w) latents."""
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
        frames = _decode_frames(path)
        count = max(1, round(len(frames) / rate * self.config.latent_fps))
        centres = (np.arange(count) + 0.5) / self.config.latent_fps  # latent frame times, in seconds
        pick = np.floor(centres * rate).astype(int).clip(0, len(frames) - 1)
        return encode_video(self.model.video_codec, torch.from_numpy(frames[pick]), self.config.frame_size)

    def _silent_stems(self, mel_frames: int) -> torch.Tensor:
        silence = encode_audio(torch.zeros(self.config.hop_length * 4), self.config).min().item()
        return torch.full((self.config.stems, self.config.n_mels, mel_frames), silence)

    def _known(self, request: GenerationRequest, latent_frames: int, mel_frames: int) -> dict[str, torch.Tensor]:
        """Whole-clip knowns and prefixes from the mode references, at the full clip's length."""
        c = self.config
        by_role = {r.role: r for r in request.references}
        known: dict[str, torch.Tensor] = {}
        if "voice" in by_role:
            mel = encode_audio(torch.from_numpy(_decode_audio(by_role["voice"].path, c.sample_rate)), c)
            stems = self._silent_stems(mel_frames)
            take = min(mel_frames, mel.shape[-1])
            stems[STEMS.index("dialogue"), :, :take] = mel[:, :take]
            known["audio"] = stems
        if "footage" in by_role:
            latents = self._video_latents(by_role["footage"].path)
            if latents.shape[1] < latent_frames:  # hold the last frame to the scene's length
                hold = latents[:, -1:].expand(-1, latent_frames - latents.shape[1], -1, -1)
                latents = torch.cat([latents, hold], 1)
            known["video"] = latents[:, :latent_frames]
        if "continue" in by_role:
            latents = self._video_latents(by_role["continue"].path)
            known["video_prefix"] = latents[:, -max(1, round(OVERLAP_S * c.latent_fps)) :]
        elif "first_frame" in by_role:
            frames = torch.from_numpy(_decode_frames(by_role["first_frame"].path, limit=1))
            known["video_prefix"] = encode_video(self.model.video_codec, frames, c.frame_size)
        return known

    def _prompt(self, request: GenerationRequest) -> tuple[str, list[str]]:
        """The prompt as the text encoder will read it — scene prompt, dialogue and cues, reduced to
        the words of the world the model was trained on — and the words it had to leave out (a word
        the encoder never saw has an untrained embedding that would only add noise)."""
        parts = [request.prompt]
        parts += [f'{speaker} says: "{line}"' for speaker, line in request.dialogue]
        parts += [f"at {at:g} s: {cue}" for at, cue in request.sound_cues]
        return _known_words(" ".join(parts))

    # -- generation ------------------------------------------------------------------------------
    def _sample_windows(
        self,
        latent_frames: int,
        mel_frames: int,
        known: dict[str, torch.Tensor],
        cond: tuple[torch.Tensor, torch.Tensor],
        uncond: tuple[torch.Tensor, torch.Tensor],
        request: GenerationRequest,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, T, h, w) video and (S, M, F) audio latents for the whole clip, window by window."""
        c = self.config
        window = round(WINDOW_S * c.latent_fps)
        overlap = round(OVERLAP_S * c.latent_fps)
        mel_per_frame = c.mel_fps / c.latent_fps  # 4 mel frames per latent frame at the defaults
        guidance = Guidance(request.video_guidance, request.audio_guidance, request.sync_guidance)
        # An extension prefix is extra frames in front of the clip, cut off at the end.
        prefix = known.get("video_prefix")
        lead = prefix.shape[1] if prefix is not None and "continue" in {r.role for r in request.references} else 0
        total = latent_frames + lead
        video = torch.zeros(c.latent_channels, total, c.latent_height, c.latent_width)
        audio = torch.zeros(c.stems, c.n_mels, math.ceil(total * mel_per_frame / c.audio_patch) * c.audio_patch)
        start, done = 0, 0
        while done < total:
            length = min(window, total - start)
            mel_start = round(start * mel_per_frame)
            mel_length = math.ceil(length * mel_per_frame / c.audio_patch) * c.audio_patch
            parts: dict[str, torch.Tensor | None] = {"video_prefix": None, "audio_prefix": None}
            if start == 0 and prefix is not None:
                parts["video_prefix"] = prefix[None]
            elif start > 0:  # continue the previous window
                parts["video_prefix"] = video[:, start:done][None]
                parts["audio_prefix"] = audio[..., mel_start : round(done * mel_per_frame)][None]
            if "video" in known:
                parts["video"] = _fit(known["video"], start - lead, length, 1)[None]
            if "audio" in known:
                parts["audio"] = _fit(known["audio"], mel_start - round(lead * mel_per_frame), mel_length, -1)[None]
            v, a = sample(
                self.model,
                (1, c.latent_channels, length, c.latent_height, c.latent_width),
                (1, c.stems, c.n_mels, mel_length),
                cond,
                uncond,
                steps=request.steps,
                guidance=guidance,
                known=KnownParts(**{k: (p.to(self.device) if p is not None else None) for k, p in parts.items()}),
                audio_lag=self.audio_lag,
                generator=generator,
            )
            video[:, start : start + length] = v[0].cpu()
            end = min(audio.shape[-1], mel_start + mel_length)
            audio[..., mel_start:end] = a[0, ..., : end - mel_start].cpu()
            done = start + length
            start = done - overlap if done < total else done
        mel_lead = round(lead * mel_per_frame)
        video, audio = video[:, lead:], audio[..., mel_lead : mel_lead + mel_frames]
        if "audio" in known:  # a given track comes back exactly as given
            audio = known["audio"].clone()
        return video, audio

    def generate_latents(
        self, request: GenerationRequest, given: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The clip as latents — video (C, T, h, w) and audio stems (S, n_mels, F) — and the mode used.

        ``given``: a whole modality as latents (``"video"`` or ``"audio"``, at the clip's length), for a
        caller that holds latents rather than files (benchmarks/model_sync.py's video-to-audio rows);
        it takes the place of a ``footage`` / ``voice`` reference.
        """
        c = self.config
        latent_frames = max(2, math.ceil(request.duration_s * c.latent_fps))
        mel_frames = max(c.audio_patch, math.ceil(request.duration_s * c.mel_fps / c.audio_patch) * c.audio_patch)
        known = self._known(request, latent_frames, mel_frames) | (given or {})
        references = [self._reference_tensor(r) for r in request.references if r.role in TOKEN_ROLES]
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        with torch.inference_mode():
            text = tokenize([self._prompt(request)[0]], c.text_vocab, c.max_text_tokens).to(self.device)
            negative = _known_words(request.negative_prompt)[0]
            empty = tokenize([negative], c.text_vocab, c.max_text_tokens).to(self.device)
            cond = self.model.encode_context(text, [references])
            uncond = self.model.encode_context(empty)
            video, audio = self._sample_windows(latent_frames, mel_frames, known, cond, uncond, request, generator)
        return video, audio, _mode_name(known, request)

    def generate(self, request: GenerationRequest) -> MasterClip:
        c = self.config
        started = time.perf_counter()
        video, audio, mode = self.generate_latents(request)
        prompt_read, unknown = self._prompt(request)
        generator = torch.Generator(device="cpu").manual_seed(request.seed)  # Griffin-Lim's initial phases
        frames = decode_video(self.model.video_codec, video, request.num_frames, request.height, request.width)
        native = decode_video(self.model.video_codec, video, request.num_frames, c.frame_size, c.frame_size)
        stems = decode_audio(audio, c, generator=generator).numpy()
        stems = resample(stems, c.sample_rate, request.sample_rate)
        stems = np.pad(stems, ((0, 0), (0, max(0, request.num_samples - stems.shape[-1]))))[:, : request.num_samples]
        mix = stems.sum(0)
        peak = float(np.abs(mix).max())
        gain = 10 ** (-3 / 20) / peak if peak > 0 else 1.0  # mix peaks at -3 dBFS; stems keep summing to it
        stems, mix = (stems * gain).astype(np.float32), (mix * gain).astype(np.float32)
        effects = stems[STEMS.index("effects")]
        return MasterClip(
            frames=frames,
            audio=mix[None],
            fps=request.fps,
            sample_rate=request.sample_rate,
            backend=self.name,
            model_version=self.model_version,
            seed=request.seed,
            parameters={
                "trained": self.trained,
                "config": _preset_name(c),
                "mode": mode,
                "prompt_read": prompt_read,
                "prompt_words_unknown": unknown[:30],
                "latent_frames": video.shape[1],
                "mel_frames": audio.shape[-1],
                "references_used": [r.id for r in request.references],
                "seconds": round(time.perf_counter() - started, 3),
            },
            unused_reference_roles=tuple(sorted({r.role for r in request.references} - self.supported_roles)),
            event_times_s=tuple(float(t) for t in audio_onsets(effects, request.sample_rate)),
            stems=stems,
            stem_names=STEMS,
            native_frames=native,
        )


def _preset_name(config: DualTowerConfig) -> str:
    """``small`` (48 px pictures), ``small@96`` (the same network over 96 px pictures), or ``custom``."""
    try:
        preset = small(config.frame_size)
    except ValueError:
        return "custom"
    if config != preset:
        return "custom"
    return "small" if config.frame_size == 48 else f"small@{config.frame_size}"


def _known_words(text: str) -> tuple[str, list[str]]:
    """``text`` reduced to the world's vocabulary, and the distinct words left out."""
    known = vocabulary()
    found = words(text)
    return " ".join(w for w in found if w in known), sorted({w for w in found if w not in known})


def _fit(tensor: torch.Tensor, start: int, length: int, axis: int) -> torch.Tensor:
    """``length`` steps of ``tensor`` along ``axis`` from ``start``, the edge value repeated past the ends."""
    size = tensor.shape[axis]
    index = (torch.arange(length) + start).clamp(0, size - 1)
    return tensor.index_select(axis if axis >= 0 else tensor.dim() + axis, index)


def _mode_name(known: dict[str, torch.Tensor], request: GenerationRequest) -> str:
    roles = {r.role for r in request.references}
    if "video" in known:
        return "video-to-audio"
    if "audio" in known:
        return "audio-to-video"
    if "continue" in roles:
        return "extension"
    if "first_frame" in roles:
        return "image-to-audio+video"
    return "text-to-audio+video"
