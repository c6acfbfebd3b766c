"""How the CLI speaks: its two consoles, verdict colours, user text printed as written, a brief's problems
one per line, and the log file where tracebacks go instead of the terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from syncreel.schemas.brief import Brief, BriefError, load_brief

# User text (ids, paths, dialogue, messages that quote values) is always shown as written: it goes
# through ``literal`` (markup escaped), and no console turns ':x:' into an emoji or recolours numbers.
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


def literal(value: object) -> str:
    """User text as rich prints it literally: '[/]' and '[out]' are not markup."""
    return escape(str(value))


def styled(value: str) -> str:
    """A verdict or status in its colour."""
    return f"[{VERDICT_STYLE.get(value, 'white')}]{literal(value)}[/]"


def error_exit(message: str, *, soft_wrap: bool = False) -> typer.Exit:
    """Print ``message`` (markup) on stderr; the exit to raise: code 2, what the user gave is at fault."""
    err_console.print(message, soft_wrap=soft_wrap)
    return typer.Exit(2)


def print_json(value: object) -> None:
    """``value`` as indented JSON on stdout, for a script to read: times in ISO 8601, anything else that
    JSON has no type for (a path, a UUID) as its string."""
    typer.echo(json.dumps(value, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def load_or_exit(brief_path: Path, *, as_json: bool = False) -> Brief:
    """The brief, or every problem with its field path and exit code 2 (``as_json``: as JSON on stdout,
    ``{"ok": false, "brief": ..., "problems": [{"loc": ..., "message": ...}]}``)."""
    try:
        return load_brief(brief_path)
    except BriefError as exc:
        if as_json:
            print_json({"ok": False, "brief": exc.source, "problems": [issue.model_dump() for issue in exc.issues]})
            raise typer.Exit(2) from None
        err_console.print(
            f"[red]{literal(exc.source)}[/]: {len(exc.issues)} problem{'s' * (len(exc.issues) != 1)}", soft_wrap=True
        )
        for issue in exc.issues:
            err_console.print(f"  [bold]{literal(issue.loc)}[/]: {literal(issue.message)}", soft_wrap=True)
        raise typer.Exit(2) from None


def log_handler() -> logging.FileHandler:
    """The CLI's log file, ``SYNCREEL_WORK_DIR/syncreel.log``, where tracebacks go instead of the terminal."""
    from syncreel.schemas.settings import get_settings

    path = Path(get_settings().work_dir) / "syncreel.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def console_logs_to_file() -> Path:
    """Prefect's console log lines (tracebacks included) go to a log file instead of the terminal, where
    the user reads one line per problem; the lines still reach the Prefect API (the UI's run logs)."""
    target = log_handler()
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
