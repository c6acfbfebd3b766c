"""Text to speech for the brief's dialogue, behind one small interface (`SpeechEngine`).

Two engines, both offline:
- `EspeakEngine`: espeak-ng from the `espeakng-loader` wheel (the binding is syncreel/espeak.py's,
  shared with the training world), a voice per language, a timbre, rate and pitch;
- `PiperEngine`: a neural Piper voice (``piper-tts``) from a local model file the operator installed;
  never downloaded.
`dialogue_track` places each spoken line at its start in a scene-long track; `with_stem` puts a track in
place of a generator stem (or silences it) and gives the new mix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from syncreel.audio import resample
from syncreel.espeak import SpeechError
from syncreel.espeak import synthesize as espeak_synthesize
from syncreel.schemas.voices import DEFAULT_RATE_WPM, espeak_voice

__all__ = ["SpeechError", "Voice", "SpeechEngine", "EspeakEngine", "PiperEngine", "engine_for"]

# Peak of a placed line: the track's level before the mix sets its own.
LINE_PEAK = 10 ** (-1 / 20)
# A line cut at the scene's end fades out over this long instead of clicking.
FADE_S = 0.02
PIPER_INSTALL_HINT = "pip install piper-tts (its onnxruntime runs on the CPU)"


@dataclass(frozen=True)
class Voice:
    """How a line is spoken: language (a brief code), the engine's voice for it, timbre, pace, pitch."""

    language: str
    name: str  # espeak-ng voice name; a Piper engine speaks with its own model and ignores it
    variant: str | None = None  # espeak-ng timbre (m1-m7, f1-f5)
    rate_wpm: int = DEFAULT_RATE_WPM
    pitch: int = 50


class SpeechEngine(Protocol):
    #: What the engine is, down to its version and voice data: part of every spoken line's cache key.
    identity: str

    def speak(self, text: str, voice: Voice, sample_rate: int) -> np.ndarray:
        """``text`` spoken; float32 mono in [-1, 1] at ``sample_rate``. SpeechError when it cannot."""


class EspeakEngine:
    def __init__(self) -> None:
        self.identity = f"espeak-ng/espeakng-loader-{importlib.metadata.version('espeakng-loader')}"

    def speak(self, text: str, voice: Voice, sample_rate: int) -> np.ndarray:
        name = voice.name + (f"+{voice.variant}" if voice.variant else "")
        return espeak_synthesize(text, sample_rate, voice=name, words_per_minute=voice.rate_wpm, pitch=voice.pitch)


