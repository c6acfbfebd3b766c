"""Load: N small campaigns submitted at once to one Prefect server on Postgres with two workers.

    python benchmarks/load.py [--campaigns 20] [--timeout 900] [--json FILE] [--keep]

The stack is tests/fixtures/stack.py's ``running_stack``, as the slow orchestration tests build it:
`syncreel server --deploy` on a fresh PostgreSQL database (the local server at 127.0.0.1:5432, or
``SYNCREEL_TEST_POSTGRES_URL``), syncreel's run state in a second fresh database there, a local asset
folder, and two process workers: one on the CPU pool (campaign flow runs, up to N at once) and one on the
GPU pool (scene flow runs, two at once under a GPU limit of 2). Everything listens on 127.0.0.1 and is
stopped by its PID at the end, and both databases are dropped, also on failure or timeout.

N distinct tiny briefs (``tiny_brief``: 1 scene of 1 s, one language, two small platforms) are submitted
at once, a thread each in one process, with `flows.submit.submit_campaign` (the call behind `syncreel
submit`).
Reported, from Prefect's and syncreel's databases once every campaign flow run is final (or the timeout
passed):

- campaigns finished: produce-campaign flow runs Completed whose campaign run succeeded or needs review;
- latency per campaign, from its flow run's creation (the submission) to its final state: p50, p95, max;
  the wall time from the first submission to the last final state; how long submitting them all took;
- duplicates (0 expected): deliverable rows per (run, language, platform) over 1, succeeded generations
  per (run, scene, language) over 1, campaign runs per campaign over 1, asset rows sharing a URI, asset
  rows whose file is missing or of another size, and files in the asset folder (outside ``runs/``, a
  run's manifest and report) that no row names: split into those whose content a row holds under another
  kind's key (the same bytes stored twice) and orphans;
- the Prefect server's errors: lines of its log at ERROR or CRITICAL, tracebacks and HTTP 5xx answers in
  its access lines (the server logs at INFO here, so uvicorn writes one access line per request);
- flow runs per flow and state (all the server ran, the inbox deployment's scheduled checks included;
  not its runs scheduled for later).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.fixtures.stack import Stack, Worker, running_stack, tiny_brief, wait_for  # noqa: E402

POSTGRES = os.environ.get("SYNCREEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKERS = "1 CPU-pool worker (campaigns, limit N) + 1 GPU-pool worker (scenes, limit 2, GPU limit 2)"
ACCESS = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3})')  # uvicorn.access - HOST:PORT - "GET /api/x HTTP/1.1" 200
LEVEL = re.compile(r"\| (ERROR|CRITICAL) +\|")  # 02:00:28.105 | ERROR   | prefect.server - ...


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=20, help="Campaigns submitted at once (default 20).")
    parser.add_argument(
        "--timeout", type=float, default=900, help="Seconds to wait for the campaigns once submitted (default 900)."
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--keep", action="store_true", help="Keep the folder with the logs and assets; print it.")
    parser.add_argument("--submit", type=Path, nargs="+", help=argparse.SUPPRESS)  # the submitting child
    args = parser.parse_args(argv)
    if args.campaigns < 1:
        parser.error(f"--campaigns must be at least 1, got {args.campaigns}")
    return args


@contextlib.contextmanager
def state_database() -> Iterator[str]:
    """A fresh database for syncreel's run state on the PostgreSQL server (Prefect's goes beside it)."""
    name = f"syncreel_load_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def submit_child(paths: list[Path]) -> None:
    """In a process with the stack's environment: submit every brief at once, a thread each; print what was
    sent, in the order it was."""
    from syncreel.flows.submit import submit_campaign
    from syncreel.schemas.brief import Brief, load_brief

    def submit(brief: Brief) -> dict:
        submitted_at = time.time()
        submission = submit_campaign(brief)
        flow_run = str(submission.flow_run.id)
        return {"campaign": brief.campaign_id, "flow_run": flow_run, "at": submitted_at, "done": time.time()}

    briefs = [load_brief(path) for path in paths]
    with ThreadPoolExecutor(max_workers=len(briefs)) as pool:
        sent = list(pool.map(submit, briefs))
    print(json.dumps(sorted(sent, key=lambda row: row["at"])))


def submit_all(stack: Stack, paths: list[Path]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, __file__, "--submit", *map(str, paths)],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"submitting the campaigns failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def campaign_flow_runs(stack: Stack) -> list[tuple]:
    """(campaign, state type, created, end time) of every produce-campaign flow run."""
    return stack.prefect(
        "select fr.parameters->'brief'->>'campaign_id', fr.state_type, fr.created, fr.end_time from flow_run fr "
        "join flow f on f.id = fr.flow_id where f.name = 'produce-campaign'"
    )


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def wait_final(stack: Stack, count: int, timeout_s: float) -> bool:
    """Wait until ``count`` campaign flow runs are final; False if the timeout passed first."""
    try:
        wait_for(
            lambda: sum(row[1] in FINAL for row in campaign_flow_runs(stack)) >= count, timeout_s, "the campaigns", 2
        )
    except AssertionError:
        return False
    return True


def duplicates(stack: Stack, assets: Path) -> dict[str, int]:
    """Each kind of duplicate or orphan, counted from syncreel's tables and the asset folder (all 0 expected)."""

    def count(sql: str) -> int:
        return int(stack.state(f"select count(*) from ({sql}) as found")[0][0])

    rows = stack.state("select uri, size_bytes, sha256 from assets")
    named = {Path(uri.removeprefix("file://")): size for uri, size, _ in rows if uri.startswith("file://")}
    shas = {sha for _, _, sha in rows}
    files = {path: path.stat().st_size for path in assets.rglob("*") if path.is_file()} if assets.exists() else {}
    unnamed = {path for path in files if "runs" not in path.relative_to(assets).parts} - set(named)
    # A content-addressed file is <kind>/<sha[:2]>/<sha><suffix>: one whose content has a row under another
    # kind's key is the same bytes stored twice; one whose content has no row at all is an orphan.
    twice = {path for path in unnamed if path.name.split(".")[0] in shas}
    return {
        "deliverables": count(
            "select run_id, language, platform from deliverables group by 1, 2, 3 having count(*) > 1"
        ),
        "generations": count(
            "select run_id, scene_id, language from generations where status = 'succeeded' "
            "group by 1, 2, 3 having count(*) > 1"
        ),
        "campaign_runs": count("select campaign_id from campaign_runs group by 1 having count(*) > 1"),
        "asset_uris": count("select uri from assets group by 1 having count(*) > 1"),
        "assets_missing": sum(files.get(path) != size for path, size in named.items()),
        "files_stored_twice": len(twice),
        "files_without_row": len(unnamed - twice),
    }


