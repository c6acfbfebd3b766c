"""qa_master / qa_deliverable: technical checks and sync scores on a stored clip, recorded per run in
the database, and the gate's decision for a master: pass, regenerate with a new seed, or needs review.
qa_character_consistency: each character reference's face compared across the scenes and languages
that use it (media/consistency.py); a failing check ends the run needs_review."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from syncreel import media
from syncreel.media.consistency import character_consistency, consistency_checks
from syncreel.media.frames import AudioTrack
from syncreel.media.mix import RATE as STEMS_RATE
from syncreel.media.mix import read_stems
from syncreel.media.qc import Expectation
from syncreel.media.syncqa import SyncExpectation, qa_checks
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import (
    CampaignPlan,
    CheckOutcome,
    Decision,
    DeliverableRecord,
    IngestedReference,
    MasterRecord,
    QAReport,
    character_subject,
)
from syncreel.store import runs
from syncreel.store.models import SceneStatus
from syncreel.tasks.inputs import deliverable_expectation, master_expectation, sync_expectation
from syncreel.tasks.stage import (
    CONNECTION_DELAYS,
    CONNECTION_RETRIES,
    Runtime,
    Stage,
    cache_key,
    code_fingerprint,
    connection_dropped,
)


def check_clip(
    stage: Stage,
    subject: str,
    uri: str,
    sha256: str,
    expect: Expectation,
    sync: SyncExpectation | None = None,
    stems: tuple[str, tuple[str, ...]] | None = None,
) -> QAReport:
    """Run (or recall) the technical checks, and the sync scores when ``sync`` is given, on one stored
    clip. ``stems``: (uri, channel names) of the clip's stems (a master's): the sound-effect sync is
    scored on their ``effects`` channel."""
    fingerprint = code_fingerprint(media.qc, media.probe)
    if sync is not None:
        fingerprint += code_fingerprint(media.syncqa, media.lipsync, media.sfxsync, media.tracks, media.faces)
    key = cache_key("qa", sha256, asdict(expect), asdict(sync) if sync else None, stems, fingerprint)

    def measure() -> dict[str, Any]:
        effects = effects_stem(stage.rt, *stems) if stems is not None and sync is not None else None
        results = qa_checks(stage.rt.store.fetch(uri), expect, sync, effects=effects)
        return {"checks": [_outcome(r).model_dump(mode="json") for r in results]}

    record, _ = stage.memo(key, measure)
    return QAReport.from_checks(subject, [CheckOutcome.model_validate(c) for c in record["checks"]])


def _outcome(result: Any) -> CheckOutcome:
    """A library check result (media.qc.CheckResult) as the record QA reports hold."""
    return CheckOutcome(check=result.check, verdict=result.verdict, message=result.message, metrics=result.metrics)


def effects_stem(rt: Runtime, uri: str, names: tuple[str, ...]) -> AudioTrack | None:
    """The ``effects`` channel of a stored stems WAV (media.encode.write_stems: channels ``names``), on
    the clip's clock; None when it has none."""
    if "effects" not in names:
        return None
    stems = read_stems(rt.store.fetch(uri))
    return AudioTrack(stems[names.index("effects")], STEMS_RATE, 0.0)


def record_report(rt: Runtime, run_id: str, report: QAReport) -> None:
    """Every check of the report as a QA row of the run (with the gate's decision, when it made one)."""
    with rt.session() as session:
        for check in report.checks:
            runs.record_qa(
                session,
                run_id=run_id,
                subject=report.subject,
                check=check.check,
                verdict=check.verdict,
                metrics={**check.metrics, **({"decision": report.decision} if report.decision else {})},
                message=check.message,
            )


def gate(report: QAReport, regenerations: int, max_regenerations: int) -> Decision:
    """A failing master is generated again with a new seed while regenerations remain, then needs a person."""
    if report.verdict != "fail":
        return "pass"
    return "regenerate" if regenerations < max_regenerations else "needs_review"


def _failures(report: QAReport) -> str:
    return "; ".join(c.message for c in report.failures)


def _verdict(report: QAReport, master: MasterRecord) -> str:
    """The gate's decision on a master with why, as its progress event and log line say it."""
    said = f"{report.decision}: {_failures(report)}" if report.failures else str(report.decision)
    if report.decision == "regenerate":
        said += f"; generating attempt {master.attempt + 1} with a new seed"
    return f"{said} (attempt {master.attempt}, seed {master.seed})"


