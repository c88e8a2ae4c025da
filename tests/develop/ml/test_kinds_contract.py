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


@pytest.mark.parametrize("kind", TABULAR)
def test_a_loaded_tabular_kind_predicts_from_what_a_user_has(kind, tmp_path):
    """A DataFrame with the training columns in any order (and extra ones such as the
    target), rows as dicts, and numbers sent as text all predict like the training rows."""

    x, y = _tabular("classification")
    candidate = make(kind, "classification", SMALL.get(kind, {}))
    candidate.fit(x.take(slice(0, 100)), y[:100])
    loaded = load(candidate.save(tmp_path), candidate.spec())
    test = x.frame.iloc[100:120]
    expected = candidate.predict(x.take(slice(100, 120)))
    user_frame = test[["c", "b", "a"]].assign(target=y[100:120], id=range(20))
    np.testing.assert_array_equal(loaded.predict(user_frame), expected)
    np.testing.assert_array_equal(loaded.predict(test.to_dict("records")), expected)
    np.testing.assert_array_equal(loaded.predict(test.iloc[0].to_dict()), expected[:1])
    as_text = test.assign(b=test["b"].astype(str))
    np.testing.assert_array_equal(loaded.predict(as_text), expected)
    proba = loaded.predict_proba(user_frame)
    if kind == "ridge":  # a ridge classifier has decision values, not probabilities
        assert proba is None
    else:
        assert proba.shape == (20, 3) and list(loaded.classes_) == ["maybe", "no", "yes"]
    assert candidate.spec()["columns"] == ["a", "b", "c"]


def test_a_tabular_kind_names_a_missing_or_non_numeric_column():
    from stoa.core.errors import InvalidInputError

    x, y = _tabular("regression")
    candidate = make("ridge", "regression")
    candidate.fit(x, y)
    with pytest.raises(InvalidInputError) as err:
        candidate.predict(x.frame.drop(columns=["b"]))
    assert err.value.field == "inputs.b" and "a, b, c" in err.value.fix
    with pytest.raises(InvalidInputError) as err:
        candidate.predict(x.frame.assign(a="many"))
    assert err.value.field == "inputs.a" and "not numbers" in err.value.message
    with pytest.raises(InvalidInputError, match="reads a pandas DataFrame"):
        candidate.predict("one string")


def test_a_loaded_text_kind_predicts_from_strings_series_and_frames(tmp_path):
    import pandas as pd

    texts = ["refund my order", "where is my parcel", "cannot log in", "charge twice refund",
             "parcel late again", "password reset fails"] * 5  # fmt: skip
    labels = np.array(["billing", "shipping", "login"] * 10)
    candidate = make("tfidf_linear", "classification")
    candidate.fit(Inputs("text", texts=texts, column="body"), labels)
    loaded = load(candidate.save(tmp_path), candidate.spec())
    probe = ["my parcel is late", "refund please"]
    expected = candidate.predict(Inputs("text", texts=probe))
    frame = pd.DataFrame({"id": [1, 2], "body": probe, "intent": ["shipping", "billing"]})
    for given in (probe, tuple(probe), np.array(probe), pd.Series(probe), frame,
                  frame.to_dict("records")):  # fmt: skip
        np.testing.assert_array_equal(loaded.predict(given), expected)
    assert loaded.predict("refund please")[0] == expected[1]
    assert loaded.predict_proba(frame).shape == (2, 3)
    from stoa.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as err:
        loaded.predict(frame.rename(columns={"body": "text"}))
    assert err.value.field == "inputs.body"
    with pytest.raises(InvalidInputError, match="not text, at position"):
        loaded.predict(["fine", None])
