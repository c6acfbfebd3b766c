"""Human review: a run whose masters still fail QA after their regenerations waits in Prefect until a
reviewer approves or rejects them (the brief's ``qa.on_review: pause``), and producers approve or reject
previewed scenes.

A run started from a deployment is *suspended*: its process ends and the worker is free for other work;
when the reviewer answers, Prefect schedules the run again, it replays every stage (each finds its output
remembered) up to the review and reads the answer. A run called in-process (``syncreel run``) has nothing
that could start it again, so it *pauses*: the process waits for the answer.

Every decision is a QA row of the run (subject ``review`` or ``approval:…``), so the report and any
process can read it.

Resume a suspended or paused run from the Prefect UI (it renders the form below) or in code:

    from prefect.flow_runs import resume_flow_run
    resume_flow_run(flow_run_id, run_input={"approve": True, "reviewer": "dana", "note": "lips fine on set"})
"""

from __future__ import annotations

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput

from syncreel.schemas.records import REVIEW_SUBJECT, CampaignPlan, QAReport, Review, approval_subject, master_of
from syncreel.store import lease, runs
from syncreel.store.models import RunStatus, SceneStatus
from syncreel.tasks.stage import Stage, from_deployment, get_runtime


class ReviewDecision(RunInput, Review):
    """What the reviewer of a paused run answers: the form Prefect renders (the fields are `Review`'s)."""


def _flagged_items(flagged: list[QAReport]) -> list[str]:
    return [report.subject.removeprefix("master:") for report in flagged]


def await_review(plan: CampaignPlan, flagged: list[QAReport]) -> Review | None:
    """Suspend or pause the flow run (call it from the flow; see the module doc) until a reviewer answers;
    record the answer. None when nobody answered a paused run within the brief's ``qa.review_timeout_s``:
    the run then ends as needs_review. (A suspended run that nobody resumes in time stays needs_review;
    Prefect refuses a late answer and fails the flow run.)"""
    Stage("review", plan.run_id, plan=plan).start(f"waiting for a reviewer: {', '.join(_flagged_items(flagged))}")
    timeout, key = plan.brief.qa.review_timeout_s, "review"  # one per flow run, kept across a resume
    try:
        if from_deployment():
            decision = _suspend(plan, timeout, key)
        else:
            decision = pause_flow_run(wait_for_input=ReviewDecision, timeout=timeout, poll_interval=2, key=key)
    except FlowPauseTimeout:
        decision = None
    record_review(plan, flagged, decision)
    return decision


def _suspend(plan: CampaignPlan, timeout: int, key: str) -> ReviewDecision:
    """Suspend this deployed flow run until the reviewer answers. Before it first suspends, the run's
    claim is given up (its heartbeat stops with the process) and the run is marked needs_review, so that
    `syncreel status`, the report and the database say what it waits for, and the resumed run claims it
    at once on whichever worker takes it. Resumed, the run comes back here and gets the answer."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    resumed = flow_run is not None and key in (flow_run.empirical_policy.pause_keys or set())
    if not resumed:
        lease.release(plan.run_id)
        with get_runtime().session() as session:
            runs.finish_run(
                session,
                plan.run_id,
                RunStatus.needs_review,
                error="waiting for a reviewer: the flow run is suspended until one answers in the Prefect UI",
            )
    return suspend_flow_run(wait_for_input=ReviewDecision, timeout=timeout, key=key)


def _review_message(plan: CampaignPlan, decision: Review | None) -> tuple[str, str]:
    """(verdict, message) of the ``review`` QA row."""
    if decision is None:
        return "fail", f"no reviewer answered within {plan.brief.qa.review_timeout_s} s"
    by = decision.reviewer or "a reviewer"
    if decision.approve:
        return "pass", f"approved by {by}: {decision.note}".rstrip(": ")
    return "fail", f"rejected by {by}: {decision.note}".rstrip(": ")


def record_review(plan: CampaignPlan, flagged: list[QAReport], decision: Review | None) -> None:
    """Store the reviewer's answer (or its absence) as the run's ``review`` QA row; approved scenes pass."""
    stage = Stage("review", plan.run_id, plan=plan)
    verdict, message = _review_message(plan, decision)
    with stage.rt.session() as session:
        runs.record_qa(
            session,
            run_id=plan.run_id,
            subject=REVIEW_SUBJECT,
            check="human_review",
            verdict=verdict,
            metrics={"scenes": _flagged_items(flagged), **(decision.model_dump(mode="json") if decision else {})},
            message=message,
        )
        if decision is not None and decision.approve:
            for scene_id, language, _ in filter(None, (master_of(report.subject) for report in flagged)):
                job = runs.ensure_scene_job(session, plan.run_id, scene_id, language)
                runs.set_scene_status(session, job.id, SceneStatus.passed)
    stage.judged(verdict != "pass", message)


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
