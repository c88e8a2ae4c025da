"""Quality metrics from scikit-learn, with a bootstrap interval for the primary one."""

from __future__ import annotations

from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.ml.candidates.base import Task

CLASSIFICATION = (
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted",
    "precision_weighted", "recall_weighted", "roc_auc_ovr", "log_loss", "ece",
)  # fmt: skip
REGRESSION = ("mae", "rmse", "r2", "mape")
# Metrics where lower is better; every other one is maximised.
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "mae", "rmse", "mape"})
_BINS = 10


def check_primary(task: Task, metric: str) -> str:
    names = CLASSIFICATION if task == "classification" else REGRESSION
    if metric not in names:
        raise InvalidInputError(
            f"{metric!r} is not a {task} metric",
            field="primary_metric",
            fix=f"use one of {', '.join(names)}",
        )
    return metric


def score(
    task: Task, metric: str, y: np.ndarray, pred: np.ndarray, proba: Any, classes: Any
) -> float | None:
    """One metric; None when it needs probabilities the candidate does not give."""
    from sklearn import metrics as m

    if task == "regression":
        return float({
            "mae": lambda: m.mean_absolute_error(y, pred),
            "rmse": lambda: m.root_mean_squared_error(y, pred),
            "r2": lambda: m.r2_score(y, pred),
            "mape": lambda: m.mean_absolute_percentage_error(y, pred),
        }[metric]())  # fmt: skip
    if metric == "accuracy":
        return float(m.accuracy_score(y, pred))
    if metric.startswith(("precision_", "recall_", "f1_")):
        name, average = metric.rsplit("_", 1)
        fn = {"precision": m.precision_score, "recall": m.recall_score, "f1": m.f1_score}[name]
        return float(fn(y, pred, average=average, zero_division=0))
    if proba is None:
        return None
    if metric == "log_loss":
        return float(m.log_loss(y, proba, labels=classes))
    if metric == "roc_auc_ovr":
        if len(np.unique(y)) < 2:
            return None
        if len(classes) == 2:
            return float(m.roc_auc_score((y == classes[1]).astype(int), proba[:, 1]))
        present = np.isin(classes, np.unique(y))
        if not present.all():  # a class absent from the test rows: score the present ones
            proba = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        labels = np.asarray(classes)[present]
        if len(labels) == 2:  # two classes left: scikit-learn wants the binary form
            return float(m.roc_auc_score((y == labels[1]).astype(int), proba[:, 1]))
        return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    if metric == "ece":
        return _calibration(y, proba, classes)["ece"]
    raise InvalidInputError(f"unknown metric {metric!r}", field="primary_metric")


def _calibration(y: np.ndarray, proba: np.ndarray, classes: Any) -> dict[str, Any]:
    """Top-label calibration: confidence of the predicted class against being right.

    The curve is scikit-learn's ``calibration_curve``; the expected calibration error
    weights each bin's |accuracy - confidence| by its share of the rows.
    """
    from sklearn.calibration import calibration_curve

    confidence = proba.max(axis=1)
    correct = (np.asarray(classes)[proba.argmax(axis=1)] == y).astype(int)
    edges = np.linspace(0, 1, _BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, _BINS - 1)
    ece = 0.0
    for b in range(_BINS):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    accuracy, mean_conf = calibration_curve(correct, confidence, n_bins=_BINS, strategy="uniform")
    return {
        "ece": float(ece),
        "curve": {"confidence": mean_conf.tolist(), "accuracy": accuracy.tolist()},
    }


def evaluate(
    task: Task,
    y: np.ndarray,
    pred: np.ndarray,
    proba: Any,
    classes: Any,
    primary: str,
    *,
    resamples: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of the task, the confusion matrix and calibration, and a bootstrap
    95 % interval for the primary metric (test rows resampled with replacement)."""
    from sklearn.metrics import confusion_matrix

    names = CLASSIFICATION if task == "classification" else REGRESSION
    values = {n: score(task, n, y, pred, proba, classes) for n in names}
    out: dict[str, Any] = {"metrics": {k: v for k, v in values.items() if v is not None}}
    if task == "classification":
        labels = list(classes) if classes is not None else sorted(set(y))
        out["confusion_matrix"] = {
            "labels": [str(c) for c in labels],
            "matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        }
        if proba is not None:
            out["calibration"] = _calibration(y, proba, classes)["curve"]
    out["interval"] = _bootstrap(task, primary, y, pred, proba, classes, resamples, seed)
    return out


def _bootstrap(task: Task, metric: str, y: np.ndarray, pred: np.ndarray, proba: Any,
               classes: Any, resamples: int, seed: int) -> dict[str, float] | None:  # fmt: skip
    if resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(y)
    scores = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        value = score(task, metric, y[idx], pred[idx], None if proba is None else proba[idx],
                      classes)  # fmt: skip
        if value is not None:
            scores.append(value)
    if not scores:
        return None
    low, high = np.percentile(scores, [2.5, 97.5])
    return {"low": float(low), "high": float(high), "resamples": len(scores)}
