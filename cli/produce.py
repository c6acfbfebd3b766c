"""Producing a campaign: run (the flow in this process, a bar per stage) and submit (the deployment's
workers do the work; this process follows it). Prefect is imported only once a command starts."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncreel.cli.output import console, console_logs_to_file, err_console, literal, load_or_exit, styled
from syncreel.schemas.brief import Brief
from syncreel.schemas.errors import user_message
from syncreel.schemas.records import RunSummary, deliverable_path
from syncreel.schemas.settings import LogLevel, get_settings

if TYPE_CHECKING:
    from syncreel.flows.submit import Outcome, Submission
    from syncreel.tasks.stage import ProgressEvent

BriefPath = Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")]


def _quiet_prefect() -> None:
    """Prefect's own console output down to warnings (set before it is imported; the user's env wins)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _log_at(level: LogLevel | None) -> LogLevel:
    """Keep the run's log lines from ``level`` up (default SYNCREEL_LOG_LEVEL, INFO): syncreel's and
    Prefect's, sent to the Prefect API and written to syncreel.log. Set before Prefect is imported; the
    terminal shows none of them (`_produce`)."""
    chosen = level or get_settings().log_level
    os.environ["PREFECT_LOGGING_LEVEL"] = chosen
    return chosen


def run(
    brief: BriefPath,
    out: Annotated[Path, typer.Option(help="Where deliverables are copied: OUT/<campaign>/<lang>/*.mp4.")] = Path(
        "out"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview",
            help="Render only the scenes, small and with few sampler steps (the full render's seeds), with "
            "their QA; approve or reject them with `syncreel approve`, then run without --preview.",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Lowest level of the run's log lines sent to the Prefect API and syncreel.log "
            "[default: SYNCREEL_LOG_LEVEL, else INFO]. The terminal shows the bars and a line per problem.",
        ),
    ] = None,
) -> None:
    """Produce a campaign: generate, QA, assemble, render every platform variant, publish.

    Exit 0 when the run succeeded, 3 when it needs review (the report says why), 1 when it failed.
    """
    loaded = load_or_exit(brief)
    _log_at(log_level)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from syncreel.tasks.publish import export_deliverables
    from syncreel.tasks.stage import get_runtime

    summary = _produce(loaded, preview=preview, quiet=as_json)
    files = export_deliverables(get_runtime(), summary, out)
    if as_json:
        typer.echo(json.dumps({**summary.model_dump(mode="json"), "exported": [str(f) for f in files]}, indent=2))
        return
    folder = out / summary.campaign_id
    if summary.deliverables:
        console.print(deliverables_table(summary))
        console.print(files_line(summary.campaign_id, folder), soft_wrap=True)
    _print_run_notes(summary, folder)
    if summary.status != "succeeded":
        raise typer.Exit(3)


class StageBars:
    """A bar per stage of the flow, advanced by its progress events (`tasks.stage.listening`); QA flags
    and failures are printed above the bars, each failure once."""

    def __init__(self, progress: Progress, totals: dict[str, int]):
        self.progress, self.totals = progress, totals
        self.bars = {stage: progress.add_task(stage, total=total, note="") for stage, total in totals.items()}
        self.cached: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.reported: list[str] = []  # problems already shown, one line each

    def __call__(self, event: ProgressEvent) -> None:
        bar = self.bars.get(event.stage)
        if event.status == "flagged":
            self.progress.console.print(f"[yellow]QA {literal(event.item)}[/]: {literal(event.detail)}", soft_wrap=True)
        if event.status in ("done", "cached", "flagged") and bar is not None:
            self._advance(bar, event)
        elif event.status == "started" and bar is not None:
            self.progress.update(bar, note=f"{literal(event.item)}…")
        elif event.status == "failed" and event.detail not in self.reported:
            self.reported.append(event.detail)
            self.progress.console.print(
                f"[red]{literal(event.stage)} {literal(event.item)}[/]: {literal(event.detail)}", soft_wrap=True
            )

    def _advance(self, bar: TaskID, event: ProgressEvent) -> None:
        stage = event.stage
        self.cached[stage] += event.status == "cached"
        self.finished[stage] += 1
        # A scene regenerated after failing QA counts again: grow the bar rather than overflow it.
        self.progress.update(
            bar,
            total=max(self.totals[stage], self.finished[stage]),
            advance=1,
            note=literal(event.item) + (f" ({self.cached[stage]} cached)" if self.cached[stage] else ""),
        )


