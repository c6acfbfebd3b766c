"""Requests that cross a process boundary as a flow's one parameter (the Prefect UI renders its form)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from syncreel.schemas.records import CampaignPlan, IngestedReference


class SceneRequest(BaseModel):
    """What one generation needs: the campaign plan, which scene, the ingested references, the attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan: CampaignPlan
    scene_id: str
    language: str
    references: list[IngestedReference] = []
    attempt: int = Field(default=0, ge=0, description="Regeneration attempt (each has its own seed).")

    @property
    def item(self) -> str:
        return f"{self.scene_id}/{self.language}"
