"""Every candidate kind: fit, predict, predict_proba, save, load, same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from stoa.develop.ml.candidates.base import Inputs, load, make

TABULAR = ["logistic_regression", "ridge", "random_forest", "gradient_boosting", "xgboost",
           "lightgbm"]  # fmt: skip
SMALL = {"random_forest": {"n_estimators": 10}, "xgboost": {"n_estimators": 10},
         "lightgbm": {"n_estimators": 10}, "gradient_boosting": {"max_iter": 20}}  # fmt: skip


def _tabular(task: str):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "a": rng.normal(size=120), "b": rng.normal(size=120),
        "c": rng.choice(["x", "y", "z"], size=120),
    })  # fmt: skip
    frame.loc[3, "a"] = np.nan  # imputed, not refused
    if task == "classification":
        y = np.where(frame["b"] + (frame["c"] == "x") > 0.3, "yes", "no").astype(object)
        y[:20] = "maybe"
    else:
        y = frame["b"].to_numpy() * 3 + 1
    return Inputs("tabular", frame=frame), y


@pytest.mark.parametrize(
    ("kind", "task"),
    [(k, t) for k in TABULAR for t in ("classification", "regression")
     if not (k == "logistic_regression" and t == "regression")],  # it classifies only
)  # fmt: skip
def test_tabular_kinds_round_trip(kind, task, tmp_path):
    x, y = _tabular(task)
    candidate = make(kind, task, SMALL.get(kind, {}))
    candidate.fit(x.take(slice(0, 100)), y[:100])
    test = x.take(slice(100, 120))
    before = candidate.predict(test)
    proba = candidate.predict_proba(test)
    if task == "classification":
        assert set(before) <= {"yes", "no", "maybe"}
        if proba is not None:
            assert proba.shape == (20, 3) and np.allclose(proba.sum(axis=1), 1)
    path = candidate.save(tmp_path)
    again = load(path, candidate.spec())
    np.testing.assert_array_equal(again.predict(test), before)
    if proba is not None:
        np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-6)


def test_tfidf_linear_round_trip(tmp_path):
    texts = ["refund my order", "where is my parcel", "cannot log in", "charge twice refund",
             "parcel late again", "password reset fails"] * 5  # fmt: skip
    labels = np.array(["billing", "shipping", "login"] * 10)
    candidate = make("tfidf_linear", "classification")
    candidate.fit(Inputs("text", texts=texts), labels)
    probe = Inputs("text", texts=["my parcel is late", "refund please"])
    before = candidate.predict(probe)
    again = load(candidate.save(tmp_path), candidate.spec())
    np.testing.assert_array_equal(again.predict(probe), before)


def test_unknown_kinds_and_params_are_clear():
    from stoa.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown candidate kind 'bert'"):
        make("bert", "classification")
    with pytest.raises(InvalidInputError, match="n_trees"):
        make("random_forest", "classification", {"n_trees": 3})
    with pytest.raises(InvalidInputError, match="does not do regression"):
        make("logistic_regression", "regression")
    with pytest.raises(InvalidInputError, match="unknown param"):
        make("tfidf_linear", "classification", {"ngrams": 3})
