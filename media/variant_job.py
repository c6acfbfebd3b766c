"""One master's platform variants as a person asks for them outside a campaign (``syncreel variants``):
platforms by name with overrides from a file, captions and subject hints from files; rendered in one
fan-out (`media.variants.render_variants`) and checked against each platform (`media.checks`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from syncreel.media.captions import Cue, read_subtitles
from syncreel.media.checks import CheckedVariant, check_variants
from syncreel.media.probe import probe
from syncreel.media.reframe import SubjectHint
from syncreel.media.variants import render_variants
from syncreel.schemas.document import parse_limited, read_capped
from syncreel.schemas.errors import InputError
from syncreel.schemas.platforms import PlatformSpec, resolve_platforms


@dataclass(frozen=True)
class VariantJob:
    video: Path
    duration_s: float  # the master's: what every variant should last
    specs: dict[str, PlatformSpec]
    cues: tuple[Cue, ...] = ()
    hints: tuple[SubjectHint, ...] = ()

    @classmethod
    def from_files(
        cls,
        video: Path,
        platforms: Sequence[str],
        *,
        overrides: Path | None = None,
        captions: Path | None = None,
        hints: Path | None = None,
    ) -> VariantJob:
        """``overrides``: YAML/JSON as a brief's ``platform_overrides``; ``captions``: SRT or WebVTT;
        ``hints``: a JSON list of `SubjectHint` dicts. Raises InputError for an unknown platform, and
        the readers' errors (DocumentError, ValidationError, ValueError, OSError, MediaError) as they are."""
        registry = resolve_platforms(parse_limited(read_capped(overrides)) if overrides else None)
        unknown = [name for name in platforms if name not in registry]
        if unknown:
            raise InputError(f"unknown platform {', '.join(unknown)}; accepted: {', '.join(sorted(registry))}")
        specs = {name: registry[name] for name in dict.fromkeys(platforms)}
        cues = tuple(read_subtitles(captions)) if captions else ()
        subject_hints = tuple(SubjectHint.from_dict(h) for h in json.loads(hints.read_text())) if hints else ()
        return cls(video, probe(video).duration_s, specs, cues, subject_hints)

    def render(
        self, out: Path, *, language: str | None = None, x264_preset: str = "veryfast", faces: bool = True
    ) -> dict[str, CheckedVariant]:
        """Every variant written to ``out/<platform>.mp4`` (and its side files), checked."""
        results = render_variants(
            self.video,
            self.specs,
            out,
            cues=self.cues,
            language=language,
            hints=self.hints,
            x264_preset=x264_preset,
            faces=faces,
        )
        return check_variants(results, self.specs, self.duration_s)
