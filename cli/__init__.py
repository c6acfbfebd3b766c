"""The `syncreel` command line: run a campaign, validate a brief, and look at runs.

Prefect is imported only by the commands that run flows, so `validate`, `runs`, `status` and `show`
answer in well under a second.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, Brief, BriefError, load_brief
from syncreel.schemas.errors import InputError
from syncreel.schemas.records import deliverable_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns a failure into one line; the traceback goes to the log
    help="syncreel: synchronized AI video + sound ads.",
)
# User text (ids, paths, dialogue, messages that quote values) is always shown as written: it goes
# through ``_u`` (markup escaped), and no console turns ':x:' into an emoji or recolours numbers.
console = Console(emoji=False, highlight=False)
err_console = Console(stderr=True, emoji=False, highlight=False)

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


def _u(value: object) -> str:
    """User text as rich prints it literally: '[/]' and '[out]' are not markup."""
    return escape(str(value))


def _styled(value: str) -> str:
    return f"[{VERDICT_STYLE.get(value, 'white')}]{_u(value)}[/]"


def _load(brief_path: Path) -> Brief:
    try:
        return load_brief(brief_path)
    except BriefError as exc:
        err_console.print(
            f"[red]{_u(exc.source)}[/]: {len(exc.issues)} problem{'s' * (len(exc.issues) != 1)}", soft_wrap=True
        )
        for issue in exc.issues:
            err_console.print(f"  [bold]{_u(issue.loc)}[/]: {_u(issue.message)}", soft_wrap=True)
        raise typer.Exit(2) from None


def _log_handler() -> logging.FileHandler:
    """The CLI's log file, ``SYNCREEL_WORK_DIR/syncreel.log``, where tracebacks go instead of the terminal."""
    from syncreel.schemas.settings import get_settings

    path = Path(get_settings().work_dir) / "syncreel.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _console_logs_to_file() -> Path:
    """Prefect's console log lines (tracebacks included) go to a log file instead of the terminal, where
    the user reads one line per problem; the lines still reach the Prefect API (the UI's run logs)."""
    target = _log_handler()
    loggers = [
        logging.getLogger(),
        *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            terminal = getattr(handler, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) and terminal:
                logger.removeHandler(handler)
                if target not in logger.handlers:
                    logger.addHandler(target)
    return Path(target.baseFilename)


def _stage_totals(brief: Brief, *, preview: bool = False) -> dict[str, int]:
    scenes = len(brief.scenes) * len(brief.languages)
    variants = 0 if preview else len(brief.platforms) * len(brief.languages)
    totals = {
        "ingest": len(brief.references),
        "speak": scenes,
        "generate": scenes,
        "qa_master": scenes,
        "assemble": 0 if preview else len(brief.languages),
        "render": variants,
        "qa_deliverable": variants,
        "publish": 1,
    }
    return {stage: total for stage, total in totals.items() if total}


@app.command()
def validate(brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")]) -> None:
    """Check a brief and list every problem with its field path."""
    loaded = _load(brief)
    console.print(
        f"[green]ok[/] {_u(brief)}: campaign {_u(repr(loaded.campaign_id))}, {len(loaded.scenes)} scenes "
        f"({loaded.duration_s:g} s), languages {_u(', '.join(loaded.languages))}, "
        f"platforms {_u(', '.join(loaded.platforms))}, {len(loaded.references)} references",
        soft_wrap=True,
    )


def _qa_one(video: Path, expect: Any, thresholds: dict[str, Any], tracker: Any) -> dict[str, Any]:
    """Technical QC and both sync scores of one file, as a JSON-ready record (``error`` when unreadable)."""
    from syncreel.media.errors import MediaError
    from syncreel.media.probe import probe
    from syncreel.media.syncqa import qa_checks

    record: dict[str, Any] = {"path": str(video)}
    try:
        info = probe(video)
        picture = info.video is not None and not info.is_image
        checks = qa_checks(video, expect, thresholds if picture else None, tracker=tracker, info=info)
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
    table = Table(title=f"{_u(record['path'])}: {_u(record['verdict'])}", title_justify="left")
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
        table.add_row(_u(check["check"]), _styled(check["verdict"]), _u("\n".join(scores)), _u(check["message"]))
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
    max_audio_early_ms: Annotated[float, typer.Option(help="Sync: audio early by more fails.")] = AUDIO_EARLY_MS,
    max_audio_late_ms: Annotated[float, typer.Option(help="Sync: audio late by more fails.")] = AUDIO_LATE_MS,
    min_lipsync_confidence: Annotated[
        float | None, typer.Option(help="Lip-sync confidence (peak − median correlation) under which it fails.")
    ] = None,
) -> None:
    """Score clips: lip-sync, sound-effect sync and technical QC, with a verdict for each.

    Exit 0 when every check passes or warns, 1 when one fails, 2 when a file cannot be read.
    """
    from syncreel.media.faces import FaceModelError, FaceTracker
    from syncreel.media.lipsync import DEFAULT_MIN_CONFIDENCE
    from syncreel.media.qc import Expectation
    from syncreel.schemas.platforms import resolve_platforms

    if platform is None:
        expect = Expectation(video_codec=None, audio_codec=None)
    else:
        specs = resolve_platforms()
        if platform not in specs:
            err_console.print(f"[red]unknown platform {_u(repr(platform))}[/]; accepted: {', '.join(sorted(specs))}")
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
        err_console.print(f"[red]cannot score lip-sync[/]: {_u(exc)}")
        raise typer.Exit(2) from None
    records = []
    for video in videos:
        record = _qa_one(video, expect, thresholds, tracker)
        records.append(record)
        if as_json:
            continue
        if record["verdict"] == "error":
            err_console.print(f"[red]error[/] {_u(record['error'])}", soft_wrap=True)
        else:
            console.print(_qa_table(record))
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    verdicts = {record["verdict"] for record in records}
    if "error" in verdicts:
        raise typer.Exit(2)
    if "fail" in verdicts:
        raise typer.Exit(1)


def _analysis_lines(result: dict[str, Any]) -> list[str]:
    """The analysis a producer reads: tempo and beats, speech, shots and motion, faces and colours."""
    from syncreel.media.analysis import describe

    lines = [f"[bold]{_u(result['file'])}[/] ({_u(result['format'])}, {result['duration_s']:.2f} s)"]
    for part in ("music", "voice", "motion", "image"):
        if part in result:
            lines += [f"  {_u(line)}" for line in describe(result[part])]
    return lines


@app.command()
def analyze(
    files: Annotated[list[Path], typer.Argument(help="Audio, video or image files to analyse before briefing them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every analysis as JSON.")] = False,
) -> None:
    """Tempo, beats, downbeats and sections; speech segments; shots and motion; faces and colours."""
    from syncreel.media.analysis import analyse_file
    from syncreel.media.errors import MediaError

    results, failed = [], False
    for path in files:
        try:
            result = analyse_file(path)
        except MediaError as exc:
            failed = True
            result = {"file": str(path), "error": exc.problem}
            if not as_json:
                err_console.print(f"[red]error[/] {_u(path)}: {_u(exc.problem)}", soft_wrap=True)
        results.append(result)
        if not as_json and "error" not in result:
            for line in _analysis_lines(result):
                console.print(line, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    if failed:
        raise typer.Exit(2)


@app.command()
def run(
    brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")],
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
) -> None:
    """Produce a campaign: generate, QA, assemble, render every platform variant, publish.

    Exit 0 when the run succeeded, 3 when it needs review (the report says why), 1 when it failed.
    """
    loaded = _load(brief)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from syncreel.flows.campaign import produce_campaign
    from syncreel.schemas.errors import user_message
    from syncreel.tasks.progress import listening
    from syncreel.tasks.publish import export_deliverables
    from syncreel.tasks.runtime import get_runtime

    log = _console_logs_to_file()
    totals = _stage_totals(loaded, preview=preview)
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
        reported: list[str] = []  # problems already shown, one line each

        def on_event(event: Any) -> None:
            bar = bars.get(event.stage)
            if event.status == "flagged":
                progress.console.print(f"[yellow]QA {_u(event.item)}[/]: {_u(event.detail)}", soft_wrap=True)
            if event.status in ("done", "cached", "flagged") and bar is not None:
                cached[event.stage] += event.status == "cached"
                finished[event.stage] += 1
                # A scene regenerated after failing QA counts again: grow the bar rather than overflow it.
                progress.update(
                    bar,
                    total=max(totals[event.stage], finished[event.stage]),
                    advance=1,
                    note=_u(event.item) + (f" ({cached[event.stage]} cached)" if cached[event.stage] else ""),
                )
            elif event.status == "started" and bar is not None:
                progress.update(bar, note=f"{_u(event.item)}…")
            elif event.status == "failed" and event.detail not in reported:
                reported.append(event.detail)
                progress.console.print(
                    f"[red]{_u(event.stage)} {_u(event.item)}[/]: {_u(event.detail)}", soft_wrap=True
                )

        try:
            with listening(on_event):
                summary = produce_campaign(loaded, preview=preview)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line; its traceback is in the log
            message = user_message(exc, log=str(log))
            shown = any(message in line for line in reported)
            err_console.print(
                f"[red]run failed[/]{'' if shown else ': ' + _u(message)}; full log: {_u(log)}", soft_wrap=True
            )
            raise typer.Exit(1) from None
    files = export_deliverables(get_runtime(), summary, out)
    if as_json:
        typer.echo(json.dumps({**summary.model_dump(mode="json"), "exported": [str(f) for f in files]}, indent=2))
        return
    folder = out / summary.campaign_id
    table = Table(
        title=f"{_u(summary.campaign_id)} — run {summary.run_id}: {summary.status}",
        caption=f"files under {_u(folder)}/",
    )
    for column in ("language", "platform", "size", "seconds", "LUFS", "MB", "QA", "file"):
        table.add_column(column, overflow="fold")  # wrap, never cut, a file or platform name
    verdicts = {report.subject: report for report in summary.qa}
    for deliverable, path in zip(summary.deliverables, files, strict=False):  # files: deliverables, then manifest
        report = verdicts[f"deliverable:{deliverable.language}:{deliverable.platform}"]
        table.add_row(
            _u(deliverable.language),
            _u(deliverable.platform),
            f"{deliverable.width}x{deliverable.height}",
            f"{deliverable.duration_s:.2f}",
            "" if deliverable.loudness_lufs is None else f"{deliverable.loudness_lufs:.1f}",
            f"{deliverable.size_bytes / 1e6:.2f}",
            _styled(report.verdict),
            _u(path.relative_to(folder)),
        )
    if summary.deliverables:
        console.print(table)
    scene_reports = [r for r in summary.qa if r.subject.startswith("master:")]
    for report in scene_reports:
        console.print(f"  {_u(report.subject.removeprefix('master:'))}: {_styled(report.decision or report.verdict)}")
    console.print(
        f"generations: {summary.generated} run, {summary.reused} reused; "
        f"master QA: {sum(r.verdict != 'fail' for r in scene_reports)}/{len(scene_reports)} passed; "
        f"manifest: {_u(summary.manifest_uri)}; "
        f"report: {_u(folder / 'preview' if not summary.deliverables else folder)}/report.html; "
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
                    f"  {_styled(check.verdict)} {_u(report.subject)} {_u(check.check)}: {_u(check.message)}",
                    soft_wrap=True,
                )
    if summary.status != "succeeded":
        raise typer.Exit(3)


def _variant_checks(results: dict[str, Any], specs: dict[str, Any], duration_s: float) -> dict[str, list[Any]]:
    """Technical QC of every output against its platform's spec; a copy shares its original's measurement."""
    from concurrent.futures import ThreadPoolExecutor

    from syncreel.media.probe import probe
    from syncreel.media.qc import TECHNICAL_CHECKS, Expectation, measure

    originals = [name for name, result in results.items() if result.same_render_as is None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        measured = dict(zip(originals, pool.map(lambda n: measure(results[n].path), originals), strict=True))
    checks = {}
    for name, result in results.items():
        qc = measured[result.same_render_as or name]
        expect = Expectation.for_platform(specs[name], duration_s)
        checks[name] = [check(probe(result.path), qc, expect) for check in TECHNICAL_CHECKS]
    return checks


@app.command()
def variants(
    video: Annotated[Path, typer.Argument(help="The master to reframe and encode (any footage).")],
    platform: Annotated[
        list[str], typer.Option("--platform", "-p", help="Platform name from the registry (repeat for more).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for <platform>.mp4 and its side files.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Spec check, loudness and the crop window per frame, as JSON.")
    ] = False,
    captions: Annotated[
        Path | None, typer.Option(help="SRT or WebVTT file: burned in where the platform says so, and sidecars.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Language of the captions (for the WebVTT header).")] = None,
    hints: Annotated[
        Path | None,
        typer.Option(help="JSON list of subject hints: {start_s, end_s, box: [x0, y0, x1, y1] (0-1), required}."),
    ] = None,
    overrides: Annotated[
        Path | None, typer.Option(help="YAML/JSON of platform overrides, as a brief's platform_overrides.")
    ] = None,
    preset: Annotated[str, typer.Option(help="x264 preset.")] = "veryfast",
    faces: Annotated[bool, typer.Option(help="Look for faces when reframing (--no-faces: motion only).")] = True,
) -> None:
    """Reframe and encode one master for several platforms: one decode, subject-aware crops.

    Exit 0 when every output passes its platform's checks (or warns), 1 when one fails, 2 on bad input.
    """
    from pydantic import ValidationError
    from syncreel.media.captions import read_subtitles
    from syncreel.media.errors import MediaError
    from syncreel.media.probe import probe
    from syncreel.media.reframe import SubjectHint
    from syncreel.media.variants import render_variants
    from syncreel.schemas.document import parse_limited, read_capped
    from syncreel.schemas.platforms import resolve_platforms

    try:
        registry = resolve_platforms(parse_limited(read_capped(overrides)) if overrides else None)
        unknown = [name for name in platform if name not in registry]
        if unknown:
            raise ValueError(f"unknown platform {', '.join(unknown)}; accepted: {', '.join(sorted(registry))}")
        specs = {name: registry[name] for name in dict.fromkeys(platform)}
        cues = read_subtitles(captions) if captions else []
        subject_hints = [SubjectHint.from_dict(h) for h in json.loads(hints.read_text())] if hints else []
        source = probe(video)
        with Progress(
            TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, disable=as_json
        ) as progress:
            progress.add_task(f"rendering {len(specs)} variants of {video.name}", total=None)
            results = render_variants(
                video, specs, out, cues=cues, language=language, hints=subject_hints, x264_preset=preset, faces=faces
            )
            checks = _variant_checks(results, specs, source.duration_s)
    except (MediaError, ValidationError, ValueError, OSError) as exc:
        err_console.print(f"[red]error[/] {_u(exc)}", soft_wrap=True)
        raise typer.Exit(2) from None
    verdicts = {
        name: "fail" if any(c.verdict == "fail" for c in found) else "warn" if any(c.verdict == "warn" for c in found)
        else "pass"
        for name, found in checks.items()
    }  # fmt: skip
    if as_json:
        report = []
        for name, result in results.items():
            crop = result.crop_path.to_dict()
            report.append(
                {
                    **result.to_dict(),
                    "verdict": verdicts[name],
                    "checks": [
                        {"check": c.check, "verdict": c.verdict, "message": c.message, "metrics": c.metrics}
                        for c in checks[name]
                    ],
                    "crop_windows": [{"x": x, "y": y, "w": w, "h": h, "mode": m} for x, y, w, h, m in crop["frames"]],
                }
            )
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"{_u(video)} → {_u(out)}/", title_justify="left")
        for column in ("platform", "size", "reframe", "max step px", "LUFS", "dBTP", "QA", "file"):
            table.add_column(column, overflow="fold")
        for name, result in results.items():
            summary = result.crop_path.summary()
            reframe = summary["mode"] + (f" ({summary['pad_share']:.0%} padded)" if summary["mode"] == "mixed" else "")
            loud = result.loudness
            table.add_row(
                name,
                f"{result.info.video.width}x{result.info.video.height}" if result.info.video else "",
                reframe,
                f"{summary['max_step_px']:.0f}",
                "" if loud.output_lufs is None else f"{loud.output_lufs:.1f}",
                "" if loud.output_true_peak_dbtp is None else f"{loud.output_true_peak_dbtp:.1f}",
                _styled(verdicts[name]),
                _u(result.path.name + (f" (= {result.same_render_as})" if result.same_render_as else "")),
            )
        console.print(table)
        for name, found in checks.items():
            for check in found:
                if check.verdict != "pass":
                    console.print(
                        f"  {_styled(check.verdict)} {name} {check.check}: {_u(check.message)}", soft_wrap=True
                    )
    if "fail" in verdicts.values():
        raise typer.Exit(1)


@contextmanager
def _store_session() -> Iterator[tuple[ModuleType, Session]]:
    from syncreel.store import runs
    from syncreel.tasks.runtime import get_runtime

    with get_runtime().session() as session:
        yield runs, session


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The preview run (id or unique prefix).")],
    scenes: Annotated[
        list[str] | None, typer.Argument(help="SCENE or SCENE:LANG (every language when LANG is left out).")
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject them: the full render tries a new seed.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Every scene of the preview.")] = False,
    reviewer: Annotated[str, typer.Option(help="Who decides (shown in the report).")] = os.environ.get("USER", ""),
    note: Annotated[str, typer.Option(help="Why (shown in the report).")] = "",
) -> None:
    """Approve (or --reject) previewed scenes: the full render keeps an approved scene's seed and gives a
    rejected one the next seed."""
    from syncreel.tasks.plan import run_key_for
    from syncreel.tasks.review import record_approval

    with _store_session() as (runs, session):
        try:
            run = runs.get_run(session, run_id)
        except LookupError as exc:
            err_console.print(f"[red]{_u(exc)}[/]")
            raise typer.Exit(2) from None
        detail = runs.run_detail(session, run.id)
        run_id, items = run.id, [(job["scene_id"], job["language"]) for job in detail["scene_jobs"]]
        is_preview = run.run_key == run_key_for(Brief.model_validate(run.brief), preview=True)
    if not is_preview:
        err_console.print(f"[red]{_u(run_id)}[/]: not a preview run (make one with `syncreel run BRIEF --preview`)")
        raise typer.Exit(2)
    chosen = items if every else []
    for wanted in scenes or []:
        scene_id, _, language = wanted.partition(":")
        matched = [item for item in items if item[0] == scene_id and (not language or item[1] == language)]
        if not matched:
            known = ", ".join(sorted({f"{s}:{lang}" for s, lang in items}))
            err_console.print(f"[red]{_u(wanted)}[/]: not a scene of run {_u(run_id)}; its scenes: {_u(known)}")
            raise typer.Exit(2)
        chosen += matched
    if not chosen:
        err_console.print("name scenes (SCENE or SCENE:LANG) or pass --all")
        raise typer.Exit(2)
    for scene_id, language in dict.fromkeys(chosen):
        record_approval(run_id, scene_id, language, approve=not reject, reviewer=reviewer, note=note)
        decided = "rejected" if reject else "approved"
        console.print(f"{_u(scene_id)}:{_u(language)} {_styled('fail' if reject else 'pass')} {decided}")


@app.command()
def report(
    run_id: Annotated[str | None, typer.Argument(help="Run id or unique prefix; default: newest.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the HTML here (default: report-<run>.html).")] = None,
) -> None:
    """The run's HTML QA report: stills, sync curves, crop paths, loudness and every verdict."""
    from syncreel.tasks.report import build_report
    from syncreel.tasks.runtime import get_runtime

    try:
        found, page = build_report(get_runtime(), run_id)
    except LookupError as exc:
        err_console.print(f"[red]{_u(exc)}[/]")
        raise typer.Exit(2) from None
    target = out or Path(f"report-{found}.html")
    target.write_text(page, encoding="utf-8")
    console.print(f"report of {_u(found)}: {_u(target)}")


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
                _u(row.id),
                _u(row.campaign_id),
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
        f"run {_u(run['id'])} ({_u(run['campaign_id'])}): {_styled(run['status'])}, attempt {run['attempts']}"
        + (f"; error: {_u(run['error'])}" if run.get("error") else ""),
        soft_wrap=True,
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
            _u(job["scene_id"]),
            _u(job["language"]),
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
        deliverables.add_row(_u(row["language"]), _u(row["platform"]), _u(row["uri"]))
    console.print(deliverables)
    qa = Table(title="QA results")
    for column in ("subject", "check", "verdict", "message"):
        qa.add_column(column)
    for row in detail["qa_results"]:
        qa.add_row(_u(row["subject"]), _u(row["check"]), _styled(row["verdict"]), _u(row["message"]))
    console.print(qa)


def _detail(run_id: str | None) -> dict[str, Any]:
    with _store_session() as (runs, session):
        try:
            return runs.run_detail(session, run_id)
        except LookupError as exc:
            err_console.print(f"[red]{_u(exc)}[/]")
            raise typer.Exit(2) from None


@app.command()
def server(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="PREFECT_SERVER_DATABASE_URL",
            help="Postgres database of the Prefect server (postgresql+psycopg:// or +asyncpg://).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs in the fleet: slots of the GPU concurrency limit.")] = 1,
    apply_deployments: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="Apply deployments/prefect.yaml once the server is up.")
    ] = False,
) -> None:
    """Run the Prefect server on Postgres with syncreel's work pools and GPU limit (deployments/README.md)."""
    from syncreel.flows.deployments import serve

    raise typer.Exit(serve(database_url, host, port, gpus, apply_deployments))


