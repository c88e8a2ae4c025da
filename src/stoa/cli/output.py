"""Printing for the CLI: JSON on stdout for machines, tables and lines for people.

Human output keeps three rules (docs/cli.md): every time is ISO 8601 with its UTC
offset (``when``); every table fits the terminal, 80 columns when output is not one, by
choosing columns and wrapping text, never by cutting a number; and an empty answer is
one line that says so and what to do next. Notes go to stderr, one line each.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from stoa.core.errors import InvalidInputError

console = Console()
# Progress bars go to stderr so that --json output on stdout stays machine-readable.
notes = Console(stderr=True)

#: A time column wraps between date and time, so it needs the width of the time.
_TIME_WIDTH = len("15:04:05+00:00")
#: Characters of a run id tables show; any unique prefix of 6 or more is accepted back.
SHORT_ID = 8


def note(text: str) -> None:
    """One line on stderr, never wrapped, so a script can skip it by its ``note:``."""
    print(f"note: {text}", file=sys.stderr)


def when(value: Any) -> str:
    """A time as people read it everywhere in Stoa: ``2026-12-02 15:04:05+00:00``.

    Takes a datetime (naive ones are UTC, as everything Stoa stores is), an ISO 8601
    string, or milliseconds since the epoch (metric points)."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(sep=" ", timespec="seconds")


def as_json(value: Any) -> str:
    """Models, lists of them, and plain values holding datetimes alike, as JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    return json.dumps(to_jsonable_python(value, fallback=str), indent=2)


def emit(value: Any, json_out: bool, render: Any = None, *, empty: str | None = None) -> None:
    """Print ``value`` as JSON, or through ``render`` (a callable returning a Rich
    renderable or a string). An empty list prints ``empty``, one line, instead of an
    empty table; its JSON stays ``[]``."""
    if json_out or render is None:
        print(as_json(value))
    elif empty is not None and isinstance(value, list) and not value:
        print(empty)
    else:
        shown = render(value)
        if isinstance(shown, str):
            print(shown)  # plain text is never wrapped or read as markup
        else:
            console.print(shown)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numbers: Sequence[str] = (),
    fixed: Sequence[str] = (),
    times: Sequence[str] = (),
) -> Table:
    """A table whose text wraps rather than being cut. ``numbers`` (right-aligned) and
    ``fixed`` (statuses, ids) never wrap; ``times`` wrap only between date and time."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        if column in numbers or column in fixed:
            out.add_column(column, justify="right" if column in numbers else "left", no_wrap=True)
        elif column in times:
            out.add_column(column, min_width=_TIME_WIDTH)
        else:
            out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*["" if v is None else escape(str(v)) for v in row])  # user text, not markup
    return out


