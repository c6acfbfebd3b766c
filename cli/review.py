"""A producer's decisions on a preview run's scenes: approve."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from syncreel.cli.output import console, error_exit, literal, styled


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
    from syncreel.tasks.preview import PreviewError, preview_scenes
    from syncreel.tasks.review import record_approval

    try:
        preview = preview_scenes(run_id)
        chosen = preview.select(scenes or [], every=every)
    except LookupError as exc:
        raise error_exit(f"[red]{literal(exc)}[/]") from None
    except PreviewError as exc:
        raise error_exit(f"[red]{literal(exc.subject)}[/]: {literal(exc.problem)}") from None
    if not chosen:
        raise error_exit("name scenes (SCENE or SCENE:LANG) or pass --all")
    decided = "rejected" if reject else "approved"
    for scene_id, language in chosen:
        record_approval(preview.run_id, scene_id, language, approve=not reject, reviewer=reviewer, note=note)
        console.print(f"{literal(scene_id)}:{literal(language)} {styled('fail' if reject else 'pass')} {decided}")
