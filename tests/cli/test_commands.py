"""The command line's own behaviour: `--version`, how `run` prints a finished campaign in an 80-column
terminal, the progress totals both `run` and `submit` size their bars with, `--json` on `validate`,
`runs` and `status`, and `--log-level`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from syncreel import __version__
from syncreel.cli import app
from syncreel.schemas.brief import load_brief
from syncreel.schemas.records import CheckOutcome, DeliverableRecord, QAReport, RunSummary, deliverable_path
from syncreel.schemas.settings import get_settings

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


def test_validate_json_gives_the_briefs_summary_or_every_problem(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["validate", str(EXAMPLE), "--json"])
    assert ok.exit_code == 0, ok.output
    brief = load_brief(EXAMPLE)
    found = json.loads(ok.stdout)
    assert found["ok"] is True and found["campaign_id"] == brief.campaign_id
    assert found["languages"] == list(brief.languages) and found["platforms"] == list(brief.platforms)
    assert found["scenes"] == [scene.id for scene in brief.scenes] and found["duration_s"] == brief.duration_s

    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign_id: Bad Id\nlanguages: [en]\n")
    refused = CliRunner().invoke(app, ["validate", str(bad), "--json"])
    assert refused.exit_code == 2
    problems = json.loads(refused.stdout)
    assert problems["ok"] is False and problems["brief"].endswith("bad.yaml")
    where = {problem["loc"]: problem["message"] for problem in problems["problems"]}
    assert "'Bad Id'" in where["campaign_id"] and where["brand"] == "Field required"


def _recorded_run(campaign_id: str) -> str:
    """A campaign run in the embedded database, as a finished run leaves it: two scene jobs (one passed,
    one needs review) and two QA rows."""
    from syncreel.store import runs
    from syncreel.store.db import make_engine, session_scope, upgrade_database
    from syncreel.store.models import CampaignRun, RunStatus, SceneStatus

    url = get_settings().database_url
    upgrade_database(url)
    with session_scope(make_engine(url)) as session:
        session.add(
            CampaignRun(
                id="run-0123456789abcdef",
                run_key="k" * 64,
                campaign_id=campaign_id,
                brief={"title": "t"},
                status=RunStatus.needs_review,
                attempts=1,
            )
        )
        session.flush()
        for scene_id, status in (("open", SceneStatus.passed), ("presenter", SceneStatus.needs_review)):
            job = runs.ensure_scene_job(session, "run-0123456789abcdef", scene_id, "en")
            for step in (SceneStatus.generating, SceneStatus.generated, status):  # the transitions allowed
                runs.set_scene_status(session, job.id, step)
        for subject, verdict in (("master:open:en:a0", "pass"), ("master:presenter:en:a0", "fail")):
            runs.record_qa(
                session,
                run_id="run-0123456789abcdef",
                subject=subject,
                check="lipsync",
                verdict=verdict,
                metrics={},
                message="",
            )
    return "run-0123456789abcdef"


def test_runs_and_status_json_read_the_database(embedded_state: Path) -> None:
    run_id = _recorded_run("json-test")

    listed = CliRunner().invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["id"] == run_id and row["campaign_id"] == "json-test" and row["status"] == "needs_review"
    datetime.fromisoformat(row["created_at"])  # ISO 8601, or this raises
    assert row["finished_at"] is None

    shown = CliRunner().invoke(app, ["status", run_id[4:10], "--json"])
    assert shown.exit_code == 0, shown.output
    glance = json.loads(shown.stdout)
    assert glance["run"]["id"] == run_id and glance["run"]["status"] == "needs_review"
    assert glance["scene_jobs"] == {"passed": 1, "needs_review": 1}
    assert glance["qa_checks"] == {"pass": 1, "fail": 1} and glance["deliverables"] == 0

    missing = CliRunner().invoke(app, ["status", "nosuchrun", "--json"])
    assert missing.exit_code == 2 and "no run matches 'nosuchrun'" in missing.output


def test_log_level_sets_what_a_run_keeps_and_what_a_submitted_flow_run_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.schemas.objects import FlowRun

    import syncreel.cli.produce as produce
    import syncreel.flows.submit as submit

    def stop_before_the_flow(loaded: object, preview: bool, quiet: bool) -> RunSummary:
        raise SystemExit(0)

    monkeypatch.setattr(produce, "_produce", stop_before_the_flow)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # run's own choice replaces it; put back afterwards
    monkeypatch.setenv("SYNCREEL_LOG_LEVEL", "ERROR")
    get_settings.cache_clear()
    try:
        CliRunner().invoke(app, ["run", str(EXAMPLE)])
        assert os.environ["PREFECT_LOGGING_LEVEL"] == "ERROR"  # SYNCREEL_LOG_LEVEL, with no --log-level
        CliRunner().invoke(app, ["run", str(EXAMPLE), "--log-level", "debug"])
        assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
    finally:
        get_settings.cache_clear()
    refused = CliRunner().invoke(app, ["run", str(EXAMPLE), "--log-level", "loud"])
    assert refused.exit_code == 2 and "'loud' is not one of" in refused.output

    asked: list[dict] = []

    def run_deployment(name: str, **kwargs: object) -> FlowRun:
        asked.append(kwargs)
        return FlowRun(flow_id=uuid.uuid4(), name="submitted")

    monkeypatch.setattr(submit, "run_deployment", run_deployment)
    brief = load_brief(EXAMPLE)
    for level in ("DEBUG", None):
        submit.submit_campaign(brief, deployment="produce-campaign/test", log_level=level)
    assert asked[0]["job_variables"] == {"env": {"PREFECT_LOGGING_LEVEL": "DEBUG"}}
    assert asked[1]["job_variables"] is None  # the worker's own level
