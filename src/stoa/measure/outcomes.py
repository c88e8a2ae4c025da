"""From the logbook and feedback to per-unit outcomes, the input of every analysis.

Traffic is split by unit (``unit_id``; a request without one is its own unit), so the
unit is what an A/B test samples, not the prediction: a unit's predictions are not
independent of each other. Every metric is therefore kept per unit as a numerator and a
denominator (clicked predictions over predictions, the sum of ratings over ratings,
conversions over clicks), and the statistics treat them as a ratio by the delta method,
which reduces to the plain proportion or mean when every unit has one observation.

Feedback counts toward a prediction when it arrives within the metric's attribution
window after it. Shadow runs never count: their users saw the live answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import FeedbackEvent, Prediction
from stoa.measure.definitions import MetricSpec
from stoa.serve.feedback import FeedbackIn

#: Predictions read per query; an analysis streams the logbook in pages of this size.
_PAGE = 50_000


@dataclass
class UnitOutcomes:
    """One row per (variant, unit): ``{metric}__num`` and ``{metric}__den`` columns,
    plus ``predictions``. ``quantiles`` holds, for a quantile metric, every prediction's
    variant, unit and value, since a percentile is not a sum."""

    frame: pd.DataFrame
    predictions: int
    first_ts: datetime | None
    last_ts: datetime | None
    quantiles: dict[str, pd.DataFrame]


def load_predictions(
    db: Database,
    endpoint: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    config_version: int | None = None,
) -> pd.DataFrame:
    """The live predictions of ``endpoint``: the columns an analysis needs, no payloads."""
    p = Prediction
    query = (
        select(p.id, p.variant, p.unit_id, p.ts, p.status, p.latency_ms, p.cost_usd, p.tokens)
        .where(p.endpoint == endpoint, p.mode == "live")
        .order_by(p.id)
    )
    if since is not None:
        query = query.where(p.ts >= since)
    if until is not None:
        query = query.where(p.ts < until)
    if config_version is not None:
        query = query.where(p.config_version == config_version)
    columns = ["id", "variant", "unit_id", "ts", "status", "latency_ms", "cost_usd", "tokens"]
    pages = []
    last = ""
    with db.engine.connect() as conn:
        while True:
            rows = conn.execute(query.where(p.id > last).limit(_PAGE)).all()
            if not rows:
                break
            pages.append(pd.DataFrame(rows, columns=columns))
            last = rows[-1][0]
            if len(rows) < _PAGE:
                break
    frame = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def load_feedback(
    db: Database,
    endpoint: str,
    kinds: set[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Feedback of the given kinds on ``endpoint``'s predictions (their values as sent)."""
    columns = ["prediction_id", "kind", "value", "source", "ts"]
    if not kinds:
        return pd.DataFrame(columns=columns)
    f = FeedbackEvent
    query = select(f.prediction_id, f.kind, f.value, f.source, f.ts).where(
        f.endpoint == endpoint, f.kind.in_(sorted(kinds))
    )
    if since is not None:
        query = query.where(f.ts >= since)
    if until is not None:
        query = query.where(f.ts < until)
    with db.engine.connect() as conn:
        rows = conn.execute(query.order_by(f.id)).all()
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def unit_outcomes(
    predictions: pd.DataFrame, feedback: pd.DataFrame, metrics: Sequence[MetricSpec]
) -> UnitOutcomes:
    """Per (variant, unit) numerators and denominators of every metric."""
    if predictions.empty:
        raise InvalidInputError(
            "no live predictions in the analysed period",
            field="since",
            fix="widen --since, or send traffic to the endpoint first",
        )
    units = predictions["unit_id"].where(predictions["unit_id"].notna(), predictions["id"])
    table = pd.DataFrame(
        {"variant": predictions["variant"].to_numpy(), "unit": units.to_numpy(), "predictions": 1}
    )
    quantiles: dict[str, pd.DataFrame] = {}
    joined = attributed(predictions, feedback)
    for metric in metrics:
        num, den = per_prediction(metric, predictions, joined)
        table[f"{metric.name}__num"] = num
        table[f"{metric.name}__den"] = den
        if metric.quantile is not None:
            quantiles[metric.name] = pd.DataFrame(
                {"variant": table["variant"], "unit": table["unit"], "value": num}
            )
    frame = table.groupby(["variant", "unit"], sort=False, as_index=False).sum()
    return UnitOutcomes(
        frame=frame,
        predictions=len(predictions),
        first_ts=predictions["ts"].min().to_pydatetime(),
        last_ts=predictions["ts"].max().to_pydatetime(),
        quantiles=quantiles,
    )


def attributed(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Feedback joined to its prediction, with the delay since the prediction."""
    if feedback.empty:
        return feedback.assign(row=pd.Series(dtype=int), delay=pd.Series(dtype="timedelta64[ns]"))
    index = pd.Series(np.arange(len(predictions)), index=predictions["id"].to_numpy())
    rows = feedback["prediction_id"].map(index)
    joined = feedback[rows.notna()].copy()
    joined["row"] = rows[rows.notna()].astype(int).to_numpy()
    served = predictions["ts"].to_numpy()[joined["row"].to_numpy()]
    joined["delay"] = joined["ts"].to_numpy() - served
    return joined


def per_prediction(
    metric: MetricSpec, predictions: pd.DataFrame, joined: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """This metric's numerator and denominator for every prediction."""
    n = len(predictions)
    ones = np.ones(n)
    if metric.field is not None:
        if metric.field == "error":
            values = (predictions["status"] == "error").to_numpy(dtype=float)
        else:
            values = predictions[metric.field].to_numpy(dtype=float) * metric.scale
        return values, ones
    window = metric.window_td
    in_window = joined[(joined["delay"] >= pd.Timedelta(0)) & (joined["delay"] <= window)]
    if metric.kind == "ratio":
        assert metric.numerator is not None and metric.denominator is not None
        return _count(in_window, metric.numerator, n), _count(in_window, metric.denominator, n)
    if metric.kind == "proportion":
        assert metric.event is not None
        hits = _matching(in_window, metric.event, metric.value, metric.source)
        flags = np.zeros(n)
        flags[np.unique(hits["row"].to_numpy())] = 1.0
        return flags, ones
    kind = f"judge.{metric.criterion}" if metric.kind == "judge" else metric.event
    assert kind is not None
    events = _matching(in_window, kind, None, "judge" if metric.kind == "judge" else metric.source)
    values = pd.to_numeric(events["value"].map(_number), errors="coerce")
    usable = values.notna().to_numpy()
    rows = events["row"].to_numpy()[usable]
    num = np.bincount(rows, weights=values.to_numpy()[usable] * metric.scale, minlength=n)
    den = np.bincount(rows, minlength=n).astype(float)
    return num, den


def _count(joined: pd.DataFrame, match: Any, n: int) -> np.ndarray:
    rows = _matching(joined, match.event, match.value, match.source)["row"].to_numpy()
    return np.bincount(rows, minlength=n).astype(float)


def _matching(joined: pd.DataFrame, kind: str, value: Any, source: str | None) -> pd.DataFrame:
    mask = joined["kind"] == kind
    if source is not None:
        mask &= joined["source"] == source
    if value is not None:
        wanted = _normalised(kind, value)
        mask &= joined["value"].map(lambda v: v == wanted)
    return joined[mask]


def _normalised(kind: str, value: Any) -> Any:
    """A definition's ``value`` as feedback stores it (``up`` is stored as 1)."""
    try:
        return FeedbackIn(prediction_id="-", kind=kind, value=value).value
    except ValueError:
        return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None
