"""qa_master / qa_deliverable: technical checks and sync scores on a stored clip, recorded per run in
the database, and the gate's decision for a master: pass, regenerate with a new seed, or needs review.
qa_character_consistency: each character reference's face compared across the scenes and languages
that use it (media/consistency.py); a failing check ends the run needs_review."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from syncreel.media.consistency import character_consistency, consistency_checks
from syncreel.media.frames import AudioTrack
from syncreel.media.mix import RATE as STEMS_RATE
from syncreel.media.mix import read_stems
from syncreel.media.qc import Expectation
from syncreel.media.syncqa import qa_checks
from syncreel.schemas.brief import Brief, Scene
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import (
    CampaignPlan,
    CheckOutcome,
    Decision,
    DeliverableRecord,
    IngestedReference,
    MasterRecord,
    QAReport,
)
from syncreel.store import runs
from syncreel.store.models import SceneStatus
from syncreel.tasks.progress import emit
from syncreel.tasks.runtime import Runtime, cache_key, code_fingerprint, get_runtime, memoized

from syncreel import media


def sync_expectation(brief: Brief, scene: Scene, master: MasterRecord) -> dict[str, Any] | None:
    """``media.syncqa.score_sync``'s keyword arguments for one master, from the brief's ``qa`` thresholds
    and what the scene holds (None when the brief turns sync checks off)."""
    qa = brief.qa
    if not qa.sync_checks:
        return None
    return {
        "max_audio_early_ms": qa.max_audio_early_ms,
        "max_audio_late_ms": qa.max_audio_late_ms,
        "min_lipsync_confidence": qa.min_lipsync_confidence,
        "min_sfx_confidence": qa.min_sfx_confidence,
        "speaker_expected": any(line.on_screen for line in scene.dialogue),
        "speech_expected": bool(scene.dialogue),
        "effects_expected": bool(scene.sound_cues),
        "events_s": tuple(master.event_times_s),
    }


def check_clip(
    rt: Runtime,
    plan: CampaignPlan,
    subject: str,
    uri: str,
    sha256: str,
    expect: Expectation,
    sync: dict[str, Any] | None = None,
    decide: Callable[[QAReport], Decision] | None = None,
    stems: tuple[str, tuple[str, ...]] | None = None,
) -> QAReport:
    """Run (or recall) the technical checks, and the sync scores when ``sync`` is given, on one stored
    clip; record every check against the run. ``decide(report) -> Decision`` sets the gate's decision.
    ``stems``: (uri, channel names) of the clip's stems (a master's): the sound-effect sync is scored on
    their ``effects`` channel."""
    fingerprint = code_fingerprint(media.qc, media.probe)
    if sync is not None:
        fingerprint += code_fingerprint(media.syncqa, media.lipsync, media.sfxsync, media.tracks, media.faces)
    key = cache_key("qa", sha256, asdict(expect), sync, stems, fingerprint)

    def produce() -> tuple[dict, None]:
        effects = effects_stem(rt, *stems) if stems is not None and sync is not None else None
        results = qa_checks(rt.store.fetch(uri), expect, sync, effects=effects)
        checks = [CheckOutcome(check=r.check, verdict=r.verdict, message=r.message, metrics=r.metrics) for r in results]
        return {"checks": [c.model_dump(mode="json") for c in checks]}, None

    record, _ = memoized(rt, "qa", key, produce)
    report = QAReport.from_checks(subject, [CheckOutcome.model_validate(c) for c in record["checks"]])
    if decide is not None:
        report = report.model_copy(update={"decision": decide(report)})
    record_report(rt, plan, report)
    return report


def effects_stem(rt: Runtime, uri: str, names: tuple[str, ...]) -> AudioTrack | None:
    """The ``effects`` channel of a stored stems WAV (media.encode.write_stems: channels ``names``), on
    the clip's clock; None when it has none."""
    if "effects" not in names:
        return None
    stems = read_stems(rt.store.fetch(uri))
    return AudioTrack(stems[names.index("effects")], STEMS_RATE, 0.0)


