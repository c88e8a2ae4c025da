"""Reading the prediction logbook: list, show, export, and per-variant summaries.

Every read is bounded: lists are pages of at most 1000 rows (keyset paging on the
time-ordered ids), exports stream in chunks, and latency percentiles come from a
bounded sample, so a logbook of millions of rows never lands in memory at once.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, Text, case, cast, func, or_, select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.core.schema import FeedbackEvent, Prediction

#: Statuses that count as failures: the variant broke or ran out of time. A rule's
#: ``rejected`` or a ``handoff`` is the solution answering as designed.
FAILED = ("error", "timeout")
#: The statuses most predictions have (a respond step may set its own).
STATUSES = ("ok", "rejected", "handoff", "error", "timeout")
_STATUS = re.compile(r"^[a-z][a-z0-9_-]{0,15}$")
MODES = ("live", "shadow")
MAX_LIMIT = 1000
_CHUNK = 1000
_SAMPLE = 10_000  # latencies per variant behind a percentile
_MAX_BUCKETS = 2000
_JSON_COLUMNS = ("input", "output", "error", "trace")
_LIST_COLUMNS = [c for c in Prediction.__table__.columns if c.name != "trace"]
_ALL_COLUMNS = list(Prediction.__table__.columns)


def _filtered(
    query: Select[Any],
    *,
    endpoint: str | None = None,
    variant: str | None = None,
    unit_id: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
) -> Select[Any]:
    if status is not None and not (isinstance(status, str) and _STATUS.match(status)):
        raise InvalidInputError(
            f"{status!r} is not a status",
            field="status",
            fix="use ok, rejected, handoff, error, timeout or a status your solution sets",
        )
    if mode is not None and mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}", field="mode", fix="use live or shadow")
    for column, value in (
        (Prediction.endpoint, endpoint),
        (Prediction.variant, variant),
        (Prediction.unit_id, unit_id),
        (Prediction.status, status),
        (Prediction.mode, mode),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(Prediction.ts >= _utc(since, "since"))
    if until is not None:
        query = query.where(Prediction.ts < _utc(until, "until"))
    if search:
        query = query.where(_matches(search))
    return query


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInputError(
            f"{name} must be a date and time",
            field=name,
            fix="use ISO-8601, e.g. 2024-05-01T12:00Z",
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _matches(search: str) -> Any:
    """A case-insensitive substring of the input or output JSON text.

    The JSON text differs between the back-ends (SQLite stores ``\\u00e9`` where
    PostgreSQL's jsonb prints ``é``, and both escape quotes), so the term is matched in
    each spelling it can have.
    """
    if len(search) > 256:
        raise InvalidInputError(
            "a search term is at most 256 characters", field="search", fix="search for less"
        )
    spellings = {
        search.lower(),
        json.dumps(search.lower())[1:-1],
        json.dumps(search.lower(), ensure_ascii=False)[1:-1],
    }
    texts = [func.lower(cast(Prediction.input, Text)), func.lower(cast(Prediction.output, Text))]
    return or_(*(t.contains(s, autoescape=True) for t in texts for s in sorted(spellings)))


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    if isinstance(row.get("ts"), datetime) and row["ts"].tzinfo is None:
        row["ts"] = row["ts"].replace(tzinfo=UTC)
    return row


def list_predictions(
    db: Database,
    *,
    endpoint: str | None = None,
    variant: str | None = None,
    unit_id: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    limit: int = 100,
    before_id: str | None = None,
    after_id: str | None = None,
    traces: bool = False,
) -> list[dict[str, Any]]:
    """Newest first, without the trace unless ``traces`` (``get_prediction`` has it).
    For the next page pass the last id as ``before_id``: ids are time-ordered, so
    paging is stable while new predictions arrive. ``after_id`` pages the other way,
    oldest first (an export over HTTP)."""
    if before_id is not None and after_id is not None:
        raise InvalidInputError(
            "give before_id or after_id, not both", field="after_id",
            fix="page newest first with before_id, or oldest first with after_id",
        )  # fmt: skip
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit must be between 1 and {MAX_LIMIT}, not {limit!r}",
            field="limit",
            fix=f"page through with before_id, or export for more than {MAX_LIMIT} rows",
        )
    query = _filtered(
        select(*(_ALL_COLUMNS if traces else _LIST_COLUMNS)),
        endpoint=endpoint,
        variant=variant,
        unit_id=unit_id,
        status=status,
        mode=mode,
        since=since,
        until=until,
        search=search,
    )
    if before_id is not None:
        query = query.where(Prediction.id < before_id)
    if after_id is not None:
        query = query.where(Prediction.id > after_id).order_by(Prediction.id.asc())
    else:
        query = query.order_by(Prediction.id.desc())
    query = query.limit(limit)
    with db.read() as session:
        return [_row(r) for r in session.execute(query).mappings()]


def get_prediction(db: Database, prediction_id: str) -> dict[str, Any]:
    """One prediction with its trace, its feedback events and the ids of its shadows."""
    with db.read() as session:
        found = (
            session.execute(select(*_ALL_COLUMNS).where(Prediction.id == prediction_id))
            .mappings()
            .first()
        )
        if found is None:
            raise NotFoundError(
                f"no prediction {prediction_id!r} was logged",
                field="prediction_id",
                fix="list predictions with `stoa predictions list`; a prediction is "
                "written within a moment of its answer",
            )
        row = _row(found)
        events = session.execute(
            select(FeedbackEvent)
            .where(FeedbackEvent.prediction_id == prediction_id)
            .order_by(FeedbackEvent.ts, FeedbackEvent.id)
        ).scalars()
        row["feedback"] = [
            {
                "id": e.id,
                "kind": e.kind,
                "value": e.value,
                "source": e.source,
                "ts": e.ts,
                "received_at": e.received_at,
                "idempotency_key": e.idempotency_key,
            }
            for e in events
        ]
        row["shadows"] = list(
            session.scalars(
                select(Prediction.id)
                .where(Prediction.parent_id == prediction_id)
                .order_by(Prediction.id)
            )
        )
    return row


def _chunks(db: Database, filters: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every matching row, oldest first, a chunk at a time (keyset paging on the id)."""
    after: str | None = None
    base = _filtered(select(*_ALL_COLUMNS), **filters)
    while True:
        query = base if after is None else base.where(Prediction.id > after)
        query = query.order_by(Prediction.id).limit(_CHUNK)
        with db.read() as session:
            rows = [_row(r) for r in session.execute(query).mappings()]
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


def export_predictions(db: Database, path: Path, *, format: str = "jsonl", **filters: Any) -> int:
    """Write every matching prediction to a new file, oldest first; returns the count.

    The file is written in chunks and removed again if anything fails, so an export
    is either complete or absent.
    """
    unknown = set(filters) - {
        "endpoint",
        "variant",
        "unit_id",
        "status",
        "mode",
        "since",
        "until",
        "search",
    }
    if unknown:
        raise InvalidInputError(
            f"unknown filter {sorted(unknown)[0]!r}",
            field=sorted(unknown)[0],
            fix="filter by endpoint, variant, unit_id, status, mode, since, until or search",
        )
    _filtered(select(Prediction.id), **filters)  # refuse bad filters before creating a file
    return write_rows(Path(path), format, _chunks(db, filters))


def write_rows(path: Path, format: str, chunks: Iterator[list[dict[str, Any]]]) -> int:
    """Write chunks of prediction rows to a new JSONL or Parquet file; the row count.

    Shared by the local export and the client's export over HTTP (whose rows carry
    times as ISO strings). Refuses an existing path; removes the file if anything fails.
    """
    if format not in ("jsonl", "parquet"):
        raise InvalidInputError(
            f"unknown export format {format!r}", field="format", fix="use jsonl or parquet"
        )
    path = Path(path)
    if path.exists():
        raise InvalidInputError(
            f"{path} already exists", field="path", fix="choose a new file name or remove it"
        )
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"the folder {path.parent} does not exist", field="path", fix="create it first"
        )
    writer = _write_parquet if format == "parquet" else _write_jsonl
    try:
        return writer(path, chunks)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _write_jsonl(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> int:
    count = 0
    with path.open("x", encoding="utf-8") as handle:
        for rows in chunks:
            handle.writelines(json.dumps(_json_safe(r), ensure_ascii=False) + "\n" for r in rows)
            count += len(rows)
    return count


def _parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("endpoint", pa.string()),
            ("config_version", pa.int64()),
            ("variant", pa.string()),
            ("mode", pa.string()),
            ("parent_id", pa.string()),
            ("target", pa.string()),
            ("unit_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("input", pa.string()),
            ("output", pa.string()),
            ("status", pa.string()),
            ("error", pa.string()),
            ("latency_ms", pa.float64()),
            ("tokens", pa.int64()),
            ("cost_usd", pa.float64()),
            ("trace", pa.string()),
        ]
    )


