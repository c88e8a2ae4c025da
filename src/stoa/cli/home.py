"""``stoa init`` and ``stoa status``: which home, database, blob store or server is in use."""

from __future__ import annotations

from typing import Any

import typer

from stoa.cli.context import JsonOpt, state
from stoa.cli.output import emit, fields
from stoa.core.db import masked
from stoa.core.settings import Settings

#: Runs are counted by a search; above this many, status says "at least".
MAX_COUNTED_RUNS = 10_000


def init(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Create the home folder and bring the database schema up to date."""
    from stoa.client import LocalClient

    settings = state(ctx).settings
    existed = settings.resolved_home.exists()
    client = LocalClient(settings=settings)
    try:
        db = client.stores.db
        report = {
            "home": str(settings.resolved_home),
            "created": not existed,
            "database_url": masked(db.url),
            "schema": db.current_revision(),
            "blob_url": client.stores.blobs.url,
        }
    finally:
        client.close()
    verb = "created" if not existed else "already there"
    emit(report, json_out, lambda r: fields("Stoa home", [
        ("home", f"{r['home']} ({verb})"), ("database", f"{r['database_url']} "
                                                         f"(schema {r['schema']})"),
        ("blobs", r["blob_url"]),
    ]))  # fmt: skip


def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Which home, database, blob store or server this command line uses, and what it holds."""
    current = state(ctx)
    settings = current.settings
    report = _where(settings)
    if settings.url or report["home_exists"] or settings.database_url:
        report["counts"] = _counts(current.client)
    emit(report, json_out, _render)


def _where(settings: Settings) -> dict[str, Any]:
    if settings.url:
        # The server's own home, database and blobs are not for a client to see.
        return {"server_url": settings.url, "home": None, "home_exists": None,
                "database_url": None, "blob_url": None, "counts": None}  # fmt: skip
    return {
        "server_url": None,
        "home": str(settings.resolved_home),
        "home_exists": settings.resolved_home.exists(),
        "database_url": masked(settings.resolved_database_url),
        "blob_url": settings.resolved_blob_url,
        "counts": None,
    }


def _counts(client: Any) -> dict[str, int | str]:
    """What the stores hold, through the same read operations as every other command."""
    counts: dict[str, int | str] = {}
    for kind in ("models", "prompts", "datasets"):
        series = getattr(client, kind).list()
        counts[kind] = len(series)
        # Version numbers are gap-free, so the latest numbers add up to the versions.
        counts[f"{kind[:-1]}_versions"] = sum(s.latest_version for s in series)
    runs = len(client.runs.search(limit=MAX_COUNTED_RUNS))
    counts["runs"] = runs if runs < MAX_COUNTED_RUNS else f"at least {runs}"
    counts["knowledge_bases"] = len(client.kbs.list())
    return counts


def _render(report: dict[str, Any]) -> Any:
    if report["server_url"]:
        rows = [("server", report["server_url"]),
                ("home", "the server's (not shown to clients)")]  # fmt: skip
    else:
        home = report["home"]
        if not report["home_exists"]:
            home += " (not created yet: `stoa init` or any command creates it)"
        rows = [
            ("home", home),
            ("database", report["database_url"]),
            ("blobs", report["blob_url"]),
            ("server", "none: this home, in process"),
        ]
    rows += [(name.replace("_", " "), n) for name, n in (report["counts"] or {}).items()]
    return fields("Stoa status", rows)
