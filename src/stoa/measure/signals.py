"""One number per metric, endpoint and time window: what monitors plot and alerts test.

An A/B report compares variants; a signal pools them (or picks one) and asks how the
endpoint is doing now: the error rate over the last 5 minutes, the CTR of the last day.
It reads the same definitions and the same attribution as the A/B report, so a metric
means the same thing on every page.
"""

from __future__ import annotations

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
    now = now or datetime.now(UTC)
    since = now - window
    predictions = load_predictions(db, endpoint, since=since, until=now)
    if variant is not None:
        predictions = predictions[predictions["variant"] == variant].reset_index(drop=True)
    if predictions.empty:
        return None, 0
    feedback = load_feedback(db, endpoint, metric.feedback_kinds, since=since, until=now)
    num, den = per_prediction(metric, predictions, attributed(predictions, feedback))
    if metric.quantile is not None:
        return float(np.quantile(num, metric.quantile)), len(num)
    total = float(den.sum())
    if total == 0:
        return None, 0
    return float(num.sum()) / total, int(total)
