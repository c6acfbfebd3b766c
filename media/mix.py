"""The spot's layered sound: dialogue, effects, ambience (a scene's stems) and music, each with its own
gain, the music ducked under the dialogue, crossfaded at every cut. Pure numpy on 48 kHz float audio.

Ducking is a sidechain compressor in its simplest useful form: the dialogue layer's level, measured in
10 ms blocks, opens a gate (held a little so the music does not pump between words); the music's gain
moves towards ``-duck_db`` while the gate is open and back to 0 dB when it closes, with separate attack
and release time constants, in dB so the movement sounds even.
"""

from __future__ import annotations

import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from syncreel.audio import resample
from syncreel.media.errors import MediaError

RATE = 48_000
LAYERS = ("dialogue", "effects", "ambience", "music")
SCENE_MIX = "mix"  # a scene without stems: its whole sound is one layer
BLOCK_S = 0.01
HEADROOM_PEAK = 0.98


@dataclass(frozen=True)
class MixSettings:
    dialogue_db: float = 0.0
    effects_db: float = 0.0
    ambience_db: float = 0.0
    music_db: float = -6.0
    duck_db: float = 9.0  # how far the music goes down under dialogue
    duck_threshold_dbfs: float = -40.0  # dialogue above this level counts as speaking
    duck_attack_s: float = 0.03  # time constants: down within ~0.1 s, back within ~0.45 s
    duck_release_s: float = 0.15
    duck_hold_s: float = 0.15  # bridges the gaps between words
    crossfade_s: float = 0.04  # at every cut, half out, half in
    music_fade_out_s: float = 0.5

    def gain(self, layer: str) -> float:
        decibels = {"dialogue": self.dialogue_db, "effects": self.effects_db, "ambience": self.ambience_db}
        return float(10 ** (decibels.get(layer, 0.0) / 20))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SpotMix:
    mix: np.ndarray  # (2, N) float32
    layers: dict[str, np.ndarray]  # layer → (N,) mono after gain (music: after ducking, mid of L/R)
    music_gain_db: np.ndarray | None  # (blocks,) the ducking gain, for the report
    headroom_db: float  # gain applied to the whole mix to keep its peak below HEADROOM_PEAK

    def report(self) -> dict[str, Any]:
        return {
            "layers": [name for name in self.layers],
            "headroom_gain_db": round(self.headroom_db, 2),
            "music_ducked_s": round(float((self.music_gain_db < -1.0).sum() * BLOCK_S), 2)
            if self.music_gain_db is not None
            else 0.0,
        }


