"""qa_master / qa_deliverable: technical checks on a stored clip, recorded per run in the database."""

from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE

import media.probe
import media.qc
from media.qc import Expectation, run_checks
from schemas.platforms import PlatformSpec
from schemas.records import CampaignPlan, CheckOutcome, DeliverableRecord, MasterRecord, QAReport
from store import runs
from store.models import SceneStatus
from tasks.progress import emit
from tasks.runtime import Runtime, cache_key, code_fingerprint, get_runtime, memoized


def check_clip(rt: Runtime, plan: CampaignPlan, subject: str, uri: str, sha256: str, expect: Expectation) -> QAReport:
    """Run (or recall) the technical checks on one stored clip and record them against the run."""
    key = cache_key("qa", sha256, asdict(expect), code_fingerprint(media.qc, media.probe))

    def produce() -> tuple[dict, None]:
        results = run_checks(rt.store.fetch(uri), expect)
        checks = [CheckOutcome(check=r.check, verdict=r.verdict, message=r.message, metrics=r.metrics) for r in results]
        return {"checks": [c.model_dump(mode="json") for c in checks]}, None

    record, cached = memoized(rt, "qa", key, produce)
    report = QAReport.from_checks(subject, [CheckOutcome.model_validate(c) for c in record["checks"]])
    with rt.session() as session:
        for check in report.checks:
            runs.record_qa(
                session,
                run_id=plan.run_id,
                subject=subject,
                check=check.check,
                verdict=check.verdict,
                metrics=check.metrics,
                message=check.message,
            )
    return report


@task(name="qa_master", cache_policy=NO_CACHE, task_run_name="qa-master-{master.scene_id}-{master.language}")
def qa_master(plan: CampaignPlan, master: MasterRecord) -> QAReport:
    item = f"{master.scene_id}/{master.language}"
    brief = plan.brief
    scene = next(s for s in brief.scenes if s.id == master.scene_id)
    expect = Expectation.for_master(brief.master.width, brief.master.height, brief.master.fps, scene.duration_s)
    rt = get_runtime()
    report = check_clip(rt, plan, f"master:{master.scene_id}:{master.language}", master.uri, master.sha256, expect)
    final = master.attempt >= brief.qa.max_regenerations
    if report.verdict != "fail" or final:
        with rt.session() as session:
            job = runs.ensure_scene_job(session, plan.run_id, master.scene_id, master.language)
            status = SceneStatus.passed if report.verdict != "fail" else SceneStatus.needs_review
            if job.status != status:
                runs.set_scene_status(session, job.id, status)
    emit(
        "qa_master",
        item,
        "flagged" if report.verdict == "fail" else "done",
        "; ".join(c.message for c in report.failures),
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
