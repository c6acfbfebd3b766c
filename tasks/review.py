"""Human review: a run whose masters still fail QA after their regenerations can pause in Prefect until a
reviewer approves or rejects them (the brief's ``qa.on_review: pause``), and producers approve or reject
previewed scenes. Every decision is a QA row of the run (subject ``review`` or ``approval:…``), so the
report and any process can read it.

Resume a paused run from the Prefect UI (it renders the form below) or in code:

    from prefect.flow_runs import resume_flow_run
    resume_flow_run(flow_run_id, run_input={"approve": True, "reviewer": "dana", "note": "lips fine on set"})
"""

from __future__ import annotations

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field
from syncreel.schemas.records import CampaignPlan, QAReport
from syncreel.store import runs
from syncreel.store.models import SceneStatus
from syncreel.tasks.plan import approval_subject
from syncreel.tasks.progress import emit
from syncreel.tasks.runtime import get_runtime

REVIEW_SUBJECT = "review"


class ReviewDecision(RunInput):
    """What the reviewer of a paused run answers."""

    approve: bool = Field(description="Approve the flagged scenes as they are (true) or reject them (false).")
    reviewer: str = Field("", max_length=120, description="Who decided.")
    note: str = Field("", max_length=2000, description="Why; shown in the run report.")


def _flagged_items(flagged: list[QAReport]) -> list[str]:
    return [report.subject.removeprefix("master:") for report in flagged]


def await_review(plan: CampaignPlan, flagged: list[QAReport]) -> ReviewDecision | None:
    """Pause the flow run (call it from the flow) until a reviewer answers; record the answer. None when
    nobody answered within the brief's ``qa.review_timeout_s``: the run then ends as needs_review."""
    items = _flagged_items(flagged)
    emit("review", plan.run_id, "started", f"waiting for a reviewer: {', '.join(items)}")
    try:
        decision = pause_flow_run(
            wait_for_input=ReviewDecision,
            timeout=plan.brief.qa.review_timeout_s,
            poll_interval=2,
            key=f"review-{plan.attempt}",
        )
    except FlowPauseTimeout:
        decision = None
    record_review(plan, flagged, decision)
    return decision


def record_review(plan: CampaignPlan, flagged: list[QAReport], decision: ReviewDecision | None) -> None:
    """Store the reviewer's answer (or its absence) as the run's ``review`` QA row; approved scenes pass."""
    rt = get_runtime()
    items = _flagged_items(flagged)
    if decision is None:
        verdict, message = "fail", f"no reviewer answered within {plan.brief.qa.review_timeout_s} s"
    elif decision.approve:
        verdict, message = "pass", f"approved by {decision.reviewer or 'a reviewer'}: {decision.note}".rstrip(": ")
    else:
        verdict, message = "fail", f"rejected by {decision.reviewer or 'a reviewer'}: {decision.note}".rstrip(": ")
    with rt.session() as session:
        runs.record_qa(
            session,
            run_id=plan.run_id,
            subject=REVIEW_SUBJECT,
            check="human_review",
            verdict=verdict,
            metrics={"scenes": items, **(decision.model_dump(mode="json") if decision else {})},
            message=message,
        )
        if decision is not None and decision.approve:
            for report in flagged:
                _, scene_id, language, _ = report.subject.split(":")
                job = runs.ensure_scene_job(session, plan.run_id, scene_id, language)
                runs.set_scene_status(session, job.id, SceneStatus.passed)
    emit("review", plan.run_id, "done" if verdict == "pass" else "flagged", message)


def record_approval(run_id: str, scene_id: str, language: str, approve: bool, reviewer: str, note: str) -> None:
    """A producer's decision on one previewed scene: approved keeps its seed for the full render,
    rejected gives the full render the next seed."""
    with get_runtime().session() as session:
        runs.record_qa(
            session,
            run_id=run_id,
            subject=approval_subject(scene_id, language),
            check="producer",
            verdict="pass" if approve else "fail",
            metrics={"reviewer": reviewer, "note": note},
            message=f"{'approved' if approve else 'rejected'} by {reviewer or 'a producer'}: {note}".rstrip(": "),
        )
