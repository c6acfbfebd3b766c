"""Engines, sessions and migrations for the run-state database (SQLite embedded, Postgres in production)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
# The Postgres advisory lock that migrations take ("syncreel" in ASCII); advisory locks are per database.
MIGRATION_LOCK_KEY = 0x73796E637265656C


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, foreign keys, WAL and a busy timeout,
    because several processes (a CLI run, a worker, `syncreel status`) share one file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    return engine


@cache
def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    session = _factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already).

    Every process migrates at its first use, so several may start at once: they take turns under a lock
    (`_migration_lock`), and each one after the first finds the schema at the head and does nothing."""
    engine = make_engine(url)
    try:
        with _migration_lock(url), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                _lock_postgres(connection)
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _lock_postgres(connection: Connection) -> None:
    """Wait for the database's migration lock, held until this transaction ends. Postgres runs DDL in
    the transaction, so the next process in line sees the whole upgrade committed, or none of it."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """For a SQLite file, an exclusive lock on ``<file>.migrate.lock`` beside it while the block runs
    (SQLite's driver does not run DDL in one transaction, so the database's own locks cannot serialise a
    whole upgrade); released by the system if the process dies. Other databases lock themselves."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        yield
        return
    lock_path = Path(f"{parsed.database}.migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
