"""Is the endpoint still working? Drift of its inputs and outputs, its quality once
labels arrive, and its business metrics, now against a reference.

The current window is the last ``window`` of live predictions. The reference is, by
default, the window before it (yesterday against the day before); or a logbook window
(``logbook:2026-03-01T00:00/2026-03-02T00:00``, or relative: ``logbook:-48h/-24h``,
``logbook:-6h/now``); or
a table: the dataset version the model was trained on, or a CSV/Parquet/JSONL file.

Predictions become a table with one column per input field (``text``, ``hour``; a
string input is ``input``), one per scalar output field (``output.text``,
``output.label``), and ``latency_ms``. Input fields keep their bare names so a training
set's columns line up with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import Prediction
from stoa.measure.definitions import BUILTINS, parse_duration
from stoa.measure.tables import Fetch, load_table

#: Predictions read per side at most (the newest); drift tests need thousands, not all.
MAX_ROWS = 20_000
#: Text columns are embedded; this many rows per side are enough for their tests.
MAX_TEXT_ROWS = 2_000


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def logbook_frame(
    db: Database,
    endpoint: str,
    window: Window,
    *,
    variant: str | None = None,
    limit: int = MAX_ROWS,
) -> pd.DataFrame:
    """The window's live predictions as a table of inputs, outputs and latency."""
    p = Prediction
    query = (
        select(p.input, p.output, p.latency_ms)
        .where(p.endpoint == endpoint, p.mode == "live", p.ts >= window.since)
        .where(p.ts < window.until)
        .order_by(p.ts.desc())
        .limit(limit)
    )
    if variant is not None:
        query = query.where(p.variant == variant)
    with db.engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([_flat(i, o, ms) for i, o, ms in rows])


def _flat(input: Any, output: Any, latency_ms: float) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if isinstance(input, Mapping):
        row.update({k: v for k, v in input.items() if _scalar(v)})
    elif _scalar(input):
        row["input"] = input
    if isinstance(output, Mapping):
        row.update({f"output.{k}": v for k, v in output.items() if _scalar(v)})
    elif _scalar(output):
        row["output"] = output
    row["latency_ms"] = latency_ms
    return row


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def parse_window(text: str, now: datetime, field: str = "reference") -> Window:
    """``START/END`` as ISO times, offsets from now (``-48h/-24h``) or ``now``."""
    start, sep, end = text.partition("/")
    if not sep:
        raise InvalidInputError(
            f"{text!r} is not a window",
            field=field,
            fix="write logbook:START/END, e.g. logbook:-48h/-24h",
        )
    window = Window(_instant(start, now, field), _instant(end, now, field))
    if window.since >= window.until:
        raise InvalidInputError(f"the window {text!r} ends before it starts", field=field)
    return window


def _instant(text: str, now: datetime, field: str) -> datetime:
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("-"):
        return now - parse_duration(text[1:], field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{text!r} is neither an ISO time nor an offset like -24h", field=field
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reference_frame(
    db: Database,
    endpoint: str,
    reference: str | None,
    current: Window,
    fetch: Fetch | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference table and how it was chosen."""
    if reference is None or reference.startswith("logbook:"):
        if reference is None:
            width = current.until - current.since
            window = Window(current.since - width, current.since)
        else:
            window = parse_window(reference.removeprefix("logbook:"), current.until)
        frame = logbook_frame(db, endpoint, window)
        return frame, {"kind": "logbook", **window.to_dict(), "rows": len(frame)}
    frame, source = load_table(reference, fetch, field="reference")
    return frame, {"kind": "table", "source": source, "rows": len(frame)}


def endpoint_drift(
    db: Database,
    endpoint: str,
    *,
    window: str | timedelta = "24h",
    reference: str | None = None,
    fetch: Fetch | None = None,
    now: datetime | None = None,
    columns: Iterable[str] | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Drift of the last ``window`` against the reference (docs/monitoring.md)."""
    from stoa.measure.drift import compare

    now = now or datetime.now(UTC)
    width = parse_duration(window, "window") if not isinstance(window, timedelta) else window
    current = Window(now - width, now)
    cur = logbook_frame(db, endpoint, current)
    ref, described = reference_frame(db, endpoint, reference, current, fetch)
    if cur.empty or ref.empty:
        side = "current window" if cur.empty else "reference"
        raise InvalidInputError(
            f"no predictions of {endpoint!r} in the {side}",
            field="window" if cur.empty else "reference",
            fix="widen --window, or choose another --reference",
        )
    shared = [c for c in cur.columns if c in ref.columns]
    chosen = list(columns) if columns is not None else shared
    report = compare(
        _sampled(ref, chosen), _sampled(cur, chosen), columns=chosen, embedder=embedder
    )
    return {
        "endpoint": endpoint,
        "current": {**current.to_dict(), "rows": len(cur)},
        "reference": described,
        "drift": report.to_dict(),
    }


def _sampled(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Every row for numbers and categories; text columns on a fixed sample (embedding
    20,000 answers would take minutes and change no decision)."""
    texts = [c for c in columns if c in frame and frame[c].dtype == object]
    if len(frame) <= MAX_TEXT_ROWS or not texts:
        return frame
    return frame.sample(n=MAX_TEXT_ROWS, random_state=0)


def monitor_report(
    db: Database,
    endpoint: str,
    *,
    window: str = "24h",
    reference: str | None = None,
    fetch: Fetch | None = None,
    now: datetime | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Drift, quality over time and the business metrics, now against the reference."""
    from stoa.measure.quality import quality_over_time
    from stoa.measure.signals import metric_values

    now = now or datetime.now(UTC)
    width = parse_duration(window, "window")
    report = endpoint_drift(
        db, endpoint, window=width, reference=reference, fetch=fetch, now=now, embedder=embedder
    )
    specs = list(BUILTINS.values())
    current = metric_values(db, endpoint, specs, window=width, now=now)
    previous = metric_values(db, endpoint, specs, window=width, now=now - width)
    metrics = []
    for spec in specs:
        (value, n), (before, m) = current[spec.name], previous[spec.name]
        if n or m:
            metrics.append({"metric": spec.name, "direction": spec.direction, "current": value,
                            "current_n": n, "previous": before, "previous_n": m})  # fmt: skip
    report["metrics"] = metrics
    report["quality"] = quality_over_time(
        db, endpoint, bucket="hour" if width <= timedelta(days=2) else "day", since=now - 2 * width
    )
    return report


def drift_score(
    db: Database,
    endpoint: str,
    *,
    window: timedelta,
    now: datetime | None = None,
    reference: str | None = None,
    columns: list[str] | None = None,
    column: str | None = None,
) -> tuple[float | None, int]:
    """One number for an alert: the share of drifted columns (0 to 1), or with
    ``column`` that column's score (a p-value or a distance: see its test), and the
    current window's rows. ``None`` when either window is empty. Name ``columns`` to
    skip text columns, whose embedding costs seconds at every evaluation."""
    if column is not None:
        columns = [column]
    try:
        report = endpoint_drift(
            db, endpoint, window=window, reference=reference, now=now, columns=columns
        )
    except InvalidInputError as exc:
        if exc.message.startswith("no predictions of"):
            return None, 0
        raise
    rows = int(report["current"]["rows"])
    drift = report["drift"]
    if column is None:
        return float(drift["dataset"]["share"]), rows
    found = [c for c in drift["columns"] if c["column"] == column]
    return (found[0]["score"] if found else None), rows