class PiperEngine:
    """A Piper voice: ``model_path`` is its .onnx file, with the .onnx.json config beside it (as Piper
    ships them). Pace maps to Piper's length scale (relative to DEFAULT_RATE_WPM); pitch and timbre are
    the model's own."""

    def __init__(self, model_path: Path | str):
        self.model_path = Path(model_path)
        self.config_path = self.model_path.with_name(self.model_path.name + ".json")
        self._check_files()
        self.identity = f"piper/{_file_digest(self.model_path)}/{_file_digest(self.config_path)}"
        self._voice = None

    def _check_files(self) -> None:
        where = f"Piper voice model {self.model_path}"
        if not self.model_path.is_file():
            raise SpeechError(f"{where}: no such file (SYNCREEL_PIPER_VOICES names a local .onnx file)")
        if not self.config_path.is_file():
            raise SpeechError(f"{where}: its config {self.config_path.name} is missing beside it")
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
            int(config["audio"]["sample_rate"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise SpeechError(f"{where}: {self.config_path.name} is not a Piper voice config") from None

    def _load(self):  # noqa: ANN202 - a piper.PiperVoice
        if self._voice is None:
            try:
                from piper import PiperVoice
            except ImportError:
                raise SpeechError(
                    f"Piper voice model {self.model_path}: the piper-tts package is not installed"
                    f" ({PIPER_INSTALL_HINT})"
                ) from None
            try:
                self._voice = PiperVoice.load(str(self.model_path), config_path=str(self.config_path))
            except Exception as exc:  # onnxruntime's errors have no common base
                problem = f"cannot load it ({type(exc).__name__})"
                raise SpeechError(f"Piper voice model {self.model_path}: {problem}") from exc
        return self._voice

    def speak(self, text: str, voice: Voice, sample_rate: int) -> np.ndarray:
        if not text.strip():
            raise SpeechError("no text to speak")
        piper_voice = self._load()
        length_scale = DEFAULT_RATE_WPM / voice.rate_wpm
        native = int(piper_voice.config.sample_rate)
        try:
            if hasattr(piper_voice, "synthesize_stream_raw"):  # piper-tts < 1.3
                raw = b"".join(piper_voice.synthesize_stream_raw(text, length_scale=length_scale))
                wave = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            else:
                from piper import SynthesisConfig

                chunks = piper_voice.synthesize(text, syn_config=SynthesisConfig(length_scale=length_scale))
                wave = np.concatenate(
                    [np.asarray(c.audio_float_array, np.float32) for c in chunks] or [np.zeros(0, np.float32)]
                )
        except Exception as exc:
            raise SpeechError(f"Piper voice model {self.model_path}: synthesis failed ({type(exc).__name__})") from exc
        return resample(wave.astype(np.float32), native, sample_rate)


@cache
def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@cache
def _espeak() -> EspeakEngine:
    return EspeakEngine()


@cache
def _piper(model_path: Path) -> PiperEngine:
    return PiperEngine(model_path)


def engine_for(language: str, piper_voices: Mapping[str, Path]) -> SpeechEngine:
    """The engine that speaks ``language``: the operator's Piper voice for it, else espeak-ng."""
    if language in piper_voices:
        return _piper(Path(piper_voices[language]))
    return _espeak()


def default_voice_name(language: str) -> str:
    """The espeak-ng voice for a brief language; SpeechError naming the language when there is none."""
    name = espeak_voice(language)
    if name is None:
        raise SpeechError(f"no voice speaks language {language!r} (see schemas/voices.py for those that do)")
    return name


def line_starts(starts: Sequence[float | None], duration_s: float) -> list[float]:
    """Where each line starts: its own ``start_s``, or spread over the scene by its order as the
    captions place it (media/captions.py)."""
    return [s if s is not None else duration_s * i / len(starts) for i, s in enumerate(starts)]


def dialogue_track(
    lines: Sequence[tuple[float, np.ndarray]], duration_s: float, sample_rate: int
) -> tuple[np.ndarray, list[float]]:
    """The scene's dialogue: each (start in s, waveform) placed at its start, peaking at LINE_PEAK,
    overlapping lines summed; a line that runs past the scene's end is cut with a short fade.
    Returns the float32 mono track and how many seconds of each line were cut."""
    track = np.zeros(max(1, round(duration_s * sample_rate)), np.float32)
    cut: list[float] = []
    for start_s, wave in lines:
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        placed = wave * (LINE_PEAK / peak) if peak > 0 else wave
        begin = min(round(start_s * sample_rate), track.size)
        room = track.size - begin
        if placed.size > room:
            placed = placed[:room].copy()
            fade = min(room, round(FADE_S * sample_rate))
            if fade:
                placed[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        cut.append(round(max(0, wave.size - room) / sample_rate, 3))
        track[begin : begin + placed.size] += placed
    peak = float(np.abs(track).max())
    if peak > 1.0:
        track /= peak
    return track.astype(np.float32), cut


def with_stem(
    stems: np.ndarray, names: Sequence[str], name: str, track: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(stems, mix) with stem ``name`` replaced by ``track`` at its own level (a dialogue track peaks at
    LINE_PEAK), or silenced when ``track`` is None. The mix is the stems' sum; when it would clip, every
    stem is scaled down together so they still sum to it. (The generator's level for the stem is no
    guide: a voice-over scene generated from its prompt has a near-silent dialogue stem.)"""
    stems = stems.astype(np.float32).copy()
    index = list(names).index(name)
    stems[index] = 0.0
    if track is not None:
        size = min(track.size, stems.shape[1])
        stems[index, :size] = track[:size]
    mix = stems.sum(0)
    peak = float(np.abs(mix).max())
    if peak > LINE_PEAK:
        stems *= LINE_PEAK / peak
        mix *= LINE_PEAK / peak
    return stems, mix.astype(np.float32)
