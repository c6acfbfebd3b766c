"""What an operator reads and acts on, through the Prefect API of the test harness: a run's log lines
under its flow run (each naming the run and campaign, and the scene and language where it is about
one), and the run's events, which deployments/automations.yaml's reviewer notification matches.

One run that ends needs_review (the gate's test backend from test_gate.py with every attempt's sound
moved 320 ms late, no regeneration) and one whose reference is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from syncreel.schemas.brief import validate_brief
from syncreel.schemas.settings import get_settings
from tests.flows.test_gate import talking_backend, talking_brief  # noqa: F401 - talking_backend is a fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass(frozen=True)
class Finished:
    """A flow run of produce_campaign that is over: its id, and syncreel's run id and campaign."""

    flow_run_id: uuid.UUID
    run_id: str
    campaign_id: str
    status: str


def _settled(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 30) -> T:
    """``read()`` again until ``done`` says it holds all it should: log lines and events reach the API in
    batches (every 2 s) and the server stores events in batches too."""
    deadline = time.monotonic() + timeout_s
    found = read()
    while not done(found) and time.monotonic() < deadline:
        time.sleep(1)
        found = read()
    return found


def _run(brief: Any) -> Finished:
    """produce_campaign on ``brief`` to its end, whether it returns or raises."""
    from syncreel.flows.campaign import produce_campaign
    from syncreel.store import runs
    from syncreel.tasks.stage import get_runtime

    state = produce_campaign(brief, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_runtime().session() as session:
        run = runs.get_run(session)  # the newest: this test's own database holds this run alone
        return Finished(flow_run_id, run.id, run.campaign_id, str(run.status))


@pytest.fixture(scope="module")
def needs_review_run(harness, talking_backend, tmp_path_factory) -> Iterator[Finished]:  # noqa: F811
    folder = tmp_path_factory.mktemp("logged")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SYNCREEL_DATABASE_URL", f"sqlite:///{folder}/state/state.db")
        env.setenv("SYNCREEL_STORAGE_URL", f"file://{folder}/state/assets")
        env.setenv("SYNCREEL_WORK_DIR", str(folder / "state" / "work"))
        env.setenv("SYNCREEL_BACKEND", talking_backend)
        env.setenv("SYNCREEL_FAULT_AUDIO_SHIFT_MS", "320")
        env.setenv("SYNCREEL_FAULT_AUDIO_SHIFT_ATTEMPTS", "0")  # every attempt fails lip-sync
        get_settings.cache_clear()
        try:
            yield _run(str(talking_brief(folder, max_regenerations=0)))
        finally:
            get_settings.cache_clear()


def _logs(flow_run_id: uuid.UUID) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)


def _events(run_id: str) -> list[Any]:
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    wanted = EventFilter(
        event=EventNameFilter(prefix=["syncreel.run."]), resource=EventResourceFilter(id=[f"syncreel.run.{run_id}"])
    )
    with get_client(sync_client=True) as client:
        return sorted(client.read_events(filter=wanted, limit=50).events, key=lambda event: event.occurred)


def test_a_runs_log_lines_are_in_the_prefect_api_under_its_flow_run_naming_what_they_are_about(needs_review_run):
    run = needs_review_run
    assert run.status == "needs_review"
    about_run = f"[run={run.run_id} campaign={run.campaign_id}"
    about_scene = f"{about_run} scene=presenter language=en]"

    def ours(logs: list[Any]) -> list[Any]:
        return [log for log in logs if log.message.startswith(about_run)]

    logs = _settled(
        lambda: ours(_logs(run.flow_run_id)), lambda found: any("ended needs_review" in log.message for log in found)
    )
    lines = {(log.level, log.message) for log in logs}
    messages = [log.message for log in logs]
    assert any("run claimed by" in m and "full run, attempt" in m for m in messages), messages
    assert any(m.startswith(f"{about_scene} generate presenter/en done: seed ") for m in messages), messages
    # the gate's verdict, with why, as a WARNING: the master is left to a person
    (verdict,) = [(level, m) for level, m in lines if "qa_master presenter/en failed QA" in m]
    assert verdict[0] == 30 and verdict[1].startswith(about_scene) and "needs_review: " in verdict[1]
    assert "audio 3" in verdict[1]  # "lip-sync: audio 3xx ms late ..."
    assert any(level == 30 and "run ended needs_review: master:presenter:en:a0: " in m for level, m in lines), messages
    # the deliverable's lines name its language (a deliverable is no one scene's)
    assert any(m.startswith(f"{about_run} language=en] render en/square done") for m in messages), messages
    (published,) = [m for m in messages if " publish " in m and "needs_review, manifest file://" in m]
    assert published.endswith("/manifest.json")
    assert all(log.flow_run_id == run.flow_run_id for log in logs)
    assert any(log.task_run_id is not None for log in logs)  # tasks' lines, under the flow run too


