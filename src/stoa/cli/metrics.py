"""``stoa metrics define/list/show``: business metrics, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stoa.cli.context import JsonOpt, existing_path, state
from stoa.cli.output import emit, fields, table
from stoa.core.errors import InvalidInputError

app = typer.Typer(no_args_is_help=True, help="Business metrics for A/B reports, monitors, alerts.")


@app.command()
def define(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="YAML: one definition, or a list of them.")],
    json_out: JsonOpt = False,
) -> None:
    """Write each definition as the next version of its name (unchanged ones write nothing)."""
    try:
        text = existing_path(path).read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text", field="path") from None
    written = state(ctx).client.metrics.define(text)
    emit(written, json_out, lambda rows: "\n".join(f"{r['name']} v{r['version']}" for r in rows))


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Built-ins, then your own at their latest version."""
    rows = state(ctx).client.metrics.list()
    emit(
        rows,
        json_out,
        lambda items: table(
            None,
            ["name", "version", "kind", "direction", "window", "description"],
            [_row(r) for r in items],
        ),
    )


def _row(r: dict[str, Any]) -> tuple[Any, ...]:
    version = "built-in" if r["builtin"] else r["version"]
    return (r["name"], version, r["kind"], r["direction"], r["window"], r["description"])


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A metric name (name@2 for an earlier version).")],
    json_out: JsonOpt = False,
) -> None:
    """One metric's definition."""
    spec = state(ctx).client.metrics.show(name)
    emit(spec, json_out, lambda s: fields(f"metric {name}", list(s.items())))
