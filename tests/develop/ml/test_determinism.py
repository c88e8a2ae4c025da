"""The same selection config, run twice, gives the same metrics and recommendation.

Every random choice a candidate makes is seeded with the split's seed: random_state in
scikit-learn, XGBoost and LightGBM (single-threaded, LightGBM in its deterministic
mode), Optuna's sampler, SetFit's pairs and torch. Latency and throughput are wall-clock
measurements that no seed makes repeatable, so these tests replace them with constants;
what is compared is what a seed must fix: quality, intervals, searches, the ranking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stoa.develop.ml import measure
from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

# Every field of a row that the seed decides; the rest (times, sizes, run ids) is measured.
DECIDED = ("name", "kind", "params", "metrics", "interval", "search", "confusion_matrix",
           "calibration", "pareto", "meets_constraints", "rejected_because", "skipped")  # fmt: skip


@pytest.fixture
def constant_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "latency", lambda *a, **k: {"p50": 1.0, "p95": 2.0, "p99": 3.0})
    monkeypatch.setattr(
        measure,
        "throughput",
        lambda *a, **k: {"rows_per_s": 1e4, "cpu_s_per_row": 1e-4, "peak_mem_mb": 1.0},
    )


def _twice(tmp_path: Any, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from stoa.client import LocalClient

    results = []
    for attempt in ("first", "second"):
        client = LocalClient(home=tmp_path / attempt, actor="t")
        results.append(numpy_safe(run_selection(client, parse_config(doc))))
        client.close()
    return results[0], results[1]


def _decided(result: dict[str, Any]) -> dict[str, Any]:
    rows = [{k: row.get(k) for k in DECIDED} for row in result["leaderboard"]]
    return {"recommendation": result["recommendation"], "split": result["split"], "rows": rows}


def test_the_same_tabular_selection_twice_gives_the_same_metrics_and_recommendation(
    tmp_path, constant_timings
):
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({"tenure": rng.integers(1, 72, n), "charges": rng.normal(70, 20, n),
                          "contract": rng.choice(["m2m", "1y", "2y"], n),
                          "noise": rng.normal(size=n)})  # fmt: skip
    logit = -1 + 0.03 * (frame.charges - 70) - 0.04 * (frame.tenure - 36)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    path = tmp_path / "churn.csv"
    frame.to_csv(path, index=False)
    bagged = {"subsample": 0.7, "colsample_bytree": 0.7, "n_estimators": 30}
    doc = {
        "data": {"path": str(path), "target": "churned", "split": {"test_size": 0.3, "seed": 7}},
        "primary_metric": "f1_macro",
        "constraints": {"min_f1_macro": 0.5},
        "evaluation": {"bootstrap": 50},
        "candidates": [
            {"name": "lr", "kind": "logistic_regression"},
            {"name": "ridge", "kind": "ridge"},
            {"name": "rf", "kind": "random_forest", "params": {"n_estimators": 30}},
            {"name": "hgb", "kind": "gradient_boosting",
             "params": {"max_iter": 30, "max_features": 0.5}},
            {"name": "xgb", "kind": "xgboost", "params": bagged},
            {"name": "lgbm", "kind": "lightgbm", "params": {**bagged, "subsample_freq": 1}},
            {"name": "rf-tuned", "kind": "random_forest", "params": {"n_estimators": 10},
             "search": {"trials": 3, "space": {"max_depth": {"low": 2, "high": 8},
                                               "max_features": [0.3, 0.6, 1.0]}}},
        ],
    }  # fmt: skip
    first, second = _twice(tmp_path, doc)
    assert not [r for r in first["leaderboard"] if "failed" in r or "skipped" in r]
    assert _decided(first) == _decided(second)
    assert first["recommendation"] is not None


@pytest.mark.slow
def test_the_same_text_selection_twice_gives_the_same_metrics_and_recommendation(
    tmp_path, constant_timings
):
    """Every text kind runs: the encoder they share is the packaged 90 MB MiniLM, which
    loads in seconds on a CPU. Only llm_prompt does not: no model is registered in
    these stores, so it is skipped alike in both runs (with the reason and the fix)."""
    from tests.develop.ml.test_embedding_kinds import DESCRIPTIONS, LABELS, TEXTS

    path = tmp_path / "tickets.csv"
    pd.DataFrame({"body": TEXTS, "intent": LABELS}).to_csv(path, index=False)
    doc = {
        "data": {"path": str(path), "target": "intent", "text": "body",
                 "split": {"test_size": 0.3, "seed": 3}},
        "primary_metric": "f1_macro",
        "evaluation": {"bootstrap": 50},
        "candidates": [
            {"name": "tfidf", "kind": "tfidf_linear"},
            {"name": "head", "kind": "embedding_head"},
            {"name": "zero", "kind": "zero_shot", "labels": DESCRIPTIONS},
            {"name": "setfit", "kind": "setfit", "params": {"num_pairs": 32, "epochs": 1}},
            {"name": "llm", "kind": "llm_prompt"},
        ],
    }  # fmt: skip
    first, second = _twice(tmp_path, doc)
    assert [r["name"] for r in first["leaderboard"] if "skipped" in r] == ["llm"]
    assert not [r for r in first["leaderboard"] if "failed" in r]
    assert _decided(first) == _decided(second)
