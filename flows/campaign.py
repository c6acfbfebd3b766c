"""produce_campaign: brief in, platform deliverables, QA and a manifest out.

    from syncreel.flows.campaign import produce_campaign
    summary = produce_campaign("examples/briefs/lumen-fizz.yaml")   # or a Brief instance

The flow only sequences tasks (see DESIGN.md's DAG). Every task is idempotent through syncreel's own
database, so calling it again on the same brief redoes nothing that finished, and calling it after a
crash finishes only what was left.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import opaque
from syncreel.flows.dispatch import generate_master
from syncreel.schemas.brief import Brief, load_brief
from syncreel.schemas.records import MasterRecord, QAReport, RunSummary
from syncreel.tasks.generate import continuation_of
from syncreel.tasks.ingest import ingest_reference
from syncreel.tasks.plan import mark_failed, parse_brief
from syncreel.tasks.publish import publish
from syncreel.tasks.qa import qa_character_consistency, qa_deliverable, qa_master
from syncreel.tasks.render import assemble_spot, render_variant
from syncreel.tasks.review import await_review
from syncreel.tasks.speak import speak_lines


def by_reference(value: Any) -> Any:
    """A record, or a list of records, as a task input that Prefect does not look inside.

    Prefect walks every argument of a task run field by field, twice (for upstream futures, then to
    resolve them): the plan holds the whole brief, publish gets every record of the run, a deliverable
    its crop path; at 200 scenes on 2 cores that was ~6 ms a task and ~2 s before publish. Wrapped in
    ``opaque`` one by one, each record still links the task run to the one that made it."""
    if isinstance(value, list):
        return [opaque(item) for item in value]
    return opaque(value)


def brief_loaded_in_process() -> bool:
    """Whether the brief reached this flow in-process (``syncreel run``, a Python call), so its folder
    was chosen by the operator's own call. A deployment run's brief came through the API (a UI
    trigger, ``run_deployment``, ``submit``, the inbox): its ``base_uri`` is anyone's to write, and only
    the operator's roots may be read (tasks/ingest.py)."""
    context = FlowRunContext.get()
    return context is None or context.flow_run is None or context.flow_run.deployment_id is None


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
    plan_input = by_reference(plan)
    try:
        in_process = brief_loaded_in_process()
        references = [ingest_reference(ref, brief.base_uri, in_process) for ref in brief.references]
        # every scene's lines, spoken in each language; each generation picks its own (tasks/generate.py)
        spoken = [speak_lines(plan_input, scene_id, language) for scene_id, language in plan.scene_languages]
        generation_inputs = [*references, *(track for tracks in spoken for track in tracks)]

        masters: list[MasterRecord] = []  # the one each scene keeps
        generations: list[MasterRecord] = []  # every attempt's, to count what was generated or reused
        reports: list[QAReport] = []  # every attempt's, so the report shows what was regenerated and why
        scenes = {scene.id: scene for scene in brief.scenes}
        for scene_id, language in plan.scene_languages:
            attempt = plan.first_attempt(scene_id, language)
            inputs = generation_inputs
            if scenes[scene_id].continue_previous and masters and masters[-1].language == language:
                inputs = [*generation_inputs, continuation_of(masters[-1])]  # extension: from its last frames
            while True:
                master = generate_master(plan, scene_id, language, inputs, attempt)
                report = qa_master(plan_input, master)
                generations.append(master)
                reports.append(report)
                if report.decision != "regenerate":
                    break
                attempt += 1
            masters.append(master)
        # each character, across scenes and languages
        reports += qa_character_consistency(plan_input, by_reference(masters), by_reference(references))

        review = None
        flagged = [r for r in reports if r.decision == "needs_review"]
        if flagged and brief.qa.on_review == "pause":
            review = await_review(plan, flagged)
        if plan.preview or (review is not None and not review.approve):
            return publish(
                plan_input,
                by_reference(masters),
                [],
                [],
                by_reference(reports),
                started,
                review,
                by_reference(generations),
                by_reference(references),
            )

        spots = [
            assemble_spot(
                plan_input, language, by_reference([m for m in masters if m.language == language]), references
            )
            for language in brief.languages
        ]
        renders = [
            render_variant.submit(plan_input, by_reference(spot), platform)
            for spot in spots
            for platform in plan.platforms
        ]
        deliverables = [future.result() for future in renders]
        durations = {spot.language: spot.duration_s for spot in spots}
        checks = [
            qa_deliverable.submit(plan_input, by_reference(d), plan.platforms[d.platform], durations[d.language])
            for d in deliverables
        ]
        reports += [future.result() for future in checks]
        return publish(
            plan_input,
            by_reference(masters),
            by_reference(spots),
            by_reference(deliverables),
            by_reference(reports),
            started,
            review,
            by_reference(generations),
            by_reference(references),
        )
    except BaseException as exc:
        mark_failed(plan_input, exc)
        raise
