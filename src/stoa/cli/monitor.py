"""``stoa monitor report/drift``: drift, quality and metrics of an endpoint, or drift
between two tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group

from stoa.cli.context import JsonOpt, parse_number_pairs, parse_pairs, state
from stoa.cli.output import emit, table

app = typer.Typer(no_args_is_help=True, help="Drift, quality and metrics over time.")

ReferenceOpt = Annotated[
    str | None,
    typer.Option(help="A dataset ref, a CSV/Parquet/JSONL path, or logbook:START/END."),
]


def _score(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def drift_table(report: dict[str, Any]) -> Any:
    """One row per column: its type, test, score against threshold, and decision."""
    dataset = report["dataset"]
    title = (
        f"drift: {dataset['drifted_columns']} of {dataset['columns']} columns drifted "
        f"(dataset drifts at {dataset['drift_share_threshold']:.0%}): "
        + ("DRIFT" if dataset["drifted"] else "no drift")
    )
    rows = [
        (c["column"], c["type"], c["test"], _score(c["score"]), _score(c["threshold"]),
         "DRIFT" if c["drifted"] else "ok")
        for c in report["columns"]
    ]  # fmt: skip
    rows += [(s["column"], "-", "skipped", "-", "-", s["reason"]) for s in report["skipped"]]
    return table(title, ["column", "type", "test", "score", "threshold", "drift"], rows,
                 numbers=["score", "threshold"])  # fmt: skip


@app.command()
def drift(
    ctx: typer.Context,
    reference: Annotated[str, typer.Option(help="The reference table: dataset ref or path.")],
    current: Annotated[str, typer.Option(help="The current table: dataset ref or path.")],
    column: Annotated[
        list[str] | None, typer.Option("--column", help="Only these columns (repeat).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", help="COLUMN=TEST, e.g. amount=psi.")
    ] = None,
    threshold: Annotated[
        list[str] | None, typer.Option("--threshold", help="COLUMN=VALUE.")
    ] = None,
    drift_share: Annotated[
        float, typer.Option(help="Share of drifted columns that makes the dataset drift.")
    ] = 0.5,
    json_out: JsonOpt = False,
) -> None:
    """Compare two tables column by column, with the test each column's type and size
    call for (docs/monitoring.md), and decide for the dataset."""
    thresholds = parse_number_pairs(threshold, "threshold", "--threshold amount=0.2")
    report = state(ctx).client.monitor.drift(
        reference, current, columns=column or None, methods=parse_pairs(method, "method"),
        thresholds=thresholds, drift_share=drift_share,
    )  # fmt: skip
    emit(report, json_out, drift_table)


@app.command()
def report(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    window: Annotated[str, typer.Option(help="The current window, e.g. 24h.")] = "24h",
    reference: ReferenceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The last window against the reference (default: the window before it)."""
    result = state(ctx).client.monitor.report(endpoint, window=window, reference=reference)
    emit(result, json_out, _report_view)


def _report_view(r: dict[str, Any]) -> Any:
    metrics = table(
        f"{r['endpoint']}: the last window against the one before",
        ["metric", "now", "n", "before", "n before"],
        [(m["metric"], _score(m["current"]), m["current_n"], _score(m["previous"]),
          m["previous_n"]) for m in r["metrics"]],
        numbers=["now", "n", "before", "n before"],
    )  # fmt: skip
    parts = [metrics, drift_table(r["drift"])]
    if r["quality"]:
        rows = [
            (q["start"], q["variant"], q["n"], _score(q.get("accuracy")), _score(q.get("f1")))
            for q in r["quality"]
        ]
        head = ["from", "variant", "n", "accuracy", "f1"]
        parts.append(table("quality (label feedback)", head, rows, numbers=head[2:]))
    return Group(*parts)