def fields(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column field/value table for one record; values wrap."""
    return table(title, ["field", "value"], [(k, v) for k, v in rows if v not in (None, "")])


def version_table(versions: Any) -> Table:
    rows = versions if isinstance(versions, list) else [versions]
    return table(
        None,
        ["ref", "status", "flavor", "bytes", "aliases", "tags", "created"],
        [
            (
                v.ref,
                v.status,
                v.flavor or v.format,
                v.size,
                ", ".join(v.aliases),
                ", ".join(f"{k}={t}" for k, t in v.tags.items()),
                when(v.created_at),
            )
            for v in rows
        ],
        numbers=("bytes",),
        fixed=("status",),
        times=("created",),
    )


def _number(value: float) -> str:
    return f"{value:.6g}"


# -- runs ------------------------------------------------------------------------------

#: The run fields a table can show, by the name --columns takes.
_RUN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda r: r.info.id[:SHORT_ID],
    "name": lambda r: r.info.name,
    "status": lambda r: r.info.status,
    "created": lambda r: when(r.info.created_at),
    "ended": lambda r: when(r.info.ended_at),
    "by": lambda r: r.info.created_by,
    "parent": lambda r: (r.info.parent_id or "")[:SHORT_ID],
}
_LOGGED = ("metrics", "params", "tags")
COLUMNS_HELP = (
    "Comma-separated columns, e.g. name,status,metrics.f1,params.C. Fields: "
    f"{', '.join(_RUN_FIELDS)}, and metrics.KEY, params.KEY, tags.KEY. "
    "Default: what fits the terminal."
)


@dataclass
class _Column:
    key: str
    cells: list[str]
    #: "number" (right-aligned) and "fixed" (ids, statuses) never wrap; "time" wraps
    #: between date and time; "text" wraps anywhere.
    kind: str = "text"
    #: The header on two lines (``metrics.`` over the key), to save width.
    split: bool = False

    @property
    def header(self) -> str:
        return self.key.replace(".", ".\n", 1) if self.split else self.key

    def width(self, split: bool) -> int:
        """The characters this column needs: all of a number, a text's longest word
        (at most 16; longer words fold)."""
        source, dot, key = self.key.partition(".")
        header = max(len(source) + 1, len(key)) if split and dot else len(self.key)
        if self.kind == "time":
            return max(header, _TIME_WIDTH)
        if self.kind != "text":
            return max([header, *map(len, self.cells)])
        words = [len(w) for c in self.cells for w in c.split()] or [0]
        return max(header, min(max(words), 16))


def parse_columns(text: str | None) -> list[str] | None:
    """``--columns`` as a list of keys, each checked; None when it was not given."""
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    for key in keys:
        source, dot, rest = key.partition(".")
        if key not in _RUN_FIELDS and not (dot and rest and source in _LOGGED):
            raise InvalidInputError(
                f"{key!r} is not a column",
                field="columns",
                fix=f"use {', '.join(_RUN_FIELDS)}, metrics.KEY, params.KEY or tags.KEY",
            )
    if not keys:
        raise InvalidInputError("names no column", field="columns", fix="e.g. name,status")
    return keys


def _run_column(key: str, runs: list[Any]) -> _Column:
    if key in _RUN_FIELDS:
        cells = [str(_RUN_FIELDS[key](r)) for r in runs]
        kind = {"name": "text", "by": "text", "created": "time", "ended": "time"}.get(key, "fixed")
        return _Column(key, cells, kind)
    source, name = key.split(".", 1)
    values = [getattr(r, source).get(name) for r in runs]
    if source == "metrics":
        return _Column(key, ["" if v is None else _number(v) for v in values], "number")
    return _Column(key, ["" if v is None else str(v) for v in values])


def _default_keys(runs: list[Any], prefer: Sequence[str] = ()) -> list[str]:
    """Columns in the order they earn their place: who the run is; the columns asked for
    by --order-by and --metric; metrics, then params, whose values differ between the
    runs shown; when; then the metrics and params every run shares."""
    varying: list[str] = []
    same: list[str] = []
    for source in ("metrics", "params"):
        for key in sorted({k for r in runs for k in getattr(r, source)}):
            values = {getattr(r, source).get(key) for r in runs} - {None}
            (varying if len(values) > 1 else same).append(f"{source}.{key}")
    first = [k for k in prefer if k in varying or k in same]
    rest = [k for k in [*varying, "created", *same] if k not in first]
    return ["id", "name", "status", *first, *rest]


def _cost(columns: list[_Column], split: bool) -> int:
    """The width a table of ``columns`` needs: each column's width plus 3 (padding and a
    border), plus 1; with ``split``, the narrower of each column's two headers."""
    return 1 + sum(c.width(split and c.width(True) < c.width(False)) + 3 for c in columns)