def record_report(rt: Runtime, plan: CampaignPlan, report: QAReport) -> None:
    """Every check of the report as a QA row of the run (with the gate's decision, when it made one)."""
    with rt.session() as session:
        for check in report.checks:
            runs.record_qa(
                session,
                run_id=plan.run_id,
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


@task(name="qa_master", cache_policy=NO_CACHE, task_run_name="qa-master-{master.scene_id}-{master.language}")
def qa_master(plan: CampaignPlan, master: MasterRecord) -> QAReport:
    """Technical QC against the master format plus lip-sync and sound-effect sync, and the gate's decision."""
    item = f"{master.scene_id}/{master.language}"
    brief = plan.brief
    scene = next(s for s in brief.scenes if s.id == master.scene_id)
    expect = Expectation.for_master(
        brief.master.width,
        brief.master.height,
        brief.master.fps,
        scene.duration_s,
        bed_under=brief.music is not None and brief.music.reference is not None,
    )
    rt = get_runtime()
    report = check_clip(
        rt,
        plan,
        master.subject,
        master.uri,
        master.sha256,
        expect,
        sync_expectation(brief, scene, master),
        decide=lambda r: gate(
            r, master.attempt - plan.first_attempt(master.scene_id, master.language), brief.qa.max_regenerations
        ),
        stems=(master.stems_uri, tuple(master.stem_names)) if master.stems_uri else None,
    )
    if report.decision != "regenerate":
        with rt.session() as session:
            job = runs.ensure_scene_job(session, plan.run_id, master.scene_id, master.language)
            status = SceneStatus.passed if report.decision == "pass" else SceneStatus.needs_review
            if job.status != status:
                runs.set_scene_status(session, job.id, status)
    emit(
        "qa_master",
        item,
        "flagged" if report.verdict == "fail" else "done",
        (f"{report.decision}: " + "; ".join(c.message for c in report.failures)) if report.failures else "pass",
    )
    return report


@task(name="qa_deliverable", cache_policy=NO_CACHE, task_run_name="qa-{deliverable.language}-{deliverable.platform}")
def qa_deliverable(
    plan: CampaignPlan, deliverable: DeliverableRecord, spec: PlatformSpec, duration_s: float
) -> QAReport:
    expect = Expectation.for_platform(spec, duration_s, loudness_tolerance_lu=plan.brief.qa.loudness_tolerance_lu)
    report = check_clip(
        get_runtime(),
        plan,
        f"deliverable:{deliverable.language}:{deliverable.platform}",
        deliverable.uri,
        deliverable.sha256,
        expect,
    )
    emit(
        "qa_deliverable",
        f"{deliverable.language}/{deliverable.platform}",
        "flagged" if report.verdict == "fail" else "done",
        "; ".join(c.message for c in report.failures),
    )
    return report


@task(name="qa_character_consistency", cache_policy=NO_CACHE)
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
    rt = get_runtime()
    uses = {scene.id: set(scene.references) for scene in plan.brief.scenes}
    reports = []
    for character in references:
        shown = [m for m in masters if character.id in uses.get(m.scene_id, ())]
        if character.kind == "image" and character.role == "character" and shown:
            reports.append(_character_report(rt, plan, character, shown, threshold))
    return reports


def _character_report(
    rt: Runtime, plan: CampaignPlan, character: IngestedReference, shown: list[MasterRecord], threshold: float
) -> QAReport:
    emit("qa_character", character.id, "started")
    clips = [(m.scene_id, m.language, m.sha256) for m in shown]
    key = cache_key("consistency", character.sha256, clips, code_fingerprint(media.consistency, media.faces))

    def measure() -> tuple[dict, None]:
        files = {(m.scene_id, m.language): rt.store.fetch(m.uri) for m in shown}
        return character_consistency(rt.store.fetch(character.uri), files), None

    measured, _ = memoized(rt, "consistency", key, measure)
    checks = [
        CheckOutcome(check=r.check, verdict=r.verdict, message=r.message, metrics=r.metrics)
        for r in consistency_checks(character.id, measured, threshold)
    ]
    report = QAReport.from_checks(f"character:{character.id}", checks)
    record_report(rt, plan, report)
    emit(
        "qa_character",
        character.id,
        "flagged" if report.verdict == "fail" else "done",
        "; ".join(c.message for c in report.failures),
    )
    return report
