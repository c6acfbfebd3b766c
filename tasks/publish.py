"""publish: the manifest (JSON in the asset store), Prefect artifacts, and the run's final status."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from schemas.records import CampaignPlan, DeliverableRecord, MasterRecord, QAReport, RunSummary, SpotRecord
from store import runs
from store.models import RunStatus
from tasks.progress import emit
from tasks.runtime import Runtime, get_runtime


def build_manifest(
    rt: Runtime,
    plan: CampaignPlan,
    masters: list[MasterRecord],
    spots: list[SpotRecord],
    deliverables: list[DeliverableRecord],
    reports: list[QAReport],
    status: str,
) -> dict:
    verdicts = {report.subject: report for report in reports}
    return {
        "manifest_version": 1,
        "campaign_id": plan.brief.campaign_id,
        "title": plan.brief.title,
        "run_id": plan.run_id,
        "run_key": plan.run_key,
        "attempt": plan.attempt,
        "status": status,
        "published_at": datetime.now(UTC).isoformat(),
        "languages": plan.brief.languages,
        "scenes": [
            {
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
                "qa": verdicts[f"master:{m.scene_id}:{m.language}"].verdict,
            }
            for m in masters
        ],
        "spots": [s.model_dump(mode="json", exclude={"cached"}) for s in spots],
        "deliverables": [
            {
                **d.model_dump(mode="json", exclude={"cached"}),
                # A link to hand to a reviewer: presigned (7 days, the SigV4 maximum) on S3, file:// locally.
                "url": rt.store.url_for(d.uri, expires_s=7 * 24 * 3600),
                "spec": plan.platforms[d.platform].model_dump(mode="json"),
                "qa": verdicts[f"deliverable:{d.language}:{d.platform}"].model_dump(mode="json"),
            }
            for d in deliverables
        ],
    }


def _artifacts(
    plan: CampaignPlan, deliverables: list[DeliverableRecord], reports: list[QAReport], manifest_uri: str, status: str
) -> None:
    verdicts = {report.subject: report.verdict for report in reports}
    rows = [
        {
            "language": d.language,
            "platform": d.platform,
            "size": f"{d.width}x{d.height}",
            "seconds": round(d.duration_s, 2),
            "LUFS": d.loudness_lufs,
            "QA": verdicts[f"deliverable:{d.language}:{d.platform}"],
            "uri": d.uri,
        }
        for d in deliverables
    ]
    create_table_artifact(
        key=f"deliverables-{plan.brief.campaign_id}", table=rows, description=f"Deliverables of run {plan.run_id}"
    )
    failing = [r for r in reports if r.verdict != "pass"]
    lines = [
        f"# {plan.brief.title or plan.brief.campaign_id}",
        "",
        f"Run `{plan.run_id}` (attempt {plan.attempt}): **{status}**; manifest `{manifest_uri}`.",
        "",
        f"{len(deliverables)} deliverables, {len(reports)} QA reports, {len(failing)} not passing.",
        "",
    ]
    for report in failing:
        lines += [
            f"- `{report.subject}` **{report.verdict}**: "
            + "; ".join(c.message for c in report.checks if c.verdict != "pass")
        ]
    create_markdown_artifact(
        key=f"qa-{plan.brief.campaign_id}", markdown="\n".join(lines), description=f"QA of run {plan.run_id}"
    )


@task(name="publish", cache_policy=NO_CACHE)
def publish(
    plan: CampaignPlan,
    masters: list[MasterRecord],
    spots: list[SpotRecord],
    deliverables: list[DeliverableRecord],
    reports: list[QAReport],
    started_at: float,
) -> RunSummary:
    rt = get_runtime()
    emit("publish", plan.run_id, "started")
    status = RunStatus.succeeded if all(r.verdict != "fail" for r in reports) else RunStatus.needs_review
    manifest = build_manifest(rt, plan, masters, spots, deliverables, reports, str(status))
    with rt.scratch("manifest") as scratch:
        path = scratch / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2))
        stored = rt.store.put_named(path, f"runs/{plan.run_id}/manifest.json")
    _artifacts(plan, deliverables, reports, stored.uri, str(status))
    with rt.session() as session:
        runs.finish_run(session, plan.run_id, status, manifest_uri=stored.uri)
    generated = sum(not m.cached for m in masters)
    emit("publish", plan.run_id, "done", str(status))
    return RunSummary(
        run_id=plan.run_id,
        campaign_id=plan.brief.campaign_id,
        status=str(status),
        manifest_uri=stored.uri,
        deliverables=tuple(deliverables),
        qa=tuple(reports),
        generated=generated,
        reused=len(masters) - generated,
        seconds=time.time() - started_at,
    )


def export_deliverables(rt: Runtime, summary: RunSummary, out_dir: Path) -> list[Path]:
    """Copy a run's deliverables and manifest out of the asset store under readable names:
    ``OUT/<campaign>/<language>/<campaign>_<language>_<platform>.mp4`` and ``OUT/<campaign>/manifest.json``."""
    root = out_dir / summary.campaign_id
    written = []
    for d in summary.deliverables:
        target = root / d.language / f"{summary.campaign_id}_{d.language}_{d.platform}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rt.store.fetch(d.uri), target)
        written.append(target)
    manifest = root / "manifest.json"
    shutil.copyfile(rt.store.fetch(summary.manifest_uri), manifest)
    return [*written, manifest]