def server_errors(log: Path) -> dict[str, int]:
    """ERROR/CRITICAL lines, tracebacks, access lines and 5xx answers in a Prefect server's log."""
    lines = log.read_text(errors="replace").splitlines()
    codes = [int(match.group(1)) for line in lines if (match := ACCESS.search(line))]
    return {
        "error_lines": sum(bool(LEVEL.search(line)) for line in lines),
        "tracebacks": sum(line.startswith("Traceback") for line in lines),
        "requests": len(codes),
        "http_5xx": sum(code >= 500 for code in codes),
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure(stack: Stack, campaigns: int, timeout_s: float) -> dict:
    token = secrets.token_hex(2)
    paths = [
        tiny_brief(stack.folder / f"load-{n:02d}.yaml", f"load-{token}-{n:02d}", scenes=1) for n in range(campaigns)
    ]
    sent = submit_all(stack, paths)
    all_final = wait_final(stack, campaigns, timeout_s)
    mine = {row["campaign"] for row in sent}
    runs = [row for row in campaign_flow_runs(stack) if row[0] in mine]
    statuses = dict(stack.state("select campaign_id, status from campaign_runs"))
    finished = [row for row in runs if row[1] == "COMPLETED" and statuses.get(row[0]) in ("succeeded", "needs_review")]
    latencies = [(row[3] - row[2]).total_seconds() for row in runs if row[1] in FINAL and row[3] is not None]
    ends = [row[3].timestamp() for row in runs if row[3] is not None]
    per_state = stack.prefect(
        "select f.name, fr.state_name, count(*) from flow_run fr join flow f on f.id = fr.flow_id "
        "where fr.expected_start_time <= now() group by 1, 2 order by 1, 2"  # not the inbox's future runs
    )
    return {
        "campaigns": campaigns,
        "workers": WORKERS,
        "all_final": all_final,
        "finished": len(finished),
        "campaign_status": {status: list(statuses.values()).count(status) for status in set(statuses.values())},
        "submit_s": max(row["done"] for row in sent) - sent[0]["at"],
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies, default=float("nan")),
        },
        "wall_s": (max(ends) - sent[0]["at"]) if ends else float("nan"),
        "duplicates": duplicates(stack, stack.folder / "assets"),
        "server": server_errors(stack.folder / "logs" / "server.log"),
        "flow_runs": [{"flow": flow, "state": state, "count": n} for flow, state, n in per_state],
    }


