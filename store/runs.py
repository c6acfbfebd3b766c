"""Repository functions over the run-state tables: small, idempotent, safe when two workers race.

Each takes a Session and leaves committing to the caller (`store.db.session_scope`).
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncreel.schemas.errors import RunConflict
from syncreel.store.models import (
    Asset,
    CampaignRun,
    Deliverable,
    Generation,
    GenerationStatus,
    QAResult,
    ReferenceAsset,
    RunStatus,
    SceneJob,
    SceneStatus,
    TaskOutput,
    transition,
    utcnow,
)

__all__ = ["RunLocked", "RunStatus", "SceneStatus"]


class RunLocked(RunConflict):
    """Another live process is producing this run."""


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def owner_alive(owner: str | None, heartbeat_at: datetime | None, lease_seconds: float) -> bool:
    """Whether ``owner`` (``host:pid``) still holds its run: its heartbeat is within the lease and, on this
    host, its process exists. A process that died on this host loses the run at once; a stopped one keeps
    its PID but no longer writes its heartbeat (store/lease.py), so it loses the run when the lease runs
    out, like a process on another host."""
    beat = _aware(heartbeat_at)
    if not owner or beat is None or utcnow() - beat >= timedelta(seconds=lease_seconds):
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _insert_or_get(session: Session, row: Any, lookup: Any) -> Any:
    """Insert ``row`` unless a row with the same unique key exists (inserted by us or a racing worker)."""
    existing = session.scalars(lookup).first()
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            session.add(row)
        return row
    except IntegrityError:
        return session.scalars(lookup).one()


def claim_run(
    session: Session,
    *,
    run_key: str,
    campaign_id: str,
    brief: dict[str, Any],
    brief_source: str | None,
    owner: str,
    lease_seconds: float,
) -> CampaignRun:
    """Create the run for this brief, or take it up again as a new attempt; raises RunLocked while a live
    owner (`owner_alive`, this very process included) holds it."""
    lookup = select(CampaignRun).where(CampaignRun.run_key == run_key).with_for_update()
    run = _insert_or_get(
        session,
        CampaignRun(
            id=f"run-{secrets.token_hex(6)}",
            run_key=run_key,
            campaign_id=campaign_id,
            brief=brief,
            brief_source=brief_source,
            status=RunStatus.pending,
            attempts=0,
        ),
        lookup,
    )
    if run.status == RunStatus.running and owner_alive(run.owner, run.heartbeat_at, lease_seconds):
        beat = _aware(run.heartbeat_at)
        age = (utcnow() - beat).total_seconds() if beat else float("nan")
        raise RunLocked(
            f"run {run.id} is being produced by {run.owner} (last heartbeat {age:.0f} s ago); wait for it, "
            f"or stop that process: a run is taken over once its owner has died or written no heartbeat "
            f"for {lease_seconds:g} s"
        )
    run.status = transition("run", run.id, run.status, RunStatus.running)
    run.attempts += 1
    run.owner, run.heartbeat_at, run.started_at = owner, utcnow(), utcnow()
    run.finished_at, run.error = None, None
    run.brief_source = brief_source
    session.flush()
    return run


def _holding(run_id: str, owner: str, attempt: int) -> Any:
    """The condition that ``owner`` still holds the running run in its ``attempt``: a takeover counts a
    new attempt, so an owner that was taken over can never match again."""
    return (
        (CampaignRun.id == run_id)
        & (CampaignRun.owner == owner)
        & (CampaignRun.attempts == attempt)
        & (CampaignRun.status == RunStatus.running)
    )


def heartbeat(session: Session, run_id: str, owner: str, attempt: int) -> CampaignRun | None:
    """Renew ``owner``'s heartbeat while it holds the run in ``attempt``: None when renewed, otherwise the
    run as it stands (taken over by another attempt, or finished)."""
    renewed = session.execute(
        update(CampaignRun)
        .where(_holding(run_id, owner, attempt))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], renewed).rowcount:
        return None
    return session.get_one(CampaignRun, run_id)


def release_claim(session: Session, run_id: str, owner: str, attempt: int) -> None:
    """Give up ``owner``'s claim on a run it leaves running (its flow ended without finishing it), so that
    the next claim takes it at once; a run taken over or finished meanwhile is left as it is."""
    session.execute(
        update(CampaignRun)
        .where(_holding(run_id, owner, attempt))
        .values(owner=None)
        .execution_options(synchronize_session=False)
    )


def finish_run(
    session: Session, run_id: str, status: RunStatus, *, manifest_uri: str | None = None, error: str | None = None
) -> CampaignRun:
    run = session.get_one(CampaignRun, run_id)
    run.status = transition("run", run.id, run.status, status)
    run.finished_at, run.owner = utcnow(), None
    run.manifest_uri = manifest_uri or run.manifest_uri
    run.error = error
    return run


def ensure_scene_job(session: Session, run_id: str, scene_id: str, language: str) -> SceneJob:
    lookup = select(SceneJob).where(
        SceneJob.run_id == run_id, SceneJob.scene_id == scene_id, SceneJob.language == language
    )
    return _insert_or_get(
        session,
        SceneJob(run_id=run_id, scene_id=scene_id, language=language, status=SceneStatus.pending, attempts=0),
        lookup,
    )


def set_scene_status(
    session: Session, job_id: int, status: SceneStatus, *, generation_id: int | None = None, error: str | None = None
) -> SceneJob:
    job = session.get_one(SceneJob, job_id)
    job.status = transition("scene job", job.id, job.status, status)
    if status == SceneStatus.generating:
        job.attempts += 1
    if generation_id is not None:
        job.generation_id = generation_id
    job.error = error
    return job


# A scene job already past generation: a cached re-run leaves it as it is.
SETTLED = (SceneStatus.generated, SceneStatus.passed, SceneStatus.needs_review)


def begin_generation(
    session: Session,
    *,
    run_id: str,
    scene_id: str,
    language: str,
    cache_key: str,
    backend: str,
    model_version: str,
    seed: int,
    parameters: dict[str, Any],
) -> tuple[int, int]:
    """Mark the scene job generating and its generation row running; returns (job id, generation id)."""
    job = ensure_scene_job(session, run_id, scene_id, language)
    set_scene_status(session, job.id, SceneStatus.generating)
    generation = start_generation(
        session,
        cache_key=cache_key,
        run_id=run_id,
        scene_id=scene_id,
        language=language,
        backend=backend,
        model_version=model_version,
        seed=seed,
        parameters=parameters,
    )
    return job.id, generation.id


def fail_generation(session: Session, job_id: int, generation_id: int, *, error: BaseException, seconds: float) -> None:
    """Record a generation that raised, and its scene job failed."""
    finish_generation(session, generation_id, error=f"{type(error).__name__}: {error}", seconds=seconds)
    set_scene_status(session, job_id, SceneStatus.failed, error=str(error))


def settle_scene_job(session: Session, run_id: str, scene_id: str, language: str, generation_id: int) -> None:
    """The scene job generated by ``generation_id``, unless it is already past generation with it."""
    job = ensure_scene_job(session, run_id, scene_id, language)
    if job.status not in SETTLED or job.generation_id != generation_id:
        set_scene_status(session, job.id, SceneStatus.generated, generation_id=generation_id)


def settle_judged_scene(session: Session, run_id: str, scene_id: str, language: str, status: SceneStatus) -> None:
    """The scene job as its master's QA left it (passed or needs_review), when it is not so already."""
    job = ensure_scene_job(session, run_id, scene_id, language)
    if job.status != status:
        set_scene_status(session, job.id, status)


