"""``stoa server``: uvicorn over the app, in one process or several workers."""

from __future__ import annotations

from typing import Annotated

import typer

from stoa.cli.context import state


def server(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs tokens.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (each with its own stores).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (costs throughput).")
    ] = False,
) -> None:
    """Serve the REST API (OpenAPI at /docs), the endpoints and the dashboard with uvicorn."""
    run_server(ctx, host=host, port=port, workers=workers, access_log=access_log)


def run_server(
    ctx: typer.Context,
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool = False,
    default_endpoint: str | None = None,
) -> None:
    """uvicorn over the app, in this process or in ``workers`` processes."""
    import uvicorn

    from stoa.serve.logs import log_config
    from stoa.serve.server import create_app
    from stoa.serve.server.app import WORKER_APP, configure_workers

    settings = state(ctx).settings
    # Refuses a public bind without tokens, here, before any worker starts.
    api = create_app(settings, host=host, default_endpoint=default_endpoint)
    options = {"host": host, "port": port, "log_level": "info", "access_log": access_log,
               "log_config": log_config(settings.log_format)}  # fmt: skip
    if workers == 1:
        uvicorn.run(api, **options)
        return
    api.state.client.close()
    configure_workers(settings, host, default_endpoint)  # what every worker rebuilds
    uvicorn.run(WORKER_APP, factory=True, workers=workers, **options)
