"""What a run's QA report shows, read from the run-state database as plain records (tasks/report.py
renders them): the run, every scene attempt with its checks and generation, each character's
consistency checks, every deliverable with its checks and crop path, and the human decisions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncreel.schemas.records import (
    REVIEW_SUBJECT,
    approval_subject,
    character_of,
    deliverable_subject,
    master_of,
)
from syncreel.store import runs
from syncreel.store.models import Asset, QAResult, ReferenceAsset


@dataclass(frozen=True)
class Check:
    """One QA row: a check's verdict on a subject, its message and its measurements."""

    subject: str
    check: str
    verdict: str
    message: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Attempt:
    """One generation attempt of a scene in a language: its master's checks and its generation row."""

    scene_id: str
    language: str
    attempt: int
    checks: tuple[Check, ...]
    generation: dict[str, Any]  # the generations row ({} when there is none): seed, backend, seconds…
    master_uri: str | None
    approvals: tuple[Check, ...]  # a producer's decision on the scene's preview

    @property
    def decision(self) -> str | None:
        """The gate's decision on this attempt."""
        return next((c.metrics["decision"] for c in self.checks if c.metrics.get("decision")), None)


@dataclass(frozen=True)
class DeliverableReport:
    language: str
    platform: str
    uri: str
    size_bytes: int
    spec: dict[str, Any]
    reframe: dict[str, Any]  # the render's crop path and loudness, as its output record holds them
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class RunReport:
    run: dict[str, Any]  # the campaign_runs row, with the brief's title as campaign_title
    brief: dict[str, Any]
    reviews: tuple[Check, ...]
    attempts: tuple[Attempt, ...]  # by scene and language, oldest attempt first
    characters: dict[str, tuple[Check, ...]]  # by character reference id
    deliverables: tuple[DeliverableReport, ...]


def _check(row: QAResult) -> Check:
    return Check(row.subject, row.check, row.verdict, row.message, dict(row.metrics))


def run_report(session: Session, run_id: str | None = None) -> RunReport:
    """The report's records of a run (by id or unique prefix; the newest when None)."""
    detail = runs.run_detail(session, run_id)
    run = detail["run"]
    by_subject: dict[str, list[Check]] = defaultdict(list)
    for row in runs.qa_results(session, run["id"]):
        by_subject[row.subject].append(_check(row))
    characters = {
        character: tuple(checks)
        for subject, checks in sorted(by_subject.items())
        if (character := character_of(subject)) is not None
    }
    return RunReport(
        run=run,
        brief=runs.get_run(session, run["id"]).brief,
        reviews=tuple(by_subject.get(REVIEW_SUBJECT, ())),
        attempts=_attempts(session, detail["generations"], by_subject),
        characters=characters,
        deliverables=_deliverables(session, detail["deliverables"], by_subject),
    )


def _attempts(
    session: Session, generations: list[dict[str, Any]], by_subject: dict[str, list[Check]]
) -> tuple[Attempt, ...]:
    by_attempt = {(g["scene_id"], g["language"], (g["parameters"] or {}).get("attempt", 0)): g for g in generations}
    asset_ids = [g["asset_id"] for g in generations if g["asset_id"]]
    uris = {
        asset_id: uri for asset_id, uri in session.execute(select(Asset.id, Asset.uri).where(Asset.id.in_(asset_ids)))
    }
    attempts = []
    for subject in sorted((s for s in by_subject if master_of(s)), key=lambda s: s.rsplit(":a", 1)):
        scene_id, language, attempt = master_of(subject) or ("", "", 0)
        generation = by_attempt.get((scene_id, language, attempt), {})
        approvals = by_subject.get(approval_subject(scene_id, language), [])
        attempts.append(
            Attempt(
                scene_id=scene_id,
                language=language,
                attempt=attempt,
                checks=tuple(by_subject[subject]),
                generation=generation,
                master_uri=uris.get(generation.get("asset_id") or 0),
                approvals=tuple(approvals),
            )
        )
    return tuple(attempts)


def _deliverables(
    session: Session, deliverables: list[dict[str, Any]], by_subject: dict[str, list[Check]]
) -> tuple[DeliverableReport, ...]:
    out = []
    for d in deliverables:
        output = runs.get_output(session, d["cache_key"])
        out.append(
            DeliverableReport(
                language=d["language"],
                platform=d["platform"],
                uri=d["uri"],
                size_bytes=d["size_bytes"],
                spec=d["spec"],
                reframe=dict(output.record.get("reframe") or {}) if output else {},
                checks=tuple(by_subject.get(deliverable_subject(d["language"], d["platform"]), ())),
            )
        )
    return tuple(out)


def reference_analysis(session: Session, source_sha256: str, kind: str, role: str) -> tuple[dict[str, Any], str] | None:
    """(analysis, normalized asset URI) of an ingested upload in this kind and role, if it was ingested."""
    row = session.execute(
        select(ReferenceAsset.analysis, Asset.uri)
        .join(Asset, Asset.id == ReferenceAsset.asset_id)
        .where(ReferenceAsset.source_sha256 == source_sha256, ReferenceAsset.kind == kind, ReferenceAsset.role == role)
    ).first()
    return (row[0], row[1]) if row else None
