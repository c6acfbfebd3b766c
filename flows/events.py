"""The Prefect events a campaign run emits, for automations to act on (deployments/automations.yaml has
one that notifies a reviewer), each with the matching line in the run's log:

- ``syncreel.run.started``: the flow run has claimed the run (its campaign, mode and attempt);
- ``syncreel.run.needs-review``: a person must look: the flow run waits for a reviewer's decision
  (``waiting``: true; suspended or paused, tasks/review.py), or the run ended needs_review (``waiting``:
  false), with the ``reasons`` (each failing subject and why); a run that waited emits it once, then;
- ``syncreel.run.failed``: the run stopped on an error (``error``: one line; the traceback is in the log);
- ``syncreel.run.published``: the manifest is written (``status``, ``manifest_uri``, ``deliverables``).

The resource is the run, ``syncreel.run.<run id>``, labelled with its campaign and mode; the flow run
(and its deployment, when it has one) are related resources, so an automation's action can reach it.
Each event is emitted at most once per flow run: its id is derived from the event, the run and the flow
run, and Prefect drops an id it has seen. A suspended run replays its flow up to the review when the
reviewer answers; that replay's events are the same ids, so no automation acts twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.events import emit_event

from syncreel.schemas.errors import RunConflict, user_message
from syncreel.schemas.records import CampaignPlan, QAReport, RunSummary
from syncreel.tasks.stage import run_logger

STARTED = "syncreel.run.started"
NEEDS_REVIEW = "syncreel.run.needs-review"
FAILED = "syncreel.run.failed"
PUBLISHED = "syncreel.run.published"


def run_resource(plan: CampaignPlan) -> dict[str, str]:
    return {
        "prefect.resource.id": f"syncreel.run.{plan.run_id}",
        "prefect.resource.name": plan.brief.campaign_id,
        "syncreel.campaign": plan.brief.campaign_id,
        "syncreel.mode": "preview" if plan.preview else "full",
    }


def _current_flow_run() -> FlowRun | None:
    context = FlowRunContext.get()
    return context.flow_run if context is not None else None


def _flow_run_resources(flow_run: FlowRun | None) -> list[dict[str, str]]:
    """The flow run this is part of, and its deployment, as related resources (none outside a flow run)."""
    if flow_run is None:
        return []
    related = [
        {
            "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
            "prefect.resource.role": "flow-run",
            "prefect.resource.name": flow_run.name,
        }
    ]
    if flow_run.deployment_id is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                "prefect.resource.role": "deployment",
            }
        )
    return related


def emit_run_event(event: str, plan: CampaignPlan, **payload: Any) -> None:
    flow_run = _current_flow_run()
    once_per = f"flow-run {flow_run.id}" if flow_run is not None else f"attempt {plan.attempt}"
    emit_event(
        event=event,
        resource=run_resource(plan),
        related=_flow_run_resources(flow_run),
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"{event}/{plan.run_id}/{once_per}"),
        payload={
            "run_id": plan.run_id,
            "campaign_id": plan.brief.campaign_id,
            "title": plan.brief.title,
            "attempt": plan.attempt,
            "preview": plan.preview,
            "languages": list(plan.brief.languages),
            **payload,
        },
    )


def run_started(plan: CampaignPlan) -> None:
    emit_run_event(STARTED, plan)


def review_reasons(reports: list[QAReport] | tuple[QAReport, ...], approved: bool = False) -> list[str]:
    """Why a run needs a person, a line per subject: the masters the gate gave up on (unless a reviewer
    approved them) and the deliverables and characters that failed QA (as `tasks.publish.run_status`)."""
    return [
        f"{report.subject}: {'; '.join(check.message for check in report.failures)}"
        for report in reports
        if (report.decision == "needs_review" and not approved)
        or (report.decision is None and report.verdict == "fail")
    ]


def _needs_review(plan: CampaignPlan, reasons: list[str], *, waiting: bool) -> None:
    """The WARNING line and the event that ask a person to look."""
    said = f"waits up to {plan.brief.qa.review_timeout_s} s for a reviewer" if waiting else "ended needs_review"
    run_logger(plan).warning("run %s: %s", said, " | ".join(reasons))
    emit_run_event(NEEDS_REVIEW, plan, waiting=waiting, reasons=reasons)


def review_requested(plan: CampaignPlan, flagged: list[QAReport]) -> None:
    """The flow run is about to wait for a reviewer of the ``flagged`` masters."""
    _needs_review(plan, review_reasons(flagged), waiting=True)


def run_published(plan: CampaignPlan, summary: RunSummary, *, review_requested: bool = False) -> None:
    """The published event, after the needs-review one when the run ended needs_review and no reviewer
    was asked already (``review_requested``: the flow run waited for one)."""
    if summary.status == "needs_review" and not review_requested:
        _needs_review(plan, review_reasons(summary.qa), waiting=False)
    emit_run_event(
        PUBLISHED,
        plan,
        status=summary.status,
        manifest_uri=summary.manifest_uri,
        deliverables=[{"language": d.language, "platform": d.platform, "uri": d.uri} for d in summary.deliverables],
    )


def run_failed(plan: CampaignPlan, error: BaseException) -> None:
    """The event of a failed run (its ERROR line, with the traceback, is `tasks.plan.mark_failed`'s). None
    when this process stood down from a run another process holds or took over (RunConflict): that run
    has not failed, and its owner reports how it ends."""
    if isinstance(error, RunConflict):
        return
    emit_run_event(FAILED, plan, error=user_message(error, log="the flow run's log (Prefect UI)"))
