"""A campaign produced by the produce-campaign deployment's workers, started and followed from any machine
with syncreel's settings (``syncreel submit``): the flow run's state comes from Prefect's API, the run's
progress and outcome from syncreel's database."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment

from syncreel.schemas.brief import Brief
from syncreel.schemas.records import deliverable_path
from syncreel.schemas.settings import get_settings
from syncreel.store import runs
from syncreel.tasks.plan import preview_brief, run_key_for
from syncreel.tasks.stage import get_runtime

POLL_SECONDS = 1.0
# Scene jobs in these states have a master and its verdict: the scene's work is done.
SETTLED_SCENES = ("generated", "passed", "needs_review")


@dataclass(frozen=True)
class Submission:
    brief: Brief
    deployment: str
    flow_run: FlowRun
    run_key: str  # the campaign run's key in syncreel's database (`tasks.plan.run_key_for`)
    preview: bool


def submit_campaign(
    brief: Brief, *, deployment: str | None = None, preview: bool = False, log_level: str | None = None
) -> Submission:
    """Start a flow run of ``deployment`` (default: the settings' ``campaign_deployment``) on ``brief``;
    ``log_level``: the flow run's (its worker's environment gets it, over the worker's own level)."""
    name = deployment or get_settings().campaign_deployment
    flow_run = run_deployment(
        name,
        parameters={"brief": brief.model_dump(mode="json"), "preview": preview},
        timeout=0,
        as_subflow=False,
        job_variables=log_level_variables(log_level) if log_level else None,
    )
    assert isinstance(flow_run, FlowRun)  # called from sync code: the flow run, not a coroutine
    run_key = run_key_for(preview_brief(brief) if preview else brief, preview=preview)
    return Submission(brief, name, flow_run, run_key, preview)


def log_level_variables(level: str) -> dict[str, Any]:
    """Job variables that set a flow run's log level (syncreel's lines are Prefect run-logger lines) in its
    worker's environment: the worker merges them into the deployment's ``env``."""
    return {"env": {"PREFECT_LOGGING_LEVEL": level}}


def run_detail(run_key: str) -> dict[str, Any] | None:
    """The campaign run's `store.runs.run_detail`; None until its flow run has claimed it."""
    with get_runtime().session() as session:
        found = runs.find_run(session, run_key)
        return None if found is None else runs.run_detail(session, found.id)


def settled_scenes(detail: dict[str, Any]) -> int:
    return sum(job["status"] in SETTLED_SCENES for job in detail["scene_jobs"])


@dataclass(frozen=True)
class Outcome:
    """Where a submitted run stands: its flow run's last state (None if never read) and the campaign run."""

    submission: Submission
    state: State[Any] | None
    detail: dict[str, Any] | None

    @property
    def run(self) -> dict[str, Any]:
        return (self.detail or {}).get("run") or {}

    @property
    def deliverables(self) -> list[dict[str, Any]]:
        return list((self.detail or {}).get("deliverables", []))

    @property
    def failure(self) -> str | None:
        """Why the flow run did not complete (e.g. the campaign is being produced by another run)."""
        return self.state.message if self.state is not None and not self.state.is_completed() else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow_run_id": str(self.submission.flow_run.id),
            "flow_run_state": self.state.name if self.state is not None else None,
            "flow_run_message": self.failure,
            "run_id": self.run.get("id"),
            "status": self.run.get("status"),
            "manifest_uri": self.run.get("manifest_uri"),
            "deliverables": [
                {"language": d["language"], "platform": d["platform"], "uri": d["uri"]} for d in self.deliverables
            ],
        }


def follow(
    submission: Submission, *, timeout_s: float, on_detail: Callable[[dict[str, Any]], None] | None = None
) -> Outcome:
    """Poll the flow run until its state is final or ``timeout_s`` has passed; ``on_detail`` gets the
    campaign run's detail at each poll once it exists."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(submission.flow_run.id).state
        while time.monotonic() < deadline:
            state = client.read_flow_run(submission.flow_run.id).state
            detail = run_detail(submission.run_key)
            if detail is not None and on_detail is not None:
                on_detail(detail)
            if state is not None and state.is_final():
                break
            time.sleep(POLL_SECONDS)
    return Outcome(submission, state, run_detail(submission.run_key))


def copy_deliverables(outcome: Outcome, out: Path) -> list[Path]:
    """The run's deliverables copied out of the asset store: ``OUT/<campaign>/`` + `deliverable_path`."""
    campaign_id = outcome.submission.brief.campaign_id
    store = get_runtime().store
    written = []
    for row in outcome.deliverables:
        target = out / campaign_id / deliverable_path(campaign_id, row["language"], row["platform"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.fetch(row["uri"]), target)
        written.append(target)
    return written
