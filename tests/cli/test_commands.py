"""The command line's own behaviour: `--version`, how `run` prints a finished campaign in an 80-column
terminal, and the progress totals both `run` and `submit` size their bars with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from syncreel import __version__
from syncreel.cli import app
from syncreel.schemas.brief import load_brief
from syncreel.schemas.records import CheckOutcome, DeliverableRecord, QAReport, RunSummary, deliverable_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"
SIZES = {"tiktok": (1080, 1920), "instagram_feed": (1080, 1350), "square": (1080, 1080), "youtube": (1920, 1080)}


def test_version_names_the_installed_distribution() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"syncreel {__version__}\n"
    assert __version__ != "0+unknown"  # read from the installed metadata, not the fallback
    assert CliRunner().invoke(app, ["--version"]).output == f"syncreel {__version__}\n"


def _summary(campaign_id: str, languages: tuple[str, ...]) -> RunSummary:
    """A finished run as produce_campaign returns it: every platform of SIZES in every language."""
    deliverables, reports = [], []
    for language in languages:
        for platform, (width, height) in SIZES.items():
            deliverable = DeliverableRecord(
                language=language,
                platform=platform,
                uri=f"file:///store/{language}-{platform}",
                sha256="0" * 64,
                size_bytes=4_321_000,
                width=width,
                height=height,
                duration_s=12.0,
                loudness_lufs=-14.02,
            )
            deliverables.append(deliverable)
            check = CheckOutcome(check="loudness", verdict="pass", message="-14.0 LUFS", metrics={})
            reports.append(QAReport.from_checks(deliverable.subject, [check]))
    master = CheckOutcome(check="lipsync", verdict="warn", message="audio 60 ms late", metrics={})
    reports.append(QAReport.from_checks("master:presenter:en:a0", [master], decision="pass"))
    return RunSummary(
        run_id="run-0123456789abcdef0123",
        campaign_id=campaign_id,
        status="succeeded",
        manifest_uri="file:///store/manifest.json",
        deliverables=tuple(deliverables),
        qa=tuple(reports),
        generated=6,
        reused=0,
        seconds=81.2,
    )


def test_run_prints_its_deliverables_readably_in_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row per deliverable, one line each, in an 80-column terminal; where the files went is one line."""
    import syncreel.cli.produce as produce
    import syncreel.tasks.publish as publish
    import syncreel.tasks.stage as stage

    brief = load_brief(EXAMPLE)
    summary = _summary(brief.campaign_id, tuple(brief.languages))
    out = tmp_path / "deliverables-for-review"
    files = [
        out / brief.campaign_id / deliverable_path(brief.campaign_id, d.language, d.platform)
        for d in summary.deliverables
    ]
    # run sets these when unset; set here, monkeypatch puts them back afterwards
    for name, value in (
        ("PREFECT_LOGGING_LEVEL", "WARNING"),
        ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(produce, "console", Console(emoji=False, highlight=False))  # reads COLUMNS, as at startup
    monkeypatch.setattr(produce, "_produce", lambda loaded, preview, quiet: summary)
    monkeypatch.setattr(stage, "get_runtime", lambda: None)
    monkeypatch.setattr(publish, "export_deliverables", lambda rt, found, folder: [*files, out / "manifest.json"])

    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--out", str(out)])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    table = [line for line in lines if line.startswith(("┃", "│"))]
    assert max(len(line) for line in table) <= 80
    rows = [line for line in table if line.startswith("│")]
    assert len(rows) == len(summary.deliverables)  # no row wraps onto a second line
    for row, deliverable in zip(rows, summary.deliverables, strict=True):
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        size = f"{deliverable.width}x{deliverable.height}"
        assert cells == [deliverable.language, deliverable.platform, size, "12.00", "-14.0", "4.32", "pass"]
    pattern = deliverable_path(brief.campaign_id, "<language>", "<platform>")
    assert f"files: {out / brief.campaign_id}/{pattern}" in lines
    assert "  presenter:en:a0: pass" in lines
    assert any(line.startswith("  warn master:presenter:en:a0 lipsync: audio 60 ms late") for line in lines)


def test_progress_totals_count_each_stage_item() -> None:
    from syncreel.flows.progress import stage_totals

    brief = load_brief(EXAMPLE)
    scenes = len(brief.scenes) * len(brief.languages)
    variants = len(brief.platforms) * len(brief.languages)
    assert stage_totals(brief) == {
        "ingest": len(brief.references),
        "speak": scenes,
        "generate": scenes,
        "qa_master": scenes,
        "assemble": len(brief.languages),
        "render": variants,
        "qa_deliverable": variants,
        "publish": 1,
    }
    preview = stage_totals(brief, preview=True)
    assert set(preview) == {"ingest", "speak", "generate", "qa_master", "publish"}
