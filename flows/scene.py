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

from prefect import flow, get_client
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field
from syncreel.schemas.records import CampaignPlan, IngestedReference
from syncreel.tasks.generate import generate_scene
from syncreel.tasks.runtime import cache_key, get_runtime, remember

# The global concurrency limit (one slot per GPU in the fleet): flows/deployments.py creates it.
GPU_LIMIT = "syncreel-gpu"
# A slot held by a worker that died is handed on after this long (the live holder renews it).
GPU_LEASE_SECONDS = 60


class SceneRequest(BaseModel):
    """What one generation needs: the campaign plan, which scene, the ingested references, the attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan: CampaignPlan
    scene_id: str
    language: str
    references: list[IngestedReference] = []
    attempt: int = Field(0, ge=0, description="Regeneration attempt (each has its own seed).")

    @property
    def item(self) -> str:
        return f"{self.scene_id}/{self.language}"

    def dispatch_key(self) -> str:
        """Where the finished master is remembered: one per run attempt, scene, language and attempt."""
        plan = self.plan
        return cache_key("dispatch", plan.run_id, plan.attempt, self.scene_id, self.language, self.attempt)


def _label_with_gpu() -> None:
    """Name the GPU on the flow run (the worker labels it with its own name), for the UI and for audits."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(run_id, {"syncreel.gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "none")})


@flow(name="generate-scene", persist_result=False)
def generate_scene_flow(request: SceneRequest) -> None:
    _label_with_gpu()
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=GPU_LEASE_SECONDS, strict=False):
        master = generate_scene(request.plan, request.scene_id, request.language, request.references, request.attempt)
    remember(get_runtime(), request.dispatch_key(), "dispatch", master.model_dump(mode="json"))