def record_asset(
    session: Session, *, sha256: str, uri: str, kind: str, size_bytes: int, media_info: dict[str, Any] | None = None
) -> Asset:
    """The asset row for this content (one per sha256, whoever stored it first)."""
    return _insert_or_get(
        session,
        Asset(sha256=sha256, uri=uri, kind=kind, size_bytes=size_bytes, media_info=media_info),
        select(Asset).where(Asset.sha256 == sha256),
    )


def record_reference_asset(
    session: Session,
    *,
    source_sha256: str,
    kind: str,
    role: str,
    asset_id: int,
    source_uri: str,
    source_info: dict[str, Any],
    analysis: dict[str, Any],
) -> ReferenceAsset:
    """The row for this upload, kind and role (the first ingest's; an identical upload reuses it)."""
    lookup = select(ReferenceAsset).where(
        ReferenceAsset.source_sha256 == source_sha256, ReferenceAsset.kind == kind, ReferenceAsset.role == role
    )
    row = _insert_or_get(
        session,
        ReferenceAsset(
            source_sha256=source_sha256,
            kind=kind,
            role=role,
            asset_id=asset_id,
            source_uri=source_uri,
            source_info=source_info,
            analysis=analysis,
        ),
        lookup,
    )
    row.asset_id, row.analysis = asset_id, analysis  # newer code may have analysed it differently
    return row


def get_output(session: Session, cache_key: str) -> TaskOutput | None:
    return session.get(TaskOutput, cache_key)


def put_output(
    session: Session, *, cache_key: str, stage: str, record: dict[str, Any], asset_id: int | None = None
) -> TaskOutput:
    """Remember a stage output; the first writer wins and every caller gets that record."""
    return _insert_or_get(
        session,
        TaskOutput(cache_key=cache_key, stage=stage, record=record, asset_id=asset_id),
        select(TaskOutput).where(TaskOutput.cache_key == cache_key),
    )


def start_generation(
    session: Session,
    *,
    cache_key: str,
    run_id: str,
    scene_id: str,
    language: str,
    backend: str,
    model_version: str,
    seed: int,
    parameters: dict[str, Any],
) -> Generation:
    """The generation row for this cache key, (re)marked running: a crashed attempt's row is reused."""
    generation = _insert_or_get(
        session,
        Generation(
            cache_key=cache_key,
            run_id=run_id,
            scene_id=scene_id,
            language=language,
            backend=backend,
            model_version=model_version,
            seed=seed,
            parameters=parameters,
            status=GenerationStatus.running,
        ),
        select(Generation).where(Generation.cache_key == cache_key),
    )
    generation.status, generation.started_at, generation.error = GenerationStatus.running, utcnow(), None
    generation.finished_at = generation.seconds = None
    return generation