def _write_parquet(path: Path, chunks: Iterator[list[dict[str, Any]]]) -> int:
    """JSON columns become JSON strings: their shape differs from row to row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    count = 0
    path.touch(exist_ok=False)
    with pq.ParquetWriter(path, schema) as writer:
        for rows in chunks:
            for row in rows:
                if isinstance(row.get("ts"), str):
                    row["ts"] = datetime.fromisoformat(row["ts"])
                for name in _JSON_COLUMNS:
                    value = row[name]
                    row[name] = None if value is None else json.dumps(value, ensure_ascii=False)
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    return count


def _percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return float(ordered[int(rank) - 1])


def counts_by_variant(
    db: Database, endpoint: str, *, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Per variant and mode: predictions, errors (status error or timeout), p50/p95 latency
    (over the newest 10,000 predictions of each) and feedback events by kind."""
    filters: dict[str, Any] = {"endpoint": endpoint, "since": since}
    errors = func.sum(case((Prediction.status.in_(FAILED), 1), else_=0))
    totals = _filtered(
        select(Prediction.variant, Prediction.mode, func.count(), errors), **filters
    ).group_by(Prediction.variant, Prediction.mode)
    kinds = (
        select(Prediction.variant, Prediction.mode, FeedbackEvent.kind, func.count())
        .join(Prediction, Prediction.id == FeedbackEvent.prediction_id)
        .where(FeedbackEvent.endpoint == endpoint)
        .group_by(Prediction.variant, Prediction.mode, FeedbackEvent.kind)
    )
    if since is not None:
        kinds = kinds.where(Prediction.ts >= _utc(since, "since"))
    result = []
    with db.read() as session:
        feedback: dict[tuple[str, str], dict[str, int]] = {}
        for variant, mode, kind, n in session.execute(kinds):
            feedback.setdefault((variant, mode), {})[kind] = n
        for variant, mode, n, n_errors in session.execute(totals).all():
            latencies = list(
                session.scalars(
                    _filtered(select(Prediction.latency_ms), **filters)
                    .where(Prediction.variant == variant, Prediction.mode == mode)
                    .order_by(Prediction.id.desc())
                    .limit(_SAMPLE)
                )
            )
            result.append(
                {
                    "variant": variant,
                    "mode": mode,
                    "predictions": n,
                    "errors": int(n_errors or 0),
                    "p50_latency_ms": _percentile(latencies, 50),
                    "p95_latency_ms": _percentile(latencies, 95),
                    "feedback": feedback.get((variant, mode), {}),
                }
            )
    return sorted(result, key=lambda r: (r["mode"] != "live", r["variant"]))


