"""Quality over time: once ground-truth ``label`` feedback arrives for predictions that
predicted a label, how often were they right, per time window and variant.

Ground truth is the latest ``label`` event for a prediction from a user, a reviewer or
the system. Labels written by a review queue (``correct``/``wrong`` judgements of the
answer, not the true class) are left out. The predicted label is the answer's ``label``,
else the last classify step's, else a model endpoint's ``prediction``; labels are
compared as text, so ``1`` and ``"1"`` agree. Metrics are scikit-learn's (precision,
recall and F1 are macro averages); calibration is reported when the prediction had a
confidence: the Brier score of the top label and the expected calibration error over
10 equal-width bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sqlalchemy import or_, select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import FeedbackEvent, Prediction
from stoa.measure.outputs import predicted_label

BUCKETS = {"hour": 3600, "day": 86400}
ECE_BINS = 10
MAX_LABELS = 1_000_000  # ground-truth events read per report
_PAGE = 5000
_CHUNK = 500


def calibration(correct: Sequence[bool], confidence: Sequence[float]) -> dict[str, float]:
    """Top-label Brier score and expected calibration error (10 equal-width bins)."""
    hit = np.asarray(correct, dtype=float)
    conf = np.asarray(confidence, dtype=float)
    bins = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return {"brier": float(np.mean((conf - hit) ** 2)), "ece": float(ece)}


def quality_metrics(
    truth: Sequence[Any], predicted: Sequence[Any], confidence: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """Accuracy, macro precision, recall and F1, and calibration over the items that
    carried a confidence."""
    y_true = [str(t) for t in truth]
    y_pred = [str(p) for p in predicted]
    out: dict[str, Any] = {"n": len(y_true)}
    if not y_true:
        return {**out, "accuracy": None, "precision": None, "recall": None, "f1": None,
                "brier": None, "ece": None}  # fmt: skip
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    out |= {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "brier": None,
        "ece": None,
    }
    pairs = [
        (t == p, c)
        for t, p, c in zip(y_true, y_pred, confidence or [None] * len(y_true), strict=True)
        if c is not None
    ]
    if pairs:
        out |= calibration([p[0] for p in pairs], [p[1] for p in pairs])
    return out


def _bucket_seconds(bucket: str | int) -> int:
    if isinstance(bucket, str) and bucket in BUCKETS:
        return BUCKETS[bucket]
    if isinstance(bucket, int) and not isinstance(bucket, bool) and 60 <= bucket <= 31 * 86400:
        return bucket
    raise InvalidInputError(
        f"unknown bucket {bucket!r}",
        field="bucket",
        fix="use hour, day or a number of seconds between 60 and 31 days",
    )


def _ground_truth(db: Database, endpoint: str, since: datetime | None) -> dict[str, Any]:
    """Prediction id -> its latest label from a user, a reviewer or the system."""
    truth: dict[str, Any] = {}
    last = 0
    while len(truth) < MAX_LABELS:
        query = (
            select(FeedbackEvent.id, FeedbackEvent.prediction_id, FeedbackEvent.value)
            .where(
                FeedbackEvent.endpoint == endpoint,
                FeedbackEvent.kind == "label",
                FeedbackEvent.source.in_(("user", "human", "system")),
                or_(
                    FeedbackEvent.idempotency_key.is_(None),
                    ~FeedbackEvent.idempotency_key.startswith("review:"),
                ),
                FeedbackEvent.id > last,
            )
            .order_by(FeedbackEvent.id)
            .limit(_PAGE)
        )
        if since is not None:
            query = query.where(FeedbackEvent.ts >= since)
        with db.read() as session:
            rows = session.execute(query).all()
        for _id, pid, value in rows:
            if isinstance(value, str | int | bool):
                truth[pid] = value
        if len(rows) < _PAGE:
            break
        last = rows[-1][0]
    return truth


def quality_over_time(
    db: Database,
    endpoint: str,
    *,
    bucket: str | int = "day",
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per time window (by prediction time) and variant: n, accuracy, precision,
    recall, F1, and Brier/ECE where confidences exist; oldest window first."""
    width = _bucket_seconds(bucket)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    truth = _ground_truth(db, endpoint, since)
    groups: dict[tuple[int, str], list[tuple[Any, Any, float | None]]] = {}
    pids = list(truth)
    for start in range(0, len(pids), _CHUNK):
        query = select(
            Prediction.id, Prediction.variant, Prediction.ts, Prediction.output, Prediction.trace
        ).where(
            Prediction.id.in_(pids[start : start + _CHUNK]),
            Prediction.endpoint == endpoint,
            Prediction.mode == "live",
        )
        if since is not None:
            query = query.where(Prediction.ts >= since)
        with db.read() as session:
            rows = session.execute(query).all()
        for pid, variant, ts, output, trace in rows:
            label, confidence = predicted_label(output, trace)
            if label is None:
                continue
            ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            key = (int(ts.timestamp()) // width * width, variant)
            groups.setdefault(key, []).append((truth[pid], label, confidence))
    report = []
    for (start_s, variant), items in sorted(groups.items()):
        metrics = quality_metrics(
            [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]
        )
        report.append(
            {"start": datetime.fromtimestamp(start_s, UTC), "bucket_s": width,
             "variant": variant, **metrics}
        )  # fmt: skip
    return report
