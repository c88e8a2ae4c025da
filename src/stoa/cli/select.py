"""``stoa select``: train and compare candidates from a config, then recommend one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stoa.cli.context import state
from stoa.cli.output import console, notes
from stoa.core.errors import InvalidInputError, yaml_problem


def select(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="The selection config (YAML or JSON).")],
    register: Annotated[
        str | None, typer.Option(help="Register the recommended model under this name.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON result.")] = False,
) -> None:
    """Train every candidate, measure quality, latency and cost, and recommend one."""
    import yaml

    from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

    try:
        doc = yaml.safe_load(config.read_text())
    except OSError as exc:
        raise InvalidInputError(f"cannot read {config}: {exc.strerror}", field="config") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"{config} is not valid YAML: {yaml_problem(exc)}", field="config"
        ) from None
    parsed = parse_config(doc, config.parent)
    with console.status("training and measuring candidates") if not json_out else _quiet():
        result = numpy_safe(run_selection(state(ctx).client, parsed, register=register))
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(leaderboard_table(result))
        console.print(_verdict(result))
    if register and not (result.get("registered") or {}).get("alias"):
        notes.print("nothing was registered as champion")
        raise typer.Exit(1)


def leaderboard_table(result: dict) -> Table:
    primary = result["primary_metric"]
    table = Table(title=f"leaderboard ({primary}; run {result['run_id'][:12]})",
                  title_justify="left")  # fmt: skip
    for column in ("candidate", "kind", primary, "95% CI", "p95 ms", "cost/1k", "size MB",
                   "train s", "pareto", "verdict"):  # fmt: skip
        table.add_column(column)
    for row in result["leaderboard"]:
        if row.get("skipped"):
            table.add_row(row["name"], row["kind"], "-", "-", "-", "-", "-", "-", "-",
                          escape(f"skipped: {row['skipped']}"))  # fmt: skip
            continue
        value = row["metrics"].get(primary)
        ci = row.get("interval") or {}
        table.add_row(
            escape(row["name"]), row["kind"],
            "-" if value is None else f"{value:.4f}",
            f"{ci['low']:.3f}-{ci['high']:.3f}" if ci else "-",
            f"{row['latency_ms']['p95']:.2f}", f"{row['cost_per_1k']:.2e}",
            f"{row['size_mb']:.2f}", f"{row['train_s']:.2f}",
            "yes" if row["pareto"] else "",
            "ok" if row["meets_constraints"] else escape("; ".join(row["rejected_because"])),
        )  # fmt: skip
    return table


def _verdict(result: dict) -> str:
    if result["recommendation"] is None:
        return "[red]no candidate meets every constraint[/red]"
    text = f"recommendation: [bold]{escape(result['recommendation'])}[/bold]"
    registered = result.get("registered")
    if registered:
        text += f" → registered {registered['ref']} ({registered['status']})"
    return text


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None
