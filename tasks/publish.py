"""publish: the manifest (JSON in the asset store), Prefect artifacts, and the run's final status."""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from syncreel.schemas.records import (
    CampaignPlan,
    DeliverableRecord,
    MasterRecord,
    QAReport,
    Review,
    RunRecords,
    RunSummary,
    character_of,
    deliverable_path,
    master_of,
)
from syncreel.store import runs
from syncreel.store.assets import manifest_key, report_key
from syncreel.store.models import RunStatus
from syncreel.tasks.report import store_report
from syncreel.tasks.stage import (
    NETWORK_BACKOFF,
    NETWORK_JITTER,
    NETWORK_RETRIES,
    Runtime,
    Stage,
    transient,
)


def build_manifest(rt: Runtime, plan: CampaignPlan, records: RunRecords, status: str) -> dict[str, Any]:
    """The run's manifest: what it made, from which references, and what QA and any reviewer said."""
    verdicts = {report.subject: report for report in records.reports}
    return {
        "manifest_version": 1,
        "campaign_id": plan.brief.campaign_id,
        "title": plan.brief.title,
        "run_id": plan.run_id,
        "run_key": plan.run_key,
        "attempt": plan.attempt,
        "status": status,
        "preview": plan.preview,
        "review": records.review.model_dump(mode="json") if records.review is not None else None,
        "published_at": datetime.now(UTC).isoformat(),
        "report_uri": rt.store.uri_for(report_key(plan.run_id)),
        "languages": plan.brief.languages,
        # each reference as ingested: its normalized asset, the upload's probe and its role's analysis
        "references": [r.model_dump(mode="json") for r in records.references],
        "scenes": [_manifest_scene(m, verdicts[m.subject], records.reports) for m in records.masters],
        # each character reference's face across the scenes and languages that use it (qa_character_consistency)
        "character_consistency": [
            {"reference": character, "verdict": r.verdict, "checks": [c.model_dump(mode="json") for c in r.checks]}
            for r in records.reports
            if (character := character_of(r.subject)) is not None
        ],
        "spots": [s.model_dump(mode="json", exclude={"cached"}) for s in records.spots],
        "deliverables": [
            {
                **d.model_dump(mode="json", exclude={"cached"}),
                # A link to hand to a reviewer: presigned (7 days, the SigV4 maximum) on S3, file:// locally.
                "url": rt.store.url_for(d.uri, expires_s=7 * 24 * 3600),
                "spec": plan.platforms[d.platform].model_dump(mode="json"),
                "qa": verdicts[d.subject].model_dump(mode="json"),
            }
            for d in records.deliverables
        ],
    }


def _manifest_scene(master: MasterRecord, report: QAReport, reports: tuple[QAReport, ...]) -> dict[str, Any]:
    """A kept master in the manifest, with every attempt the gate judged, oldest first: why each earlier
    seed was regenerated."""
    attempts = [
        {
            "attempt": judged[2],
            "verdict": r.verdict,
            "decision": r.decision,
            "failures": [f"{c.check}: {c.message}" for c in r.failures],
        }
        for r in reports
        if (judged := master_of(r.subject)) is not None and judged[:2] == (master.scene_id, master.language)
    ]
    m = master
    return {
        "scene_id": m.scene_id,
        "language": m.language,
        "uri": m.uri,
        "sha256": m.sha256,
        "backend": m.backend,
        "model_version": m.model_version,
        "seed": m.seed,
        "duration_s": m.duration_s,
        "unused_reference_roles": list(m.unused_reference_roles),
        "stems": {"uri": m.stems_uri, "channels": list(m.stem_names)} if m.stems_uri else None,
        "attempt": m.attempt,
        "qa": report.verdict,
        "decision": report.decision,
        "attempts": attempts,
    }


def _artifacts(plan: CampaignPlan, records: RunRecords, manifest_uri: str, status: str) -> None:
    """The run's deliverables, every QA check and a QA summary as Prefect artifacts."""
    slug = re.sub(r"[^a-z0-9-]", "-", plan.brief.campaign_id)  # artifact keys: lowercase, digits, dashes
    reports = records.reports
    verdicts = {report.subject: report.verdict for report in reports}
    rows = [_deliverable_row(d, verdicts[d.subject]) for d in records.deliverables]
    create_table_artifact(key=f"deliverables-{slug}", table=rows, description=f"Deliverables of run {plan.run_id}")
    checks = [
        {
            "subject": report.subject,
            "check": check.check,
            "verdict": check.verdict,
            "decision": report.decision or "",
            "offset ms": check.metrics.get("offset_ms"),
            "confidence": check.metrics.get("confidence"),
            "message": check.message,
        }
        for report in reports
        for check in report.checks
    ]
    create_table_artifact(key=f"qa-checks-{slug}", table=checks, description=f"Every QA check of run {plan.run_id}")
    markdown = _qa_summary(plan, records, manifest_uri, status)
    create_markdown_artifact(key=f"qa-{slug}", markdown=markdown, description=f"QA of run {plan.run_id}")


