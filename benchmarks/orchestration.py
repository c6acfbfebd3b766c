"""Orchestration overhead per task: a campaign's wall time minus the time its tasks spend in their own
work, divided by its task runs, for campaigns of 10, 50 and 200 scenes, on SQLite and on Postgres.

    python benchmarks/orchestration.py [--scenes 10 50 200] [--backends sqlite postgres] [--json FILE]

Each campaign runs `produce_campaign` in-process against a Prefect server started here (127.0.0.1, a
free port, stopped by its PID) whose database is SQLite or the local PostgreSQL (a fresh database,
dropped after), with syncreel's run state on the same kind of database. The generator is the built-in
model's ``tiny`` config (untrained: the work per scene is small, so the overhead is what shows); scenes
are 0.6 s at 112×64 with one sampler step, QA's sync scores off, one 64×64 platform. A brief holds at most
30 scenes, so larger campaigns are scenes × languages (50 = 25 scenes × 2 languages, 200 = 25 × 8).

Own work = the union of the task runs' [start, end] intervals read back from the Prefect API (tasks that
overlap count once), clipped to the campaign's own [call, return] window so that a task run recorded with
times outside it can never make own work exceed the wall time (``outside_s`` reports how much was clipped;
it should be 0); overhead = wall − own work: what Prefect, the flow body and syncreel's bookkeeping
between tasks cost. Target: under 50 ms per task, growing linearly with the campaign.

Each campaign runs in a fresh process, after a one-scene campaign in the same process: a process's first
flow run pays one-off costs (Prefect imports its parameter encoder and result machinery on first use,
opens its first API and database connections, loads the model), which a worker or service pays once,
not per campaign. The table shows that first campaign's overhead as ``cold s`` beside the measured one,
and fits overhead = fixed + per-task × tasks over the sizes: the per-task slope is the cost that grows
with the campaign, the fixed part what every campaign pays once (most of it Prefect joining its
flow-run heartbeat thread, which sleeps in 1 s steps: 0–1 s at the end of each flow run).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("SYNCREEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LANGUAGES = ["en", "es", "fr", "de", "it", "pt", "nl", "sv", "pl", "tr"]
TARGET_MS = 50.0


def campaign(items: int) -> dict:
    """A brief of ``items`` scene × language generations."""
    languages = next(n for n in range(1, len(LANGUAGES) + 1) if items % n == 0 and items // n <= 30)
    scenes = items // languages
    return {
        "campaign_id": f"overhead-{items}-{secrets.token_hex(3)}",
        "brand": {"name": "Bench"},
        "languages": LANGUAGES[:languages],
        "platforms": ["square"],
        "platform_overrides": {"square": {"width": 64, "height": 64, "min_duration_s": 0}},
        "master": {"width": 112, "height": 64, "fps": 10, "sample_rate": 16000},
        "scenes": [
            {"id": f"s{n}", "prompt": "A yellow ball bouncing on a beach.", "duration_s": 0.6} for n in range(scenes)
        ],
        "generation": {"steps": 1},
        "qa": {"max_regenerations": 0, "sync_checks": False},
    }


def linear_fit(tasks: list[int], overhead_s: list[float]) -> tuple[float, float]:
    """Least-squares overhead = fixed + per_task × tasks: (fixed seconds, seconds per task)."""
    n = len(tasks)
    mean_x, mean_y = sum(tasks) / n, sum(overhead_s) / n
    spread = sum((x - mean_x) ** 2 for x in tasks)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(tasks, overhead_s, strict=True)) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_one(items: int) -> dict:
    """In a child process whose environment points at the server and databases: a one-scene campaign
    (the process's first: see the module doc), then the measured one."""
    from syncreel.flows.campaign import produce_campaign
    from syncreel.model.backends import register_backend
    from syncreel.model.builtin import BuiltinGenerator
    from syncreel.model.config import tiny
    from syncreel.schemas.brief import validate_brief

    @register_backend
    class TinyBuiltin(BuiltinGenerator):
        name = "builtin-tiny"

        def __init__(self) -> None:
            super().__init__(checkpoint=None, config=tiny())

    cold = _timed_campaign(produce_campaign, validate_brief(campaign(1), "benchmark-warm-up"))
    row = _timed_campaign(produce_campaign, validate_brief(campaign(items), "benchmark"))
    return {**row, "cold_overhead_s": cold["wall_s"] - cold["own_work_s"]}


def _timed_campaign(produce_campaign, brief) -> dict:  # noqa: ANN001 - the flow, imported by the caller
    """Run one campaign and read back its task runs: wall time, own work, task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    called, started = time.time(), time.perf_counter()
    state = produce_campaign(brief, return_state=True)
    wall = time.perf_counter() - started
    returned = called + wall
    summary = state.result()
    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    runs: list = []
    with get_client(sync_client=True) as client:
        for _ in range(30):  # task runs reach the server as events: wait until all are there and finished
            runs = []
            while page := client.read_task_runs(flow_run_filter=flow_filter, limit=200, offset=len(runs)):
                runs += page
            if runs and all(r.end_time for r in runs):
                break
            time.sleep(1)
    spans = sorted((r.start_time.timestamp(), r.end_time.timestamp()) for r in runs if r.start_time and r.end_time)
    outside = sum(max(0.0, called - start) + max(0.0, end - returned) for start, end in spans)
    spans = [(max(start, called), min(end, returned)) for start, end in spans if end > called and start < returned]
    busy, edge = 0.0, float("-inf")
    for start, end in spans:
        if end > edge:
            busy += end - max(start, edge)
            edge = end
    return {
        "items": len(brief.scenes) * len(brief.languages),
        "task_runs": len(runs),
        "wall_s": wall,
        "own_work_s": busy,
        "outside_s": outside,
        "status": summary.status,
    }


def _server(url: str, folder: Path) -> tuple[subprocess.Popen, str]:
    from syncreel.flows.deployments import server_environment, wait_healthy

    port = _free_port()
    env = {**server_environment(url), "PREFECT_HOME": str(folder / "prefect-home")}
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    wait_healthy(api, process, timeout_s=180)
    return process, api


def measure_backend(backend: str, sizes: list[int], folder: Path) -> list[dict]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    made: list[str] = []
    admin = None
    if backend == "postgres":
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        names = [f"syncreel_bench_{secrets.token_hex(3)}" for _ in range(2)]
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        made = names
        prefect_db = make_url(POSTGRES).set(database=names[0]).render_as_string(hide_password=False)
        state_db = make_url(POSTGRES).set(database=names[1]).render_as_string(hide_password=False)
    else:
        prefect_db = f"sqlite+aiosqlite:///{folder}/prefect.db"
        state_db = f"sqlite:///{folder}/state.db"
    process, api = _server(prefect_db, folder)
    rows = []
    try:
        for items in sizes:
            env = {
                **os.environ,
                "PREFECT_API_URL": api,
                "PREFECT_HOME": str(folder / "prefect-home"),
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "SYNCREEL_DATABASE_URL": state_db,
                "SYNCREEL_STORAGE_URL": f"file://{folder}/assets",
                "SYNCREEL_WORK_DIR": str(folder / "work"),
                "SYNCREEL_BACKEND": "builtin-tiny",
            }
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(items)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{backend} {items} scenes failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            overhead = row["wall_s"] - row["own_work_s"]
            rows.append(
                {"backend": backend, **row, "overhead_s": overhead, "ms_per_task": 1000 * overhead / row["task_runs"]}
            )
            print(f"  {backend} {items}: {rows[-1]['ms_per_task']:.1f} ms/task", file=sys.stderr, flush=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if admin is not None:
            with admin.connect() as connection:
                for name in made:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child)))
        return
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix=f"syncreel-bench-{backend}-") as folder:
            rows += measure_backend(backend, args.scenes, Path(folder))
    print(
        f"{'backend':<9} {'scenes':>6} {'tasks':>6} {'wall s':>8} {'own s':>8} {'overhead s':>10} {'ms/task':>8}"
        f" {'outside s':>9} {'cold s':>7}"
    )
    for r in rows:
        print(
            f"{r['backend']:<9} {r['items']:>6} {r['task_runs']:>6} {r['wall_s']:>8.1f} {r['own_work_s']:>8.1f} "
            f"{r['overhead_s']:>10.2f} {r['ms_per_task']:>8.1f} {r['outside_s']:>9.2f} {r['cold_overhead_s']:>7.2f}"
        )
    fits = {}
    for backend in args.backends:
        mine = [r for r in rows if r["backend"] == backend]
        if len(mine) >= 2:
            fixed, per_task = linear_fit([r["task_runs"] for r in mine], [r["overhead_s"] for r in mine])
            fits[backend] = {"fixed_s": fixed, "per_task_ms": 1000 * per_task}
            first, last = mine[0], mine[-1]
            growth = last["ms_per_task"] / max(1e-9, first["ms_per_task"])
            print(
                f"{backend}: overhead ≈ {fixed:.2f} s per campaign + {1000 * per_task:.1f} ms per task; per-task "
                f"overhead at {last['items']} scenes is {growth:.2f}× that at {first['items']} (1.0 = linear "
                f"growth of the total); target < {TARGET_MS:g} ms/task"
            )
    if args.json:
        args.json.write_text(json.dumps({"target_ms_per_task": TARGET_MS, "rows": rows, "fits": fits}, indent=2))


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main()