def _fit(columns: list[_Column], width: int) -> tuple[list[_Column], list[_Column]]:
    """The columns that fit ``width`` in priority order (the first three always), and the
    rest: with one-line headers when that shows as many, else with ``metrics.`` over
    the key, which is narrower."""
    best: tuple[list[_Column], list[_Column]] | None = None
    for split in (False, True):
        shown: list[_Column] = []
        hidden: list[_Column] = []
        used = 1  # a column costs its width plus 3 (padding and a border); the table 1
        for i, column in enumerate(columns):
            narrow = split and column.width(True) < column.width(False)
            cost = column.width(narrow) + 3
            if used + cost <= width or i < 3:
                shown.append(column)
                used += cost
            else:
                hidden.append(column)
        if best is None or len(shown) > len(best[0]):
            best = (shown, hidden)
            for column in shown:
                column.split = split and column.width(True) < column.width(False)
        if not hidden:
            break
    assert best is not None
    return best


_DISPLAY_ORDER = [*_RUN_FIELDS, *_LOGGED]


def runs_table(
    runs: list[Any],
    columns: list[str] | None = None,
    *,
    prefer: Sequence[str] = (),
    width: int | None = None,
) -> Any:
    """Runs as rows, for list and compare. Without ``columns``, the columns that fit
    ``width`` (the console's by default), ``prefer`` first among the logged ones; a note
    on stderr names what was left out."""
    width = width or console.width
    if columns is None:
        keys = _default_keys(runs, prefer)
        shown, hidden = _fit([_run_column(k, runs) for k in keys], width)
        shown.sort(key=lambda c: _DISPLAY_ORDER.index(c.key.split(".")[0]))
        if hidden:
            names = ", ".join(c.key for c in hidden[:4]) + (", …" if len(hidden) > 4 else "")
            note(
                f"{len(hidden)} more columns did not fit in {width} characters ({names}); "
                "choose them with --columns"
            )
    else:
        shown = [_run_column(k, runs) for k in columns]
        unseen = [c.key for c in shown if "." in c.key and not any(c.cells)]
        if unseen and runs:
            note(f"no run shown has {', '.join(unseen)}")
        if _cost(shown, False) > width:
            for column in shown:
                column.split = column.width(True) < column.width(False)
    # Columns chosen by hand that cannot fit even so fold everything, numbers included:
    # a number split over two lines is still read whole; one cut at the edge is not.
    squeeze = _cost(shown, True) > width
    out = Table(title=None)
    for column in shown:
        if column.kind == "text" or squeeze:
            justify = "right" if column.kind == "number" else "left"
            out.add_column(column.header, justify=justify, overflow="fold")
        elif column.kind == "time":
            out.add_column(column.header, min_width=_TIME_WIDTH)
        else:
            justify = "right" if column.kind == "number" else "left"
            out.add_column(column.header, justify=justify, no_wrap=True)
    for i in range(len(runs)):
        out.add_row(*[escape(c.cells[i]) for c in shown])
    return out


def run_detail(run: Any) -> Table:
    info = run.info
    environment = run.environment
    git = environment.get("git_commit")
    return fields(
        f"run {info.id} ({info.name})",
        [("status", info.status), ("created", when(info.created_at)),
         ("ended", when(info.ended_at)), ("by", info.created_by), ("parent", info.parent_id),
         ("git", f"{git}{' (dirty)' if environment.get('git_dirty') else ''}" if git else None),
         ("python", environment.get("python"))]
        + [(f"params.{k}", v) for k, v in sorted(run.params.items())]
        + [(f"tags.{k}", v) for k, v in sorted(run.tags.items())]
        + [(f"metrics.{k}", _number(v)) for k, v in sorted(run.metrics.items())]
        + [(f"artifact {a['path']}",
            f"{a['artifact']}, {a['size']} bytes, sha256 {a['sha256']}") for a in run.artifacts],
    )  # fmt: skip


def lineage_table(lineage: Any) -> Any:
    rows = [("up", n.depth, n.type, n.ref, n.parent) for n in lineage.upstream]
    rows += [("down", n.depth, n.type, n.ref, n.parent) for n in lineage.downstream]
    if not rows:
        return f"{lineage.start.ref} has no lineage: nothing it came from, nothing made from it"
    return table(
        f"lineage of {lineage.start.ref}",
        ["direction", "depth", "type", "ref", "via"],
        rows,
        numbers=("depth",),
    )


