"""Offline speech synthesis with espeak-ng, from the library the `espeakng-loader` wheel ships.

Used by the voice stage (media/speech.py's espeak engine), to give the procedural world's talking
characters real speech (model/world.py), and by tests that need a voice line. Nothing is downloaded:
the shared library and its voice data are inside the installed package. espeak-ng keeps global
state, so calls are serialised with a lock. Its output is not bit-exact from
call to call (the same text comes out a few milliseconds longer or shorter, even with its random
seed fixed), so callers that need a fixed waveform keep the first one (model/world.py caches each line).
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache

import numpy as np

from syncreel.audio import resample

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()
_chunks: list[np.ndarray] = []


class SpeechError(RuntimeError):
    """espeak-ng could not be loaded or refused the text or voice."""


def _collect(wave: ctypes._Pointer[ctypes.c_short], count: int, _events: ctypes.c_void_p) -> int:
    if count > 0:
        _chunks.append(np.ctypeslib.as_array(wave, shape=(count,)).copy())
    return 0


_collect_callback = _CALLBACK(_collect)  # kept referenced for the library's lifetime


@cache
def _engine() -> tuple[ctypes.CDLL, int]:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SpeechError("espeak-ng is not installed (the espeakng-loader package provides it)") from exc
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = library.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _INITIALIZE_DONT_EXIT
    )
    if rate <= 0:
        raise SpeechError(f"espeak-ng failed to initialise (code {rate})")
    library.espeak_SetSynthCallback(_collect_callback)
    return library, rate


def synthesize(
    text: str, sample_rate: int, *, voice: str = "en", words_per_minute: int = 165, pitch: int = 50
) -> np.ndarray:
    """Speak ``text``; returns a float32 mono waveform in [-1, 1] at ``sample_rate``."""
    if not text.strip():
        raise SpeechError("no text to speak")
    library, native_rate = _engine()
    encoded = text.encode("utf-8")
    with _LOCK:
        if library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechError(f"espeak-ng has no voice {voice!r} (try 'en', 'en-us', 'en+f3')")
        library.espeak_SetParameter(_PARAM_RATE, int(words_per_minute), 0)
        library.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        _chunks.clear()
        status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        library.espeak_Synchronize()
        samples = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    if status != 0:
        raise SpeechError(f"espeak-ng refused the text (code {status})")
    return resample(samples.astype(np.float32) / 32768.0, native_rate, sample_rate)
