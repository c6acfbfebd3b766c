"""parse_brief: bind a validated brief to a run row (created, resumed or taken over) and its scene jobs;
a preview run's brief and where a full render picks up the seeds its preview settled on."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from syncreel.schemas.brief import Brief
from syncreel.schemas.errors import RunConflict, user_message
from syncreel.schemas.records import CampaignPlan, approval_subject, master_of
from syncreel.store import lease, runs
from syncreel.tasks.stage import (
    CONNECTION_DELAYS,
    CONNECTION_RETRIES,
    PIPELINE_VERSION,
    connection_dropped,
    emit,
    get_runtime,
    owner_id,
    run_logger,
)

# A preview renders every scene small and with few sampler steps, with the full render's seeds.
PREVIEW_MAX_SIDE = 320
PREVIEW_STEPS = 4


def run_key_for(brief: Brief, *, preview: bool = False) -> str:
    """One run per distinct brief content (and per mode): re-running the same brief resumes or
    re-checks that run."""
    mode = ":preview" if preview else ""
    return hashlib.sha256(f"{PIPELINE_VERSION}:{brief.content_hash()}{mode}".encode()).hexdigest()


def preview_brief(brief: Brief) -> Brief:
    """The brief as its preview renders it: the master at most ``PREVIEW_MAX_SIDE`` on its long side
    (even sizes, same aspect), at most ``PREVIEW_STEPS`` sampler steps; seeds, prompts and QA as given."""
    master = brief.master
    scale = min(1.0, PREVIEW_MAX_SIDE / max(master.width, master.height))
    size = {side: max(64, 2 * round(getattr(master, side) * scale / 2)) for side in ("width", "height")}
    steps = min(brief.generation.steps, PREVIEW_STEPS)
    return brief.model_copy(
        update={
            "master": master.model_copy(update=size),
            "generation": brief.generation.model_copy(update={"steps": steps}),
        }
    )


def first_attempts(session: Session, brief: Brief) -> dict[str, int]:
    """Per ``scene:language``, the attempt the full render starts from: the one its preview settled on
    (same seed), or the next one when the producer rejected it; empty when the brief has no preview."""
    preview = runs.find_run(session, run_key_for(preview_brief(brief), preview=True))
    if preview is None:
        return {}
    results = runs.qa_results(session, preview.id)
    starts: dict[str, int] = {}
    for scene_id, language, attempt in filter(None, (master_of(row.subject) for row in results)):
        item = f"{scene_id}:{language}"
        starts[item] = max(starts.get(item, 0), attempt)
    rejected = {row.subject for row in results if row.verdict == "fail"}
    return {item: attempt + (approval_subject(*item.split(":")) in rejected) for item, attempt in starts.items()}


def _described(plan: CampaignPlan) -> str:
    """What a run makes, as the line that says it was claimed puts it."""
    brief = plan.brief
    return (
        f"{'preview' if plan.preview else 'full'} run, attempt {plan.attempt}, {len(brief.scenes)} scenes x "
        f"{len(brief.languages)} languages ({', '.join(brief.languages)}) x {len(brief.platforms)} platforms "
        f"({', '.join(brief.platforms)})"
    )


@task(
    name="parse_brief",
    cache_policy=NO_CACHE,
    timeout_seconds=120,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def parse_brief(brief: Brief, preview: bool = False) -> CampaignPlan:
    """Claim the run of this brief (its preview run when ``preview``: ``brief`` is then the full brief,
    rendered as ``preview_brief`` makes it)."""
    rt = get_runtime()
    if preview:
        brief = preview_brief(brief)
    with rt.session() as session:
        starts = {} if preview else first_attempts(session, brief)
        run = runs.claim_run(
            session,
            run_key=run_key_for(brief, preview=preview),
            campaign_id=brief.campaign_id,
            brief=brief.model_dump(mode="json"),
            brief_source=brief.base_uri,
            owner=owner_id(),
            lease_seconds=rt.settings.lease_seconds,
        )
        for language in brief.languages:
            for scene in brief.scenes:
                runs.ensure_scene_job(session, run.id, scene.id, language)
        plan = CampaignPlan(
            run_id=run.id,
            run_key=run.run_key,
            brief=brief,
            platforms=brief.platform_specs(),
            attempt=run.attempts,
            preview=preview,
            first_attempts=starts,
        )
    # Held by this process, the flow's, until the flow ends (release_run); never by a GPU worker.
    lease.hold(rt.engine, plan.run_id, owner_id(), plan.attempt, rt.settings.lease_seconds)
    emit("parse", plan.run_id, "done", f"attempt {plan.attempt}")
    run_logger(plan).info("run claimed by %s: %s", owner_id(), _described(plan))
    return plan


@task(
    name="mark_failed",
    cache_policy=NO_CACHE,
    timeout_seconds=120,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def mark_failed(plan: CampaignPlan, error: BaseException) -> None:
    """Record why a run stopped; finished outputs stay remembered, so the next attempt resumes. A run
    that another process holds or took over (RunConflict) is that process's to record: nothing is written."""
    if isinstance(error, RunConflict):
        return
    message = user_message(error, log="the flow run's log (Prefect UI)")
    with get_runtime().session() as session:
        runs.finish_run(session, plan.run_id, runs.RunStatus.failed, error=message)
    emit("run", plan.run_id, "failed", message)
    run_logger(plan).error("run failed: %s", message, exc_info=error)


def release_run(plan: CampaignPlan) -> None:
    """The flow has ended, however: stop the run's heartbeat, and give up a run left running so that the
    next claim need not wait out the lease (store/lease.py)."""
    lease.release(plan.run_id)