# -- one version: what is true now, then what the scan said at registration ------------


def _policy(v: Any) -> str:
    return (v.scan or {}).get("policy_version") or "unknown"


def _status_now(v: Any, review: Any) -> str:
    """The status with its reason, as it stands now."""
    if review is not None:
        decided = f"{review.decision} by {review.decided_by} on {when(review.decided_at)}"
        if review.ref != v.ref:
            decided += f" (as {review.ref}, the same bytes)"
        if review.note:
            decided += f": {review.note}"
        if (review.decision, v.status) in (("approved", "allowed"), ("rejected", "blocked")):
            return f"{v.status}: licence review {decided}"
        return f"{v.status}; licence review earlier {decided}"
    if v.status == "pending":
        return (
            f"pending: held for licence review; an admin decides with "
            f"`stoa models approve {v.ref} --note WHY` (or reject)"
        )
    if v.status == "blocked":
        return f"blocked by the {v.gate or 'gate'} under policy {_policy(v)}; see findings"
    if v.status == "archived":
        return "archived: readable, no longer loadable or aliasable"
    return "allowed"


def _scan_line(v: Any) -> str | None:
    if not v.scan:
        return None
    files = v.scan.get("files") or [{}]
    reasons = sorted({f.get("reason") for f in files if f.get("verdict") != "allowed"} - {None})
    if v.scan.get("verdict") == "allowed":
        return f"allowed (clean) under policy {_policy(v)}"
    if reasons == ["license"]:
        return f"nothing found but the licence, which needs a person's review (policy {_policy(v)})"
    why = ", ".join(reasons) or "see findings"
    return f"{v.scan.get('verdict')} ({why}) under policy {_policy(v)}"


def version_detail(v: Any, review: Any = None) -> Group:
    """One version: status as it is now (with the licence decision that made it so), its
    facts, then the findings. Once a person has decided a review, the findings are the
    scan's at registration, and the table says so."""
    spec = v.spec or {}
    facts = fields(
        f"{v.kind} {v.ref}",
        [("status", _status_now(v, review)), ("flavor", v.flavor), ("format", v.format),
         ("licence", v.license or ("unknown" if v.kind == "model" else None)),
         ("bytes", v.size), ("sha256", v.sha256), ("aliases", ", ".join(v.aliases)),
         ("tags", ", ".join(f"{k}={t}" for k, t in v.tags.items())),
         ("created", f"{when(v.created_at)} by {v.created_by}" if v.created_by
          else when(v.created_at)),
         ("description", v.description), ("rows", spec.get("rows")),
         ("variables", ", ".join(spec.get("variables") or [])),
         ("scan" if review is None else "scan at registration", _scan_line(v))],
    )  # fmt: skip
    if not v.findings:
        return Group(facts)
    title = "findings" if review is None else "history: findings of the scan at registration"
    findings = table(
        title,
        ["code", "severity", "message"],
        [(f.get("code"), f.get("severity"), f.get("message")) for f in v.findings],
    )
    return Group(facts, findings)


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


@contextlib.contextmanager
def counting_progress(enabled: bool, doing: str, unit: str) -> Iterator[Callable[..., None] | None]:
    """A bar of items done of a total on stderr, so --json output on stdout stays clean;
    transient, so a run under a second leaves nothing behind. Its callback takes
    ``(done, total[, label])``; a label's last path segment is shown beside the bar."""
    if not enabled:
        yield None
        return
    columns = (TextColumn(doing), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=notes, transient=True) as bar:
        task = bar.add_task("", total=None)

        def advance(done: int, total: int, label: str = "") -> None:
            bar.update(task, completed=done, total=total, description=label.rsplit("/", 1)[-1])

        yield advance


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
