"""Looking at briefs and runs: validate, runs, status, show and report. All but report read syncreel's
database alone, without Prefect, so they answer in well under a second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from syncreel.cli.output import console, error_exit, literal, load_or_exit, print_json, styled

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

RunId = Annotated[str | None, typer.Argument(help="Run id or unique prefix; default: newest.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print it as JSON.")]


def validate(
    brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"ok": ...} as JSON, with the brief\'s summary or its problems.')
    ] = False,
) -> None:
    """Check a brief and list every problem with its field path (exit 2 when there is one)."""
    loaded = load_or_exit(brief, as_json=as_json)
    if as_json:
        print_json(
            {
                "ok": True,
                "brief": str(brief),
                "campaign_id": loaded.campaign_id,
                "scenes": [scene.id for scene in loaded.scenes],
                "duration_s": loaded.duration_s,
                "languages": list(loaded.languages),
                "platforms": list(loaded.platforms),
                "references": [reference.id for reference in loaded.references],
            }
        )
        return
    console.print(
        f"[green]ok[/] {literal(brief)}: campaign {literal(repr(loaded.campaign_id))}, {len(loaded.scenes)} scenes "
        f"({loaded.duration_s:g} s), languages {literal(', '.join(loaded.languages))}, "
        f"platforms {literal(', '.join(loaded.platforms))}, {len(loaded.references)} references",
        soft_wrap=True,
    )


@contextmanager
def store_session() -> Iterator[Session]:
    """A session on syncreel's database (migrated first), without the runtime around it: its asset store
    and the Prefect it imports would cost these commands more than their answer."""
    from syncreel.schemas.settings import get_settings
    from syncreel.store.db import make_engine, session_scope, upgrade_database

    url = get_settings().database_url
    upgrade_database(url)
    with session_scope(make_engine(url)) as session:
        yield session


def run_detail(run_id: str | None) -> dict[str, Any]:
    """`store.runs.run_detail`, or the reason there is none and exit code 2."""
    from syncreel.store import runs

    with store_session() as session:
        try:
            return runs.run_detail(session, run_id)
        except LookupError as exc:
            raise error_exit(f"[red]{literal(exc)}[/]") from None


# What `runs --json` says of each run (the table shows the first few and the times).
RUN_FIELDS = ("id", "campaign_id", "status", "attempts", "owner", "created_at", "started_at", "finished_at", "error")


def list_runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20, as_json: AsJson = False
) -> None:
    """List recent campaign runs."""
    from syncreel.store import runs

    with store_session() as session:
        found = [{field: getattr(row, field) for field in RUN_FIELDS} for row in runs.list_runs(session, limit=limit)]
    if as_json:
        print_json(found)
        return
    table = Table(title="campaign runs")
    for column in ("run", "campaign", "status", "attempts", "created", "finished"):
        table.add_column(column, no_wrap=column in ("run", "campaign"))
    for row in found:
        table.add_row(
            literal(row["id"]),
            literal(row["campaign_id"]),
            styled(str(row["status"])),
            str(row["attempts"]),
            f"{row['created_at']:%Y-%m-%d %H:%M:%S}",
            f"{row['finished_at']:%Y-%m-%d %H:%M:%S}" if row["finished_at"] else "",
        )
    console.print(table)


def run_status(detail: dict[str, Any]) -> dict[str, Any]:
    """A run at a glance: its row, and its scene jobs, deliverables and QA checks counted by status."""
    return {
        "run": {key: value for key, value in detail["run"].items() if key != "brief"},
        "scene_jobs": dict(Counter(str(job["status"]) for job in detail["scene_jobs"])),
        "deliverables": len(detail["deliverables"]),
        "qa_checks": dict(Counter(str(row["verdict"]) for row in detail["qa_results"])),
    }


def status(run_id: RunId = None, as_json: AsJson = False) -> None:
    """One run's status: scene jobs and deliverables at a glance."""
    glance = run_status(run_detail(run_id))
    if as_json:
        print_json(glance)
        return
    run = glance["run"]
    console.print(
        f"run {literal(run['id'])} ({literal(run['campaign_id'])}): {styled(run['status'])}, attempt {run['attempts']}"
        + (f"; error: {literal(run['error'])}" if run.get("error") else ""),
        soft_wrap=True,
    )
    scenes = glance["scene_jobs"]
    console.print("scene jobs: " + ", ".join(f"{n} {styled(s)}" for s, n in sorted(scenes.items())))
    qa = glance["qa_checks"]
    console.print(
        f"deliverables: {glance['deliverables']}; QA checks: "
        + ", ".join(f"{n} {styled(v)}" for v, n in sorted(qa.items()))
    )


def show(
    run_id: RunId = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as JSON.")] = False,
) -> None:
    """Everything about a run: scene jobs, generations, deliverables, QA results."""
    detail = run_detail(run_id)
    if as_json:
        print_json(detail)
        return
    status(detail["run"]["id"])
    console.print(_scene_jobs_table(detail))
    deliverables = Table(title="deliverables")
    for column in ("language", "platform", "uri"):
        deliverables.add_column(column)
    for row in detail["deliverables"]:
        deliverables.add_row(literal(row["language"]), literal(row["platform"]), literal(row["uri"]))
    console.print(deliverables)
    qa = Table(title="QA results")
    for column in ("subject", "check", "verdict", "message"):
        qa.add_column(column)
    for row in detail["qa_results"]:
        qa.add_row(literal(row["subject"]), literal(row["check"]), styled(row["verdict"]), literal(row["message"]))
    console.print(qa)


def _scene_jobs_table(detail: dict[str, Any]) -> Table:
    """Each scene job with the generation it kept: backend, seed and seconds."""
    jobs = Table(title="scene jobs")
    for column in ("scene", "language", "status", "attempts", "backend", "seed", "seconds"):
        jobs.add_column(column)
    generations = {g["id"]: g for g in detail["generations"]}
    for job in detail["scene_jobs"]:
        gen = generations.get(job.get("generation_id")) or {}
        jobs.add_row(
            literal(job["scene_id"]),
            literal(job["language"]),
            styled(job["status"]),
            str(job["attempts"]),
            str(gen.get("backend", "")),
            str(gen.get("seed", "")),
            f"{gen['seconds']:.1f}" if gen.get("seconds") else "",
        )
    return jobs


def report(
    run_id: RunId = None,
    out: Annotated[Path | None, typer.Option(help="Write the HTML here (default: report-<run>.html).")] = None,
) -> None:
    """The run's HTML QA report: stills, sync curves, crop paths, loudness and every verdict."""
    from syncreel.tasks.report import build_report
    from syncreel.tasks.stage import get_runtime

    try:
        found, page = build_report(get_runtime(), run_id)
    except LookupError as exc:
        raise error_exit(f"[red]{literal(exc)}[/]") from None
    target = out or Path(f"report-{found}.html")
    target.write_text(page, encoding="utf-8")
    console.print(f"report of {literal(found)}: {literal(target)}")
