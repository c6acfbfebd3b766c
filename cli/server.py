"""The Prefect server syncreel's workers and submissions talk to: server."""

from __future__ import annotations

from typing import Annotated

import typer


def server(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="PREFECT_SERVER_DATABASE_URL",
            help="Postgres database of the Prefect server (postgresql+psycopg:// or +asyncpg://).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs in the fleet: slots of the GPU concurrency limit.")] = 1,
    apply_deployments: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="Apply deployments/prefect.yaml once the server is up.")
    ] = False,
) -> None:
    """Run the Prefect server on Postgres with syncreel's work pools and GPU limit (deployments/README.md)."""
    from syncreel.flows.deployments import serve

    raise typer.Exit(serve(database_url, host, port, gpus, apply_deployments))
