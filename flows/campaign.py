"""produce_campaign: brief in, platform deliverables, QA and a manifest out.

    from flows.campaign import produce_campaign
    summary = produce_campaign("examples/briefs/lumen-fizz.yaml")   # or a Brief instance

The flow only sequences tasks (see DESIGN.md's DAG). Every task is idempotent through syncreel's own
database, so calling it again on the same brief redoes nothing that finished, and calling it after a
crash finishes only what was left.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from schemas.brief import Brief, load_brief
from schemas.records import MasterRecord, QAReport, RunSummary
from tasks.generate import generate_scene
from tasks.ingest import ingest_reference
from tasks.plan import mark_failed, parse_brief
from tasks.publish import publish
from tasks.qa import qa_deliverable, qa_master
from tasks.render import assemble_spot, render_variant


@flow(name="produce-campaign", task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=False)
def produce_campaign(brief: Brief | str) -> RunSummary:
    """Produce every deliverable of a campaign brief (a Brief, or the path of a YAML/JSON brief)."""
    started = time.time()
    if isinstance(brief, str):
        brief = load_brief(brief)
    plan = parse_brief(brief)
    try:
        references = [ingest_reference(ref, brief.base_uri) for ref in brief.references]

        masters: list[MasterRecord] = []
        reports: list[QAReport] = []
        for scene_id, language in plan.scene_languages:
            for attempt in range(brief.qa.max_regenerations + 1):
                master = generate_scene(plan, scene_id, language, references, attempt)
                report = qa_master(plan, master)
                if report.verdict != "fail":
                    break
            masters.append(master)
            reports.append(report)

        spots = [
            assemble_spot(plan, language, [m for m in masters if m.language == language])
            for language in brief.languages
        ]
        renders = [render_variant.submit(plan, spot, platform) for spot in spots for platform in plan.platforms]
        deliverables = [future.result() for future in renders]
        durations = {spot.language: spot.duration_s for spot in spots}
        checks = [
            qa_deliverable.submit(plan, d, plan.platforms[d.platform], durations[d.language]) for d in deliverables
        ]
        reports += [future.result() for future in checks]
        return publish(plan, masters, spots, deliverables, reports, started)
    except BaseException as exc:
        mark_failed(plan, exc)
        raise
