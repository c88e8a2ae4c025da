"""Score a table with a solution: one run per row, one row per run in one Parquet file.

The work is cut into partitions of ``partition_rows`` rows, and each partition goes
through :func:`score_partition`, a pure function of its rows and its start index, so
the Ray Data path can hand the same function to ``map_batches`` and get the same file.
Every row is accounted for: an input the solution cannot take, or a run that raises,
becomes a row with status ``error`` and the message, never a gap.

What a row feeds the solution (docs/batch.md):

- a table with an ``input`` column, when no input columns are named: that cell. An
  object is used as is, a string holding a JSON object is parsed (CSV has no objects),
  any other string is plain text (``{"text": …}``, as ``stoa solutions run`` takes);
- otherwise the row's columns (or only ``input_columns``) as one object.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from stoa.core.errors import ConflictError, InvalidInputError, StoaError
from stoa.develop.solution.runner import Environment, run_solution

#: Called after each partition with ``(rows done, rows in the table)``.
Progress = Callable[[int, int], None]
#: Scores ``table`` in partitions of ``partition_rows`` rows and yields each partition's
#: records in table order: :func:`local_partitions` here, Ray Data on a cluster.
PartitionMapper = Callable[[Any, int], Iterator[list[dict[str, Any]]]]

#: The output file's columns, in order; ``input`` is what the run was given (JSON text).
COLUMNS = (
    "row", "status", "solution", "output", "error", "latency_ms", "tokens", "cost_usd",
    "path", "tags", "ended_by", "trace", "input",
)  # fmt: skip


def _schema() -> Any:
    import pyarrow as pa

    text, names = pa.string(), pa.list_(pa.string())
    types = {
        "row": pa.int64(), "latency_ms": pa.float64(), "tokens": pa.int64(),
        "cost_usd": pa.float64(), "path": names, "tags": names,
    }  # fmt: skip
    return pa.schema([(name, types.get(name, text)) for name in COLUMNS])


def plain(value: Any) -> Any:
    """A table cell as JSON: NumPy scalars and arrays as Python, NaN as null, times as ISO."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # NumPy scalars and arrays (Parquet list columns)
        return plain(value.tolist())
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def row_input(row: Mapping[str, Any], input_columns: Sequence[str] | None) -> Any:
    """What one row feeds the solution (the rule is in the module docstring)."""
    if input_columns is None and "input" in row:
        value = plain(row["input"])
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            return parsed if isinstance(parsed, dict) else value
        return value
    names = input_columns if input_columns is not None else list(row)
    return {str(name): plain(row[name]) for name in names}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def score_row(
    env: Environment,
    ref: str,
    row: Mapping[str, Any],
    index: int,
    *,
    input_columns: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One output record; a bad input or a run that raises is recorded, not raised."""
    value = row_input(row, input_columns)
    started = time.perf_counter()
    try:
        result = run_solution(env, ref, value, overrides=overrides)
    except Exception as exc:  # a row's failure is data: it must land in the file
        message = str(exc) if isinstance(exc, StoaError) else f"{type(exc).__name__}: {exc}"
        return {
            "row": index, "status": "error", "solution": None, "output": None,
            "error": _json({"step": None, "message": message}),
            "latency_ms": (time.perf_counter() - started) * 1000, "tokens": 0,
            "cost_usd": 0.0, "path": [], "tags": [], "ended_by": None, "trace": None,
            "input": _json(value),
        }  # fmt: skip
    return {
        "row": index, "status": result.status, "solution": result.solution,
        "output": _json(result.output), "error": _json(result.error),
        "latency_ms": result.latency_ms, "tokens": result.tokens,
        "cost_usd": result.cost_usd, "path": list(result.path), "tags": list(result.tags),
        "ended_by": result.ended_by, "trace": _json(result.trace.to_dict()),
        "input": _json(value),
    }  # fmt: skip


def score_partition(
    env: Environment,
    ref: str,
    rows: Sequence[Mapping[str, Any]],
    start_index: int,
    *,
    input_columns: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The records of ``rows``, numbered from ``start_index``; depends on nothing else,
    so partitions can run in any order, in any process, and give the same records."""
    return [
        score_row(env, ref, row, start_index + i, input_columns=input_columns, overrides=overrides)
        for i, row in enumerate(rows)
    ]


def local_partitions(
    env: Environment,
    ref: str,
    *,
    input_columns: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> PartitionMapper:
    """The partitions one after another, in this process."""

    def run(table: Any, partition_rows: int) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(table), partition_rows):
            rows = table.iloc[start : start + partition_rows].to_dict("records")
            yield score_partition(
                env, ref, rows, start, input_columns=input_columns, overrides=overrides
            )

    return run


def check_out(out: str | Path) -> Path:
    """A new ``.parquet`` file in an existing folder: results are never overwritten."""
    path = Path(out).expanduser()
    if path.suffix.lower() != ".parquet":
        raise InvalidInputError(
            f"{path.name!r} is not a .parquet path", field="out", fix="end --out in .parquet"
        )
    if path.exists():
        raise InvalidInputError(
            f"{path} already exists", field="out", fix="choose a new path or remove the old file"
        )
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"folder {path.parent} does not exist", field="out", fix="create it first"
        )
    return path


