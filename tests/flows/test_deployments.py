"""deployments/ and the images: prefect.yaml (its git pull steps run against a local bare repository), the
Kubernetes GPU job template, the Dockerfile and compose.yaml are consistent, and `syncreel server` sets the
settings Prefect reads. No server, except the one slow test that runs the API and the background services as
two processes on Postgres and Redis."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from syncreel.cli import app
from syncreel.flows.deployments import (
    DATABASE_SETTING,
    REDIS_SETTING,
    CodeSource,
    Role,
    prefect_file,
    server_command,
    server_environment,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"


def test_prefect_yaml_deploys_three_flows_on_the_two_pools():
    config = yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())
    by_entrypoint = {d["entrypoint"]: d for d in config["deployments"]}
    pools = {entrypoint: d["work_pool"]["name"] for entrypoint, d in by_entrypoint.items()}
    assert pools == {
        "flows/campaign.py:produce_campaign": "syncreel-cpu",
        "flows/scene.py:generate_scene_flow": "syncreel-gpu",
        "flows/inbox.py:campaign_inbox": "syncreel-cpu",
    }
    for entrypoint, deployment in by_entrypoint.items():
        assert deployment["enforce_parameter_schema"] is True
        path, name = entrypoint.split(":")
        flow = getattr(importlib.import_module("syncreel." + path.removesuffix(".py").replace("/", ".")), name)
        assert deployment["name"] == "production" and flow.name
    campaign = by_entrypoint["flows/campaign.py:produce_campaign"]
    assert campaign["work_pool"]["job_variables"]["env"]["SYNCREEL_GPU_DEPLOYMENT"] == "generate-scene/production"
    assert campaign["triggers"][0]["expect"] == ["syncreel.brief.changed"]
    assert by_entrypoint["flows/inbox.py:campaign_inbox"]["schedules"][0]["cron"] == "*/5 * * * *"


def test_kubernetes_gpu_template_limits_gpus_and_declares_every_placeholder():
    template = json.loads((DEPLOYMENTS / "k8s-gpu-job-template.json").read_text())
    used = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(template["job_configuration"])))
    assert used <= set(template["variables"]["properties"]), used - set(template["variables"]["properties"])
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    assert template["variables"]["properties"]["gpus"]["default"] == 1
    assert template["variables"]["properties"]["node_selector"]["default"] == {"nvidia.com/gpu.present": "true"}


def test_automations_file_validates_as_prefect_automations():
    from prefect.events.schemas.automations import AutomationCore

    automations = yaml.safe_load((DEPLOYMENTS / "automations.yaml").read_text())["automations"]
    (crash,) = [AutomationCore.model_validate(a) for a in automations]
    assert crash.trigger.posture == "Proactive" and crash.actions[0].type == "change-flow-run-state"


# --- the server's settings: names Prefect 3.9 reads ------------------------------------------------------


def prefect_settings(env: dict[str, str], monkeypatch):
    """Prefect's settings as a process with exactly these PREFECT_ variables would read them."""
    from prefect.settings import Settings

    kept = ("PREFECT_HOME", "PREFECT_PROFILES_PATH")  # this test run's own, holding no server setting
    for key in [k for k in os.environ if k.startswith("PREFECT_") and k not in kept]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_the_server_database_url_is_set_under_a_name_prefect_reads(monkeypatch):
    env = server_environment("postgresql+psycopg://prefect:pw@db:5432/prefect", base={})
    database = prefect_settings(env, monkeypatch).server.database
    assert database.connection_url.get_secret_value() == "postgresql+asyncpg://prefect:pw@db:5432/prefect"
    # what `syncreel server` used to set from its option's variable: Prefect does not read it
    unread = prefect_settings({"PREFECT_SERVER_DATABASE_URL": "postgresql+asyncpg://x@db/p"}, monkeypatch)
    assert unread.server.database.connection_url.get_secret_value().startswith("sqlite+aiosqlite:///")  # the default
    # the option's own variable is that same setting, so one variable serves both
    (option,) = [p for p in typer.main.get_command(app).commands["server"].params if p.name == "database_url"]
    assert option.envvar == DATABASE_SETTING
    # a stale value under the older alias does not compete with the one set
    old = {"PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///old.db"}
    stale = server_environment("postgresql://a@db/new", base=old)
    assert prefect_settings(stale, monkeypatch).server.database.connection_url.get_secret_value().endswith("@db/new")


