"""The production Prefect setup: a server on Postgres, the work pools, the GPU concurrency limit, deployments.

    syncreel server --database-url postgresql+psycopg://prefect@db/prefect --gpus 8 --deploy

starts ``prefect server start`` on that database, creates the CPU and GPU work pools, the global
concurrency limit (one slot per GPU) and the automations of ``deployments/automations.yaml`` when they
are missing, applies ``deployments/prefect.yaml``, and
stays in the foreground until stopped (deployments/README.md has the worker commands).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
AUTOMATIONS_FILE = ROOT / "deployments" / "automations.yaml"
CPU_POOL = "syncreel-cpu"
GPU_POOL = "syncreel-gpu"


def prefect_database_url(url: str) -> str:
    """Prefect's server talks to Postgres through asyncpg: the same database URL with that driver."""
    scheme, sep, rest = url.partition("://")
    if scheme.startswith("postgresql"):
        return f"postgresql+asyncpg{sep}{rest}"
    return url


def server_environment(database_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        **(os.environ if base is None else base),
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_database_url(database_url),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def wait_healthy(api_url: str, process: subprocess.Popen | None = None, timeout_s: float = 180) -> None:
    """Wait until the API answers /ready, i.e. reaches its database (or raise, naming why).

    /health answers as soon as the process listens; the first request that goes through the API to the
    database then spends ~0.5 s of server CPU setting up (measured on 2 cores). /ready pays that here,
    so the first flow run does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{api_url}/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Prefect server at {api_url} was not healthy within {timeout_s:.0f} s")


def bootstrap(gpus: int) -> None:
    """Create the work pools and the automations of deployments/automations.yaml, and set the GPU
    concurrency limit to ``gpus`` slots (idempotent)."""
    from prefect import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.events.schemas.automations import AutomationCore
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    from syncreel.flows.scene import GPU_LIMIT

    with get_client(sync_client=True) as client:
        for pool in (CPU_POOL, GPU_POOL):
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        for automation in yaml.safe_load(AUTOMATIONS_FILE.read_text())["automations"]:
            if not client.read_automations_by_name(automation["name"]):
                client.create_automation(AutomationCore.model_validate(automation))
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
            client.update_global_concurrency_limit(GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=gpus))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=gpus))


def deploy(env: Mapping[str, str] | None = None) -> None:
    """Apply every deployment of deployments/prefect.yaml (the same as running ``prefect deploy`` by hand)."""
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), "--all"]
    done = subprocess.run(command, cwd=ROOT, env=dict(env or os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def serve(database_url: str, host: str, port: int, gpus: int, apply_deployments: bool) -> int:
    """Run the server in the foreground (see the module doc); returns its exit code."""
    api_url = f"http://{host}:{port}/api"
    env = server_environment(database_url)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    server = subprocess.Popen(command, env=env)

    def stop(signum: int, _frame: object) -> None:
        server.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        wait_healthy(api_url, server)
        os.environ["PREFECT_API_URL"] = api_url
        bootstrap(gpus)
        if apply_deployments:
            deploy({**os.environ, "PREFECT_API_URL": api_url})
        print(f"prefect server ready at {api_url} (pools {CPU_POOL}, {GPU_POOL}; {gpus} GPU slots)", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        return server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
