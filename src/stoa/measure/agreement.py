"""Judge-human agreement: does the judge score items the way reviewers label them?

On items a human labelled and a judge scored for the same criterion, the judge's float
score is mapped to the nearest label score (a tie goes to the lower label, the stricter
reading), and we report Cohen's kappa, a weighted kappa when the labels are ordinal (3
or more distinct scores; weights by rank distance, as scikit-learn's), the Spearman
correlation of the human label score with the judge's raw score, and the confusion
table, each kappa and rho with a percentile bootstrap interval (fixed seed, resamples
drawn in one array).

The rule: the judge can replace human review for this endpoint and criterion only when
the lower bound of the kappa interval (weighted for ordinal labels) is at least
``min_kappa`` over at least ``min_items`` items.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata
from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.core.schema import FeedbackEvent, ReviewItem, ReviewQueue

Weights = Literal["linear", "quadratic"]
MIN_ITEMS = 100
MIN_KAPPA = 0.6
RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
_MAX_RESAMPLE_CELLS = 20_000_000  # resamples x items held at once


def nearest_labels(scores: Sequence[float], label_scores: Sequence[float]) -> np.ndarray:
    """Index of the nearest label score for each judge score; ties go to the lower."""
    values = np.asarray(label_scores, dtype=float)
    order = np.argsort(values, kind="stable")  # argmin keeps the first: the lowest score
    distance = np.abs(np.asarray(scores, dtype=float)[:, None] - values[order][None, :])
    return order[np.argmin(np.round(distance, 12), axis=1)]


def _confusions(human: np.ndarray, judge: np.ndarray, k: int) -> np.ndarray:
    """(resamples, k, k) confusion counts for index arrays of shape (resamples, n)."""
    b = human.shape[0]
    flat = (np.arange(b)[:, None] * k * k + human * k + judge).ravel()
    return np.bincount(flat, minlength=b * k * k).reshape(b, k, k).astype(float)


def _kappas(confusion: np.ndarray, weights: str | None) -> np.ndarray:
    """Cohen's kappa of each (k, k) table; NaN where chance agreement is total."""
    k = confusion.shape[-1]
    grid = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :]).astype(float)
    w = {None: (grid > 0).astype(float), "linear": grid, "quadratic": grid**2}[weights]
    n = confusion.sum(axis=(-2, -1), keepdims=True)
    expected = confusion.sum(axis=-1, keepdims=True) * confusion.sum(axis=-2, keepdims=True) / n
    observed_w = (w * confusion).sum(axis=(-2, -1))
    expected_w = (w * expected).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected_w > 0, 1 - observed_w / expected_w, np.nan)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row (average ranks for ties); NaN for a constant row."""
    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=-1) * (ry**2).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=-1) / denominator, np.nan)


def _interval(point: float, samples: np.ndarray, confidence: float) -> dict[str, Any]:
    finite = samples[np.isfinite(samples)]
    if not np.isfinite(point) or finite.size == 0:
        return {"value": None, "low": None, "high": None}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"value": float(point), "low": float(low), "high": float(high)}


def agreement(
    human: Sequence[str],
    judge_scores: Sequence[float],
    labels: Sequence[dict[str, Any]],
    *,
    weights: Weights = "linear",
    min_items: int = MIN_ITEMS,
    min_kappa: float = MIN_KAPPA,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> dict[str, Any]:
    """Agreement between human labels (names from ``labels``) and judge scores in
    [0, 1], paired by position, and the verdict on replacing the reviewers."""
    if weights not in ("linear", "quadratic"):
        raise InvalidInputError(
            f"unknown weights {weights!r}", field="weights", fix="use linear or quadratic"
        )
    if not isinstance(resamples, int) or not 100 <= resamples <= 100_000:
        raise InvalidInputError(
            "resamples must be between 100 and 100000", field="resamples", fix="e.g. 1000"
        )
    if not 0.5 <= confidence < 1:
        raise InvalidInputError(
            "confidence must be in [0.5, 1)", field="confidence", fix="e.g. 0.95"
        )
    if len(human) != len(judge_scores):
        raise InvalidInputError(
            "human labels and judge scores differ in length",
            field="judge_scores",
            fix="pair one judge score with each human label",
        )
    ordered = sorted(labels, key=lambda e: e["score"])  # rank 0 is the lowest score
    names = [e["name"] for e in ordered]
    label_scores = np.array([e["score"] for e in ordered], dtype=float)
    unknown = sorted({h for h in human if h not in names})
    if unknown:
        raise InvalidInputError(
            f"unknown human label {unknown[0]!r}", field="labels", fix=f"use {', '.join(names)}"
        )
    ordinal = len(set(label_scores.tolist())) >= 3
    n, k = len(human), len(names)
    statistic = "weighted_kappa" if ordinal else "kappa"
    report: dict[str, Any] = {
        "n": n,
        "labels": [{"name": e["name"], "score": float(e["score"])} for e in ordered],
        "ordinal": ordinal,
        "weights": weights if ordinal else None,
        "mapping": "each judge score goes to the nearest label score; a tie to the lower",
        "confidence": confidence,
        "resamples": resamples,
    }
    h = np.array([names.index(x) for x in human], dtype=np.int64)
    scores = np.asarray(judge_scores, dtype=float)
    if n and (not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1):
        raise InvalidInputError(
            "judge scores must be finite numbers in [0, 1]",
            field="judge_scores",
            fix="rescale the judge's scores to [0, 1]",
        )
    j = nearest_labels(scores, label_scores) if n else np.zeros(0, dtype=np.int64)
    confusion = _confusions(h[None, :], j[None, :], k)[0] if n else np.zeros((k, k))
    report["confusion"] = {
        "rows": "human",
        "columns": "judge",
        "labels": names,
        "counts": confusion.astype(int).tolist(),
    }
    report["disagreements"] = _disagreements(confusion, names)
    if n < 2:
        for key in ("kappa", "weighted_kappa", "spearman"):
            report[key] = {"value": None, "low": None, "high": None}
        report["verdict"] = _verdict(report, statistic, min_items, min_kappa)
        return report
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _MAX_RESAMPLE_CELLS // n)
    boot_kappa, boot_weighted, boot_rho = [], [], []
    human_scores = label_scores[h]
    for start in range(0, resamples, per_chunk):
        picks = rng.integers(0, n, size=(min(per_chunk, resamples - start), n))
        tables = _confusions(h[picks], j[picks], k)
        boot_kappa.append(_kappas(tables, None))
        boot_weighted.append(_kappas(tables, weights))
        boot_rho.append(_spearman(human_scores[picks], scores[picks]))
    report["kappa"] = _interval(
        float(_kappas(confusion[None], None)[0]), np.concatenate(boot_kappa), confidence
    )
    report["weighted_kappa"] = (
        _interval(
            float(_kappas(confusion[None], weights)[0]), np.concatenate(boot_weighted), confidence
        )
        if ordinal
        else {"value": None, "low": None, "high": None}
    )
    report["spearman"] = _interval(
        float(_spearman(human_scores[None], scores[None])[0]), np.concatenate(boot_rho), confidence
    )
    report["verdict"] = _verdict(report, statistic, min_items, min_kappa)
    return report


def _disagreements(confusion: np.ndarray, names: list[str], top: int = 3) -> list[dict]:
    """The largest off-diagonal cells, each with how many items humans gave that label."""
    cells = [
        (int(confusion[a, b]), a, b)
        for a in range(len(names))
        for b in range(len(names))
        if a != b and confusion[a, b] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    rows = confusion.sum(axis=1)
    return [
        {
            "human": names[a],
            "judge": names[b],
            "count": count,
            "of": int(rows[a]),
            "text": f"the judge says {names[b]} on {count} of {int(rows[a])} items "
            f"humans call {names[a]}",
        }
        for count, a, b in cells[:top]
    ]


def _verdict(report: dict[str, Any], statistic: str, min_items: int, min_kappa: float) -> dict:
    low = report[statistic]["low"]
    n = report["n"]
    rule = {"statistic": statistic, "min_items": min_items, "min_kappa": min_kappa}
    if n < min_items:
        reason = f"too few items: {n} scored by both a human and the judge, {min_items} needed"
        replace = False
    elif low is None:
        reason = f"{statistic.replace('_', ' ')} is undefined (every item has one label)"
        replace = False
    elif low < min_kappa:
        reason = (
            f"{statistic.replace('_', ' ')} too low: its lower bound {low:.3f} is below {min_kappa}"
        )
        replace = False
    else:
        reason = (
            f"{statistic.replace('_', ' ')} lower bound {low:.3f} >= {min_kappa} over {n} items"
        )
        replace = True
    if not replace and report["disagreements"]:
        reason += "; " + "; ".join(d["text"] for d in report["disagreements"][:2])
    return {"replace": replace, "reason": reason, "rule": rule}


def agreement_pairs(
    db: Database,
    endpoint: str,
    criterion: str,
    *,
    queue: str | None = None,
    since: datetime | None = None,
) -> tuple[list[str], list[float], list[dict[str, Any]]]:
    """Human labels from the review queues of ``endpoint`` that answer ``criterion``
    (labelled since ``since``), paired with the judge's latest ``judge.CRITERION`` score
    for the same prediction; and the queues' label schema."""
    with db.read() as session:
        query = select(ReviewQueue).where(ReviewQueue.endpoint == endpoint)
        if queue is not None:
            query = query.where(ReviewQueue.name == queue)
        queues = [q for q in session.scalars(query) if q.spec.get("criterion") == criterion]
        if queue is not None and not queues:
            raise NotFoundError(
                f"no review queue {queue!r} on endpoint {endpoint!r} answers {criterion!r}",
                field="queue",
                fix="list queues with `stoa review queues list`",
            )
        labels = queues[0].spec["labels"] if queues else []
        schema = {e["name"] for e in labels}
        human: dict[str, str] = {}
        for q in queues:
            if {e["name"] for e in q.spec["labels"]} != schema:
                raise InvalidInputError(
                    f"queues for {criterion!r} on {endpoint!r} use different labels",
                    field="queue",
                    fix="name one queue with --queue",
                )
            items = select(ReviewItem.prediction_id, ReviewItem.label).where(
                ReviewItem.queue_id == q.id, ReviewItem.status == "done"
            )
            if since is not None:
                items = items.where(ReviewItem.labelled_at >= since)
            for pid, label in session.execute(items.order_by(ReviewItem.labelled_at)):
                human[pid] = label  # the latest label wins
        judged: dict[str, float] = {}
        pids = list(human)
        for start in range(0, len(pids), 500):
            rows = session.execute(
                select(FeedbackEvent.prediction_id, FeedbackEvent.value)
                .where(
                    FeedbackEvent.kind == f"judge.{criterion}",
                    FeedbackEvent.source == "judge",
                    FeedbackEvent.prediction_id.in_(pids[start : start + 500]),
                )
                .order_by(FeedbackEvent.id)
            )
            for pid, value in rows:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    judged[pid] = float(value)  # the latest score wins
    both = [pid for pid in pids if pid in judged]
    return [human[p] for p in both], [judged[p] for p in both], labels


def agreement_for(
    db: Database,
    endpoint: str,
    criterion: str = "correctness",
    *,
    queue: str | None = None,
    since: datetime | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The agreement report for an endpoint and criterion, from the stored labels and
    judge scores; ``options`` go to ``agreement`` (weights, min_items, min_kappa, …)."""
    human, scores, labels = agreement_pairs(db, endpoint, criterion, queue=queue, since=since)
    if not labels:
        raise NotFoundError(
            f"no review queue on endpoint {endpoint!r} answers criterion {criterion!r}",
            field="criterion",
            fix="create one with `stoa review queues create` (spec criterion: ...)",
        )
    report = agreement(human, scores, labels, **options)
    return {"endpoint": endpoint, "criterion": criterion, "queue": queue, **report}