def _produce(brief: Brief, *, preview: bool, quiet: bool) -> RunSummary:
    """produce_campaign in this process with a bar per stage (none when ``quiet``); a failure becomes one
    line naming the log file that holds its traceback, and exit code 1."""
    from syncreel.flows.campaign import produce_campaign
    from syncreel.flows.progress import stage_totals
    from syncreel.tasks.stage import listening

    log = console_logs_to_file()
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, disable=quiet) as progress:
        bars = StageBars(progress, stage_totals(brief, preview=preview))
        try:
            with listening(bars):
                return produce_campaign(brief, preview=preview)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line; its traceback is in the log
            message = user_message(exc, log=str(log))
            shown = any(message in line for line in bars.reported)
            err_console.print(
                f"[red]run failed[/]{'' if shown else ': ' + literal(message)}; full log: {literal(log)}",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


def deliverables_table(summary: RunSummary) -> Table:
    """A row per deliverable, narrow enough for 80 columns: a file's name follows from its language and
    platform, so one line under the table names them all (`files_line`) rather than a column per row."""
    table = Table(title=f"{literal(summary.campaign_id)} — run {summary.run_id}: {summary.status}")
    for column in ("language", "platform", "size", "seconds", "LUFS", "MB", "QA"):
        table.add_column(column, overflow="fold")  # wrap, never cut, a platform name
    verdicts = {report.subject: report.verdict for report in summary.qa}
    for deliverable in summary.deliverables:
        table.add_row(
            literal(deliverable.language),
            literal(deliverable.platform),
            f"{deliverable.width}x{deliverable.height}",
            f"{deliverable.duration_s:.2f}",
            "" if deliverable.loudness_lufs is None else f"{deliverable.loudness_lufs:.1f}",
            f"{deliverable.size_bytes / 1e6:.2f}",
            styled(verdicts[deliverable.subject]),
        )
    return table


def files_line(campaign_id: str, folder: Path) -> str:
    """Where the deliverables were copied: ``files: OUT/<campaign>/`` + `deliverable_path`'s pattern."""
    return f"files: {literal(folder)}/{literal(deliverable_path(campaign_id, '<language>', '<platform>'))}"


def _print_run_notes(summary: RunSummary, folder: Path) -> None:
    """Each scene's verdict, the run's counts and where its manifest and report are, what to do after a
    preview, and every check that did not pass."""
    scene_reports = [r for r in summary.qa if r.subject.startswith("master:")]
    for report in scene_reports:
        console.print(
            f"  {literal(report.subject.removeprefix('master:'))}: {styled(report.decision or report.verdict)}"
        )
    console.print(
        f"generations: {summary.generated} run, {summary.reused} reused; "
        f"master QA: {sum(r.verdict != 'fail' for r in scene_reports)}/{len(scene_reports)} passed; "
        f"manifest: {literal(summary.manifest_uri)}; "
        f"report: {literal(folder / 'preview' if not summary.deliverables else folder)}/report.html; "
        f"{summary.seconds:.1f} s",
        soft_wrap=True,
    )
    if not summary.deliverables and summary.status != "failed":
        console.print(
            f"preview run {summary.run_id}: approve or reject each scene with "
            f"`syncreel approve {summary.run_id} SCENE[:LANG]... [--reject]`, then run without --preview"
        )
    for report in summary.qa:
        for check in report.checks:
            if check.verdict != "pass":
                console.print(
                    f"  {styled(check.verdict)} {literal(report.subject)} {literal(check.check)}: "
                    f"{literal(check.message)}",
                    soft_wrap=True,
                )


def submit(
    brief: BriefPath,
    deployment: Annotated[
        str | None, typer.Option(help="Deployment to run; default: SYNCREEL_CAMPAIGN_DEPLOYMENT.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Copy the deliverables here: OUT/<campaign>/<lang>/*.mp4.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="A preview run (see `syncreel run --preview`).")] = False,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 6 * 3600,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="The flow run's log level, set in its worker's environment [default: the worker's own].",
        ),
    ] = None,
) -> None:
    """Produce a campaign through the produce-campaign deployment (workers do the work) and follow it.

    Progress and outcome come from syncreel's database, so any machine with its settings can follow any
    run. Exit 0 when the run succeeded, 3 when it needs review, 1 when it failed, 4 on timeout.
    """
    loaded = load_or_exit(brief)
    _quiet_prefect()
    from syncreel.flows.submit import copy_deliverables, submit_campaign

    submission = submit_campaign(loaded, deployment=deployment, preview=preview, log_level=log_level)
    flow_run = submission.flow_run
    err_console.print(
        f"submitted to {literal(submission.deployment)}: flow run {literal(flow_run.name)} ({flow_run.id})"
    )
    outcome = _follow(submission, timeout_s=timeout, quiet=as_json)
    if out is not None:
        copy_deliverables(outcome, out)
    found = outcome.to_dict()
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
    else:
        console.print(
            f"flow run {literal(flow_run.name)}: {styled(str(found['flow_run_state']).lower())}; run "
            f"{literal(found['run_id'])}: {styled(str(found['status']))}, {len(outcome.deliverables)} deliverables"
        )
        if found["flow_run_message"]:
            err_console.print(f"  {literal(found['flow_run_message'])}")
    code = _submit_exit_code(outcome)
    if code:
        raise typer.Exit(code)


def _follow(submission: Submission, *, timeout_s: float, quiet: bool) -> Outcome:
    """Follow a submitted run to its end with a bar for its scenes and one for its deliverables."""
    from syncreel.flows.progress import stage_totals
    from syncreel.flows.submit import follow, settled_scenes

    totals = stage_totals(submission.brief, preview=submission.preview)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet) as progress:
        scene_bar = progress.add_task("scenes", total=totals["generate"])
        variants = totals.get("render", 0)
        variant_bar = progress.add_task("deliverables", total=variants or 1, visible=bool(variants))

        def show(detail: dict[str, Any]) -> None:
            progress.update(scene_bar, completed=settled_scenes(detail))
            progress.update(variant_bar, completed=len(detail["deliverables"]))

        return follow(submission, timeout_s=timeout_s, on_detail=show)


def _submit_exit_code(outcome: Outcome) -> int:
    """4: still running at the timeout; 1: failed; 3: ended needing review; 0: succeeded."""
    state, status = outcome.state, outcome.run.get("status")
    if state is None or not state.is_final():
        return 4
    if not state.is_completed() or status == "failed":
        return 1
    return 0 if status == "succeeded" else 3
