"""``stoa select``: train and compare candidates from a config, then recommend one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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
    columns: Annotated[
        str | None,
        typer.Option(
            help="Leaderboard columns, comma-separated: name, kind, any metric (f1_macro, "
            "rmse, …), ci, p50_ms, p95_ms, p99_ms, throughput_rows_per_s, peak_mem_mb, "
            "cost_per_1k, size_mb, train_s, pareto, verdict. The default fits 80 columns: "
            "name,kind,PRIMARY,ci,p95_ms,cost_per_1k,verdict.",
        ),
    ] = None,
) -> None:
    """Train every candidate, measure quality, latency and cost, and recommend one.

    Progress goes to stderr, so --json output on stdout stays machine-readable.
    """
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
    chosen = parse_columns(columns, parsed.primary_metric)  # refused now, not after training
    with candidate_progress() as progress:
        result = run_selection(state(ctx).client, parsed, register=register, progress=progress)
    result = numpy_safe(result)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(leaderboard(result, chosen))
        console.print(_verdict(result))
    if register and not (result.get("registered") or {}).get("alias"):
        notes.print("nothing was registered as champion")
        raise typer.Exit(1)


@contextlib.contextmanager
def candidate_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A bar per candidate (its steps) and per search (its trials), on stderr, with counts
    and the time left; gone once the leaderboard prints.

    The bars start at the first step, after the config and data have been checked, so a
    refusal stays one line on stderr. Nothing is drawn when stderr is not a terminal,
    where bars would only clutter a log.
    """
    if not notes.is_terminal:
        yield lambda task, done, total: None
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=notes,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(task: str, done: int, total: int) -> None:
        if not tasks:
            bars.start()
        if task not in tasks:
            tasks[task] = bars.add_task(escape(task), total=total)
        bars.update(tasks[task], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bars.stop()


# -- the leaderboard --------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str]
    numeric: bool = True  # never wrapped or cut; names and reasons fold instead


def _measured(key: str, unit_format: str) -> Callable[[dict[str, Any]], str]:
    def cell(row: dict[str, Any]) -> str:
        if key.endswith("_ms"):
            value = (row.get("latency_ms") or {}).get(key.removesuffix("_ms"))
        else:
            value = row.get(key)
        return "-" if value is None else format(value, unit_format)

    return cell


def _metric(name: str) -> Column:
    def cell(row: dict[str, Any]) -> str:
        value = (row.get("metrics") or {}).get(name)
        marker = "*" if row.get("sample") else ""  # scored on a sample: see the note
        return "-" if value is None else _number(value, 4) + marker

    return Column(name, cell)


def _number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if abs(value) < 1e4 else f"{value:,.0f}"


_EN_DASH = "\u2013"  # between the bounds, since a hyphen would read as a minus sign


def _ci(row: dict[str, Any]) -> str:
    ci = row.get("interval") or {}
    return f"{_number(ci['low'], 3)}{_EN_DASH}{_number(ci['high'], 3)}" if ci else "-"


COLUMNS: dict[str, Column] = {
    "name": Column("name", lambda r: r["name"], numeric=False),
    "kind": Column("kind", lambda r: r["kind"], numeric=False),
    "ci": Column("95% CI", _ci),
    "p50_ms": Column("p50 ms", _measured("p50_ms", ".2f")),
    "p95_ms": Column("p95 ms", _measured("p95_ms", ".2f")),
    "p99_ms": Column("p99 ms", _measured("p99_ms", ".2f")),
    "throughput_rows_per_s": Column("rows/s", _measured("throughput_rows_per_s", ",.0f")),
    "peak_mem_mb": Column("mem MB", _measured("peak_mem_mb", ".1f")),
    "cost_per_1k": Column("USD/1k", _measured("cost_per_1k", ".2e")),
    "size_mb": Column("size MB", _measured("size_mb", ".2f")),
    "train_s": Column("train s", _measured("train_s", ".2f")),
    "pareto": Column("pareto", lambda r: "yes" if r.get("pareto") else ""),
}


def default_columns(primary: str) -> list[str]:
    """Quality, its interval, latency and cost: what fits 80 columns with names folded."""
    return ["name", "kind", primary, "ci", "p95_ms", "cost_per_1k", "verdict"]


def parse_columns(text: str | None, primary: str) -> list[str]:
    """``--columns`` as a list of known column names; an unknown one is refused."""
    from stoa.develop.ml.candidates.base import known_keys
    from stoa.develop.ml.evaluate import CLASSIFICATION, REGRESSION

    if text is None:
        return default_columns(primary)
    chosen = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    known = set(COLUMNS) | {"verdict"} | set(CLASSIFICATION) | set(REGRESSION)
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise InvalidInputError(
            f"unknown column(s) {', '.join(unknown)}" if unknown else "no columns chosen",
            field="--columns",
            fix=known_keys(unknown[0] if unknown else "", known, limit=len(known)),
        )
    return chosen


class Leaderboard:
    """The leaderboard, then one line per rejected, skipped or failed candidate.

    Numbers never wrap and are never cut: names and kinds fold instead, reasons sit under
    the table (inside it they would squeeze the numbers out of 80 columns), and columns
    that still do not fit the terminal go on to a second table that repeats the names.
    """

    def __init__(self, result: dict[str, Any], columns: list[str] | None = None):
        self.result = result
        self.reasons: list[str] = []
        primary = result["primary_metric"]
        self.title = f"leaderboard ({primary}; run {result['run_id'][:12]})"
        rows = result["leaderboard"]
        self.columns: list[tuple[Column, list[str]]] = []
        for key in columns or default_columns(primary):
            if key == "verdict":
                column = Column("verdict", self._verdict_cell, numeric=False)
            else:
                column = COLUMNS[key] if key in COLUMNS else _metric(key)
            self.columns.append((column, [column.cell(row) for row in rows]))
        self.notes = [_sample_note(row) for row in rows if row.get("sample")]

    def _verdict_cell(self, row: dict[str, Any]) -> str:
        if row.get("meets_constraints"):
            word = "best" if row["name"] == self.result.get("recommendation") else "ok"
        else:
            word = "failed" if "failed" in row else "skipped" if "skipped" in row else "rejected"
            self.reasons.append(f"({len(self.reasons) + 1}) {row['name']}: "
                                f"{'; '.join(row['rejected_because'])}")  # fmt: skip
            word = f"{word} ({len(self.reasons)})"
        return f"{word}, pareto" if row.get("pareto") else word

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        names = [c for c in self.columns if c[0] is COLUMNS["name"]][:1]
        others = [c for c in self.columns if c not in names]
        chunks: list[list[tuple[Column, list[str]]]] = [[]]
        for column in others:
            if chunks[-1] and _min_width(names + chunks[-1] + [column]) > options.max_width:
                chunks.append([])
            chunks[-1].append(column)
        for number, chunk in enumerate(chunks):
            yield self._table(names + chunk, self.title if number == 0 else None)
        for line in self.reasons + self.notes:
            yield Text(line)

    def _table(self, columns: list[tuple[Column, list[str]]], title: str | None) -> Table:
        table = Table(title=title, title_justify="left")
        for column, values in columns:
            if column.numeric:
                widest = max(len(v) for v in values) if values else 1
                table.add_column(_stacked(column.header, widest), justify="right",
                                 no_wrap=True, min_width=widest)  # fmt: skip
            else:
                table.add_column(column.header, overflow="fold")
        for i in range(len(self.result["leaderboard"])):
            table.add_row(*(escape(values[i]) for _, values in columns))
        return table


def _sample_note(row: dict[str, Any]) -> str:
    """Why a slow candidate's numbers carry a ``*``: the rows and calls they come from."""
    sample = row["sample"]
    note = (f"* {row['name']}: quality on {sample['rows']} of {sample['of']} test rows "
            f"(seeded sample), latency from {sample['latency_calls']} calls")  # fmt: skip
    if row.get("invalid_answers"):
        note += f", {row['invalid_answers']} answers outside the labels"
    return note


def _min_width(columns: list[tuple[Column, list[str]]]) -> int:
    """The narrowest a default-box table of these columns gets without cutting a number:
    numbers at full width, text folded to at most 8 characters a line."""
    widths = []
    for column, values in columns:
        if column.numeric:
            header = _stacked(column.header, max(map(len, values), default=1))
            widths.append(max([len(v) for v in values] + [len(h) for h in header.split("\n")]))
        else:
            widths.append(min(8, max([len(v) for v in values] + [len(column.header)])))
    return sum(widths) + 3 * len(widths) + 1


def leaderboard(result: dict[str, Any], columns: list[str] | None = None) -> Leaderboard:
    return Leaderboard(result, columns)


def leaderboard_table(result: dict[str, Any]) -> Leaderboard:
    """The default leaderboard (kept for the demo, which prints it too)."""
    return Leaderboard(result)


def _stacked(header: str, width: int) -> str:
    """A metric name much longer than its numbers, split at underscores over lines, so the
    header does not widen a column that never wraps."""
    limit = max(width, 9)
    if len(header) <= limit or "_" not in header:
        return header
    lines: list[str] = []
    for part in header.split("_"):
        if lines and len(lines[-1]) + 1 + len(part) <= limit:
            lines[-1] += "_" + part
        else:
            lines.append(part if not lines else "_" + part)
    return "\n".join(lines)


def _verdict(result: dict[str, Any]) -> str:
    if result["recommendation"] is None:
        return "[red]no candidate meets every constraint[/red]"
    text = f"recommendation: [bold]{escape(result['recommendation'])}[/bold]"
    registered = result.get("registered")
    if registered:
        text += f" → registered {registered['ref']} ({registered['status']})"
    return text
