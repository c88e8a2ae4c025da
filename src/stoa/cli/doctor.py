"""``stoa doctor``: what this command line's configuration reaches, and what to fix."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stoa.cli.context import AddressOpt, JsonOpt, ray_target, state
from stoa.cli.output import emit, table
from stoa.core.doctor import failed, run_checks


def doctor(
    ctx: typer.Context,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Also check what a multi-node Ray cluster needs: a shared database and "
            "blob store (implied when RAY_ADDRESS is set).",
        ),
    ] = False,
    address: AddressOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the home, database, blob store, server and optional packages this command
    line would use: exit 0 when nothing failed (warnings allowed), 1 when something did.

    It creates nothing: a probe blob is written, read back and deleted, and no
    credential is ever printed.
    """
    target = ray_target(ray, address)  # --address alone is refused
    rows = run_checks(
        state(ctx).settings, ray=ray, address=target if isinstance(target, str) else None
    )
    emit([row.to_dict() for row in rows], json_out, _render)
    if failed(rows):
        raise typer.Exit(1)


def _render(rows: list[dict[str, Any]]) -> Any:
    return table(
        None,
        ["check", "status", "detail", "fix"],
        [(r["check"], r["status"], r["detail"], r["fix"]) for r in rows],
        fixed=["status"],
    )
