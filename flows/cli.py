"""The `syncreel` command line: run a campaign, validate a brief, and look at runs.

Prefect is imported only by the commands that run flows, so `validate`, `runs`, `status` and `show`
answer in well under a second.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas.brief import Brief, BriefError, load_brief

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(add_completion=False, no_args_is_help=True, help="syncreel: synchronized AI video + sound ads.")
console = Console()
err_console = Console(stderr=True)

VERDICT_STYLE = {
    "pass": "green",
    "warn": "yellow",
    "fail": "red",
    "succeeded": "green",
    "needs_review": "yellow",
    "failed": "red",
    "running": "cyan",
    "pending": "dim",
}


def _styled(value: str) -> str:
    return f"[{VERDICT_STYLE.get(value, 'white')}]{value}[/]"


def _load(brief_path: Path) -> Brief:
    try:
        return load_brief(brief_path)
    except BriefError as exc:
        err_console.print(f"[red]{exc.source}[/]: {len(exc.issues)} problem{'s' * (len(exc.issues) != 1)}")
        for issue in exc.issues:
            err_console.print(f"  [bold]{issue.loc}[/]: {issue.message}", highlight=False)
        raise typer.Exit(2) from None


def _stage_totals(brief: Brief) -> dict[str, int]:
    scenes = len(brief.scenes) * len(brief.languages)
    variants = len(brief.platforms) * len(brief.languages)
    return {
        "ingest": len(brief.references),
        "generate": scenes,
        "qa_master": scenes,
        "assemble": len(brief.languages),
        "render": variants,
        "qa_deliverable": variants,
        "publish": 1,
    }


@app.command()
def validate(brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")]) -> None:
    """Check a brief and list every problem with its field path."""
    loaded = _load(brief)
    console.print(
        f"[green]ok[/] {brief}: campaign {loaded.campaign_id!r}, {len(loaded.scenes)} scenes "
        f"({loaded.duration_s:g} s), languages {', '.join(loaded.languages)}, "
        f"platforms {', '.join(loaded.platforms)}, {len(loaded.references)} references"
    )


def _qa_one(video: Path, expect: Any, thresholds: dict[str, Any], tracker: Any) -> dict[str, Any]:
    """Technical QC and both sync scores of one file, as a JSON-ready record (``error`` when unreadable)."""
    from media.errors import MediaError
    from media.probe import probe
    from media.qc import TECHNICAL_CHECKS, measure
    from media.syncqa import score_sync

    record: dict[str, Any] = {"path": str(video)}
    try:
        info = probe(video)
        qc = measure(video, info)
        checks = [check(info, qc, expect) for check in TECHNICAL_CHECKS]
        if info.video is not None and not info.is_image:
            report = score_sync(video, tracker=tracker, **thresholds)
            checks += list(report.checks)
    except MediaError as exc:
        return {**record, "verdict": "error", "error": str(exc)}
    record["checks"] = [
        {"check": c.check, "verdict": c.verdict, "message": c.message, "metrics": c.metrics} for c in checks
    ]
    verdicts = {c.verdict for c in checks}
    record["verdict"] = "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else "pass"
    return record


_QA_HEADLINES = {
    "lipsync": ("offset_ms", "confidence", "drift_ms_per_s", "face_share"),
    "sfx_sync": ("offset_ms", "confidence", "onsets"),
}


def _qa_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"{record['path']}: {record['verdict']}", title_justify="left")
    for column in ("check", "verdict", "scores", "message"):
        table.add_column(column, overflow="fold")
    for check in record["checks"]:
        metrics = check["metrics"]
        scores = []
        if check["check"] in _QA_HEADLINES:
            scores.append(str(metrics.get("status")))
            for key in _QA_HEADLINES[check["check"]]:
                value = metrics.get(key)
                if isinstance(value, float):
                    scores.append(f"{key} {value:.2f}")
                else:
                    scores.append(f"{key} {'–' if value is None else value}")
        table.add_row(check["check"], _styled(check["verdict"]), "\n".join(scores), check["message"])
    return table


@app.command()
def qa(
    videos: Annotated[list[Path], typer.Argument(help="Video files to check (any source, not only syncreel's).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every score and verdict as JSON.")] = False,
    platform: Annotated[
        str | None, typer.Option(help="Also check against this platform's spec (size, fps, codecs, loudness).")
    ] = None,
    speaker: Annotated[
        bool, typer.Option("--speaker", help="The clip should show its speaker talking: no face or speech fails.")
    ] = False,
    effects: Annotated[
        bool, typer.Option("--effects", help="Its sounds should follow what moves: no relation fails.")
    ] = False,
    max_audio_early_ms: Annotated[float, typer.Option(help="Lip / effect sync: audio early by more fails.")] = 45.0,
    max_audio_late_ms: Annotated[float, typer.Option(help="Lip / effect sync: audio late by more fails.")] = 125.0,
    min_lipsync_confidence: Annotated[
        float | None, typer.Option(help="Lip-sync confidence (peak − median correlation) under which it fails.")
    ] = None,
) -> None:
    """Score clips: lip-sync, sound-effect sync and technical QC, with a verdict for each.

    Exit 0 when every check passes or warns, 1 when one fails, 2 when a file cannot be read.
    """
    from media.faces import FaceModelError, FaceTracker
    from media.lipsync import DEFAULT_MIN_CONFIDENCE
    from media.qc import Expectation
    from schemas.platforms import resolve_platforms

    if platform is None:
        expect = Expectation(video_codec=None, audio_codec=None)
    else:
        specs = resolve_platforms()
        if platform not in specs:
            err_console.print(f"[red]unknown platform {platform!r}[/]; accepted: {', '.join(sorted(specs))}")
            raise typer.Exit(2)
        expect = Expectation.for_platform(specs[platform], None)
    thresholds = {
        "max_audio_early_ms": max_audio_early_ms,
        "max_audio_late_ms": max_audio_late_ms,
        "min_lipsync_confidence": DEFAULT_MIN_CONFIDENCE if min_lipsync_confidence is None else min_lipsync_confidence,
        "speaker_expected": speaker,
        "effects_expected": effects,
    }
    try:
        tracker = FaceTracker()
    except FaceModelError as exc:
        err_console.print(f"[red]cannot score lip-sync[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    records = []
    for video in videos:
        record = _qa_one(video, expect, thresholds, tracker)
        records.append(record)
        if as_json:
            continue
        if record["verdict"] == "error":
            err_console.print(f"[red]error[/] {record['error']}", highlight=False, soft_wrap=True)
        else:
            console.print(_qa_table(record))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    verdicts = {record["verdict"] for record in records}
    if "error" in verdicts:
        raise typer.Exit(2)
    if "fail" in verdicts:
        raise typer.Exit(1)


@app.command()
def run(
    brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")],
    out: Annotated[Path, typer.Option(help="Where deliverables are copied: OUT/<campaign>/<lang>/*.mp4.")] = Path(
        "out"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Produce a campaign: generate, QA, assemble, render every platform variant, publish."""
    loaded = _load(brief)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.campaign import produce_campaign
    from tasks.progress import listening
    from tasks.publish import export_deliverables
    from tasks.runtime import get_runtime

    totals = _stage_totals(loaded)
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, disable=as_json) as progress:
        bars = {stage: progress.add_task(stage, total=total, note="") for stage, total in totals.items()}
        cached: Counter[str] = Counter()
        finished: Counter[str] = Counter()

        def on_event(event: Any) -> None:
            bar = bars.get(event.stage)
            if event.status == "flagged":
                progress.console.print(f"[yellow]QA {event.item}[/]: {event.detail}", highlight=False)
            if event.status in ("done", "cached", "flagged") and bar is not None:
                cached[event.stage] += event.status == "cached"
                finished[event.stage] += 1
                # A scene regenerated after failing QA counts again: grow the bar rather than overflow it.
                progress.update(
                    bar,
                    total=max(totals[event.stage], finished[event.stage]),
                    advance=1,
                    note=f"{event.item}" + (f" ({cached[event.stage]} cached)" if cached[event.stage] else ""),
                )
            elif event.status == "started" and bar is not None:
                progress.update(bar, note=f"{event.item}…")
            elif event.status == "failed":
                progress.console.print(f"[red]{event.stage} {event.item}[/]: {event.detail}", highlight=False)

        try:
            with listening(on_event):
                summary = produce_campaign(loaded)
        except Exception as exc:
            err_console.print(f"[red]run failed[/]: {type(exc).__name__}: {exc}", highlight=False)
            raise typer.Exit(1) from None
    files = export_deliverables(get_runtime(), summary, out)
    if as_json:
        typer.echo(json.dumps({**summary.model_dump(mode="json"), "exported": [str(f) for f in files]}, indent=2))
        return
    folder = out / summary.campaign_id
    table = Table(
        title=f"{summary.campaign_id} — run {summary.run_id}: {summary.status}", caption=f"files under {folder}/"
    )
    for column in ("language", "platform", "size", "seconds", "LUFS", "MB", "QA", "file"):
        table.add_column(column, overflow="fold")  # wrap, never cut, a file or platform name
    verdicts = {report.subject: report for report in summary.qa}
    for deliverable, path in zip(summary.deliverables, files, strict=False):  # files: deliverables, then manifest
        report = verdicts[f"deliverable:{deliverable.language}:{deliverable.platform}"]
        table.add_row(
            deliverable.language,
            deliverable.platform,
            f"{deliverable.width}x{deliverable.height}",
            f"{deliverable.duration_s:.2f}",
            "" if deliverable.loudness_lufs is None else f"{deliverable.loudness_lufs:.1f}",
            f"{deliverable.size_bytes / 1e6:.2f}",
            _styled(report.verdict),
            str(path.relative_to(folder)),
        )
    console.print(table)
    scene_reports = [r for r in summary.qa if r.subject.startswith("master:")]
    console.print(
        f"scenes: {summary.generated} generated, {summary.reused} reused; "
        f"master QA: {sum(r.verdict != 'fail' for r in scene_reports)}/{len(scene_reports)} passed; "
        f"manifest: {summary.manifest_uri}; {summary.seconds:.1f} s"
    )
    for report in summary.qa:
        for check in report.checks:
            if check.verdict != "pass":
                console.print(
                    f"  {_styled(check.verdict)} {report.subject} {check.check}: {check.message}", highlight=False
                )
    if summary.status != "succeeded":
        raise typer.Exit(3)


