"""``stoa batch score``: a solution over every row of a table, into one Parquet file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stoa.cli.context import AddressOpt, JsonOpt, RayOpt, parse_json_object, ray_target, state
from stoa.cli.output import counting_progress, emit, notes, table
from stoa.core.errors import InvalidInputError

app = typer.Typer(no_args_is_help=True, help="Score tables with a solution, row by row.")


@app.command()
def score(
    ctx: typer.Context,
    solution: Annotated[
        str, typer.Argument(metavar="SOLUTION", help="NAME, NAME@VERSION or NAME@ALIAS.")
    ],
    table_ref: Annotated[
        str, typer.Argument(metavar="TABLE", help="A dataset ref or a CSV/Parquet/JSONL path.")
    ],
    out: Annotated[str, typer.Option("--out", help="The new .parquet file to write.")],
    input_column: Annotated[
        list[str] | None,
        typer.Option("--input-column", help="Build the input from these columns (repeat)."),
    ] = None,
    partition_rows: Annotated[int, typer.Option(help="Rows per partition.")] = 1000,
    overrides: Annotated[
        str | None, typer.Option(help='JSON: step id → changed fields, e.g. {"docs": {"k": 8}}.')
    ] = None,
    ray: RayOpt = False,
    address: AddressOpt = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="With --ray: scoring actors (default: one per CPU).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the solution on every row and write one output row per input row, errors
    included (docs/batch.md). Runs here on the local stores, or with --ray in
    partitions across a Ray cluster, into the same file."""
    target = ray_target(ray, address)
    if workers is not None and not ray:
        raise InvalidInputError("--workers needs --ray", field="workers", fix="add --ray")
    with counting_progress(notes.is_terminal, "scoring", "rows") as progress:
        summary = state(ctx).client.batch.score(
            solution, table_ref, out, input_columns=input_column or None,
            partition_rows=partition_rows, overrides=parse_json_object(overrides, "overrides"),
            progress=progress, ray=target, workers=workers,
        )  # fmt: skip
    emit(summary, json_out, _summary)


def _summary(s: dict[str, Any]) -> Any:
    rows = [(status, n) for status, n in s["by_status"].items()]
    rows += [("total rows", s["rows"]), ("seconds", s["seconds"]), ("rows/s", s["rows_per_s"])]
    return table(f"{s['solution']} on {s['table']} -> {s['out']}", ["", "count"], rows,
                 numbers=["count"])  # fmt: skip
