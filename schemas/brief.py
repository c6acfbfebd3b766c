"""The campaign brief: what a producer writes (YAML or JSON), validated before any GPU time is spent.

Field rules live on the models; rules that span fields (ids resolve, every dialogue line covers every
language, per-request reference limits, durations within every target platform's limits) live in
`cross_field_issues`, which runs over the raw document too, so one pass reports *every* mistake:
`load_brief` raises a `BriefError` listing each problem with its field path.

Briefs are untrusted (an inbox, a UI trigger, another team): the document is read within byte, depth
and alias limits (`schemas.document`), every wrong type becomes a field-path problem rather than an
exception, and a brief cannot say where its own files resolve (``base_uri`` is set by whoever loads it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from syncreel.schemas.document import DEFAULT_LIMITS, DocumentError, DocumentLimits, parse_limited, read_capped
from syncreel.schemas.errors import InputError
from syncreel.schemas.platforms import PlatformSpec, resolve_platforms
from syncreel.schemas.voices import (
    DEFAULT_PITCH,
    DEFAULT_RATE_WPM,
    ESPEAK_VOICES,
    LANGUAGE_VOICES,
    RATE_WPM_RANGE,
    VOICE_VARIANTS,
    espeak_voice,
)

# As the leading joint audio-video models state them, per generation request.
MAX_IMAGE_REFERENCES = 9
MAX_CLIP_REFERENCES = 3  # video and audio references together

ReferenceKind = Literal["image", "video", "audio"]
ROLES_BY_KIND: dict[str, tuple[str, ...]] = {
    "image": ("character", "style", "product", "background", "first_frame"),
    # footage: the clip itself is kept and its sound generated (video-to-audio);
    # continue: the scene continues that clip from its last frames (extension).
    "video": ("motion", "style", "footage", "continue"),
    "audio": ("music", "voice", "sfx"),
}
# How fast a line can be spoken and still be followed (about 170 words a minute): a line that needs
# longer than its scene leaves after ``start_s`` cannot be heard or captioned whole. A speaker whose
# voice sets ``rate_wpm`` is held to that pace instead (``speech_seconds``).
SPEECH_CHARS_PER_S = 15.0
MAX_URI_LENGTH = 2048
_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_LANGUAGE = r"^[a-z]{2,3}(-[A-Z][A-Za-z]{1,3})?$"
_PATTERN_HELP = {
    _ID: "ids use lowercase letters, digits, '-' and '_', start with a letter or digit, at most 63 characters",
    _LANGUAGE: "a language code such as en, es or pt-BR",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Brand(_Model):
    name: str = Field(min_length=1, max_length=120)
    colours: list[str] = Field(default_factory=list, max_length=8, description="Hex colours, #RRGGBB.")
    tone: str = Field(default="", max_length=300, description="Voice and mood, fed to every prompt.")

    @field_validator("colours")
    @classmethod
    def _hex(cls, colours: list[str]) -> list[str]:
        bad = [c for c in colours if not _is_hex_colour(c)]
        if bad:
            raise ValueError(f"colours must be #RRGGBB hex, got {', '.join(map(repr, bad))}")
        return colours


class Reference(_Model):
    id: str = Field(pattern=_ID)
    kind: ReferenceKind
    role: Literal[
        "character", "style", "product", "background", "first_frame", "motion", "footage", "continue",
        "music", "voice", "sfx",
    ]  # fmt: skip
    uri: str = Field(
        min_length=1,
        max_length=MAX_URI_LENGTH,
        description="A path (relative to the brief's folder), file://, s3://bucket/key or https://.",
    )
    description: str = Field(default="", max_length=500)

    @field_validator("uri")
    @classmethod
    def _printable(cls, uri: str) -> str:
        bad = sorted({f"U+{ord(c):04X}" for c in uri if not c.isprintable()})
        if bad:
            raise ValueError(f"control or unprintable characters ({', '.join(bad[:4])}) are refused in a URI")
        return uri


class DialogueLine(_Model):
    speaker: str = Field(min_length=1, max_length=60)
    text: dict[str, Annotated[str, Field(max_length=1000)]] = Field(
        min_length=1, description="Line per language code, e.g. {en: ..., es: ...}."
    )
    start_s: float | None = Field(default=None, ge=0, description="When the line starts within the scene.")
    on_screen: bool = Field(
        default=True, description="The speaker is seen talking (lip-sync is checked); false: voice-over."
    )


class SpeakerVoice(_Model):
    """How one speaker's lines are spoken by the speech stage (tasks/speak.py): an espeak-ng accent per
    language, a timbre, a pace and a pitch. A neural voice is the operator's (``SYNCREEL_PIPER_VOICES``)."""

    voice: dict[str, str] = Field(
        default_factory=dict,
        description="Per language, the espeak-ng voice to speak it (e.g. {en: en, es: es-419}); "
        "default: the language's own (schemas/voices.py).",
    )
    variant: str | None = Field(
        default=None, description="Timbre: m1-m7 (male) or f1-f5 (female); default: the voice's."
    )
    rate_wpm: int = Field(
        default=DEFAULT_RATE_WPM, ge=RATE_WPM_RANGE[0], le=RATE_WPM_RANGE[1], description="Words a minute."
    )
    pitch: int = Field(default=DEFAULT_PITCH, ge=0, le=99, description="0-99, 50 is the voice's own.")

    @field_validator("voice")
    @classmethod
    def _known_voices(cls, voice: dict[str, str]) -> dict[str, str]:
        bad = sorted({name for name in voice.values() if name not in ESPEAK_VOICES})
        if bad:
            raise ValueError(
                f"unknown voice(s) {', '.join(map(_shown, bad))}; accepted: {', '.join(sorted(ESPEAK_VOICES))}"
            )
        return voice

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, variant: str | None) -> str | None:
        if variant is not None and variant not in VOICE_VARIANTS:
            raise ValueError(f"unknown variant {_shown(variant)}; accepted: {', '.join(VOICE_VARIANTS)}")
        return variant


