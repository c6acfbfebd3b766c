"""parse_brief: bind a validated brief to a run row (created, resumed or taken over) and its scene jobs."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.cache_policies import NO_CACHE

from schemas.brief import Brief
from schemas.records import CampaignPlan
from store import runs
from tasks.progress import emit
from tasks.runtime import PIPELINE_VERSION, get_runtime, owner_id


def run_key_for(brief: Brief) -> str:
    """One run per distinct brief content: re-running the same brief resumes or re-checks that run."""
    return hashlib.sha256(f"{PIPELINE_VERSION}:{brief.content_hash()}".encode()).hexdigest()


@task(name="parse_brief", cache_policy=NO_CACHE)
def parse_brief(brief: Brief) -> CampaignPlan:
    rt = get_runtime()
    with rt.session() as session:
        run = runs.claim_run(
            session,
            run_key=run_key_for(brief),
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
        )
    emit("parse", plan.run_id, "done", f"attempt {plan.attempt}")
    return plan


@task(name="mark_failed", cache_policy=NO_CACHE)
def mark_failed(plan: CampaignPlan, error: BaseException) -> None:
    """Record why a run stopped; finished outputs stay remembered, so the next attempt resumes."""
    message = f"{type(error).__name__}: {error}"
    with get_runtime().session() as session:
        runs.finish_run(session, plan.run_id, runs.RunStatus.failed, error=message)
    emit("run", plan.run_id, "failed", message)
