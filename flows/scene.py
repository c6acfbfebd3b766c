"""generate-scene: one scene's generation as its own flow, deployed on the GPU work pool.

`produce_campaign` dispatches each scene here (flows/dispatch.py) when ``SYNCREEL_GPU_DEPLOYMENT`` names
this flow's deployment. A process worker runs one such flow run at a time on its GPU (``--limit 1``,
``CUDA_VISIBLE_DEVICES``); the global concurrency limit ``GPU_LIMIT`` (one slot per GPU) bounds the whole
fleet, whatever the workers' own limits say.

The flow returns nothing through Prefect (result persistence is off): the master is remembered in
syncreel's database under the request's dispatch key, where the dispatching flow reads it back.
"""

from __future__ import annotations

import os
from uuid import UUID

from prefect import flow, get_client
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from syncreel.schemas.requests import SceneRequest
from syncreel.tasks.generate import generate_scene
from syncreel.tasks.stage import dispatch_key, get_runtime, remember

# The global concurrency limit (one slot per GPU in the fleet): flows/deployments.py creates it.
GPU_LIMIT = "syncreel-gpu"
# A slot held by a worker that died is handed on after this long (the live holder renews it).
GPU_LEASE_SECONDS = 60


def _label_with_gpu() -> None:
    """Name the GPU on the flow run (the worker labels it with its own name), for the UI and for audits."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(UUID(run_id), {"syncreel.gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "none")})


@flow(name="generate-scene", persist_result=False)
def generate_scene_flow(request: SceneRequest) -> None:
    _label_with_gpu()
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=GPU_LEASE_SECONDS, strict=False):
        master = generate_scene(request.plan, request.scene_id, request.language, request.references, request.attempt)
    remember(get_runtime(), dispatch_key(request), master.model_dump(mode="json"))