def finish_generation(
    session: Session,
    generation_id: int,
    *,
    seconds: float,
    asset_id: int | None = None,
    error: str | None = None,
    parameters_update: dict[str, Any] | None = None,
) -> Generation:
    generation = session.get_one(Generation, generation_id)
    generation.status = GenerationStatus.failed if error else GenerationStatus.succeeded
    generation.finished_at, generation.seconds = utcnow(), seconds
    generation.asset_id, generation.error = asset_id, error
    if parameters_update:
        generation.parameters = {**generation.parameters, **parameters_update}
    return generation


def record_deliverable(
    session: Session, *, run_id: str, language: str, platform: str, spec: dict[str, Any], asset_id: int, cache_key: str
) -> Deliverable:
    """One row per (run, language, platform), pointing at the newest render."""
    lookup = select(Deliverable).where(
        Deliverable.run_id == run_id, Deliverable.language == language, Deliverable.platform == platform
    )
    row = _insert_or_get(
        session,
        Deliverable(
            run_id=run_id, language=language, platform=platform, spec=spec, asset_id=asset_id, cache_key=cache_key
        ),
        lookup,
    )
    row.spec, row.asset_id, row.cache_key = spec, asset_id, cache_key
    return row


def record_qa(
    session: Session, *, run_id: str, subject: str, check: str, verdict: str, metrics: dict[str, Any], message: str
) -> QAResult:
    """One row per (run, subject, check), holding the latest verdict."""
    lookup = select(QAResult).where(QAResult.run_id == run_id, QAResult.subject == subject, QAResult.check == check)
    row = _insert_or_get(
        session,
        QAResult(run_id=run_id, subject=subject, check=check, verdict=verdict, metrics=metrics, message=message),
        lookup,
    )
    row.verdict, row.metrics, row.message = verdict, metrics, message
    return row


def list_runs(session: Session, limit: int = 50) -> list[CampaignRun]:
    return list(session.scalars(select(CampaignRun).order_by(CampaignRun.created_at.desc()).limit(limit)))


def get_run(session: Session, run_id: str | None = None) -> CampaignRun:
    """A run by id or unique id prefix (the ``run-`` may be left out); None: the newest."""
    if run_id is None:
        run = session.scalars(select(CampaignRun).order_by(CampaignRun.created_at.desc()).limit(1)).first()
        if run is None:
            raise LookupError("no runs yet")
        return run
    prefix = run_id if run_id.startswith("run-") else f"run-{run_id}"
    matches = list(session.scalars(select(CampaignRun).where(CampaignRun.id.startswith(prefix)).limit(2)))
    if not matches:
        raise LookupError(f"no run matches {run_id!r}")
    if len(matches) > 1:
        raise LookupError(f"{run_id!r} matches several runs ({', '.join(m.id for m in matches)}…); give more of it")
    return matches[0]


def _row(obj: Any) -> dict[str, Any]:
    return {column.key: getattr(obj, column.key) for column in obj.__table__.columns}


def find_run(session: Session, run_key: str) -> CampaignRun | None:
    return session.scalars(select(CampaignRun).where(CampaignRun.run_key == run_key)).first()


def qa_results(session: Session, run_id: str) -> list[QAResult]:
    return list(
        session.scalars(select(QAResult).where(QAResult.run_id == run_id).order_by(QAResult.subject, QAResult.check))
    )


def run_detail(session: Session, run_id: str | None = None) -> dict[str, Any]:
    """A run with its scene jobs, generations, deliverables (with URIs) and QA results, as plain dicts."""
    run = get_run(session, run_id)
    deliverables = session.execute(
        select(Deliverable, Asset.uri, Asset.size_bytes)
        .join(Asset, Asset.id == Deliverable.asset_id)
        .where(Deliverable.run_id == run.id)
        .order_by(Deliverable.language, Deliverable.platform)
    ).all()
    job_generations = select(SceneJob.generation_id).where(SceneJob.run_id == run.id)
    return {
        "run": {**_row(run), "brief": None, "campaign_title": run.brief.get("title", "")},
        "scene_jobs": [
            _row(j)
            for j in session.scalars(
                select(SceneJob).where(SceneJob.run_id == run.id).order_by(SceneJob.language, SceneJob.id)
            )
        ],
        "generations": [
            _row(g)
            for g in session.scalars(
                select(Generation)
                .where((Generation.run_id == run.id) | Generation.id.in_(job_generations))
                .order_by(Generation.id)
            )
        ],
        "deliverables": [{**_row(d), "uri": uri, "size_bytes": size} for d, uri, size in deliverables],
        "qa_results": [_row(q) for q in qa_results(session, run.id)],
        "counts": {"assets": session.scalar(select(func.count()).select_from(Asset))},
    }