def read_stems(path: Path) -> np.ndarray:
    """A stems WAV (media.encode.write_stems: 16-bit PCM, one channel per stem) → (S, N) float32."""
    try:
        with wave.open(str(path), "rb") as handle:
            channels, rate, width = handle.getnchannels(), handle.getframerate(), handle.getsampwidth()
            data = handle.readframes(handle.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise MediaError(path, f"cannot read the stems WAV ({exc})") from None
    if width != 2:
        raise MediaError(path, f"stems must be 16-bit PCM, got {8 * width}-bit")
    stems = np.frombuffer(data, "<i2").reshape(-1, channels).T.astype(np.float32) / 32767
    return resample(stems, rate, RATE)


def _faded(audio: np.ndarray, samples: int, fade_in: int, fade_out: int) -> np.ndarray:
    """``audio`` cut or padded to ``samples``, with linear fades at either end."""
    out = np.zeros(samples, np.float32)
    take = min(samples, audio.shape[-1])
    out[:take] = audio[:take]
    if fade_in:
        out[:fade_in] *= np.linspace(0, 1, fade_in, endpoint=False, dtype=np.float32)
    if fade_out:
        out[samples - fade_out :] *= np.linspace(1, 0, fade_out, dtype=np.float32)
    return out


def lay_out(
    scene_layers: list[dict[str, np.ndarray]], edges_s: list[float], crossfade_s: float
) -> dict[str, np.ndarray]:
    """Each scene's layers placed on the spot's timeline between its edges (len(scenes) + 1 times),
    faded at every cut; a layer a scene lacks is silent there."""
    total = int(round(edges_s[-1] * RATE))
    names = [name for name in (*LAYERS, SCENE_MIX) if any(name in layers for layers in scene_layers)]
    timeline = {name: np.zeros(total, np.float32) for name in names}
    half = int(round(crossfade_s / 2 * RATE))
    for index, layers in enumerate(scene_layers):
        start, end = (int(round(edge * RATE)) for edge in edges_s[index : index + 2])
        fade_in = half if index > 0 else 0
        fade_out = half if index < len(scene_layers) - 1 else 0
        for name, audio in layers.items():
            timeline[name][start:end] += _faded(audio, end - start, fade_in, fade_out)
    return timeline


def _level_db(audio: np.ndarray) -> np.ndarray:
    block = int(BLOCK_S * RATE)
    usable = audio[: audio.size // block * block]
    rms = np.sqrt(np.square(usable.astype(np.float64)).reshape(-1, block).mean(1)) if usable.size else np.zeros(0)
    return 20 * np.log10(np.maximum(rms, 1e-9))


def duck_gain_db(dialogue: np.ndarray, settings: MixSettings) -> np.ndarray:
    """The music's gain (dB) per 10 ms block: ``-duck_db`` while dialogue speaks, 0 dB otherwise, smoothed."""
    speaking = _level_db(dialogue) > settings.duck_threshold_dbfs
    hold = int(round(settings.duck_hold_s / BLOCK_S))
    if hold and speaking.any():
        speaking = np.convolve(speaking.astype(float), np.ones(2 * hold + 1), mode="same") > 0
    target = np.where(speaking, -settings.duck_db, 0.0)
    attack = 1 - np.exp(-BLOCK_S / settings.duck_attack_s)
    release = 1 - np.exp(-BLOCK_S / settings.duck_release_s)
    gain = np.zeros_like(target)
    level = 0.0
    for index, wanted in enumerate(target):
        level += (wanted - level) * (attack if wanted < level else release)
        gain[index] = level
    return gain


def _per_sample(gain_db: np.ndarray, samples: int) -> np.ndarray:
    centres = (np.arange(gain_db.size) + 0.5) * BLOCK_S * RATE
    return (10 ** (np.interp(np.arange(samples), centres, gain_db) / 20)).astype(np.float32)


def fit_music(music: np.ndarray, samples: int, fade_out_s: float) -> np.ndarray:
    """(2, N) music cut (or looped) to the spot's length, fading out at the end."""
    if music.shape[-1] == 0:
        return np.zeros((2, samples), np.float32)
    repeats = -(-samples // music.shape[-1])
    fitted = np.tile(music, (1, repeats))[:, :samples].astype(np.float32)
    fade = min(samples, int(fade_out_s * RATE))
    if fade:
        fitted[:, samples - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    return fitted


def mix_spot(
    scene_layers: list[dict[str, np.ndarray]],
    edges_s: list[float],
    music: np.ndarray | None = None,
    settings: MixSettings = MixSettings(),  # noqa: B008 - frozen
) -> SpotMix:
    """Lay out every scene's layers, add the music (ducked under dialogue; under the whole scene sound
    when a scene came without stems), and sum to stereo."""
    timeline = lay_out(scene_layers, edges_s, settings.crossfade_s)
    total = int(round(edges_s[-1] * RATE))
    layers = {name: audio * settings.gain(name) for name, audio in timeline.items()}
    mono = sum(layers.values(), np.zeros(total, np.float32))
    stereo: np.ndarray = np.stack([mono, mono])
    gain_db = None
    if music is not None:
        sidechain = layers.get("dialogue", np.zeros(total, np.float32)) + layers.get(SCENE_MIX, 0.0)
        gain_db = duck_gain_db(sidechain, settings)
        ducked = fit_music(music, total, settings.music_fade_out_s) * (
            10 ** (settings.music_db / 20) * _per_sample(gain_db, total)
        )
        layers["music"] = ducked.mean(0)
        stereo = stereo + ducked
    peak = float(np.abs(stereo).max()) if stereo.size else 0.0
    headroom = min(1.0, HEADROOM_PEAK / peak) if peak > 0 else 1.0
    if headroom < 1.0:
        stereo *= headroom
        layers = {name: audio * headroom for name, audio in layers.items()}
    return SpotMix(stereo.astype(np.float32), layers, gain_db, 20 * float(np.log10(headroom)))


def write_wav(audio: np.ndarray, path: Path) -> Path:
    """(C, N) float audio → 16-bit PCM WAV at RATE (C channels)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2").T
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(audio.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(np.ascontiguousarray(pcm).tobytes())
    return path
