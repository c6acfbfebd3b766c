"""One place that turns an exception into what a user reads.

Errors about the user's input (a brief, a reference, a media file) subclass ``InputError``: their
message names the file, field or value and what would be accepted, and never quotes a file's
contents, so it is shown as it is. A ``RunConflict`` (another process holds the run, or took it over)
names the run and that process, and is shown as it is too. Anything else is a fault of syncreel or its
surroundings: the user reads its type and where the traceback was logged, never the traceback itself.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with what the user gave; the message is complete and safe to show as it is."""


class RunConflict(RuntimeError):
    """The run belongs to another process (store/runs.py, store/lease.py); the message names the run and
    that process, and is safe to show as it is."""


def user_message(exc: BaseException, log: str | None = None) -> str:
    """The one line a user reads for ``exc`` (``log``: where its traceback went)."""
    if isinstance(exc, (InputError, RunConflict)):
        return str(exc)
    where = f"; the traceback is in {log}" if log else "; the traceback is in the run's log"
    return f"internal error ({type(exc).__name__}){where}"