def _check_columns(frame: Any, input_columns: Sequence[str] | None, source: str) -> None:
    if input_columns is None:
        return
    if not input_columns:
        raise InvalidInputError(
            "no input columns named", field="input_columns", fix="name one or more columns"
        )
    missing = [c for c in input_columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"column(s) {', '.join(map(repr, missing))} not in {source}",
            field="input_columns",
            fix=f"choose from {', '.join(map(str, list(frame.columns)[:20]))}",
        )


def score(
    env: Environment,
    ref: str,
    table: Any,
    out: str | Path,
    *,
    source: str = "table",
    input_columns: Sequence[str] | None = None,
    partition_rows: int = 1000,
    overrides: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    mapper: PartitionMapper | None = None,
) -> dict[str, Any]:
    """Run solution ``ref`` on every row of ``table`` (a pandas frame that ``source``
    names) and write the records to the new Parquet file ``out``, written under a
    temporary name and renamed, so a failure leaves no file. Returns the summary.
    ``mapper`` runs the partitions elsewhere (Ray Data); the file is the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(partition_rows, int) or partition_rows < 1:
        raise InvalidInputError(
            f"partition_rows is {partition_rows!r}", field="partition_rows", fix="use 1 or more"
        )
    path = check_out(out)
    total = len(table)
    if total == 0:
        raise InvalidInputError(
            f"{source} has no rows", field="table", fix="give a table with rows"
        )
    columns = list(input_columns) if input_columns is not None else None
    _check_columns(table, columns, source)
    _, version = env.plan(ref, overrides)  # an unknown solution or bad overrides fail here
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    schema = _schema()
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with pq.ParquetWriter(temporary, schema) as writer:
            run = mapper or local_partitions(env, ref, input_columns=columns, overrides=overrides)
            done = 0
            for records in run(table, partition_rows):
                counts.update(r["status"] for r in records)
                writer.write_table(pa.Table.from_pylist(records, schema=schema))
                done += len(records)
                if progress is not None:
                    progress(done, total)
            if done != total:  # a mapper that lost a partition must not write a short file
                raise RuntimeError(f"{done} of {total} rows came back from the partitions")
        if path.exists():  # appeared while scoring: keep theirs, drop ours
            raise ConflictError(f"{path} appeared while scoring", field="out", fix="use a new path")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return {
        "solution": version,
        "table": source,
        "out": str(path),
        "rows": total,
        "by_status": dict(sorted(counts.items())),
        "seconds": round(seconds, 3),
        "rows_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "partitions": math.ceil(total / partition_rows),
    }
