"""``stoa feedback``: send one event (``stoa feedback PREDICTION KIND VALUE``, as before,
or ``stoa feedback send …``) and export reviewed feedback as a training dataset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from stoa.cli import endpoints
from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit


class _SendByDefault(TyperGroup):
    """A first argument that is no sub-command is a prediction id: ``send`` it."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "send")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_SendByDefault,
    no_args_is_help=True,
    help="Send feedback on a prediction, or export reviewed feedback as a dataset.",
)
app.command("send")(endpoints.feedback)


@app.command()
def export(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose reviews to export.")],
    to_dataset: Annotated[str, typer.Option("--to-dataset", help="The dataset to version.")],
    format: Annotated[str, typer.Option(help="jsonl, parquet or csv.")] = "jsonl",
    since: Annotated[datetime | None, typer.Option(help="Feedback from this time (UTC).")] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Feedback sources to take (default: human)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Reviewers' labels and corrections, one row per prediction, as the next version of
    a dataset linked to the versions that served them (`stoa select` trains on it)."""
    result = state(ctx).client.feedback.export(
        endpoint, to_dataset, format=format, since=since, sources=source or None
    )
    emit(
        result,
        json_out,
        lambda r: (
            f"{r['dataset']}: {r['rows']} reviewed prediction(s), from {', '.join(r['parents'])}"
        ),
    )
