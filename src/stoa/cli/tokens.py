"""``stoa tokens``: API tokens for the server, stored hashed."""

from __future__ import annotations

from typing import Annotated

import typer

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, table, when

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[
        list[str] | None, typer.Option(help="read, write or admin; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a token. Its secret is printed once and never stored."""
    token = state(ctx).client.tokens.create(name, scope or ["read"])
    emit(
        token,
        json_out,
        lambda t: (
            f"token {t.id} ({', '.join(t.scopes)}): {t.token}\n"
            "Store it now; Stoa keeps only its hash."
        ),
    )


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    rows = state(ctx).client.tokens.list()
    emit(
        rows,
        json_out,
        lambda rs: table(
            None,
            ["id", "name", "scopes", "created", "revoked", "last used"],
            [
                (
                    t.id,
                    t.name,
                    ",".join(t.scopes),
                    when(t.created_at),
                    when(t.revoked_at),
                    when(t.last_used_at),
                )
                for t in rs
            ],
            times=("created", "revoked", "last used"),
        ),
        empty="no tokens yet; create one with `stoa tokens create NAME --scope read`",
    )


@app.command()
def revoke(ctx: typer.Context, token_id: str, json_out: JsonOpt = False) -> None:
    """Revoke a token; requests carrying it are refused from now on."""
    emit(
        state(ctx).client.tokens.revoke(token_id), json_out, lambda t: f"revoked {t.id} ({t.name})"
    )