def test_split_roles_carry_events_through_redis_under_names_prefect_reads(monkeypatch):
    from prefect_redis.client import RedisMessagingSettings

    env = server_environment("postgresql://a@db/p", base={}, redis_url="redis://redis:6379/3")
    server = prefect_settings(env, monkeypatch).server
    assert server.events.messaging_broker == server.events.messaging_cache == "prefect_redis.messaging"
    assert server.events.causal_ordering == "prefect_redis.ordering"
    assert server.concurrency.lease_storage == "prefect_redis.lease_storage"
    assert RedisMessagingSettings().url == "redis://redis:6379/3"


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.all, ["start"]), (Role.api, ["start", "--no-services"]), (Role.services, ["services", "start"])],
)
def test_each_role_runs_a_command_prefect_cli_has(role, expected):
    command = server_command(role, "127.0.0.1", 4299)
    assert [word for word in command[4:] if word in ("start", "services", "--no-services")] == expected
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("--no-services" in done.stdout) == (role is not Role.services)


def test_a_split_role_without_redis_is_refused_before_anything_starts():
    server = ["server", "--database-url", "postgresql://a@db/p"]
    result = CliRunner().invoke(app, [*server, "--role", "api"])
    assert result.exit_code == 2
    assert "--redis-url" in result.output
    result = CliRunner().invoke(app, [*server, "--role", "services", "--redis-url", "redis://r", "--deploy"])
    assert result.exit_code == 2 and "--role api" in result.output


# --- workers that fetch their code -------------------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository holding the project's committed package at a first commit, and a second commit
    after it (the revision the pull steps must not take)."""
    source = tmp_path / "source"
    source.mkdir()
    folders = ["pyproject.toml", "README.md", "syncreel", "cli", "flows", "tasks", "media", "model", "store", "schemas"]
    archive = subprocess.run(["git", "archive", "HEAD", *folders], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    git("init", "--quiet", "--initial-branch", "main", cwd=source)
    git("add", ".", cwd=source)
    git(*identity, "commit", "--quiet", "-m", "the project", cwd=source)
    wanted = git("rev-parse", "HEAD", cwd=source)
    (source / "LATER").write_text("a later commit\n")
    git("add", "LATER", cwd=source)
    git(*identity, "commit", "--quiet", "-m", "later", cwd=source)
    bare = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(source), str(bare), cwd=tmp_path)
    return bare, wanted


@pytest.fixture
def scratch_python(tmp_path: Path) -> Path:
    """A fresh virtual environment to install into (so the project's own install is never touched); it
    borrows pip and setuptools from this one through PYTHONPATH, which adds no install of its own."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin"


def test_git_pull_steps_clone_the_configured_commit_and_install_it(
    harness, origin, scratch_python, tmp_path, monkeypatch
):
    """The steps as a worker runs them: Prefect's step runner, with an API to resolve blocks and variables
    against (the session's test harness)."""
    from prefect.deployments.steps.core import run_steps

    bare, commit = origin
    steps = prefect_file(CodeSource.git)["pull"]
    names = [next(iter(step)).rsplit(".", 1)[1] for step in steps]
    assert names == ["git_clone", "run_shell_script", "set_working_directory"]
    work = tmp_path / "flow-run"  # a process worker's working folder for one flow run
    work.mkdir()
    monkeypatch.chdir(work)
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    monkeypatch.setenv("PATH", f"{scratch_python}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(site_packages))
    monkeypatch.setenv("SYNCREEL_GIT_REPOSITORY", f"file://{bare}")
    monkeypatch.setenv("SYNCREEL_GIT_COMMIT", commit)
    monkeypatch.delenv("SYNCREEL_GIT_BRANCH", raising=False)

    outputs = asyncio.run(run_steps(steps, print_function=lambda *a, **k: None))

    clone = work / outputs["clone"]["directory"]
    assert Path.cwd() == clone  # the flow's entrypoint is read from the clone
    assert git("rev-parse", "HEAD", cwd=clone) == commit and not (clone / "LATER").exists()
    assert (clone / "pyproject.toml").read_text() == git("show", "HEAD:pyproject.toml", cwd=ROOT) + "\n"
    # the install went into the worker's interpreter (here the scratch one): syncreel now imports from the clone
    probe = "import importlib.util; print(importlib.util.find_spec('syncreel.flows').origin)"
    alone = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # the scratch install only
    found = subprocess.run(
        [scratch_python / "python", "-c", probe], cwd=tmp_path, env=alone, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(found) == clone / "flows" / "__init__.py"
    assert importlib.util.find_spec("syncreel.flows").origin == str(ROOT / "flows" / "__init__.py")


def test_project_dir_pull_is_the_default_and_names_the_project_folder():
    config = yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())
    assert config["pull"] == prefect_file(CodeSource.project_dir)["pull"]
    assert config["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SYNCREEL_PROJECT_DIR }}"}}
    ]


