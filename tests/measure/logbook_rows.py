"""Predictions and feedback written straight into the tables, so measure tests need no
server and stay fast; what the data plane writes is tested in tests/serve."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from stoa.core.db import Database
from stoa.core.schema import FeedbackEvent, Prediction
from stoa.serve.ids import new_id


def prediction(
    endpoint: str, variant: str, ts: datetime, *, unit_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    row = {
        "id": new_id(),
        "endpoint": endpoint,
        "config_version": 1,
        "variant": variant,
        "mode": "live",
        "parent_id": None,
        "target": f"solution:{endpoint}@1",
        "unit_id": unit_id,
        "ts": ts,
        "input": {"question": "q"},
        "output": {"answer": "a"},
        "status": "ok",
        "error": None,
        "latency_ms": 10.0,
        "tokens": 0,
        "cost_usd": 0.0,
        "trace": None,
    }
    row.update(fields)
    return row


def feedback(
    pred: Mapping[str, Any], kind: str, value: Any, ts: datetime, source: str = "user"
) -> dict[str, Any]:
    return {
        "prediction_id": pred["id"],
        "endpoint": pred["endpoint"],
        "variant": pred["variant"],
        "kind": kind,
        "value": value,
        "source": source,
        "ts": ts,
        "received_at": ts,
        "idempotency_key": None,
    }


def write(db: Database, predictions: Iterable[dict], events: Iterable[dict] = ()) -> None:
    predictions, events = list(predictions), list(events)
    with db.engine.begin() as conn:
        if predictions:
            conn.execute(insert(Prediction.__table__), predictions)
        if events:
            conn.execute(insert(FeedbackEvent.__table__), events)
