"""``stoa predictions list/show/summary/export``: the logbook from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, fields, note, table, when

app = typer.Typer(no_args_is_help=True, help="Read the prediction logbook.")

EndpointOpt = Annotated[str | None, typer.Option("--endpoint", "-e", help="Only this endpoint.")]
VariantOpt = Annotated[str | None, typer.Option(help="Only this variant.")]
UnitOpt = Annotated[str | None, typer.Option("--unit", help="Only this unit id.")]
StatusOpt = Annotated[
    str | None, typer.Option(help="Only this status (ok, rejected, error, timeout, …).")
]
ModeOpt = Annotated[str | None, typer.Option(help="live or shadow.")]
SinceOpt = Annotated[datetime | None, typer.Option(help="From this time (ISO 8601, UTC).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Before this time (ISO 8601, UTC).")]
SearchOpt = Annotated[str | None, typer.Option(help="Text the input or output contains.")]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("list")
def list_(
    ctx: typer.Context,
    endpoint: EndpointOpt = None,
    variant: VariantOpt = None,
    unit: UnitOpt = None,
    status: StatusOpt = None,
    mode: ModeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 1000).")] = 20,
    before: Annotated[str | None, typer.Option(help="Older than this prediction id.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The newest predictions matching every filter given."""
    rows = state(ctx).client.predictions.list(
        endpoint=endpoint, variant=variant, unit_id=unit, status=status, mode=mode,
        since=since, until=until, search=search, limit=limit, before_id=before,
    )  # fmt: skip
    emit(
        rows,
        json_out,
        lambda items: table(
            None,
            ["id", "at", "endpoint", "variant", "status", "ms", "input", "output"],
            [
                (
                    r["id"],
                    when(r["ts"]),
                    r["endpoint"],
                    r["variant"] + (" (shadow)" if r["mode"] == "shadow" else ""),
                    r["status"],
                    f"{r['latency_ms']:.1f}",
                    _short(r.get("input")),
                    _short(r.get("output")),
                )
                for r in items
            ],
            numbers=["ms"],
            fixed=["id", "status"],
            times=["at"],
        ),
        empty="no predictions match",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    prediction_id: Annotated[str, typer.Argument(help="The prediction's id.")],
    json_out: JsonOpt = False,
) -> None:
    """One prediction: input, output, trace, feedback and shadows."""
    row = state(ctx).client.predictions.show(prediction_id)

    def render(r: dict[str, Any]) -> Group:
        head = fields(
            f"prediction {r['id']}",
            [("endpoint", f"{r['endpoint']} (config v{r['config_version']})"),
             ("variant", f"{r['variant']} → {r['target']}"), ("mode", r["mode"]),
             ("unit", r.get("unit_id")), ("at", when(r["ts"])), ("status", r["status"]),
             ("latency", f"{r['latency_ms']:.1f} ms"), ("tokens", r.get("tokens") or None),
             ("input", _short(r.get("input"), 400)), ("output", _short(r.get("output"), 400)),
             ("error", _short(r["error"], 400) if r.get("error") else None),
             ("shadows", ", ".join(r.get("shadows") or []) or None)],
        )  # fmt: skip
        spans = (r.get("trace") or {}).get("spans", [])
        trace = table(
            "trace", ["span", "ms", "status"],
            [(s["name"], f"{s['duration_ms']:.1f}", s["status"]) for s in spans],
            numbers=["ms"],
        )  # fmt: skip
        events = table(
            "feedback", ["kind", "value", "source", "at"],
            [(f["kind"], json.dumps(f["value"]), f["source"], when(f["ts"]))
             for f in r.get("feedback") or []],
            times=["at"],
        )  # fmt: skip
        return Group(head, trace, events)

    emit(row, json_out, render)


@app.command("summary")
def summary(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    since: SinceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per variant: predictions, errors, latency and feedback counts."""
    rows = state(ctx).client.predictions.summary(endpoint, since=since)
    emit(rows, json_out, lambda items: table(
        f"endpoint {endpoint}", ["variant", "mode", "predictions", "errors", "p50 ms", "p95 ms",
                                 "feedback"],
        [(r["variant"], r["mode"], r["predictions"], r["errors"],
          _ms(r.get("p50_ms")), _ms(r.get("p95_ms")),
          ", ".join(f"{k} {n}" for k, n in sorted((r.get("feedback") or {}).items())))
         for r in items],
        numbers=["predictions", "errors", "p50 ms", "p95 ms"],
    ), empty=f"no predictions logged for {endpoint}")  # fmt: skip


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@app.command("export")
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A new .jsonl or .parquet file.")],
    format: Annotated[
        str | None, typer.Option(help="jsonl or parquet (default: from the file's suffix).")
    ] = None,
    endpoint: EndpointOpt = None,
    variant: VariantOpt = None,
    unit: UnitOpt = None,
    status: StatusOpt = None,
    mode: ModeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    search: SearchOpt = None,
) -> None:
    """Write every matching prediction, oldest first, with traces."""
    chosen = format or ("parquet" if path.suffix.lower() == ".parquet" else "jsonl")
    count = state(ctx).client.predictions.export(
        path, format=chosen, endpoint=endpoint, variant=variant, unit_id=unit, status=status,
        mode=mode, since=since, until=until, search=search,
    )  # fmt: skip
    note(f"wrote {count} predictions to {path}")