# --- the images and the stack ---------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[dict]]:
    """The Dockerfile's instructions per named stage, as dockerfile-parse reads them (ARGs substituted)."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    stages: dict[str, list[dict]] = {}
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            base, _, name = instruction["value"].partition(" AS ")
            stages[name] = [{**instruction, "base": base}]
        elif stages:
            stages[list(stages)[-1]].append(instruction)
    return stages


def stage_base(stage: list[dict]) -> str:
    """The stage's base image with the Dockerfile's ARG defaults in place."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage[0]["base"])


def runs(stage: list[dict]) -> str:
    return "\n".join(i["value"] for i in stage if i["instruction"] == "RUN")


def test_dockerfile_builds_a_cpu_and_a_cuda_image_of_the_tested_set():
    stages = dockerfile_stages()
    assert {"cpu", "cuda"} <= set(stages)
    assert stage_base(stages["cpu"]) == "python:3.11-slim"
    assert stage_base(stages["cuda"]).startswith("nvidia/cuda:") and "ubuntu" in stage_base(stages["cuda"])
    # the CPU build of torch from its own index, PyPI's (CUDA) build on the GPU image; the same pin as constraints.txt
    torch_pin = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE).group(1)
    assert f"pip install torch=={torch_pin} --index-url https://download.pytorch.org/whl/cpu" in runs(stages["cpu"])
    assert re.search(rf"pip install torch=={re.escape(torch_pin)}$", runs(stages["cuda"]), re.MULTILINE)
    for name in ("cpu", "cuda"):
        stage = stages[name]
        # torch first, then the project against the tested versions, editable in the folder the flows load from
        assert runs(stage).index("torch==") < runs(stage).index("pip install -c constraints.txt")
        assert re.search(r"pip install -c constraints.txt .*-e \"\.\[redis", runs(stage))
        assert "git" in runs(stage)  # workers that fetch their code clone it
        env = " ".join(i["value"] for i in stage if i["instruction"] == "ENV")
        assert "SYNCREEL_PROJECT_DIR=/opt/syncreel" in env
        assert [i["value"] for i in stage if i["instruction"] == "WORKDIR"] == ["/opt/syncreel"]
        assert [i["value"] for i in stage if i["instruction"] == "USER"] == ["syncreel"]


def test_dockerignore_keeps_every_file_the_install_needs():
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert {".git", ".venv", ".syncreel"} <= set(ignored)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", "constraints.txt", project["project"]["readme"], "syncreel"]
    needed += list(project["tool"]["setuptools"]["package-dir"].values())
    assert not set(needed) & set(ignored), set(needed) & set(ignored)


def interpolated(env: dict[str, str]) -> dict[str, str]:
    """Compose's ${VAR:-default} with nothing set: the defaults."""
    return {key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for key, value in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())


