"""One error for every media problem, naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from syncreel.schemas.errors import InputError


class MediaError(InputError):
    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
