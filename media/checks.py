"""Verdicts on files outside a campaign: any clip's technical QC and sync scores (`FileChecker`), and the
platform checks of a master's rendered variants (`check_variants`). A file's verdict is the worst of its
checks (`schemas.records.worst`); the campaign's own QA stages are tasks/qa.py's."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from syncreel.media.errors import MediaError
from syncreel.media.faces import FaceTracker
from syncreel.media.probe import probe
from syncreel.media.qc import TECHNICAL_CHECKS, CheckResult, Expectation, measure
from syncreel.media.syncqa import SyncExpectation, qa_checks
from syncreel.media.variants import VariantResult
from syncreel.schemas.platforms import PlatformSpec
from syncreel.schemas.records import CheckOutcome, Verdict, worst


def outcome(result: CheckResult) -> CheckOutcome:
    """A check's result as the record the rest of syncreel keeps (and prints as JSON)."""
    return CheckOutcome(check=result.check, verdict=result.verdict, message=result.message, metrics=result.metrics)


def _outcomes_json(checks: tuple[CheckResult, ...]) -> list[dict[str, Any]]:
    return [outcome(check).model_dump() for check in checks]


@dataclass(frozen=True)
class FileQA:
    """One file's checks and their verdict, or why it could not be read (its verdict is then ``error``)."""

    path: Path
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None

    @property
    def verdict(self) -> Verdict | Literal["error"]:
        return "error" if self.error is not None else worst(check.verdict for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": str(self.path), "verdict": "error", "error": self.error}
        return {"path": str(self.path), "checks": _outcomes_json(self.checks), "verdict": self.verdict}


class FileChecker:
    """Checks any clip against ``expect`` and, for a moving picture, scores its lip-sync and sound-effect
    sync against ``sync``. Loads the face models once; raises
    `media.faces.FaceModelError` when they cannot be loaded."""

    def __init__(self, expect: Expectation, sync: SyncExpectation):
        self.expect, self.sync = expect, sync
        self.tracker = FaceTracker()

    def check(self, path: Path) -> FileQA:
        try:
            info = probe(path)
            picture = info.video is not None and not info.is_image  # a still or a sound has no sync to score
            checks = qa_checks(path, self.expect, self.sync if picture else None, tracker=self.tracker, info=info)
        except MediaError as exc:
            return FileQA(path, error=str(exc))
        return FileQA(path, tuple(checks))


@dataclass(frozen=True)
class CheckedVariant:
    """A rendered variant with its platform's technical checks."""

    result: VariantResult
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Verdict:
        return worst(check.verdict for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON: the variant (`VariantResult.to_dict`), its verdict and checks, and the crop window per frame."""
        frames = self.result.crop_path.to_dict()["frames"]
        return {
            **self.result.to_dict(),
            "verdict": self.verdict,
            "checks": _outcomes_json(self.checks),
            "crop_windows": [{"x": x, "y": y, "w": w, "h": h, "mode": m} for x, y, w, h, m in frames],
        }


def check_variants(
    results: Mapping[str, VariantResult], specs: Mapping[str, PlatformSpec], duration_s: float
) -> dict[str, CheckedVariant]:
    """Technical QC of every variant against its platform's spec (lasting ``duration_s``, the master's
    length); a copy of another platform's render shares its measurement."""
    originals = [name for name, result in results.items() if result.same_render_as is None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        measured = dict(zip(originals, pool.map(lambda name: measure(results[name].path), originals), strict=True))
    checked = {}
    for name, result in results.items():
        qc = measured[result.same_render_as or name]
        expect = Expectation.for_platform(specs[name], duration_s)
        info = probe(result.path)
        checked[name] = CheckedVariant(result, tuple(check(info, qc, expect) for check in TECHNICAL_CHECKS))
    return checked
