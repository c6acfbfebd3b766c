"""Commands on any media file, outside a campaign: qa (scores and verdicts), analyze (what a producer reads
before briefing a file) and variants (one master reframed and encoded for several platforms)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncreel.cli.output import console, err_console, error_exit, literal, styled
from syncreel.schemas.brief import AUDIO_EARLY_MS, AUDIO_LATE_MS, MIN_LIPSYNC_CONFIDENCE

if TYPE_CHECKING:
    from syncreel.media.checks import CheckedVariant, FileQA
    from syncreel.media.qc import Expectation

# The scores shown beside a sync check's verdict (the rest are in --json).
_QA_HEADLINES = {
    "lipsync": ("offset_ms", "confidence", "drift_ms_per_s", "face_share"),
    "sfx_sync": ("offset_ms", "confidence", "onsets"),
}


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
        float, typer.Option(help="Lip-sync confidence (peak − median correlation) under which it fails.")
    ] = MIN_LIPSYNC_CONFIDENCE,
) -> None:
    """Score clips: lip-sync, sound-effect sync and technical QC, with a verdict for each.

    Exit 0 when every check passes or warns, 1 when one fails, 2 when a file cannot be read.
    """
    from syncreel.media.checks import FileChecker
    from syncreel.media.faces import FaceModelError
    from syncreel.media.syncqa import SyncExpectation

    sync = SyncExpectation(
        max_audio_early_ms=max_audio_early_ms,
        max_audio_late_ms=max_audio_late_ms,
        min_lipsync_confidence=min_lipsync_confidence,
        speaker_expected=speaker,
        effects_expected=effects,
    )
    try:
        checker = FileChecker(_expectation(platform), sync)
    except FaceModelError as exc:
        raise error_exit(f"[red]cannot score lip-sync[/]: {literal(exc)}") from None
    records = []
    for video in videos:
        records.append(record := checker.check(video))
        if as_json:
            continue
        if record.error is not None:
            err_console.print(f"[red]error[/] {literal(record.error)}", soft_wrap=True)
        else:
            console.print(_qa_table(record))
    if as_json:
        typer.echo(json.dumps([record.to_dict() for record in records], indent=2))
    verdicts = {record.verdict for record in records}
    if "error" in verdicts:
        raise typer.Exit(2)
    if "fail" in verdicts:
        raise typer.Exit(1)


def _expectation(platform: str | None) -> Expectation:
    """What a file should be: only readable without ``platform``, else that platform's spec."""
    from syncreel.media.qc import Expectation
    from syncreel.schemas.platforms import resolve_platforms

    if platform is None:
        return Expectation(video_codec=None, audio_codec=None)
    specs = resolve_platforms()
    if platform not in specs:
        raise error_exit(f"[red]unknown platform {literal(repr(platform))}[/]; accepted: {', '.join(sorted(specs))}")
    return Expectation.for_platform(specs[platform], None)


def _scores(check: str, metrics: dict[str, Any]) -> list[str]:
    """A sync check's status and headline scores, one per line; none for the other checks."""
    if check not in _QA_HEADLINES:
        return []
    scores = [str(metrics.get("status"))]
    for key in _QA_HEADLINES[check]:
        value = metrics.get(key)
        scores.append(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {'–' if value is None else value}")
    return scores


def _qa_table(record: FileQA) -> Table:
    table = Table(title=f"{literal(record.path)}: {literal(record.verdict)}", title_justify="left")
    for column in ("check", "verdict", "scores", "message"):
        table.add_column(column, overflow="fold")
    for check in record.checks:
        scores = "\n".join(_scores(check.check, check.metrics))
        table.add_row(literal(check.check), styled(check.verdict), literal(scores), literal(check.message))
    return table


def analyze(
    files: Annotated[list[Path], typer.Argument(help="Audio, video or image files to analyse before briefing them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every analysis as JSON.")] = False,
) -> None:
    """Tempo, beats, downbeats and sections; speech segments; shots and motion; faces and colours."""
    from syncreel.media.file_analysis import analyse_files, describe_file

    results = []
    for result in analyse_files(files):
        results.append(result)
        if as_json:
            continue
        if "error" in result:
            err_console.print(f"[red]error[/] {literal(result['file'])}: {literal(result['error'])}", soft_wrap=True)
            continue
        console.print(
            f"[bold]{literal(result['file'])}[/] ({literal(result['format'])}, {result['duration_s']:.2f} s)",
            soft_wrap=True,
        )
        for line in describe_file(result):
            console.print(f"  {literal(line)}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    if any("error" in result for result in results):
        raise typer.Exit(2)


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

    from syncreel.media.errors import MediaError
    from syncreel.media.variant_job import VariantJob

    try:
        job = VariantJob.from_files(video, platform, overrides=overrides, captions=captions, hints=hints)
        with Progress(
            TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, disable=as_json
        ) as progress:
            progress.add_task(f"rendering {len(job.specs)} variants of {video.name}", total=None)
            checked = job.render(out, language=language, x264_preset=preset, faces=faces)
    except (MediaError, ValidationError, ValueError, OSError) as exc:
        raise error_exit(f"[red]error[/] {literal(exc)}", soft_wrap=True) from None
    if as_json:
        typer.echo(json.dumps([variant.to_dict() for variant in checked.values()], indent=2, ensure_ascii=False))
    else:
        console.print(_variants_table(checked, f"{literal(video)} → {literal(out)}/"))
        for name, variant in checked.items():
            for check in variant.checks:
                if check.verdict != "pass":
                    console.print(
                        f"  {styled(check.verdict)} {name} {check.check}: {literal(check.message)}", soft_wrap=True
                    )
    if any(variant.verdict == "fail" for variant in checked.values()):
        raise typer.Exit(1)


def _variants_table(checked: dict[str, CheckedVariant], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("platform", "size", "reframe", "max step px", "LUFS", "dBTP", "QA", "file"):
        table.add_column(column, overflow="fold")
    for name, variant in checked.items():
        result = variant.result
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
            styled(variant.verdict),
            literal(result.path.name + (f" (= {result.same_render_as})" if result.same_render_as else "")),
        )
    return table