def test_compose_file_validates_against_the_compose_specification():
    checker = [Path(sys.executable).parent / "check-jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*checker, DEPLOYMENTS / "compose.yaml"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_the_whole_stack_with_split_prefect_and_a_gpu_worker(compose):
    services = compose["services"]
    assert set(services) == {
        "postgres", "redis", "minio", "minio-bucket", "prefect-api", "prefect-services", "worker-cpu", "worker-gpu"
    }  # fmt: skip
    assert services["prefect-api"]["command"][:4] == ["syncreel", "server", "--role", "api"]
    assert "--deploy" in services["prefect-api"]["command"]
    assert services["prefect-services"]["command"] == ["syncreel", "server", "--role", "services"]
    assert services["prefect-services"]["depends_on"]["prefect-api"]["condition"] == "service_healthy"
    # the images the Dockerfile's targets build, and the Kubernetes GPU template's default image
    assert services["prefect-api"]["build"] == {"context": "..", "target": "cpu"}
    assert services["worker-gpu"]["build"] == {"context": "..", "target": "cuda"}
    template = json.loads((DEPLOYMENTS / "k8s-gpu-job-template.json").read_text())
    assert services["worker-gpu"]["image"] == template["variables"]["properties"]["image"]["default"] == "syncreel:cuda"
    assert {services[s]["image"] for s in ("prefect-api", "prefect-services", "worker-cpu")} == {"syncreel:cpu"}
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for worker, pool in (("worker-cpu", "syncreel-cpu"), ("worker-gpu", "syncreel-gpu")):
        command = services[worker]["command"]
        assert command[:3] == ["prefect", "worker", "start"] and command[command.index("--pool") + 1] == pool
        assert services[worker]["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
    assert services["worker-gpu"]["command"][-2:] == ["--limit", "1"]


def test_compose_settings_are_the_names_prefect_and_syncreel_read(compose, monkeypatch):
    from prefect_redis.client import RedisMessagingSettings

    from syncreel.schemas.settings import Settings

    services = compose["services"]
    postgres = services["postgres"]["environment"]
    for name in ("prefect-api", "prefect-services"):
        env = interpolated(services[name]["environment"])  # what `syncreel server` reads, then passes on
        settings = prefect_settings(server_environment(env[DATABASE_SETTING], env, env[REDIS_SETTING]), monkeypatch)
        url = settings.server.database.connection_url.get_secret_value()
        assert url == (
            f"postgresql+asyncpg://{postgres['POSTGRES_USER']}:{interpolated(postgres)['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{postgres['POSTGRES_DB']}"
        )
        assert settings.server.events.messaging_broker == "prefect_redis.messaging"
        assert RedisMessagingSettings().url == "redis://redis:6379/0"
    # the second database that initdb creates is syncreel's
    assert "CREATE DATABASE syncreel;" in (DEPLOYMENTS / "initdb" / "10-syncreel.sql").read_text()
    bucket = services["minio-bucket"]["entrypoint"][-1].split("/")[1]
    for name in ("worker-cpu", "worker-gpu"):
        env = interpolated(services[name]["environment"])
        assert prefect_settings(env, monkeypatch).api.url == "http://prefect-api:4200/api"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        syncreel = Settings()
        assert syncreel.database_url.endswith("@postgres:5432/syncreel")
        assert syncreel.storage_url.startswith(f"s3://{bucket}/") and syncreel.inbox_url.startswith(f"s3://{bucket}/")
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_SECRET_ACCESS_KEY"] == interpolated(services["minio"]["environment"])["MINIO_ROOT_PASSWORD"]
        assert env["SYNCREEL_PROJECT_DIR"] == "/opt/syncreel"


# --- the split server, live ---------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An empty database on the Redis server at SYNCREEL_TEST_REDIS_URL (default: the local one), emptied after."""
    import redis

    base = os.environ.get("SYNCREEL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{base}/{db}")
        try:
            if client.dbsize() == 0:
                break
        except redis.ConnectionError as exc:
            pytest.fail(f"Redis at {base} is not reachable ({exc}); point SYNCREEL_TEST_REDIS_URL at one", False)
    else:
        pytest.fail(f"no empty database on the Redis server at {base}", False)
    yield f"{base}/{db}"
    client.flushdb()
    client.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_api_and_services_in_two_processes_pass_events_through_redis(postgres_url, redis_url, tmp_path):
    """An event posted to the API process is stored by the event persister, which runs only in the
    services process: it can only have got there through Redis. The API process also applies the
    deployments with the git pull steps."""
    import httpx
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    prefect_db = f"{base.database}_split"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{prefect_db}"'))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_UI_ENABLED": "false"}
    env = {key: value for key, value in env.items() if key != "PREFECT_API_URL"}
    common = ["--database-url", base.set(database=prefect_db).render_as_string(hide_password=False)]
    common += ["--redis-url", redis_url]
    syncreel = [sys.executable, "-m", "syncreel.cli", "server", *common]
    logs = {role: tmp_path / f"{role}.log" for role in ("api", "services")}
    processes = {}
    try:
        processes["api"] = subprocess.Popen(
            [*syncreel, "--role", "api", "--port", str(port), "--deploy", "--code", "git"],
            env=env,
            stdout=logs["api"].open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 240
        while "prefect server ready" not in logs["api"].read_text():
            assert processes["api"].poll() is None and time.monotonic() < deadline, logs["api"].read_text()[-3000:]
            time.sleep(0.5)
        processes["services"] = subprocess.Popen(
            [*syncreel, "--role", "services"], env=env, stdout=logs["services"].open("w"), stderr=subprocess.STDOUT
        )
        api = f"http://127.0.0.1:{port}/api"
        event = {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(UTC).isoformat(),
            "event": "syncreel.test.split-server",
            "resource": {"prefect.resource.id": f"syncreel.test.{uuid.uuid4().hex}"},
        }
        assert httpx.post(f"{api}/events", json=[event], timeout=30).status_code == 204
        query = {"filter": {"event": {"name": [event["event"]]}}, "limit": 10}
        deadline = time.monotonic() + 120
        while not [
            e
            for e in httpx.post(f"{api}/events/filter", json=query, timeout=30).json()["events"]
            if e["id"] == event["id"]
        ]:
            assert processes["services"].poll() is None, logs["services"].read_text()[-3000:]
            assert time.monotonic() < deadline, "the event was not stored: " + logs["services"].read_text()[-3000:]
            time.sleep(1)
        assert processes["api"].poll() is None
        # `--deploy --code git` applied every deployment with the git pull steps
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()
        assert len(deployments) == 3
        assert all(d["pull_steps"] == prefect_file(CodeSource.git)["pull"] for d in deployments)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)'))
        admin.dispose()
