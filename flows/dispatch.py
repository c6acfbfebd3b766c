"""Where a scene's generation runs: in this process, or on the GPU work pool through its deployment.

With ``SYNCREEL_GPU_DEPLOYMENT`` unset, ``generate_master`` is the ``generate_scene`` task itself. With it
set, the first call of a run queues every scene's first attempt on that deployment at once (so all GPU
workers start together while the campaign loop handles QA scene by scene), and each call waits for its
scene's flow run, then reads the master back from syncreel's database (Prefect results are not persisted).

Each call listens for its scene's flow run to reach a final state through Prefect's events (Prefect's
own ``wait_for_flow_run``), not by polling the API. A GPU machine can die mid-scene; its flow run then
stays "running" in Prefect forever, so between listens (every ``WATCH_SECONDS``) the waiting side checks
the worker that took it: when that worker's heartbeats stop, the flow run is marked Crashed and the
scene is queued again, for another worker. That is safe because generation is memoized by content: a
finished master is reused, a half-made one is redone, never duplicated.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import FlowRunWaitTimeout
from prefect.flow_runs import wait_for_flow_run
from prefect.states import Crashed, State
from prefect.utilities.asyncutils import run_coro_as_sync

from syncreel.schemas.records import CampaignPlan, IngestedReference, MasterRecord
from syncreel.schemas.requests import SceneRequest
from syncreel.schemas.settings import get_settings
from syncreel.tasks.generate import generate_scene
from syncreel.tasks.stage import by_reference, dispatch_key, emit, get_runtime, recall

# How long one listen for a scene's final state lasts before its worker is checked again.
WATCH_SECONDS = 15
# How many times one scene attempt is queued again after the machine running it was lost.
MAX_PLACEMENTS = 3
# A worker is lost after this many of its heartbeat intervals without one (never sooner than the floor).
HEARTBEATS_MISSED = 4
LOST_FLOOR_SECONDS = 10.0

_lock = threading.Lock()
_queued: dict[str, UUID] = {}  # dispatch key and placement -> the flow run generating it
_queued_runs: set[tuple[str, int]] = set()  # (run id, run attempt) whose first attempts are queued


def generate_master(
    plan: CampaignPlan, scene_id: str, language: str, references: list[IngestedReference], attempt: int
) -> MasterRecord:
    """The master of one scene attempt, generated here or on the GPU deployment (see the module doc)."""
    deployment = get_settings().gpu_deployment
    if not deployment:
        return generate_scene(by_reference(plan), scene_id, language, references, attempt)
    _queue_first_attempts(deployment, plan, references)
    request = SceneRequest(plan=plan, scene_id=scene_id, language=language, references=references, attempt=attempt)
    return await_master(deployment, request)


def await_master(deployment: str, request: SceneRequest) -> MasterRecord:
    emit("generate", request.item, "started", f"attempt {request.attempt} on {deployment}")
    for placement in range(MAX_PLACEMENTS):
        run_id = _queue(deployment, request, placement)
        state = _wait(run_id)
        if state.is_completed():
            master = read_master(request)
            emit("generate", request.item, "cached" if master.cached else "done", f"seed {master.seed}")
            return master
        if not state.is_crashed():
            emit("generate", request.item, "failed", state.message or state.name or "")
            raise RuntimeError(
                f"generate-scene {request.item} attempt {request.attempt}: {state.name}: {state.message}"
            )
        emit("generate", request.item, "started", f"requeued after: {state.message}")
    raise RuntimeError(f"generate-scene {request.item}: lost {MAX_PLACEMENTS} times in a row; giving up")


def read_master(request: SceneRequest) -> MasterRecord:
    """The master the scene's flow run remembered (its file checked to be in the store)."""
    rt = get_runtime()
    record = recall(rt, dispatch_key(request))
    if record is None or recall(rt, record["generation_key"]) is None:
        raise RuntimeError(f"generate-scene {request.item} completed but its master is not in the store")
    return MasterRecord.model_validate(record)


def _queue_first_attempts(deployment: str, plan: CampaignPlan, references: list[IngestedReference]) -> None:
    with _lock:
        if (plan.run_id, plan.attempt) in _queued_runs:
            return
        _queued_runs.add((plan.run_id, plan.attempt))
    continuing = {scene.id for scene in plan.brief.scenes if scene.continue_previous}
    for scene_id, language in plan.scene_languages:
        if scene_id in continuing:  # it needs the previous scene's master first
            continue
        request = SceneRequest(
            plan=plan,
            scene_id=scene_id,
            language=language,
            references=references,
            attempt=plan.first_attempt(scene_id, language),
        )
        if recall(get_runtime(), dispatch_key(request)) is None:
            _queue(deployment, request, 0)


def _queue(deployment: str, request: SceneRequest, placement: int) -> UUID:
    """The flow run of this request's placement, created once (Prefect's idempotency key dedupes it too)."""
    key = f"{dispatch_key(request)}:p{placement}"
    with _lock:
        if key not in _queued:
            run = run_deployment(
                deployment,
                parameters={"request": request.model_dump(mode="json")},
                flow_run_name=f"{request.scene_id}-{request.language}-a{request.attempt}-p{placement}",
                tags=[f"run:{request.plan.run_id}"],
                idempotency_key=key,
                timeout=0,
            )
            assert isinstance(run, FlowRun)  # called from sync code: the flow run, not a coroutine
            _queued[key] = run.id
        return _queued[key]


def _wait(run_id: UUID) -> State:
    """Listen for the flow run's final state; between listens, a run whose worker stopped heart-beating
    is marked Crashed."""
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = run_coro_as_sync(wait_for_flow_run(run_id, timeout=WATCH_SECONDS))
            except FlowRunWaitTimeout:
                run = client.read_flow_run(run_id)
            if run is not None and run.state is not None and run.state.is_final():
                return run.state
            lost = _lost_worker(client, run) if run is not None else None
            if lost:
                state: State = Crashed(message=f"worker {lost} stopped sending heartbeats while running this scene")
                client.set_flow_run_state(run_id, state, force=True)
                return state


def _lost_worker(client, run: FlowRun) -> str | None:  # noqa: ANN001 - a SyncPrefectClient
    """The name of the worker that took this run, if it has gone silent."""
    name = run.labels.get("prefect.worker.name")
    if (
        not name
        or run.work_pool_name is None
        or run.state is None
        or not (run.state.is_running() or run.state.is_pending())
    ):
        return None
    worker = next((w for w in client.read_workers_for_work_pool(run.work_pool_name) if w.name == name), None)
    if worker is None or worker.last_heartbeat_time is None:
        return str(name)
    interval = worker.heartbeat_interval_seconds or 30
    silent_for = (datetime.now(UTC) - worker.last_heartbeat_time).total_seconds()
    return str(name) if silent_for > max(HEARTBEATS_MISSED * interval, LOST_FLOOR_SECONDS) else None
