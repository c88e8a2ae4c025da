"""Printing for the CLI: JSON on stdout for machines, Rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console()
# Notes go to stderr so that --json output on stdout stays machine-readable.
notes = Console(stderr=True)


def as_json(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    if isinstance(value, list):
        return json.dumps(
            [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value], indent=2
        )
    return json.dumps(value, indent=2, default=str)


def emit(value: Any, json_out: bool, render: Any = None) -> None:
    """Print ``value`` as JSON, or through ``render`` (a callable returning a Rich renderable)."""
    if json_out or render is None:
        print(as_json(value))
    else:
        console.print(render(value))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    return out


def version_table(versions: Any) -> Table:
    rows = versions if isinstance(versions, list) else [versions]
    return table(
        "versions",
        ["ref", "status", "flavor/format", "size (bytes)", "aliases", "tags", "created (UTC)"],
        [
            (
                v.ref,
                v.status,
                v.flavor or v.format,
                v.size,
                ", ".join(v.aliases),
                ", ".join(f"{k}={t}" for k, t in v.tags.items()),
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for v in rows
        ],
    )


def version_detail(v: Any) -> Table:
    out = version_table(v)
    out.title = f"{v.kind} {v.ref}"
    for finding in v.findings:
        out.caption = (out.caption or "") + f"\n[{finding.get('code')}] {finding.get('message')}"
    return out