class SoundCue(_Model):
    at_s: float = Field(ge=0, description="Seconds from the start of the scene.")
    description: str = Field(min_length=1, max_length=200)


class Scene(_Model):
    id: str = Field(pattern=_ID)
    prompt: str = Field(min_length=3, max_length=2000)
    duration_s: float = Field(gt=0.5, le=20.0, description="Seconds; the built-in model's window is 20 s.")
    dialogue: list[DialogueLine] = Field(default_factory=list, max_length=20)
    sound_cues: list[SoundCue] = Field(default_factory=list, max_length=50)
    references: list[str] = Field(default_factory=list, description="Ids of brief references this scene uses.")
    seed: int | None = Field(
        default=None, ge=0, lt=2**31, description="Fixes generation; default derives from the ids."
    )
    continue_previous: bool = Field(
        default=False, description="Continue the previous scene's last frames (extension), for a seamless cut."
    )


class LayerGains(_Model):
    """Levels of the spot's sound layers (the generator's stems) before the platform's loudness pass."""

    dialogue_db: float = Field(default=0.0, ge=-60, le=12)
    effects_db: float = Field(default=0.0, ge=-60, le=12)
    ambience_db: float = Field(default=0.0, ge=-60, le=12)


class Music(_Model):
    reference: str | None = Field(default=None, description="Id of an audio reference with role music.")
    description: str = Field(default="", max_length=300)
    beat_sync: bool = Field(
        default=False, description="Move the cuts between scenes onto the track's beats (downbeats first)."
    )
    snap_tolerance_s: float = Field(
        default=0.25,
        ge=0,
        le=1.0,
        description="How far a cut may move to reach a beat; farther ones stay where they are.",
    )
    gain_db: float = Field(default=-6.0, ge=-60, le=12, description="The music layer's level in the mix.")
    duck_db: float = Field(default=9.0, ge=0, le=40, description="How far the music goes down under dialogue.")
    layers: LayerGains = LayerGains()


