"""Files analysed before they are briefed (``syncreel analyze``): every analysis that fits each file
(`media.analysis.analyse_file`), a file that cannot be read kept as its error, and the lines a producer
reads (`media.analysis.describe`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from syncreel.media.analysis import analyse_file, describe
from syncreel.media.errors import MediaError

# The parts of a file's analysis, in the order a producer reads them.
PARTS = ("music", "voice", "motion", "image")


def analyse_files(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Each file's analysis as it is done; an unreadable file's is ``{"file": ..., "error": problem}``."""
    for path in paths:
        try:
            yield analyse_file(path)
        except MediaError as exc:
            yield {"file": str(path), "error": exc.problem}


def describe_file(result: dict[str, Any]) -> list[str]:
    """The lines of every part of one file's analysis (its header aside: file, format and length)."""
    return [line for part in PARTS if part in result for line in describe(result[part])]
