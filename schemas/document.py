"""Reading an untrusted YAML or JSON document cheaply: a byte cap before parsing, depth and alias limits.

Briefs come from an inbox, a UI trigger or another team, so the parser must refuse a hostile document
before it costs time or memory: a 50 MB file is refused from its size without being read whole; a
"billion laughs" document (anchors whose aliases expand exponentially) is refused from its event
stream, where each alias is counted at its expanded size, before anything is constructed; a deeply
nested one is refused at the first level past the limit, before the recursive constructor sees it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from syncreel.schemas.errors import InputError

# libyaml's parser is C and iterative (it also stops at 1000 levels on its own); the pure-Python
# parser is the fallback where PyYAML was built without it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int = 1 << 20  # a brief is a few kilobytes; a megabyte leaves room for long scripts
    max_depth: int = 24  # the brief's own nesting is at most 6 levels (platform_overrides.x.safe_zone.top)
    max_nodes: int = 50_000  # values after alias expansion: 30 scenes × 20 lines × 12 languages fit
    max_aliases: int = 200


DEFAULT_LIMITS = DocumentLimits()


class DocumentError(InputError):
    """A document that cannot be read; ``where`` is a line/column or '(file)' / '(document)'."""

    def __init__(self, where: str, message: str):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


def read_capped(path: Path, limits: DocumentLimits = DEFAULT_LIMITS) -> str:
    """The file's text, refused past ``limits.max_bytes`` without reading more than one byte past it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise DocumentError("(file)", f"cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limits.max_bytes:
        raise DocumentError("(file)", f"larger than {limits.max_bytes:,} bytes; a brief is at most that")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError("(file)", f"not UTF-8 text (byte {exc.start} cannot be decoded)") from None


def parse_limited(text: str, *, as_json: bool = False, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """Parse YAML (or JSON) within ``limits``; raises DocumentError with a line and column where known."""
    if len(text.encode("utf-8", errors="replace")) > limits.max_bytes:
        raise DocumentError("(document)", f"larger than {limits.max_bytes:,} bytes; a brief is at most that")
    if as_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise DocumentError("(document)", f"nested deeper than {limits.max_depth} levels") from None
        _check_shape(data, limits)
        return data
    try:
        _check_events(text, limits)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, chosen above
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(where, f"not valid YAML: {problem}") from None


def _where(event: Any) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"


def _check_events(text: str, limits: DocumentLimits) -> None:
    """Walk the parser's events: depth, alias count and the node count with every alias expanded."""
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for once expanded
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, node count when it opened)
    nodes = aliases = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise DocumentError(_where(event), f"more than {limits.max_aliases} aliases (*name)")
            nodes += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            open_nodes.append((event.anchor, nodes))
            if len(open_nodes) > limits.max_depth:
                raise DocumentError(_where(event), f"nested deeper than {limits.max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, opened = open_nodes.pop()
            if anchor:
                sizes[anchor] = nodes - opened + 1
        if nodes > limits.max_nodes:
            where = _where(event)
            raise DocumentError(where, f"expands to more than {limits.max_nodes:,} values (aliases included)")


def _check_shape(data: Any, limits: DocumentLimits) -> None:
    """Depth and size of an already-parsed value, walked without recursion."""
    stack = [(data, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > limits.max_depth:
            raise DocumentError("(document)", f"nested deeper than {limits.max_depth} levels")
        if nodes > limits.max_nodes:
            raise DocumentError("(document)", f"more than {limits.max_nodes:,} values")
        if isinstance(value, dict):
            stack += [(item, depth + 1) for item in value.values()]
        elif isinstance(value, list):
            stack += [(item, depth + 1) for item in value]
