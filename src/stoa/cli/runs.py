"""``stoa runs``: record a run and walk its lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stoa.cli.context import JsonOpt, parse_pairs, state
from stoa.cli.output import (
    COLUMNS_HELP,
    emit,
    lineage_table,
    note,
    parse_columns,
    run_detail,
    runs_table,
    table,
    when,
)
from stoa.develop.tracking import parse_condition

app = typer.Typer(
    help="Track runs: record, search, compare, download artifacts and walk their lineage. "
    "A run id can be shortened to any unique prefix of 6 or more characters.",
    no_args_is_help=True,
)
RunId = Annotated[str, typer.Argument(help="A run id, or a unique prefix of 6+ characters.")]
ColumnsOpt = Annotated[str | None, typer.Option("--columns", help=COLUMNS_HELP)]


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    input_: Annotated[
        list[str] | None, typer.Option("--input", help="Dataset REF the run read; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record a finished run (for lineage); pass its id to `stoa models register --run`."""
    run = state(ctx).client.runs.create(name, input_ or [])
    emit(run, json_out, lambda r: f"run {r.id} ({r.name}, {r.status})")


@app.command()
def lineage(ctx: typer.Context, run_id: RunId, json_out: JsonOpt = False) -> None:
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
    parent: Annotated[
        str | None, typer.Option(help="Only the children of this run (id or 6+ character prefix).")
    ] = None,
    order_by: Annotated[
        str | None, typer.Option(help="e.g. -metrics.acc, params.lr, created_at (- descends).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 100,
    columns: ColumnsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search runs by params, tags and metric conditions; newest first by default."""
    chosen = parse_columns(columns)
    filtered = any((param, tag, metric, name, status, parent))
    runs = state(ctx).client.runs.search(
        params=parse_pairs(param, "param"),
        tags=parse_pairs(tag, "tag"),
        metrics=metric or [],
        name=name,
        status=status,
        parent_id=parent,
        order_by=order_by,
        limit=limit,
    )
    empty = (
        "no run matches these filters"
        if filtered
        else "no runs yet; record one with `stoa runs create NAME` or stoa.start_run() in Python"
    )
    # The columns the search was about come first: its order, then its conditions.
    prefer = [(order_by or "").lstrip("+-")]
    prefer += [f"metrics.{parse_condition(m)[0]}" for m in metric or []]
    emit(runs, json_out, lambda rs: runs_table(rs, chosen, prefer=prefer), empty=empty)
    if len(runs) == limit:
        note(f"stopped at --limit {limit}; there may be more runs")


@app.command()
def show(ctx: typer.Context, run_id: RunId, json_out: JsonOpt = False) -> None:
    """One run: status, code version, params, tags, latest metrics and artifacts."""
    emit(state(ctx).client.runs.get(run_id), json_out, run_detail)


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or 6+ prefixes).")],
    columns: ColumnsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Runs side by side: their latest metrics and the params that differ, as columns."""
    chosen = parse_columns(columns)
    runs = state(ctx).client.runs.compare(run_ids)
    emit(runs, json_out, lambda rs: runs_table(rs, chosen))


@app.command()
def history(ctx: typer.Context, run_id: RunId, key: str, json_out: JsonOpt = False) -> None:
    """Every logged point of one metric, in step order."""
    points = state(ctx).client.runs.metric_history(run_id, key)
    rows = [(p.step, f"{p.value:.6g}", when(p.timestamp)) for p in points]
    emit(
        points,
        json_out,
        lambda _: table(
            f"{key} of run {run_id}",
            ["step", "value", "logged at"],
            rows,
            numbers=("step", "value"),
        ),
        empty=f"run {run_id} has no points of {key!r}",
    )


@app.command()
def download(
    ctx: typer.Context,
    run_id: RunId,
    name: Annotated[str, typer.Argument(help="The artifact's name, as `stoa runs show` lists.")],
    dest: Annotated[Path, typer.Argument(help="File or folder to write; must not exist.")],
    json_out: JsonOpt = False,
) -> None:
    """Write a verified copy of an artifact the run stored to DEST."""
    client = state(ctx).client
    full_id = client.runs.get(run_id).info.id
    path = client.runs.download_artifact(full_id, name, dest)
    result = {"run_id": full_id, "name": name, "path": str(path)}
    emit(result, json_out, lambda r: f"wrote {r['path']} ({r['name']} of run {r['run_id']})")
