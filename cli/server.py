"""The Prefect server syncreel's workers and submissions talk to: server."""

from __future__ import annotations

from typing import Annotated

import typer

from syncreel.flows.deployments import CodeSource, Role


def server(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="PREFECT_SERVER_DATABASE_CONNECTION_URL",
            help="Postgres database of the Prefect server (postgresql+psycopg:// or +asyncpg://).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs in the fleet: slots of the GPU concurrency limit.")] = 1,
    apply_deployments: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="Apply deployments/prefect.yaml once the server is up.")
    ] = False,
    code: Annotated[
        CodeSource,
        typer.Option(
            help="With --deploy: where workers get the code, the folder SYNCREEL_PROJECT_DIR (a checkout or the "
            "image) or a git clone of SYNCREEL_GIT_REPOSITORY at SYNCREEL_GIT_COMMIT, installed per flow run."
        ),
    ] = CodeSource.project_dir,
    role: Annotated[
        Role,
        typer.Option(
            help="all: API, UI and background services in one process; api: API and UI only; services: the "
            "background services only (run one of each; they need --redis-url)."
        ),
    ] = Role.all,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="PREFECT_REDIS_MESSAGING_URL",
            help="Redis that carries Prefect's events between the API and the services (redis://host:6379/0).",
        ),
    ] = None,
) -> None:
    """Run the Prefect server on Postgres with syncreel's work pools and GPU limit (deployments/README.md)."""
    from syncreel.flows.deployments import serve

    if role is Role.services and apply_deployments:
        raise typer.BadParameter("the services process has no API to deploy to: pass --deploy to --role api")
    try:
        raise typer.Exit(serve(database_url, host, port, gpus, code if apply_deployments else None, role, redis_url))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
