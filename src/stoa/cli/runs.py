"""``stoa runs``: record a run and walk its lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, lineage_table

app = typer.Typer(help="Record runs and walk their lineage.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    input_: Annotated[
        list[str] | None, typer.Option("--input", help="Dataset REF the run read; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record a run; pass its id to `stoa models register --run-id`."""
    run = state(ctx).client.create_run(name, input_ or [])
    emit(run, json_out, lambda r: f"run {r.id} ({r.name})")


@app.command()
def lineage(ctx: typer.Context, run_id: str, json_out: JsonOpt = False) -> None:
    """What the run read (up) and what it produced (down)."""
    emit(state(ctx).client.lineage("run", run_id), json_out, lineage_table)