class MasterFormat(_Model):
    """The size the generator renders; every platform variant is reframed from it. The default, 1280×720,
    enlarges no deliverable up to 1080p more than 1.5× (1920×1080 from 1280×720)."""

    width: int = Field(default=1280, ge=64, le=3840, multiple_of=2)
    height: int = Field(default=720, ge=64, le=3840, multiple_of=2)
    fps: float = Field(default=24.0, gt=0, le=60)
    sample_rate: int = Field(default=48_000, ge=16_000, le=96_000)


class GenerationSettings(_Model):
    steps: int = Field(default=8, ge=1, le=200)
    # Guidance scales: 1.0 is "none" for each (classifier-free guidance convention).
    video_guidance: float = Field(default=3.0, ge=0, le=20)
    audio_guidance: float = Field(default=3.0, ge=0, le=20)
    # Sync guidance: above 1.0, push away from what the model would make with its audio and video
    # towers uncoupled (MOVA's dual CFG); benchmarks/model_sync.py measures what each scale does.
    sync_guidance: float = Field(default=1.0, ge=1.0, le=20)
    negative_prompt: str = Field(default="", max_length=1000)


# ITU-R BT.1359: sync error is detectable at about 45 ms (audio early) and 125 ms (audio late). The
# gate's defaults, and every sync measure's, are these.
AUDIO_EARLY_MS = 45.0
AUDIO_LATE_MS = 125.0
# Confidences are peak minus median correlation over the ±600 ms offsets searched (0 … 2); the defaults
# separate the calibration set's positives from its negatives (benchmarks/qa.py, docs/qa.md "Thresholds").
MIN_LIPSYNC_CONFIDENCE = 0.5
MIN_SFX_CONFIDENCE = 0.4


class QAThresholds(_Model):
    """The gate every generated scene passes: a failing master is regenerated with a new seed up to
    ``max_regenerations`` times, then it needs a human (flagged, or the run pauses for a decision)."""

    max_audio_early_ms: float = Field(
        default=AUDIO_EARLY_MS, ge=0, le=1000, description="Sound ahead of the picture, at most (ms)."
    )
    max_audio_late_ms: float = Field(
        default=AUDIO_LATE_MS, ge=0, le=1000, description="Sound behind the picture, at most (ms)."
    )
    min_lipsync_confidence: float = Field(
        default=MIN_LIPSYNC_CONFIDENCE, ge=0, le=2, description="Mouth-vs-speech confidence needed."
    )
    min_sfx_confidence: float = Field(
        default=MIN_SFX_CONFIDENCE, ge=0, le=2, description="Sound-onsets-vs-motion confidence needed."
    )
    sync_checks: bool = Field(default=True, description="Score lip-sync and sound-effect sync on every master.")
    # Colour-histogram intersection of the character's face between clips (media/consistency.py): the
    # same face in other framings, seeds and languages measured 0.77-0.92, other pictures 0.0-0.42.
    min_character_consistency: float | None = Field(
        default=0.5,
        ge=0,
        le=1,
        description="How alike (0..1) a character reference's face must look between the scenes and languages "
        "that use it; below it the run ends needs_review. null: not checked.",
    )
    loudness_tolerance_lu: float = Field(default=2.0, gt=0, le=10)
    max_regenerations: int = Field(default=2, ge=0, le=10, description="New seeds tried before human review.")
    on_review: Literal["flag", "pause"] = Field(
        default="flag",
        description="A master still failing after its regenerations: 'flag' finishes the run as needs_review; "
        "'pause' suspends the run in Prefect until a reviewer approves or rejects it.",
    )
    review_timeout_s: int = Field(
        default=86_400,
        ge=10,
        le=7 * 86_400,
        description="How long a paused run waits for its reviewer before needs_review.",
    )


