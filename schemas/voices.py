"""The voices a brief may name: one registry of closed vocabularies for the speech stage.

A brief's language code maps to the espeak-ng voice that speaks it (``LANGUAGE_VOICES``); a speaker may
pick another accent of that language (any value of the table) and a timbre (``VOICE_VARIANTS``). Names
reach espeak-ng only from these sets, never as brief text (DESIGN.md, trust boundaries).
"""

from __future__ import annotations

# Brief language code → espeak-ng voice. A region falls back to its language (pt-PT → pt) in
# ``espeak_voice``; English defaults to the American voice, Spanish to Castilian.
LANGUAGE_VOICES: dict[str, str] = {
    "en": "en-us", "en-US": "en-us", "en-GB": "en",
    "es": "es", "es-ES": "es", "es-MX": "es-419", "es-419": "es-419",
    "fr": "fr", "fr-FR": "fr", "fr-BE": "fr-be",
    "de": "de", "it": "it", "nl": "nl", "pl": "pl", "sv": "sv", "da": "da", "fi": "fi", "nb": "nb",
    "no": "nb", "cs": "cs", "el": "el", "hu": "hu", "ro": "ro", "ca": "ca", "ru": "ru", "uk": "uk",
    "tr": "tr", "ar": "ar", "he": "he", "hi": "hi", "id": "id", "vi": "vi",
    "pt": "pt", "pt-PT": "pt", "pt-BR": "pt-br",
    "ja": "ja", "ko": "ko", "zh": "cmn", "zh-CN": "cmn",
}  # fmt: skip
ESPEAK_VOICES = frozenset(LANGUAGE_VOICES.values())
# espeak-ng's timbres ("variants"): male m1–m7, female f1–f5.
VOICE_VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
DEFAULT_RATE_WPM = 165
RATE_WPM_RANGE = (80, 400)  # slower or faster than this stops being speech a listener follows
DEFAULT_PITCH = 50


def espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a brief language code (a region falls back to its language), or None."""
    return LANGUAGE_VOICES.get(language) or LANGUAGE_VOICES.get(language.split("-")[0])
