"""Small records that tasks hand to each other: URIs, hashes, numbers — never frames or bytes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from syncreel.schemas.brief import Brief, Scene
from syncreel.schemas.platforms import PlatformSpec

Verdict = Literal["pass", "warn", "fail"]


def worst(verdicts: Iterable[str]) -> Verdict:
    """The roll-up of several verdicts: any fail fails, else any warn warns, else pass."""
    seen = set(verdicts)
    return "fail" if "fail" in seen else "warn" if "warn" in seen else "pass"


def deliverable_path(campaign_id: str, language: str, platform: str) -> str:
    """Where a deliverable goes when a run is copied out: ``<lang>/<campaign>_<lang>_<platform>.mp4``."""
    return f"{language}/{campaign_id}_{language}_{platform}.mp4"


# QA subjects: what a QA row (and a QAReport) is about. A master keeps every attempt's evidence under
# its own name; a producer's decision on a previewed scene and a reviewer's on a paused run are rows too.
REVIEW_SUBJECT = "review"


def master_subject(scene_id: str, language: str, attempt: int) -> str:
    return f"master:{scene_id}:{language}:a{attempt}"


def deliverable_subject(language: str, platform: str) -> str:
    return f"deliverable:{language}:{platform}"


def character_subject(reference_id: str) -> str:
    return f"character:{reference_id}"


def character_of(subject: str) -> str | None:
    """The character reference id of a character's subject; None for any other subject."""
    kind, _, reference_id = subject.partition(":")
    return reference_id if kind == "character" else None


def approval_subject(scene_id: str, language: str) -> str:
    """Where a producer's approval or rejection of a previewed scene is recorded."""
    return f"approval:{scene_id}:{language}"


def master_of(subject: str) -> tuple[str, str, int] | None:
    """(scene id, language, attempt) of a master's subject; None for any other subject."""
    kind, *rest = subject.split(":")
    if kind != "master" or len(rest) != 3 or not rest[2].startswith("a"):
        return None
    return rest[0], rest[1], int(rest[2].removeprefix("a"))


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

    def scene(self, scene_id: str) -> Scene:
        return next(scene for scene in self.brief.scenes if scene.id == scene_id)

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
        return master_subject(self.scene_id, self.language, self.attempt)


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

    @property
    def subject(self) -> str:
        return deliverable_subject(self.language, self.platform)


class Review(BaseModel):
    """What the reviewer of a paused run answers (tasks/review.py renders it as Prefect's input form)."""

    model_config = ConfigDict(extra="forbid")

    approve: bool = Field(description="Approve the flagged scenes as they are (true) or reject them (false).")
    reviewer: str = Field(default="", max_length=120, description="Who decided.")
    note: str = Field(default="", max_length=2000, description="Why; shown in the run report.")


class RunRecords(_Record):
    """Everything one call of a run made, as publish and the manifest read it."""

    started_at: float  # time.time() when the call began
    masters: tuple[MasterRecord, ...]  # the one each scene keeps
    generations: tuple[MasterRecord, ...]  # every attempt's, counted as generated or reused
    reports: tuple[QAReport, ...]  # every attempt's, so the report shows what was regenerated and why
    references: tuple[IngestedReference, ...] = ()
    spots: tuple[SpotRecord, ...] = ()
    deliverables: tuple[DeliverableRecord, ...] = ()
    review: Review | None = None


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