def _deliverable_row(d: DeliverableRecord, verdict: str) -> dict[str, Any]:
    return {
        "language": d.language,
        "platform": d.platform,
        "size": f"{d.width}x{d.height}",
        "seconds": round(d.duration_s, 2),
        "LUFS": d.loudness_lufs,
        "QA": verdict,
        "uri": d.uri,
    }


def _qa_summary(plan: CampaignPlan, records: RunRecords, manifest_uri: str, status: str) -> str:
    """The run in a few lines of markdown, and each report that did not pass with why."""
    failing = [r for r in records.reports if r.verdict != "pass"]
    lines = [
        f"# {plan.brief.title or plan.brief.campaign_id}",
        "",
        f"Run `{plan.run_id}` (attempt {plan.attempt}): **{status}**; manifest `{manifest_uri}`.",
        "",
        f"{len(records.deliverables)} deliverables, {len(records.reports)} QA reports, {len(failing)} not passing.",
        "",
    ]
    for report in failing:
        lines += [
            f"- `{report.subject}` **{report.verdict}**{f' → {report.decision}' if report.decision else ''}: "
            + "; ".join(c.message for c in report.checks if c.verdict != "pass")
        ]
    return "\n".join(lines)


def run_status(reports: tuple[QAReport, ...] | list[QAReport], review: Review | None) -> RunStatus:
    """needs_review when a deliverable or a character's consistency fails QA (reports without a gate
    decision), or a master the gate gave up on was not approved by a reviewer; masters that were
    regenerated and then passed do not count against the run."""
    approved = review is not None and review.approve
    for report in reports:
        if report.decision == "needs_review" and not approved:
            return RunStatus.needs_review
        if report.decision is None and report.verdict == "fail":
            return RunStatus.needs_review
    return RunStatus.succeeded


@task(
    name="publish",
    cache_policy=NO_CACHE,
    timeout_seconds=600,
    retries=NETWORK_RETRIES,
    retry_delay_seconds=NETWORK_BACKOFF,
    retry_jitter_factor=NETWORK_JITTER,
    retry_condition_fn=transient,
)
def publish(plan: CampaignPlan, records: RunRecords) -> RunSummary:
    """The manifest and the HTML QA report in the store, Prefect artifacts, and the run's final status.
    Uploads are tried again on failure (each replaces what an earlier try wrote)."""
    stage = Stage("publish", plan.run_id, plan=plan)
    stage.start()
    rt, status = stage.rt, run_status(records.reports, records.review)
    manifest = rt.store.put_text(
        json.dumps(build_manifest(rt, plan, records, str(status)), indent=2), manifest_key(plan.run_id)
    )
    store_report(rt, plan.run_id, str(status))  # from the database, as `syncreel report` makes it
    _artifacts(plan, records, manifest.uri, str(status))
    with rt.session() as session:
        runs.finish_run(session, plan.run_id, status, manifest_uri=manifest.uri)
    generated = sum(not m.cached for m in records.generations)
    stage.finish(detail=f"{status}, manifest {manifest.uri}")
    return RunSummary(
        run_id=plan.run_id,
        campaign_id=plan.brief.campaign_id,
        status=str(status),
        manifest_uri=manifest.uri,
        deliverables=records.deliverables,
        qa=records.reports,
        generated=generated,
        reused=len(records.generations) - generated,
        seconds=time.time() - records.started_at,
    )


def export_deliverables(rt: Runtime, summary: RunSummary, out_dir: Path) -> list[Path]:
    """Copy a run's deliverables, manifest and HTML report out of the asset store under readable names:
    ``OUT/<campaign>/<language>/<campaign>_<language>_<platform>.mp4``, ``OUT/<campaign>/manifest.json`` and
    ``report.html``; a preview run's scenes go to ``OUT/<campaign>/preview/<language>/<scene>.mp4`` with its
    manifest and report beside them. Deliverables come first in the list, in the summary's order."""
    root = out_dir / summary.campaign_id
    written = []
    for d in summary.deliverables:
        target = root / deliverable_path(summary.campaign_id, d.language, d.platform)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rt.store.fetch(d.uri), target)
        written.append(target)
    manifest = json.loads(rt.store.fetch(summary.manifest_uri).read_text())
    if manifest.get("preview"):
        root = root / "preview"
        for scene in manifest["scenes"]:
            target = root / scene["language"] / f"{scene['scene_id']}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rt.store.fetch(scene["uri"]), target)
            written.append(target)
    root.mkdir(parents=True, exist_ok=True)
    for name, uri in (("manifest.json", summary.manifest_uri), ("report.html", manifest.get("report_uri"))):
        if uri and rt.store.exists(uri):
            shutil.copyfile(rt.store.fetch(uri), root / name)
            written.append(root / name)
    return written