class Brief(_Model):
    campaign_id: str = Field(pattern=_ID)
    title: str = Field(default="", max_length=200)
    brand: Brand
    languages: list[Annotated[str, Field(pattern=_LANGUAGE)]] = Field(min_length=1, max_length=12)
    platforms: list[str] = Field(min_length=1, description="Names from the platform registry or overrides.")
    platform_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per platform: fields that replace the registry's (or a whole new platform by a new name).",
    )
    master: MasterFormat = MasterFormat()
    references: list[Reference] = Field(default_factory=list, max_length=50)
    scenes: list[Scene] = Field(min_length=1, max_length=30)
    music: Music | None = None
    voices: dict[str, SpeakerVoice] = Field(
        default_factory=dict, max_length=20, description="Per dialogue speaker: how their lines are spoken."
    )
    generation: GenerationSettings = GenerationSettings()
    qa: QAThresholds = QAThresholds()
    base_uri: str | None = Field(
        default=None,
        description="Where relative reference paths resolve, set by whoever loads the brief (load_brief: the "
        "brief's folder; the inbox: its folder or prefix). Never a root by itself: see tasks/ingest.py.",
    )

    @model_validator(mode="after")
    def _cross_fields(self) -> Brief:
        issues = cross_field_issues(self.model_dump(mode="json"))
        if issues:
            raise ValueError("; ".join(f"{issue.loc}: {issue.message}" for issue in issues))
        return self

    @property
    def duration_s(self) -> float:
        return sum(scene.duration_s for scene in self.scenes)

    def platform_specs(self) -> dict[str, PlatformSpec]:
        registry = resolve_platforms(self.platform_overrides)
        return {name: registry[name] for name in self.platforms}

    def voice_of(self, speaker: str) -> SpeakerVoice:
        """The speaker's voice settings (the defaults when the brief gives none)."""
        return self.voices.get(speaker) or SpeakerVoice()

    def reference(self, ref_id: str) -> Reference:
        return next(ref for ref in self.references if ref.id == ref_id)

    def content_hash(self) -> str:
        """Identity of what gets produced: the brief minus where it was loaded from."""
        body = self.model_dump(mode="json", exclude={"base_uri"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class BriefIssue(_Model):
    loc: str
    message: str


class BriefError(InputError):
    """A brief that cannot be produced, with every problem found."""

    def __init__(self, source: str, issues: list[BriefIssue]):
        self.source = source
        self.issues = issues
        lines = [f"{source}: {len(issues)} problem{'s' * (len(issues) != 1)}"]
        lines += [f"  {issue.loc}: {issue.message}" for issue in issues]
        super().__init__("\n".join(lines))


def load_brief(path: str | Path, limits: DocumentLimits = DEFAULT_LIMITS) -> Brief:
    """Read and validate a brief file (.yaml, .yml or .json); relative references resolve next to it."""
    path = Path(path)
    source = str(path)
    try:
        text = read_capped(path, limits)
    except DocumentError as exc:
        raise BriefError(source, [BriefIssue(loc=exc.where, message=exc.message)]) from None
    data = parse_document(text, source, as_json=path.suffix.lower() == ".json", limits=limits)
    return validate_brief(data, source, base_uri=str(path.resolve().parent))


def parse_document(text: str, source: str, *, as_json: bool = False, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """The parsed document, within ``limits`` (bytes, nesting, aliases); BriefError with the line otherwise."""
    try:
        return parse_limited(text, as_json=as_json, limits=limits)
    except DocumentError as exc:
        raise BriefError(source, [BriefIssue(loc=exc.where, message=exc.message)]) from None


def validate_brief(data: Any, source: str = "<brief>", *, base_uri: str | None = None) -> Brief:
    """Validate a parsed document, reporting field errors and cross-field errors together.

    ``base_uri`` is where the brief's relative paths resolve, given by the caller that knows where the
    document came from; the document itself may not say (it would pick the folder its references are
    read from)."""
    if not isinstance(data, dict):
        raise BriefError(
            source,
            [BriefIssue(loc="(document)", message=f"a brief is a mapping of fields, got {type(data).__name__}")],
        )
    issues = cross_field_issues(data)
    if "base_uri" in data:
        issues.insert(
            0,
            BriefIssue(
                loc="base_uri",
                message="a brief cannot set where its files are read from; relative paths resolve in the "
                "brief's own folder (remove base_uri)",
            ),
        )
    try:
        brief = Brief.model_validate({**data, "base_uri": base_uri})
    except ValidationError as exc:
        field_issues = [_from_pydantic(err) for err in exc.errors() if err["loc"]]
        raise BriefError(source, _unique(issues + field_issues)) from None
    except RecursionError:  # the document's own limits make this unreachable from load_brief
        raise BriefError(source, [BriefIssue(loc="(document)", message="nested too deeply")]) from None
    if issues:
        raise BriefError(source, issues)
    return brief


def _from_pydantic(err: Any) -> BriefIssue:
    loc = _format_loc(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    pattern = (err.get("ctx") or {}).get("pattern")
    if pattern in _PATTERN_HELP:
        message = _PATTERN_HELP[pattern]
    if err["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; docs/briefs.md lists the fields)"
    elif err["type"] != "missing" and not isinstance(err.get("input"), dict | list):
        message = f"{message} (got {_shown(err.get('input'))})"
    elif err["type"] != "missing":
        message = f"{message} (got a {'mapping' if isinstance(err.get('input'), dict) else 'list'})"
    return BriefIssue(loc=loc, message=message)


def _shown(value: Any, limit: int = 60) -> str:
    """A value from the brief as a message quotes it: repr (control characters escaped), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(str(value)):,} characters)"


def _format_loc(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _unique(issues: list[BriefIssue]) -> list[BriefIssue]:
    seen: dict[tuple[str, str], BriefIssue] = {}
    for issue in issues:
        seen.setdefault((issue.loc, issue.message), issue)
    return list(seen.values())


def _is_hex_colour(value: str) -> bool:
    return len(value) == 7 and value[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in value[1:])


def _text(value: Any) -> str | None:
    """``value`` when it is a string: cross-field rules skip other types, which pydantic reports."""
    return value if isinstance(value, str) else None


def _texts(value: Any) -> list[str]:
    """The strings of a list (anything else is pydantic's to report)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) for the well-formed entries of a list; malformed ones are pydantic's to report."""
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[Any, Any]:
    """``value`` when it is a mapping, else an empty one (anything else is pydantic's to report)."""
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """``value`` when it is a number: cross-field rules skip other types, which pydantic reports."""
    return value if isinstance(value, int | float) else None


def _duplicates(ids: list[tuple[int, Any]], path: str) -> list[BriefIssue]:
    first: dict[Any, int] = {}
    issues = []
    for index, value in ids:
        if value in first:
            issues.append(
                BriefIssue(
                    loc=f"{path}[{index}].id",
                    message=f"duplicate id {_shown(value)} (first used at {path}[{first[value]}])",
                )
            )
        else:
            first[value] = index
    return issues


def cross_field_issues(data: dict[str, Any]) -> list[BriefIssue]:
    """Every rule that spans fields, checked on a raw (possibly partly invalid) document."""
    references = _items(data.get("references"))
    scenes = _items(data.get("scenes"))
    languages = _texts(data.get("languages"))
    kinds = {r["id"]: _text(r.get("kind")) for _, r in references if _text(r.get("id"))}
    roles = {r["id"]: _text(r.get("role")) for _, r in references if _text(r.get("id"))}
    voices = _mapping(data.get("voices"))
    rates = _speaker_rates(voices)
    issues = _id_issues(references, scenes, languages) + _role_issues(references)
    for s_index, scene in scenes:
        issues += _scene_issues(f"scenes[{s_index}]", scene, kinds, languages, rates)
        issues += _continuation_issues(s_index, scene, roles)
    issues += _music_issues(data.get("music"), kinds, roles)
    issues += _voice_issues(voices, scenes, languages)
    issues += _platform_issues(data, scenes)
    return issues


def _id_issues(
    references: list[tuple[int, dict[str, Any]]], scenes: list[tuple[int, dict[str, Any]]], languages: list[str]
) -> list[BriefIssue]:
    """Reference and scene ids are unique, and no language is listed twice."""
    issues = _duplicates([(i, r["id"]) for i, r in references if _text(r.get("id"))], "references")
    issues += _duplicates([(i, s["id"]) for i, s in scenes if _text(s.get("id"))], "scenes")
    for index, lang in enumerate(languages):
        if languages.index(lang) != index:
            issues.append(BriefIssue(loc=f"languages[{index}]", message=f"{_shown(lang)} is listed twice"))
    return issues


def _role_issues(references: list[tuple[int, dict[str, Any]]]) -> list[BriefIssue]:
    """Each reference's role is one its kind can play."""
    issues: list[BriefIssue] = []
    for index, ref in references:
        allowed = ROLES_BY_KIND.get(_text(ref.get("kind")) or "")
        if allowed and ref.get("role") not in allowed:
            issues.append(
                BriefIssue(
                    loc=f"references[{index}].role",
                    message=f"role {_shown(ref.get('role'))} does not fit an {ref.get('kind')} reference;"
                    f" accepted: {', '.join(allowed)}",
                )
            )
    return issues


def _speaker_rates(voices: dict[Any, Any]) -> dict[Any, int]:
    """Each speaker's pace (words a minute) where the voices give a valid one."""
    return {
        speaker: voice["rate_wpm"]
        for speaker, voice in voices.items()
        if isinstance(voice, dict)
        and isinstance(voice.get("rate_wpm"), int)
        and RATE_WPM_RANGE[0] <= voice["rate_wpm"] <= RATE_WPM_RANGE[1]
    }


def _continuation_issues(index: int, scene: dict[str, Any], roles: dict[Any, str | None]) -> list[BriefIssue]:
    """A scene that continues the previous one has one before it, and no 'continue' reference besides."""
    if not scene.get("continue_previous"):
        return []
    issues: list[BriefIssue] = []
    if index == 0:
        issues.append(
            BriefIssue(loc="scenes[0].continue_previous", message="the first scene has no previous scene to continue")
        )
    if any(roles.get(r) == "continue" for r in _texts(scene.get("references"))):
        issues.append(
            BriefIssue(
                loc=f"scenes[{index}].continue_previous",
                message="a scene continues either the previous scene or a 'continue' video reference, not both",
            )
        )
    return issues


def _music_issues(music: Any, kinds: dict[Any, str | None], roles: dict[Any, str | None]) -> list[BriefIssue]:
    """The music track, when the brief names one, is a defined audio reference with role music."""
    ref_id = _text(_mapping(music).get("reference"))
    if ref_id is None:
        return []
    if ref_id not in kinds:
        return [
            BriefIssue(
                loc="music.reference",
                message=f"unknown reference {_shown(ref_id)}; defined: {', '.join(map(str, kinds)) or 'none'}",
            )
        ]
    if kinds[ref_id] != "audio" or roles[ref_id] != "music":
        return [
            BriefIssue(
                loc="music.reference",
                message=f"{_shown(ref_id)} is a {kinds[ref_id]} {roles[ref_id]} reference; "
                "music must be an audio reference with role music",
            )
        ]
    return []


def _voice_issues(
    voices: dict[Any, Any], scenes: list[tuple[int, dict[str, Any]]], languages: list[str]
) -> list[BriefIssue]:
    """Voices name speakers that speak; every spoken language has a voice (its own or the speaker's)."""
    issues: list[BriefIssue] = []
    lines = [line for _, scene in scenes for _, line in _items(scene.get("dialogue"))]
    speakers = {line["speaker"] for line in lines if _text(line.get("speaker"))}
    for speaker, voice in voices.items():
        if speaker not in speakers:
            issues.append(
                BriefIssue(
                    loc=f"voices.{speaker}",
                    message=f"no dialogue line has speaker {_shown(speaker)}; speakers: "
                    f"{', '.join(map(_shown, sorted(speakers))) or 'none'}",
                )
            )
        given = voice.get("voice") if isinstance(voice, dict) else None
        for language in given if isinstance(given, dict) else {}:
            if language not in languages:
                issues.append(
                    BriefIssue(
                        loc=f"voices.{speaker}.voice.{language}",
                        message=f"{_shown(language)} is not one of the brief's languages ({', '.join(languages)})",
                    )
                )
    if speakers:
        for index, language in enumerate(languages):
            given_for = [voices.get(speaker) for speaker in speakers]
            covered = all(
                isinstance(v, dict) and isinstance(v.get("voice"), dict) and language in v["voice"] for v in given_for
            )
            if espeak_voice(language) is None and not covered:
                issues.append(
                    BriefIssue(
                        loc=f"languages[{index}]",
                        message=f"no built-in voice speaks {_shown(language)}; languages with one: "
                        f"{', '.join(LANGUAGE_VOICES)} (or give each speaker a voice for it under voices)",
                    )
                )
    return issues


def _scene_issues(
    path: str, scene: dict[str, Any], kinds: dict[Any, Any], languages: list[str], rates: dict[Any, int]
) -> list[BriefIssue]:
    """A scene's references, sound cues and dialogue against the brief's references and languages."""
    duration = _number(scene.get("duration_s"))
    issues = _scene_reference_issues(path, scene.get("references"), kinds)
    for c_index, cue in _items(scene.get("sound_cues")):
        at = _number(cue.get("at_s"))
        if duration is not None and at is not None and at >= duration:
            issues.append(
                BriefIssue(
                    loc=f"{path}.sound_cues[{c_index}].at_s",
                    message=f"{at} s is past the scene's end; accepted: 0 to < {duration} s",
                )
            )
    for d_index, line in _items(scene.get("dialogue")):
        issues += _line_issues(f"{path}.dialogue[{d_index}]", line, duration, languages, rates)
    return issues


def _scene_reference_issues(path: str, given: Any, kinds: dict[Any, Any]) -> list[BriefIssue]:
    """A scene's references are defined, listed once, and within one generation request's limits."""
    issues: list[BriefIssue] = []
    given = given if isinstance(given, list) else []
    used = _texts(given)
    for r_index, ref_id in enumerate(given):
        if not isinstance(ref_id, str):
            continue
        if ref_id not in kinds:
            issues.append(
                BriefIssue(
                    loc=f"{path}.references[{r_index}]",
                    message=f"unknown reference {_shown(ref_id)}; defined: {', '.join(map(str, kinds)) or 'none'}",
                )
            )
        elif used.index(ref_id) != r_index:
            issues.append(BriefIssue(loc=f"{path}.references[{r_index}]", message=f"{_shown(ref_id)} is listed twice"))
    images = sum(1 for ref_id in set(used) if kinds.get(ref_id) == "image")
    clips = sum(1 for ref_id in set(used) if kinds.get(ref_id) in ("video", "audio"))
    if images > MAX_IMAGE_REFERENCES:
        issues.append(
            BriefIssue(
                loc=f"{path}.references",
                message=f"{images} image references; one generation request accepts at most {MAX_IMAGE_REFERENCES}",
            )
        )
    if clips > MAX_CLIP_REFERENCES:
        issues.append(
            BriefIssue(
                loc=f"{path}.references",
                message=f"{clips} video/audio references; one generation request accepts at most {MAX_CLIP_REFERENCES}",
            )
        )
    return issues


def _line_issues(
    path: str, line: dict[str, Any], duration: float | None, languages: list[str], rates: dict[Any, int]
) -> list[BriefIssue]:
    """A dialogue line has text in each of the brief's languages and no other, fits the scene at its
    speaker's pace, and starts before the scene ends."""
    issues: list[BriefIssue] = []
    text = line.get("text")
    if isinstance(text, dict):
        missing = [lang for lang in languages if not str(text.get(lang) or "").strip()]
        extra = [lang for lang in text if lang not in languages]
        rate = rates.get(line.get("speaker")) if isinstance(line.get("speaker"), str) else None
        issues += _pace_issues(path, line, text, duration, rate)
        if missing:
            issues.append(
                BriefIssue(
                    loc=f"{path}.text",
                    message=f"no text for language(s) {', '.join(missing)}; every line "
                    f"needs each of the brief's languages ({', '.join(languages)})",
                )
            )
        if extra:
            issues.append(
                BriefIssue(
                    loc=f"{path}.text",
                    message=f"language(s) {', '.join(map(str, extra))} are not in the "
                    f"brief's languages ({', '.join(languages)})",
                )
            )
    start = _number(line.get("start_s"))
    if duration is not None and start is not None and start >= duration:
        issues.append(BriefIssue(loc=f"{path}.start_s", message=f"{start} s is past the scene's end ({duration} s)"))
    return issues


def speech_seconds(text: str, rate_wpm: int | None = None) -> float:
    """About how long ``text`` takes to say: its words at ``rate_wpm``, or its characters at
    SPEECH_CHARS_PER_S when no voice sets a pace. The one estimate of a line's length (validation, pacing)."""
    if rate_wpm is None:
        return len(text.strip()) / SPEECH_CHARS_PER_S
    return len(text.split()) * 60.0 / rate_wpm


def _pace_issues(
    path: str, line: dict[str, Any], text: dict[Any, Any], duration: float | None, rate_wpm: int | None = None
) -> list[BriefIssue]:
    """Each language's line must fit between its start and the scene's end at its speaker's pace."""
    if duration is None:
        return []
    start = _number(line.get("start_s")) or 0.0
    pace = (
        f"{SPEECH_CHARS_PER_S:g} characters a second"
        if rate_wpm is None
        else f"{rate_wpm} words a minute (voices.{line.get('speaker')}.rate_wpm)"
    )
    issues = []
    for language, words in text.items():
        if not isinstance(words, str) or not words.strip():
            continue
        needed = speech_seconds(words, rate_wpm)
        if start + needed > duration:
            issues.append(
                BriefIssue(
                    loc=f"{path}.text.{language}",
                    message=f"the {language} line {_shown(words.strip(), 40)} needs about {needed:.1f} s at {pace}, "
                    f"but the scene leaves {max(duration - start, 0):.1f} s after start_s {start:g}; "
                    "shorten the line, start it earlier or lengthen the scene",
                )
            )
    return issues


def _platform_issues(data: dict[str, Any], scenes: list[tuple[int, dict[str, Any]]]) -> list[BriefIssue]:
    issues: list[BriefIssue] = []
    overrides = _mapping(data.get("platform_overrides"))
    known = resolve_platforms()
    for name, fields in overrides.items():
        if not isinstance(fields, dict) or not isinstance(name, str):
            continue
        try:
            known.update(resolve_platforms({name: fields}))
        except ValidationError as exc:
            issues += [
                BriefIssue(
                    loc=f"platform_overrides.{name}.{_format_loc(err['loc'])}",
                    message=_from_pydantic(err).message,
                )
                for err in exc.errors()
            ]
    names = _texts(data.get("platforms"))
    total = sum(s["duration_s"] for _, s in scenes if isinstance(s.get("duration_s"), int | float))
    for index, name in enumerate(names):
        if names.index(name) != index:
            issues.append(BriefIssue(loc=f"platforms[{index}]", message=f"{_shown(name)} is listed twice"))
            continue
        if name not in known:
            if name not in overrides:
                issues.append(
                    BriefIssue(
                        loc=f"platforms[{index}]",
                        message=f"unknown platform {_shown(name)}; accepted:"
                        f" {', '.join(sorted(known))} or a name defined in platform_overrides",
                    )
                )
            continue
        max_s, min_s = known[name].max_duration_s, known[name].min_duration_s
        if total and total > max_s:
            issues.append(
                BriefIssue(
                    loc=f"platforms[{index}]",
                    message=f"the scenes add up to {total:g} s; {name} accepts at most {max_s:g} s",
                )
            )
        if total and total < min_s:
            issues.append(
                BriefIssue(
                    loc=f"platforms[{index}]",
                    message=f"the scenes add up to {total:g} s; {name} needs at least {min_s:g} s",
                )
            )
    return issues