def run(args: argparse.Namespace, folder: Path) -> dict:
    settings = {
        "SYNCREEL_STORAGE_URL": f"file://{folder}/assets",
        "SYNCREEL_WORK_DIR": str(folder / "work"),
        "SYNCREEL_REFERENCE_ROOTS": json.dumps([str(folder)]),
        "PREFECT_SERVER_LOGGING_LEVEL": "INFO",  # uvicorn's access lines: one per request, with its status
    }
    workers = {"cpu-0": Worker("syncreel-cpu", args.campaigns), "gpu-0": Worker("syncreel-gpu", 2)}
    tails = io.StringIO()  # running_stack prints each log's tail on the way out: shown only on failure
    try:
        with (
            state_database() as state_url,
            contextlib.redirect_stdout(tails),
            running_stack(state_url, folder, settings, workers, gpus=2) as stack,
        ):
            return measure(stack, args.campaigns, args.timeout)
    except BaseException:
        sys.stderr.write(tails.getvalue())
        raise


def print_table(result: dict) -> None:
    latency, dup, server = result["latency_s"], result["duplicates"], result["server"]
    print(f"{result['campaigns']} campaigns at once, one Prefect server on Postgres, {result['workers']}")
    rows = [
        ("campaigns finished", f"{result['finished']} / {result['campaigns']}"),
        ("campaign runs", ", ".join(f"{k} {v}" for k, v in sorted(result["campaign_status"].items()))),
        ("all submitted within", f"{result['submit_s']:.1f} s"),
        ("latency p50 / p95 / max", f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['max']:.1f} s"),
        ("wall time", f"{result['wall_s']:.1f} s"),
        ("duplicates", f"{sum(dup.values())} ({', '.join(f'{k} {v}' for k, v in dup.items())})"),
        (
            "server errors",
            f"{server['http_5xx']} HTTP 5xx of {server['requests']} requests, {server['error_lines']} ERROR "
            f"lines, {server['tracebacks']} tracebacks",
        ),
    ]
    rows += [(f"flow runs: {r['flow']}", f"{r['count']} {r['state']}") for r in result["flow_runs"]]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if not result["all_final"]:
        print("timed out: not every campaign flow run reached a final state")


def stop_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through running_stack, which stops everything it started


def main() -> None:
    args = parse_args()
    if args.submit:
        submit_child(args.submit)
        return
    signal.signal(signal.SIGTERM, stop_on_term)
    signal.signal(signal.SIGALRM, stop_on_term)
    signal.alarm(int(args.timeout) + 900)  # the stack's start (≤ 7 min), the wait, the stop: never longer
    folder = Path(tempfile.mkdtemp(prefix="syncreel-load-"))
    try:
        result = run(args, folder)
    finally:
        signal.alarm(0)
        if args.keep:
            print(f"kept {folder} (logs/ has the server's and the workers' logs)", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if result["finished"] != result["campaigns"] or sum(result["duplicates"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
