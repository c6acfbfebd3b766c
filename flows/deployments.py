"""The production Prefect setup: a server on Postgres, the work pools, the GPU concurrency limit, deployments.

    syncreel server --database-url postgresql+psycopg://prefect@db/prefect --gpus 8 --deploy

starts ``prefect server start`` on that database, creates the CPU and GPU work pools, the global
concurrency limit (one slot per GPU) and the automations of ``deployments/automations.yaml`` when they
are missing, applies ``deployments/prefect.yaml``, and
stays in the foreground until stopped (deployments/README.md has the worker commands). With
``--role api`` and ``--role services`` the API/UI and Prefect's background services run in two processes
(events then travel between them through Redis).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
AUTOMATIONS_FILE = ROOT / "deployments" / "automations.yaml"
CPU_POOL = "syncreel-cpu"
GPU_POOL = "syncreel-gpu"
# The one name Prefect 3.9 reads for its server's database (PREFECT_API_DATABASE_CONNECTION_URL is an
# older alias it still accepts; PREFECT_SERVER_DATABASE_URL is not read at all).
DATABASE_SETTING = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
REDIS_SETTING = "PREFECT_REDIS_MESSAGING_URL"


class Role(StrEnum):
    """Which part of the Prefect server a process runs."""

    all = "all"  # API, UI and background services
    api = "api"  # API and UI (``prefect server start --no-services``)
    services = "services"  # background services (``prefect server services start``)


class CodeSource(StrEnum):
    """Where workers get the code of a flow run (the pull steps of deployments/prefect.yaml)."""

    project_dir = "project-dir"  # the folder SYNCREEL_PROJECT_DIR: a checkout or the image's copy
    git = "git"  # a clone of SYNCREEL_GIT_REPOSITORY at SYNCREEL_GIT_COMMIT, installed per flow run


def prefect_database_url(url: str) -> str:
    """Prefect's server talks to Postgres through asyncpg: the same database URL with that driver."""
    scheme, sep, rest = url.partition("://")
    if scheme.startswith("postgresql"):
        return f"postgresql+asyncpg{sep}{rest}"
    return url


def redis_messaging(redis_url: str) -> dict[str, str]:
    """The settings that carry Prefect's events, event ordering and concurrency leases through Redis
    (prefect-redis), so that an API process and a services process see the same events."""
    return {
        REDIS_SETTING: redis_url,
        "PREFECT_SERVER_EVENTS_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
    }


def server_environment(
    database_url: str, base: Mapping[str, str] | None = None, redis_url: str | None = None
) -> dict[str, str]:
    """The environment of a Prefect server process on ``database_url`` (and Redis, when given)."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key != "PREFECT_API_DATABASE_CONNECTION_URL"  # an older alias: one name, one value
    }
    env |= {DATABASE_SETTING: prefect_database_url(database_url), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return env | redis_messaging(redis_url) if redis_url else env


def server_command(role: Role, host: str, port: int) -> list[str]:
    """``prefect server start`` for the API/UI (with the background services unless ``role`` is api), or
    ``prefect server services start`` for the services alone."""
    prefect = [sys.executable, "-m", "prefect", "server"]
    if role is Role.services:
        return [*prefect, "services", "start"]
    start = [*prefect, "start", "--host", host, "--port", str(port)]
    return [*start, "--no-services"] if role is Role.api else start


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


def prefect_file(code: CodeSource) -> dict:
    """deployments/prefect.yaml with the pull steps for where workers get the code: ``project-dir`` (a
    checkout or image at ``SYNCREEL_PROJECT_DIR``) or ``git`` (each flow run clones
    ``SYNCREEL_GIT_REPOSITORY`` at ``SYNCREEL_GIT_COMMIT`` and installs it)."""
    config = yaml.safe_load(PREFECT_FILE.read_text())
    config["pull"] = config["definitions"]["pull"][code.name]
    return config


def deploy(env: Mapping[str, str] | None = None, code: CodeSource = CodeSource.project_dir) -> None:
    """Apply every deployment of deployments/prefect.yaml (``prefect deploy --all``) with ``code``'s pull steps."""
    with tempfile.TemporaryDirectory(prefix="syncreel-deploy-") as folder:
        path = Path(folder) / "prefect.yaml"
        path.write_text(yaml.safe_dump(prefect_file(code), sort_keys=False))
        command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(path), "--all"]
        done = subprocess.run(command, cwd=ROOT, env=dict(env or os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def serve(
    database_url: str,
    host: str,
    port: int,
    gpus: int,
    deploy_code: CodeSource | None,
    role: Role = Role.all,
    redis_url: str | None = None,
) -> int:
    """Run the server in the foreground (see the module doc); returns its exit code. ``deploy_code``:
    apply the deployments with that source of code once the API is up (None: do not apply them)."""
    if role is not Role.all and not redis_url:
        raise ValueError(
            f"--role {role} splits the API from the background services, and events reach the services only "
            f"through Redis: pass --redis-url (or set {REDIS_SETTING})"
        )
    api_url = f"http://{host}:{port}/api"
    server = subprocess.Popen(server_command(role, host, port), env=server_environment(database_url, None, redis_url))

    def stop(signum: int, _frame: object) -> None:
        server.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        if role is Role.services:
            print("prefect background services started", flush=True)
            return server.wait()
        wait_healthy(api_url, server)
        os.environ["PREFECT_API_URL"] = api_url
        bootstrap(gpus)
        if deploy_code is not None:
            deploy({**os.environ, "PREFECT_API_URL": api_url}, deploy_code)
        print(f"prefect server ready at {api_url} (pools {CPU_POOL}, {GPU_POOL}; {gpus} GPU slots)", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        return server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
