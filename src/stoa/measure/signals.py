"""One number per metric, endpoint and time window: what monitors plot and alerts test.

An A/B report compares variants; a signal pools them (or picks one) and asks how the
endpoint is doing now: the error rate over the last 5 minutes, the CTR of the last day.
It reads the same definitions and the same attribution as the A/B report, so a metric
means the same thing on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from stoa.core.db import Database
from stoa.measure.definitions import MetricSpec
from stoa.measure.outcomes import attributed, load_feedback, load_predictions, per_prediction


def metric_value(
    db: Database,
    endpoint: str,
    metric: MetricSpec,
    *,
    window: timedelta,
    now: datetime | None = None,
    variant: str | None = None,
) -> tuple[float | None, int]:
    """The metric over the predictions of the last ``window`` and how many observations
    it rests on; ``None`` when there are none (no traffic is not a zero CTR)."""
    return metric_values(db, endpoint, [metric], window=window, now=now, variant=variant)[
        metric.name
    ]


def metric_values(
    db: Database,
    endpoint: str,
    metrics: Sequence[MetricSpec],
    *,
    window: timedelta,
    now: datetime | None = None,
    variant: str | None = None,
) -> dict[str, tuple[float | None, int]]:
    """Several metrics over one window, reading its predictions and feedback once."""
    now = now or datetime.now(UTC)
    since = now - window
    predictions = load_predictions(db, endpoint, since=since, until=now)
    if variant is not None:
        predictions = predictions[predictions["variant"] == variant].reset_index(drop=True)
    if predictions.empty:
        return {m.name: (None, 0) for m in metrics}
    kinds = set().union(*(m.feedback_kinds for m in metrics))
    joined = attributed(predictions, load_feedback(db, endpoint, kinds, since=since, until=now))
    return {m.name: _value(m, *per_prediction(m, predictions, joined)) for m in metrics}


def _value(metric: MetricSpec, num: np.ndarray, den: np.ndarray) -> tuple[float | None, int]:
    if metric.quantile is not None:
        return float(np.quantile(num, metric.quantile)), len(num)
    total = float(den.sum())
    if total == 0:
        return None, 0
    return float(num.sum()) / total, int(total)
