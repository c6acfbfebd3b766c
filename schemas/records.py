"""Small records that tasks hand to each other: URIs, hashes, numbers — never frames or bytes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.brief import Brief
from schemas.platforms import PlatformSpec

Verdict = Literal["pass", "warn", "fail"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CampaignPlan(_Record):
    """A validated brief bound to a run: what will be produced, scene × language × platform."""

    run_id: str
    run_key: str
    brief: Brief
    platforms: dict[str, PlatformSpec]
    attempt: int

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
    # The audio as stems (one WAV, one channel per name), when the backend makes them.
    stems_uri: str | None = None
    stem_names: tuple[str, ...] = ()
    cached: bool = False


class CheckOutcome(_Record):
    check: str
    verdict: Verdict
    message: str
    metrics: dict[str, Any]


class QAReport(_Record):
    subject: str  # "master:<scene>:<lang>" | "spot:<lang>" | "deliverable:<lang>:<platform>"
    verdict: Verdict
    checks: tuple[CheckOutcome, ...]

    @classmethod
    def from_checks(cls, subject: str, checks: list[CheckOutcome]) -> QAReport:
        verdicts = {check.verdict for check in checks}
        verdict: Verdict = "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else "pass"
        return cls(subject=subject, verdict=verdict, checks=tuple(checks))

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
    generated: int
    reused: int
    seconds: float
