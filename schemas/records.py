"""Small records that tasks hand to each other: URIs, hashes, numbers — never frames or bytes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from syncreel.schemas.brief import Brief
from syncreel.schemas.platforms import PlatformSpec

Verdict = Literal["pass", "warn", "fail"]


def worst(verdicts: Iterable[str]) -> Verdict:
    """The roll-up of several verdicts: any fail fails, else any warn warns, else pass."""
    seen = set(verdicts)
    return "fail" if "fail" in seen else "warn" if "warn" in seen else "pass"


def deliverable_path(campaign_id: str, language: str, platform: str) -> str:
    """Where a deliverable goes when a run is copied out: ``<lang>/<campaign>_<lang>_<platform>.mp4``."""
    return f"{language}/{campaign_id}_{language}_{platform}.mp4"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CampaignPlan(_Record):
    """A validated brief bound to a run: what will be produced, scene × language × platform."""

    run_id: str
    run_key: str
    brief: Brief
    platforms: dict[str, PlatformSpec]
    attempt: int
    preview: bool = False  # masters only, small and fast, for a producer to approve scene by scene
    # Per "scene:language": the attempt (hence seed) generation starts from; 0 when absent.
    first_attempts: dict[str, int] = {}

    def first_attempt(self, scene_id: str, language: str) -> int:
        return self.first_attempts.get(f"{scene_id}:{language}", 0)

    @property
    def scene_languages(self) -> list[tuple[str, str]]:
        return [(scene.id, lang) for lang in self.brief.languages for scene in self.brief.scenes]


class IngestedReference(_Record):
    id: str
    kind: str
    role: str
    uri: str
    sha256: str
    source_sha256: str
    media_info: dict[str, Any]
    # What the upload was (probe of the file as briefed) and what its role's analysis found
    # (media/analysis.py: tempo and beats, speech segments, motion and shots, face box and colours).
    source_info: dict[str, Any] = {}
    analysis: dict[str, Any] = {}


class MasterRecord(_Record):
    """One generated scene clip (video + audio) in the asset store."""

    scene_id: str
    language: str
    uri: str
    sha256: str
    generation_key: str
    backend: str
    model_version: str
    seed: int
    attempt: int
    duration_s: float
    width: int
    height: int
    fps: float
    unused_reference_roles: tuple[str, ...] = ()
    # Times (s) of the sound events the backend reports (the sound-effect sync check's per-event table).
    event_times_s: tuple[float, ...] = ()
    # The audio as stems (one WAV, one channel per name), when the backend makes them.
    stems_uri: str | None = None
    stem_names: tuple[str, ...] = ()
    cached: bool = False

    @property
    def subject(self) -> str:
        """Its QA subject: every attempt's evidence is kept under its own name."""
        return f"master:{self.scene_id}:{self.language}:a{self.attempt}"


class CheckOutcome(_Record):
    check: str
    verdict: Verdict
    message: str
    metrics: dict[str, Any]


# What the gate does with a master: keep it, generate it again with a new seed, or hand it to a person.
Decision = Literal["pass", "regenerate", "needs_review"]


class QAReport(_Record):
    subject: str  # "master:<scene>:<lang>:a<attempt>" | "deliverable:<lang>:<platform>" | "character:<ref>"
    verdict: Verdict
    checks: tuple[CheckOutcome, ...]
    decision: Decision | None = None  # masters only

    @classmethod
    def from_checks(cls, subject: str, checks: list[CheckOutcome], decision: Decision | None = None) -> QAReport:
        verdict = worst(check.verdict for check in checks)
        return cls(subject=subject, verdict=verdict, checks=tuple(checks), decision=decision)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [check for check in self.checks if check.verdict == "fail"]


class SpotRecord(_Record):
    """The assembled spot of one language: every scene joined, the master all variants come from."""

    language: str
    uri: str
    sha256: str
    duration_s: float
    width: int
    height: int
    fps: float
    # Where each scene starts on the spot's clock (beat sync can move a cut from where the durations put it).
    scene_starts_s: tuple[float, ...] = ()
    # The cuts against the music's beat grid (media.assemble.Cut.to_dict), the mix's report, and the
    # mixed layers (one WAV, a channel per name) kept for an editor to remix.
    cuts: tuple[dict[str, Any], ...] = ()
    beat_grid: dict[str, Any] | None = None
    mix: dict[str, Any] = {}
    stems_uri: str | None = None
    stem_names: tuple[str, ...] = ()
    cached: bool = False


class DeliverableRecord(_Record):
    language: str
    platform: str
    uri: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    duration_s: float
    loudness_lufs: float | None = None
    reframe: dict[str, Any] = {}
    cached: bool = False


class RunSummary(_Record):
    run_id: str
    campaign_id: str
    status: str
    manifest_uri: str
    deliverables: tuple[DeliverableRecord, ...]
    qa: tuple[QAReport, ...]
    generated: int  # generation attempts run by this call (a regenerated scene counts each attempt)
    reused: int  # generation attempts found finished (earlier call, or before a crash)
    seconds: float
