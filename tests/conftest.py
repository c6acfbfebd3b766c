"""Shared fixtures: real servers for the store tests.

- ``postgres_url``: a fresh database on the PostgreSQL server at ``SYNCREEL_TEST_POSTGRES_URL``
  (default: the local one at 127.0.0.1:5432), created for this session and dropped after it. An
  unreachable server fails the tests that need it, with the reason; set the variable to ``none`` to
  skip them deliberately.
- ``db_url``: each store test once on SQLite and once on that PostgreSQL database.
- ``s3_endpoint``: moto's S3 API server on 127.0.0.1 (a free port), for boto3 to talk to.
- ``harness``: Prefect's test harness (a temporary API server), started once per test run for the flow tests.
- ``embedded_state``: a test's own SQLite database, asset folder and work dir under ``tmp_path``.
- ``calibration``, ``fast_set``: the sync scorers' calibration clips (tests/fixtures/calibration.py), built once
  into pytest's cache folder, and the fast subset scored.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from syncreel.schemas.settings import get_settings

pytest_plugins = ["tests.fixtures.ingest"]  # https_server, trusted, runtime (for the ingest tests)

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = os.environ.get("SYNCREEL_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    if base.lower() == "none":
        pytest.skip("SYNCREEL_TEST_POSTGRES_URL=none: PostgreSQL tests skipped on request")
    name = f"syncreel_test_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means the same thing here
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {make_url(base).render_as_string(hide_password=True)} is not reachable ({exc}). "
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), point "
            "SYNCREEL_TEST_POSTGRES_URL at another server, or set it to 'none' to skip these tests.",
            pytrace=False,
        )
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    # Each test starts from an empty schema on the shared session database.
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = {
        key: os.environ.get(key)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    }
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness  # ~4 s to import: only for the tests that use it

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def embedded_state(tmp_path, monkeypatch) -> Iterator[Path]:
    # Under state/: the brief's folder (tmp_path) holds an `assets` link to the example references.
    monkeypatch.setenv("SYNCREEL_DATABASE_URL", f"sqlite:///{tmp_path}/state/state.db")
    monkeypatch.setenv("SYNCREEL_STORAGE_URL", f"file://{tmp_path}/state/assets")
    monkeypatch.setenv("SYNCREEL_WORK_DIR", str(tmp_path / "state" / "work"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def calibration() -> ModuleType:
    """tests/fixtures/calibration.py, for the sync and face tests that build its clips."""
    from tests.fixtures import calibration

    return calibration


@pytest.fixture(scope="session")
def calibration_folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the calibration clips are built: pytest's cache folder, so that they are reused across runs
    while their recipe is unchanged."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("syncreel-calibration")) if cache is not None else tmp_path_factory.mktemp("calibration")


@pytest.fixture(scope="session")
def fast_set(calibration_folder: Path, calibration: ModuleType) -> dict:
    """The calibration set's fast subset, each case with its sync report (about 25 s to build on 2 cores)."""
    return calibration.score_cases(calibration.build(calibration_folder))
