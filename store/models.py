"""Run state: campaign runs, scene jobs, assets, generations, deliverables, QA results, stage outputs.

Status changes go through `transition()`, which allows only the moves in ALLOWED, so a run or scene job
can never jump from, say, pending to succeeded without passing through the work in between.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class RunStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    needs_review = "needs_review"


class SceneStatus(enum.StrEnum):
    pending = "pending"
    generating = "generating"
    generated = "generated"
    passed = "passed"
    needs_review = "needs_review"
    failed = "failed"


class GenerationStatus(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


_ANY_RUN = set(RunStatus)
ALLOWED: dict[type[enum.StrEnum], dict[str, set[str]]] = {
    RunStatus: {
        RunStatus.pending: {RunStatus.running},
        # A running run ends, or is claimed again by a new attempt (its owner died).
        RunStatus.running: {RunStatus.running, RunStatus.succeeded, RunStatus.failed, RunStatus.needs_review},
        # Any finished run may be run again: a re-run re-checks it and finishes what is missing.
        RunStatus.succeeded: {RunStatus.running},
        RunStatus.failed: {RunStatus.running},
        RunStatus.needs_review: {RunStatus.running},
    },
    SceneStatus: {
        SceneStatus.pending: {SceneStatus.generating, SceneStatus.generated},  # generated: found in the cache
        SceneStatus.generating: {SceneStatus.generating, SceneStatus.generated, SceneStatus.failed},
        SceneStatus.generated: {
            SceneStatus.generating,
            SceneStatus.generated,
            SceneStatus.passed,
            SceneStatus.needs_review,
        },
        SceneStatus.passed: {SceneStatus.generating, SceneStatus.generated},
        # passed: a reviewer approved the flagged master as it is
        SceneStatus.needs_review: {SceneStatus.generating, SceneStatus.generated, SceneStatus.passed},
        SceneStatus.failed: {SceneStatus.generating, SceneStatus.generated},
    },
}


class InvalidTransition(ValueError):
    pass


def transition(entity: str, entity_id: object, current: str, new: enum.StrEnum) -> enum.StrEnum:
    """Check a status change against ALLOWED; returns the new status or raises InvalidTransition."""
    allowed = ALLOWED[type(new)].get(current, set())
    if new not in allowed:
        raise InvalidTransition(
            f"{entity} {entity_id}: cannot go from {current!s} to {new!s}; allowed: "
            f"{', '.join(sorted(map(str, allowed))) or 'none'}"
        )
    return new


class CampaignRun(Base):
    __tablename__ = "campaign_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    brief: Mapped[dict[str, Any]]
    brief_source: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    manifest_uri: Mapped[str | None] = mapped_column(Text)


class Asset(Base):
    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_info: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferenceAsset(Base):
    """A briefed reference as ingested: the upload (by content), its probe, its canonical asset and the
    analysis for its role. One row per upload, kind and role, whichever campaign briefed it first."""

    __tablename__ = "reference_assets"
    __table_args__ = (UniqueConstraint("source_sha256", "kind", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_sha256: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    source_uri: Mapped[str] = mapped_column(Text)
    source_info: Mapped[dict[str, Any]]
    analysis: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(128), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("campaign_runs.id"), index=True)
    scene_id: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(128))
    seed: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=GenerationStatus.running)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float | None] = mapped_column(Float)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    error: Mapped[str | None] = mapped_column(Text)


class SceneJob(Base):
    __tablename__ = "scene_jobs"
    __table_args__ = (UniqueConstraint("run_id", "scene_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("campaign_runs.id"))
    scene_id: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=SceneStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Deliverable(Base):
    __tablename__ = "deliverables"
    __table_args__ = (UniqueConstraint("run_id", "language", "platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("campaign_runs.id"))
    language: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str] = mapped_column(String(40))
    spec: Mapped[dict[str, Any]]
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"))
    cache_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QAResult(Base):
    __tablename__ = "qa_results"
    __table_args__ = (UniqueConstraint("run_id", "subject", "check"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("campaign_runs.id"))
    subject: Mapped[str] = mapped_column(String(160))
    check: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(8))
    metrics: Mapped[dict[str, Any]]
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskOutput(Base):
    """The idempotency memo: a stage's cache key → its output record (written after the asset is stored)."""

    __tablename__ = "task_outputs"

    cache_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
