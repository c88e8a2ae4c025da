"""Printing for the CLI: JSON on stdout for machines, Rich tables for people."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn
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
        out.add_row(*["" if v is None else escape(str(v)) for v in row])  # user text, not markup
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


def _number(value: float) -> str:
    return f"{value:.6g}"


def runs_table(runs: Any) -> Table:
    """Runs with their params and latest metrics as columns, for list and compare."""
    rows = runs if isinstance(runs, list) else [runs]
    metric_keys = sorted({k for r in rows for k in r.metrics})[:8]
    param_keys = sorted({k for r in rows for k in r.params})[:8]
    return table(
        "runs",
        ["id", "name", "status", "created (UTC)"]
        + [f"params.{k}" for k in param_keys]
        + [f"metrics.{k}" for k in metric_keys],
        [
            [r.info.id[:12], r.info.name, r.info.status,
             r.info.created_at.strftime("%Y-%m-%d %H:%M:%S")]
            + [r.params.get(k, "") for k in param_keys]
            + [_number(r.metrics[k]) if k in r.metrics else "" for k in metric_keys]
            for r in rows
        ],
    )  # fmt: skip


def run_detail(run: Any) -> Table:
    info = run.info
    out = table(
        f"run {info.id} ({info.name})",
        ["field", "value"],
        [("status", info.status), ("created", info.created_at), ("ended", info.ended_at),
         ("by", info.created_by), ("parent", info.parent_id),
         ("git", f"{run.environment.get('git_commit', '-')}"
                 f"{' (dirty)' if run.environment.get('git_dirty') else ''}"),
         ("python", run.environment.get("python"))]
        + [(f"params.{k}", v) for k, v in sorted(run.params.items())]
        + [(f"tags.{k}", v) for k, v in sorted(run.tags.items())]
        + [(f"metrics.{k}", _number(v)) for k, v in sorted(run.metrics.items())]
        + [(f"artifact {a['path']}", f"{a['size']} bytes, sha256 {a['sha256'][:12]}")
           for a in run.artifacts],
    )  # fmt: skip
    return out


def lineage_table(lineage: Any) -> Table:
    return table(
        f"lineage of {lineage.start.ref}",
        ["direction", "depth", "type", "ref", "via"],
        [("up", n.depth, n.type, n.ref, n.parent) for n in lineage.upstream]
        + [("down", n.depth, n.type, n.ref, n.parent) for n in lineage.downstream],
    )


def version_detail(v: Any) -> Table:
    out = version_table(v)
    out.title = f"{v.kind} {v.ref}"
    scan = getattr(v, "scan", None)
    if scan:
        [file] = scan.get("files", [{}])[:1] or [{}]
        out.caption = (
            f"scan: {file.get('verdict')} ({file.get('reason')}) under policy "
            f"{scan.get('policy_version')}; licence {file.get('license') or 'unknown'}"
        )
    for finding in v.findings:
        line = f"[{finding.get('code')}] {finding.get('message')}"
        out.caption = (out.caption or "") + "\n" + escape(line)  # findings quote file contents
    return out


#: Below this many bytes, storing is quicker than drawing a bar.
PROGRESS_MIN_BYTES = 32 * 1024 * 1024


@contextlib.contextmanager
def storing_progress(path: Path) -> Iterator[Callable[[int], None] | None]:
    """A byte-counting callback that drives a progress bar on stderr, for large artifacts."""
    total = path.stat().st_size if path.is_file() else _folder_size(path)
    if total < PROGRESS_MIN_BYTES:
        yield None
        return
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=notes, transient=True) as bar:
        task = bar.add_task(f"storing {path.name}", total=total)
        yield lambda n: bar.advance(task, n)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