def series(
    db: Database,
    endpoint: str,
    *,
    bucket_s: int = 60,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per time bucket and variant: requests, errors, mean and p95 latency.

    ``since`` defaults to 24 hours before ``until`` (default now); at most 2000
    buckets. Rows are streamed; each bucket keeps at most 1,000 latencies (a seeded
    reservoir sample), so p95 is exact below that and an estimate above it, while
    counts and means are always exact.
    """
    if not isinstance(bucket_s, int) or isinstance(bucket_s, bool) or bucket_s < 1:
        raise InvalidInputError(
            f"bucket_s must be a whole number of seconds >= 1, not {bucket_s!r}",
            field="bucket_s",
            fix="use 60 for one point a minute",
        )
    end = _utc(until, "until") if until is not None else datetime.now(UTC)
    start = _utc(since, "since") if since is not None else end - timedelta(hours=24)
    if (end - start).total_seconds() / bucket_s > _MAX_BUCKETS:
        raise InvalidInputError(
            f"that asks for more than {_MAX_BUCKETS} buckets",
            field="bucket_s",
            fix="use wider buckets or a later since",
        )
    query = (
        select(
            Prediction.ts,
            Prediction.variant,
            Prediction.mode,
            Prediction.status,
            Prediction.latency_ms,
        )
        .where(Prediction.endpoint == endpoint, Prediction.ts >= start, Prediction.ts < end)
        .execution_options(yield_per=5000)
    )
    rng = random.Random(0)
    groups: dict[tuple[int, str, str], dict[str, Any]] = {}
    origin = start.timestamp() // bucket_s * bucket_s  # buckets on whole multiples
    with db.read() as session:
        for ts, variant, mode, status, latency in session.execute(query):
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
            bucket = int((ts.timestamp() - origin) // bucket_s)
            g = groups.setdefault(
                (bucket, variant, mode), {"n": 0, "errors": 0, "sum": 0.0, "sample": []}
            )
            g["n"] += 1
            g["errors"] += status in FAILED
            g["sum"] += latency
            if len(g["sample"]) < 1000:
                g["sample"].append(latency)
            else:
                slot = rng.randrange(g["n"])
                if slot < 1000:
                    g["sample"][slot] = latency
    return [
        {
            "ts": datetime.fromtimestamp(origin + bucket * bucket_s, UTC),
            "variant": variant,
            "mode": mode,
            "requests": g["n"],
            "errors": g["errors"],
            "mean_latency_ms": g["sum"] / g["n"],
            "p95_latency_ms": _percentile(g["sample"], 95),
        }
        for (bucket, variant, mode), g in sorted(groups.items())
    ]