def _follow(run_key: str) -> dict[str, Any] | None:
    from syncreel.store import runs

    with _store_session() as (_, session):
        found = runs.find_run(session, run_key)
        return None if found is None else runs.run_detail(session, found.id)


@app.command()
def submit(
    brief: Annotated[Path, typer.Argument(help="Brief file (.yaml, .yml, .json).")],
    deployment: Annotated[
        str | None, typer.Option(help="Deployment to run; default: SYNCREEL_CAMPAIGN_DEPLOYMENT.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Copy the deliverables here: OUT/<campaign>/<lang>/*.mp4.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="A preview run (see `syncreel run --preview`).")] = False,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 6 * 3600,
) -> None:
    """Produce a campaign through the produce-campaign deployment (workers do the work) and follow it.

    Progress and outcome come from syncreel's database, so any machine with its settings can follow any
    run. Exit 0 when the run succeeded, 3 when it needs review, 1 when it failed, 4 on timeout.
    """
    import time

    loaded = _load(brief)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect import get_client
    from prefect.deployments import run_deployment
    from syncreel.schemas.settings import get_settings
    from syncreel.tasks.plan import preview_brief, run_key_for
    from syncreel.tasks.runtime import get_runtime

    name = deployment or get_settings().campaign_deployment
    flow_run = run_deployment(
        name, parameters={"brief": loaded.model_dump(mode="json"), "preview": preview}, timeout=0, as_subflow=False
    )
    run_key = run_key_for(preview_brief(loaded) if preview else loaded, preview=preview)
    scenes = len(loaded.scenes) * len(loaded.languages)
    variants = 0 if preview else len(loaded.platforms) * len(loaded.languages)
    err_console.print(f"submitted to {_u(name)}: flow run {_u(flow_run.name)} ({flow_run.id})")
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] | None = None
    with Progress(*columns, console=err_console, disable=as_json) as progress, get_client(sync_client=True) as client:
        scene_bar = progress.add_task("scenes", total=scenes)
        variant_bar = progress.add_task("deliverables", total=variants or 1, visible=bool(variants))
        state = client.read_flow_run(flow_run.id).state
        while time.monotonic() < deadline:
            state = client.read_flow_run(flow_run.id).state
            detail = _follow(run_key)
            if detail is not None:
                settled = sum(j["status"] in ("generated", "passed", "needs_review") for j in detail["scene_jobs"])
                progress.update(scene_bar, completed=settled)
                progress.update(variant_bar, completed=len(detail["deliverables"]))
            if state is not None and state.is_final():
                break
            time.sleep(1)
    detail = _follow(run_key)
    run_row = (detail or {}).get("run") or {}
    if out is not None and detail is not None:
        store = get_runtime().store
        for row in detail["deliverables"]:
            target = out / loaded.campaign_id / deliverable_path(loaded.campaign_id, row["language"], row["platform"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.fetch(row["uri"]).read_bytes())
    outcome = {
        "flow_run_id": str(flow_run.id),
        "flow_run_state": state.name if state is not None else None,
        "run_id": run_row.get("id"),
        "status": run_row.get("status"),
        "manifest_uri": run_row.get("manifest_uri"),
        "deliverables": [
            {"language": d["language"], "platform": d["platform"], "uri": d["uri"]}
            for d in (detail or {}).get("deliverables", [])
        ],
    }
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
    else:
        console.print(
            f"flow run {_u(flow_run.name)}: {_styled(str(outcome['flow_run_state']).lower())}; run "
            f"{_u(outcome['run_id'])}: {_styled(str(outcome['status']))}, {len(outcome['deliverables'])} deliverables"
        )
    if state is None or not state.is_final():
        raise typer.Exit(4)
    if not state.is_completed() or outcome["status"] == "failed":
        raise typer.Exit(1)
    if outcome["status"] != "succeeded":
        raise typer.Exit(3)


def main() -> None:
    """The console script: any failure a command did not turn into its own message becomes one line
    (schemas.errors.user_message), with the traceback written to the log file instead of the terminal."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last resort: nothing reaches the user as a traceback
        from syncreel.schemas.errors import user_message

        handler = _log_handler()
        logger = logging.getLogger("syncreel.cli")
        logger.addHandler(handler)
        logger.error("syncreel %s failed", " ".join(sys.argv[1:2]), exc_info=exc)
        logger.removeHandler(handler)
        handler.close()
        err_console.print(f"[red]error[/]: {_u(user_message(exc, log=handler.baseFilename))}", soft_wrap=True)
        raise SystemExit(2 if isinstance(exc, InputError) else 1) from None
