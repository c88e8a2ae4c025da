"""``stoa runs``: record a run and walk its lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from stoa.cli.context import JsonOpt, parse_pairs, state
from stoa.cli.output import emit, lineage_table, notes, run_detail, runs_table, table

app = typer.Typer(
    help="Track runs: record, search, compare and walk their lineage.", no_args_is_help=True
)


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
    run = state(ctx).client.runs.create(name, input_ or [])
    emit(run, json_out, lambda r: f"run {r.id} ({r.name})")


@app.command()
def lineage(ctx: typer.Context, run_id: str, json_out: JsonOpt = False) -> None:
    """What the run read (up) and what it produced (down)."""
    emit(state(ctx).client.runs.lineage(run_id), json_out, lineage_table)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; repeatable.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="A condition on a latest value: 'acc>0.9'.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only runs with this name.")] = None,
    status: Annotated[str | None, typer.Option(help="running, finished, failed or killed.")] = None,
    order_by: Annotated[
        str | None, typer.Option(help="e.g. -metrics.acc, params.lr, created_at (- descends).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Search runs by params, tags and metric conditions; newest first by default."""
    runs = state(ctx).client.runs.search(
        params=parse_pairs(param, "param"),
        tags=parse_pairs(tag, "tag"),
        metrics=metric or [],
        name=name,
        status=status,
        order_by=order_by,
        limit=limit,
    )
    emit(runs, json_out, runs_table)
    if len(runs) == limit:
        notes.print(f"note: stopped at --limit {limit}; there may be more runs")


@app.command()
def show(ctx: typer.Context, run_id: str, json_out: JsonOpt = False) -> None:
    """One run: status, code version, params, tags, latest metrics and artifacts."""
    emit(state(ctx).client.runs.get(run_id), json_out, run_detail)


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    json_out: JsonOpt = False,
) -> None:
    """Runs side by side: their params and latest metrics as columns."""
    emit(state(ctx).client.runs.compare(run_ids), json_out, runs_table)


@app.command()
def history(ctx: typer.Context, run_id: str, key: str, json_out: JsonOpt = False) -> None:
    """Every logged point of one metric, in step order."""
    points = state(ctx).client.runs.metric_history(run_id, key)
    rows = [(p.step, p.value, p.timestamp) for p in points]
    columns = ["step", "value", "timestamp (ms)"]
    emit(points, json_out, lambda _: table(f"{key} of {run_id}", columns, rows))
