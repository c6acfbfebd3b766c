"""produce_campaign: brief in, platform deliverables, QA and a manifest out.

    from syncreel.flows.campaign import produce_campaign
    summary = produce_campaign("examples/briefs/lumen-fizz.yaml")   # or a Brief instance

The flow only sequences tasks (see DESIGN.md's DAG). Every task is idempotent through syncreel's own
database, so calling it again on the same brief redoes nothing that finished, and calling it after a
crash finishes only what was left.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.exceptions import Pause
from prefect.task_runners import ThreadPoolTaskRunner

from syncreel.flows import events
from syncreel.flows.dispatch import generate_master
from syncreel.schemas.brief import Brief, load_brief
from syncreel.schemas.records import (
    CampaignPlan,
    DeliverableRecord,
    IngestedReference,
    MasterRecord,
    QAReport,
    RunRecords,
    RunSummary,
    SpotRecord,
)
from syncreel.tasks.ingest import ingest_reference
from syncreel.tasks.inputs import continuation_of
from syncreel.tasks.plan import mark_failed, parse_brief, release_run
from syncreel.tasks.publish import publish
from syncreel.tasks.qa import qa_character_consistency, qa_deliverable, qa_master
from syncreel.tasks.render import assemble_spot, render_variants
from syncreel.tasks.review import await_review
from syncreel.tasks.speak import speak_lines
from syncreel.tasks.stage import by_reference, from_deployment


def brief_loaded_in_process() -> bool:
    """Whether the brief reached this flow in-process (``syncreel run``, a Python call), so its folder
    was chosen by the operator's own call. A deployment run's brief came through the API (a UI
    trigger, ``run_deployment``, ``submit``, the inbox): its ``base_uri`` is anyone's to write, and only
    the operator's roots may be read (tasks/ingest.py)."""
    return not from_deployment()


# Prefect types task_runner invariantly (TaskRunner[PrefectFuture[Any]]), so its own ThreadPoolTaskRunner
# (a TaskRunner[PrefectConcurrentFuture[R]]) does not match the annotation; it is the documented argument.
@flow(name="produce-campaign", task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=False)  # type: ignore[arg-type]
def produce_campaign(brief: Brief | str, preview: bool = False) -> RunSummary:
    """Produce every deliverable of a campaign brief (a Brief, or the path of a YAML/JSON brief).

    ``preview``: render only the scenes, small and with few sampler steps but the full render's seeds,
    with their QA, for a producer to approve or reject scene by scene (``syncreel approve``); the full
    render then starts each scene from the seed its preview settled on.
    """
    started = time.time()
    plan = parse_brief(load_brief(brief) if isinstance(brief, str) else brief, preview)
    events.run_started(plan)
    try:
        references = [
            ingest_reference(ref, plan.brief.base_uri, brief_loaded_in_process(), by_reference(plan))
            for ref in plan.brief.references
        ]
        # every scene's lines, spoken in each language; each generation picks its own (tasks/generate.py)
        spoken = [speak_lines(by_reference(plan), scene_id, language) for scene_id, language in plan.scene_languages]
        masters, generations, reports = _masters(plan, [*references, *(track for tracks in spoken for track in tracks)])
        # each character, across scenes and languages
        reports += qa_character_consistency(by_reference(plan), by_reference(masters), by_reference(references))
        flagged = [r for r in reports if r.decision == "needs_review"]
        pausing = bool(flagged) and plan.brief.qa.on_review == "pause"
        if pausing:
            events.review_requested(plan, flagged)
        review = await_review(plan, flagged) if pausing else None
        delivering = not plan.preview and (review is None or review.approve)
        spots, deliverables, checks = _deliverables(plan, masters, references) if delivering else ((), (), ())
        records = RunRecords(
            started_at=started,
            masters=tuple(masters),
            generations=tuple(generations),
            reports=(*reports, *checks),
            references=tuple(references),
            spots=spots,
            deliverables=deliverables,
            review=review,
        )
        summary = publish(by_reference(plan), by_reference(records))
        events.run_published(plan, summary, review_requested=pausing)
        return summary
    except Pause:  # suspended for a review (tasks/review.py): the resumed run starts again from here
        raise
    except BaseException as exc:
        mark_failed(by_reference(plan), exc)
        events.run_failed(plan, exc)
        raise
    finally:
        release_run(plan)  # the heartbeat this process kept since parse_brief claimed the run


def _masters(
    plan: CampaignPlan, inputs: list[IngestedReference]
) -> tuple[list[MasterRecord], list[MasterRecord], list[QAReport]]:
    """Every scene in every language generated and judged, regenerated with a new seed while the gate
    says so: (the master each scene keeps, every attempt's master, every attempt's QA report)."""
    masters: list[MasterRecord] = []
    generations: list[MasterRecord] = []
    reports: list[QAReport] = []
    for scene_id, language in plan.scene_languages:
        attempt = plan.first_attempt(scene_id, language)
        scene_inputs = inputs
        if plan.scene(scene_id).continue_previous and masters and masters[-1].language == language:
            scene_inputs = [*inputs, continuation_of(masters[-1])]  # extension: from its last frames
        while True:
            master = generate_master(plan, scene_id, language, scene_inputs, attempt)
            report = qa_master(by_reference(plan), master)
            generations.append(master)
            reports.append(report)
            if report.decision != "regenerate":
                break
            attempt += 1
        masters.append(master)
    return masters, generations, reports


def _deliverables(
    plan: CampaignPlan, masters: list[MasterRecord], references: list[IngestedReference]
) -> tuple[tuple[SpotRecord, ...], tuple[DeliverableRecord, ...], tuple[QAReport, ...]]:
    """Each language's spot, its deliverable for every platform, and their QA reports."""
    spots = tuple(
        assemble_spot(
            by_reference(plan), language, by_reference([m for m in masters if m.language == language]), references
        )
        for language in plan.brief.languages
    )
    renders = [render_variants.submit(by_reference(plan), by_reference(spot)) for spot in spots]
    deliverables = tuple(d for future in renders for d in future.result())
    durations = {spot.language: spot.duration_s for spot in spots}
    checks = [
        qa_deliverable.submit(by_reference(plan), by_reference(d), plan.platforms[d.platform], durations[d.language])
        for d in deliverables
    ]
    return spots, deliverables, tuple(future.result() for future in checks)
