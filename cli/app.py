"""The `syncreel` command line: the typer app with every command in its help's order, `--version`, and
`main`, the console script, which turns any failure into one line.

Each command lives with its kind (`cli.inspect`, `cli.media`, `cli.produce`, `cli.review`, `cli.server`)
and imports what it needs when it runs: Prefect only for the commands that run flows, so `validate`,
`runs`, `status` and `show` answer in well under a second.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from syncreel.cli import inspect, media, produce, review, server
from syncreel.cli.output import console, err_console, literal, log_handler
from syncreel.schemas.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns a failure into one line; the traceback goes to the log
    help="syncreel: synchronized AI video + sound ads.",
)
app.command()(inspect.validate)
app.command()(media.qa)
app.command()(media.analyze)
app.command()(produce.run)
app.command()(media.variants)
app.command()(review.approve)
app.command()(inspect.report)
app.command(name="runs")(inspect.list_runs)
app.command()(inspect.status)
app.command()(inspect.show)
app.command()(server.server)
app.command()(produce.submit)


def _print_version(wanted: bool) -> None:
    from syncreel import __version__

    if wanted:
        console.print(f"syncreel {literal(__version__)}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """syncreel: synchronized AI video + sound ads."""


def main() -> None:
    """The console script: any failure a command did not turn into its own message becomes one line
    (schemas.errors.user_message), with the traceback written to the log file instead of the terminal."""
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last resort: nothing reaches the user as a traceback
        from syncreel.schemas.errors import user_message

        handler = log_handler()
        logger = logging.getLogger("syncreel.cli")
        logger.addHandler(handler)
        logger.error("syncreel %s failed", " ".join(sys.argv[1:2]), exc_info=exc)
        logger.removeHandler(handler)
        handler.close()
        err_console.print(f"[red]error[/]: {literal(user_message(exc, log=handler.baseFilename))}", soft_wrap=True)
        raise SystemExit(2 if isinstance(exc, InputError) else 1) from None
