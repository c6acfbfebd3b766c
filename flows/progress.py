"""How much work produce_campaign has ahead of it, as its progress events count it: the items each stage
sees for a brief (the stages and items of `tasks.stage.ProgressEvent`). A display sizes its bars with it
before the flow starts; a scene regenerated after failing QA is one more item than planned."""

from __future__ import annotations

from syncreel.schemas.brief import Brief


def stage_totals(brief: Brief, *, preview: bool = False) -> dict[str, int]:
    """Items per stage, in the flow's order, leaving out the stages with none: a reference is ingested,
    a scene spoken, generated and judged per language, a spot assembled per language, and a variant
    rendered and judged per platform and language (a preview stops at the judged scenes)."""
    scenes = len(brief.scenes) * len(brief.languages)
    variants = 0 if preview else len(brief.platforms) * len(brief.languages)
    totals = {
        "ingest": len(brief.references),
        "speak": scenes,
        "generate": scenes,
        "qa_master": scenes,
        "assemble": 0 if preview else len(brief.languages),
        "render": variants,
        "qa_deliverable": variants,
        "publish": 1,
    }
    return {stage: total for stage, total in totals.items() if total}
