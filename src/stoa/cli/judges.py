"""``stoa judges``: online judge policies that score live predictions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, table

app = typer.Typer(no_args_is_help=True, help="Judges scoring a sample of live predictions.")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The policy's name.")],
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="The endpoint to judge.")],
    judge: Annotated[
        list[str] | None,
        typer.Option("--judge", help="embedding, or llm:PROVIDER[:MODEL]; repeat for several."),
    ] = None,
    rate: Annotated[float, typer.Option(help="The share of predictions judged, (0, 1].")] = 0.1,
    criterion: Annotated[
        list[str] | None, typer.Option("--criterion", help="Keep only these criteria.")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="Only these variants.")
    ] = None,
    max_per_run: Annotated[int, typer.Option(help="Predictions judged per pass at most.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """A policy the server runs in the background (and `stoa judges run` runs now)."""
    spec = {"endpoint": endpoint, "judges": judge or ["embedding"], "rate": rate,
            "criteria": criterion or None, "variants": variant or None,
            "max_per_run": max_per_run}  # fmt: skip
    info = state(ctx).client.judges.create_policy(name, spec)
    emit(info, json_out, lambda i: f"judge policy {i['name']} on {i['endpoint']}")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every policy, its judges, rate and progress."""
    rows = state(ctx).client.judges.policies()
    emit(
        rows,
        json_out,
        lambda items: table(
            None,
            ["name", "endpoint", "judges", "rate", "enabled", "seen up to"],
            [_policy_row(r) for r in items],
        ),
        empty="no judge policies",
    )


def _policy_row(r: dict[str, Any]) -> tuple[Any, ...]:
    spec = r["spec"]
    enabled = "yes" if r["enabled"] else "paused"
    return (r["name"], r["endpoint"], ", ".join(spec["judges"]), spec["rate"], enabled,
            r["scanned_to"] or "-")  # fmt: skip


@app.command()
def pause(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
    """Stop a policy; its scores stay."""
    emit(state(ctx).client.judges.set_enabled(name, False), json_out, lambda i: f"{name} paused")


@app.command()
def resume(ctx: typer.Context, name: str, json_out: JsonOpt = False) -> None:
    """Start a paused policy again, from where it stopped."""
    emit(state(ctx).client.judges.set_enabled(name, True), json_out, lambda i: f"{name} resumed")


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One policy (default: all enabled).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """One pass now over the predictions each policy has not seen."""
    rows = state(ctx).client.judges.run(name)
    emit(
        rows,
        json_out,
        lambda items: table(
            None,
            ["policy", "predictions judged", "scores", "failed"],
            [(r["policy"], r["scored"], r["scores"], r["failed"]) for r in items],
            numbers=["predictions judged", "scores", "failed"],
        ),
        empty="no enabled judge policies",
    )
