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

from flows.dispatch import generate_master
from schemas.brief import Brief, load_brief
from schemas.records import MasterRecord, QAReport, RunSummary
from tasks.generate import continuation_of
from tasks.ingest import ingest_reference
from tasks.plan import mark_failed, parse_brief
from tasks.publish import publish
from tasks.qa import qa_character_consistency, qa_deliverable, qa_master
from tasks.render import assemble_spot, render_variant
from tasks.review import await_review


@flow(name="produce-campaign", task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=False)
def produce_campaign(brief: Brief | str, preview: bool = False) -> RunSummary:
    """Produce every deliverable of a campaign brief (a Brief, or the path of a YAML/JSON brief).

    ``preview``: render only the scenes, small and with few sampler steps but the full render's seeds,
    with their QA, for a producer to approve or reject scene by scene (``syncreel approve``); the full
    render then starts each scene from the seed its preview settled on.
    """
    started = time.time()
    if isinstance(brief, str):
        brief = load_brief(brief)
    plan = parse_brief(brief, preview)
    brief = plan.brief
    try:
        references = [ingest_reference(ref, brief.base_uri) for ref in brief.references]

        masters: list[MasterRecord] = []  # the one each scene keeps
        generations: list[MasterRecord] = []  # every attempt's, to count what was generated or reused
        reports: list[QAReport] = []  # every attempt's, so the report shows what was regenerated and why
        scenes = {scene.id: scene for scene in brief.scenes}
        for scene_id, language in plan.scene_languages:
            attempt = plan.first_attempt(scene_id, language)
            inputs = references
            if scenes[scene_id].continue_previous and masters and masters[-1].language == language:
                inputs = [*references, continuation_of(masters[-1])]  # extension: from its last frames
            while True:
                master = generate_master(plan, scene_id, language, inputs, attempt)
                report = qa_master(plan, master)
                generations.append(master)
                reports.append(report)
                if report.decision != "regenerate":
                    break
                attempt += 1
            masters.append(master)
        reports += qa_character_consistency(plan, masters, references)  # each character, across scenes and languages

        review = None
        flagged = [r for r in reports if r.decision == "needs_review"]
        if flagged and brief.qa.on_review == "pause":
            review = await_review(plan, flagged)
        if plan.preview or (review is not None and not review.approve):
            return publish(plan, masters, [], [], reports, started, review, generations, references)

        spots = [
            assemble_spot(plan, language, [m for m in masters if m.language == language], references)
            for language in brief.languages
        ]
        renders = [render_variant.submit(plan, spot, platform) for spot in spots for platform in plan.platforms]
        deliverables = [future.result() for future in renders]
        durations = {spot.language: spot.duration_s for spot in spots}
        checks = [
            qa_deliverable.submit(plan, d, plan.platforms[d.platform], durations[d.language]) for d in deliverables
        ]
        reports += [future.result() for future in checks]
        return publish(plan, masters, spots, deliverables, reports, started, review, generations, references)
    except BaseException as exc:
        mark_failed(plan, exc)
        raise