def test_a_run_that_needs_review_emits_the_event_the_reviewer_automation_acts_on(needs_review_run):
    from prefect.server.events.schemas.automations import AutomationCore
    from prefect.server.events.schemas.events import ReceivedEvent

    run = needs_review_run
    events = _settled(lambda: _events(run.run_id), lambda found: len(found) >= 3)
    assert [event.event for event in events] == [
        "syncreel.run.started",
        "syncreel.run.needs-review",
        "syncreel.run.published",
    ]
    started, review, published = events
    assert review.resource.id == f"syncreel.run.{run.run_id}"
    assert review.resource["syncreel.campaign"] == run.campaign_id and review.resource["syncreel.mode"] == "full"
    assert review.payload["campaign_id"] == run.campaign_id and review.payload["languages"] == ["en"]
    assert review.payload["waiting"] is False
    reasons = review.payload["reasons"]
    assert any(reason.startswith("master:presenter:en:a0: ") and "audio 3" in reason for reason in reasons), reasons
    flow_runs = [r.id for r in review.related if r.role == "flow-run"]
    assert flow_runs == [f"prefect.flow-run.{run.flow_run_id}"]
    assert published.payload["status"] == "needs_review"
    assert published.payload["manifest_uri"].endswith("/manifest.json")
    assert published.payload["deliverables"][0]["platform"] == "square"

    # the reviewer notification of deployments/automations.yaml (its block id set) fires on that event alone
    example = yaml.safe_load((ROOT / "deployments" / "automations.yaml").read_text())["reviewer_notification"]
    example["actions"][0]["block_document_id"] = str(uuid.uuid4())
    automation = AutomationCore.model_validate(example)
    received = [ReceivedEvent.model_validate(event.model_dump(mode="json")) for event in events]
    assert [automation.trigger.covers(event) for event in received] == [False, True, False]


def test_a_refused_reference_is_a_warning_line_and_the_failed_event(harness, embedded_state):
    data = yaml.safe_load(talking_brief(embedded_state).read_text())
    data["references"] = [{"id": "logo", "kind": "image", "role": "product", "uri": "/etc/hostname"}]
    run = _run(validate_brief(data, "test", base_uri=str(embedded_state)))
    assert run.status == "failed"

    events = _settled(lambda: _events(run.run_id), lambda found: len(found) >= 2)
    assert [event.event for event in events] == ["syncreel.run.started", "syncreel.run.failed"]
    assert "'logo'" in events[1].payload["error"] and "outside the folders" in events[1].payload["error"]
    about = f"[run={run.run_id} campaign={run.campaign_id}]"
    logs = _settled(lambda: _logs(run.flow_run_id), lambda found: any("run failed" in log.message for log in found))
    lines = [(log.level, log.message) for log in logs if log.message.startswith(about)]
    (refused,) = [(level, m) for level, m in lines if m.startswith(f"{about} ingest logo failed: reference 'logo'")]
    assert refused[0] == 30 and "/etc/hostname" in refused[1]
    (failed,) = [(level, m) for level, m in lines if m.startswith(f"{about} run failed: reference 'logo'")]
    assert failed[0] == 40 and "ReferenceRejected" in failed[1]  # its traceback follows the line
