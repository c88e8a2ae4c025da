"""Rows for review, agreement and quality tests: an endpoint, predictions and feedback
written straight into the tables the logbook and the feedback writer fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from stoa.core.db import Database
from stoa.core.schema import Endpoint, FeedbackEvent, Prediction
from stoa.serve.ids import new_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def add_endpoint(db: Database, name: str = "support") -> None:
    with db.write() as session:
        session.add(Endpoint(name=name, salt="salt", current=1, created_at=T0))


def classify_trace(label: str, confidence: float) -> dict[str, Any]:
    outputs = {"label": label, "confidence": confidence}
    return {"spans": [{"name": "classify c", "attributes": {"stoa.step.kind": "classify",
                                                            "stoa.outputs": outputs}}]}  # fmt: skip


def add_predictions(
    db: Database, rows: list[dict[str, Any]], endpoint: str = "support"
) -> list[str]:
    """Each row may set input, output, trace, variant, mode, status, ts; the ids, in
    the order of the rows."""
    fresh = sorted(new_id() for _ in rows)  # made in one millisecond: order them as listed
    full = []
    for i, row in enumerate(rows):
        full.append(
            {
                "id": row.get("id") or fresh[i],
                "endpoint": endpoint,
                "config_version": 1,
                "variant": row.get("variant", "a"),
                "mode": row.get("mode", "live"),
                "parent_id": None,
                "target": "solution:s@1",
                "unit_id": None,
                "ts": row.get("ts", T0 + timedelta(seconds=i)),
                "input": row.get("input", {"question": f"q{i}"}),
                "output": row.get("output", {"text": f"answer {i}"}),
                "status": row.get("status", "ok"),
                "error": None,
                "latency_ms": 1.0,
                "tokens": 0,
                "cost_usd": 0.0,
                "trace": row.get("trace"),
            }
        )
    with db.write_connection() as conn:
        conn.execute(insert(Prediction.__table__), full)
    return [r["id"] for r in full]


def add_feedback(
    db: Database, events: list[tuple[str, str, Any, str]], endpoint: str = "support"
) -> None:
    """(prediction id, kind, value, source) events, received now."""
    now = datetime.now(UTC)
    with db.write_connection() as conn:
        conn.execute(
            insert(FeedbackEvent.__table__),
            [
                {"prediction_id": pid, "endpoint": endpoint, "variant": "a", "kind": kind,
                 "value": value, "source": source, "ts": now, "received_at": now,
                 "idempotency_key": None}
                for pid, kind, value, source in events
            ],
        )  # fmt: skip