@contextmanager
def _store_session() -> Iterator[tuple[ModuleType, Session]]:
    from store import runs
    from tasks.runtime import get_runtime

    with get_runtime().session() as session:
        yield runs, session


@app.command(name="runs")
def list_runs(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List recent campaign runs."""
    with _store_session() as (runs, session):
        rows = runs.list_runs(session, limit=limit)
        table = Table(title="campaign runs")
        for column in ("run", "campaign", "status", "attempts", "created", "finished"):
            table.add_column(column, no_wrap=column in ("run", "campaign"))
        for row in rows:
            table.add_row(
                row.id,
                row.campaign_id,
                _styled(str(row.status)),
                str(row.attempts),
                f"{row.created_at:%Y-%m-%d %H:%M:%S}",
                f"{row.finished_at:%Y-%m-%d %H:%M:%S}" if row.finished_at else "",
            )
    console.print(table)


@app.command()
def status(
    run_id: Annotated[str | None, typer.Argument(help="Run id or unique prefix; default: newest.")] = None,
) -> None:
    """One run's status: scene jobs and deliverables at a glance."""
    detail = _detail(run_id)
    run = detail["run"]
    console.print(
        f"run {run['id']} ({run['campaign_id']}): {_styled(run['status'])}, attempt {run['attempts']}"
        + (f"; error: {run['error']}" if run.get("error") else ""),
        highlight=False,
    )
    scenes = Counter(job["status"] for job in detail["scene_jobs"])
    console.print("scene jobs: " + ", ".join(f"{n} {_styled(s)}" for s, n in sorted(scenes.items())))
    qa = Counter(row["verdict"] for row in detail["qa_results"])
    console.print(
        f"deliverables: {len(detail['deliverables'])}; QA checks: "
        + ", ".join(f"{n} {_styled(v)}" for v, n in sorted(qa.items()))
    )


@app.command()
def show(
    run_id: Annotated[str | None, typer.Argument(help="Run id or unique prefix; default: newest.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as JSON.")] = False,
) -> None:
    """Everything about a run: scene jobs, generations, deliverables, QA results."""
    detail = _detail(run_id)
    if as_json:
        typer.echo(json.dumps(detail, indent=2, default=str))
        return
    status(detail["run"]["id"])
    jobs = Table(title="scene jobs")
    for column in ("scene", "language", "status", "attempts", "backend", "seed", "seconds"):
        jobs.add_column(column)
    generations = {g["id"]: g for g in detail["generations"]}
    for job in detail["scene_jobs"]:
        gen = generations.get(job.get("generation_id")) or {}
        jobs.add_row(
            job["scene_id"],
            job["language"],
            _styled(job["status"]),
            str(job["attempts"]),
            str(gen.get("backend", "")),
            str(gen.get("seed", "")),
            f"{gen['seconds']:.1f}" if gen.get("seconds") else "",
        )
    console.print(jobs)
    deliverables = Table(title="deliverables")
    for column in ("language", "platform", "uri"):
        deliverables.add_column(column)
    for row in detail["deliverables"]:
        deliverables.add_row(row["language"], row["platform"], row["uri"])
    console.print(deliverables)
    qa = Table(title="QA results")
    for column in ("subject", "check", "verdict", "message"):
        qa.add_column(column)
    for row in detail["qa_results"]:
        qa.add_row(row["subject"], row["check"], _styled(row["verdict"]), row["message"])
    console.print(qa)


def _detail(run_id: str | None) -> dict[str, Any]:
    with _store_session() as (runs, session):
        try:
            return runs.run_detail(session, run_id)
        except LookupError as exc:
            err_console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None


def main() -> None:
    app()