@task(
    name="qa_master",
    cache_policy=NO_CACHE,
    task_run_name="qa-master-{master.scene_id}-{master.language}",
    timeout_seconds=1800,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def qa_master(plan: CampaignPlan, master: MasterRecord) -> QAReport:
    """Technical QC against the master format plus lip-sync and sound-effect sync, and the gate's decision."""
    stage = Stage(
        "qa_master", f"{master.scene_id}/{master.language}", plan=plan, scene=master.scene_id, language=master.language
    )
    brief, scene = plan.brief, plan.scene(master.scene_id)
    stems = (master.stems_uri, tuple(master.stem_names)) if master.stems_uri else None
    expect, sync = master_expectation(brief, scene), sync_expectation(brief, scene, master)
    report = check_clip(stage, master.subject, master.uri, master.sha256, expect, sync, stems)
    regenerations = master.attempt - plan.first_attempt(master.scene_id, master.language)
    report = report.model_copy(update={"decision": gate(report, regenerations, brief.qa.max_regenerations)})
    record_report(stage.rt, plan.run_id, report)
    if report.decision != "regenerate":
        status = SceneStatus.passed if report.decision == "pass" else SceneStatus.needs_review
        with stage.rt.session() as session:
            runs.settle_judged_scene(session, plan.run_id, master.scene_id, master.language, status)
    # a regeneration is the gate working (INFO); a master left to a person is what an operator must see
    level = logging.WARNING if report.decision == "needs_review" else logging.INFO
    stage.judged(report.verdict == "fail", _verdict(report, master), level)
    return report


@task(
    name="qa_deliverable",
    cache_policy=NO_CACHE,
    task_run_name="qa-{deliverable.language}-{deliverable.platform}",
    timeout_seconds=900,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def qa_deliverable(
    plan: CampaignPlan, deliverable: DeliverableRecord, spec: PlatformSpec, duration_s: float
) -> QAReport:
    stage = Stage(
        "qa_deliverable", f"{deliverable.language}/{deliverable.platform}", plan=plan, language=deliverable.language
    )
    expect = deliverable_expectation(plan.brief, spec, duration_s)
    report = check_clip(stage, deliverable.subject, deliverable.uri, deliverable.sha256, expect)
    record_report(stage.rt, plan.run_id, report)
    stage.judged(report.verdict == "fail", _failures(report))
    return report


@task(
    name="qa_character_consistency",
    cache_policy=NO_CACHE,
    timeout_seconds=1800,
    retries=CONNECTION_RETRIES,
    retry_delay_seconds=CONNECTION_DELAYS,
    retry_condition_fn=connection_dropped,
)
def qa_character_consistency(
    plan: CampaignPlan, masters: list[MasterRecord], references: list[IngestedReference]
) -> list[QAReport]:
    """One report per character reference (subject ``character:<id>``): its face in every kept master
    whose scene uses it, compared between scenes, between languages and with the photo, judged against
    the brief's ``qa.min_character_consistency`` (nothing when that is null). No gate decision: a
    failing report ends the run needs_review (``publish.run_status``)."""
    threshold = plan.brief.qa.min_character_consistency
    if threshold is None:
        return []
    uses = {scene.id: set(scene.references) for scene in plan.brief.scenes}
    reports = []
    for character in references:
        shown = [m for m in masters if character.id in uses.get(m.scene_id, ())]
        if character.kind == "image" and character.role == "character" and shown:
            reports.append(_character_report(plan, character, shown, threshold))
    return reports


def _character_report(
    plan: CampaignPlan, character: IngestedReference, shown: list[MasterRecord], threshold: float
) -> QAReport:
    stage = Stage("qa_character", character.id, plan=plan)
    stage.start()
    clips = [(m.scene_id, m.language, m.sha256) for m in shown]
    key = cache_key("consistency", character.sha256, clips, code_fingerprint(media.consistency, media.faces))

    def measure() -> dict[str, Any]:
        files = {(m.scene_id, m.language): stage.rt.store.fetch(m.uri) for m in shown}
        return character_consistency(stage.rt.store.fetch(character.uri), files)

    measured, _ = stage.memo(key, measure)
    checks = [_outcome(r) for r in consistency_checks(character.id, measured, threshold)]
    report = QAReport.from_checks(character_subject(character.id), checks)
    record_report(stage.rt, plan.run_id, report)
    stage.judged(report.verdict == "fail", _failures(report))
    return report
