"""Quality over time from label feedback, checked against scikit-learn per window and
variant; calibration by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.measure.quality import calibration, quality_metrics, quality_over_time
from tests.measure.review_rows import (
    T0,
    add_endpoint,
    add_feedback,
    add_predictions,
    classify_trace,
)


def test_calibration_by_hand() -> None:
    got = calibration([True, False, True, True], [0.9, 0.8, 0.55, 0.95])
    # bins: 0.9 and 0.95 share bin 9 (acc 1, conf .925); 0.8 bin 8; 0.55 bin 5
    ece = 0.5 * abs(1 - 0.925) + 0.25 * abs(0 - 0.8) + 0.25 * abs(1 - 0.55)
    assert got["ece"] == pytest.approx(ece)
    assert got["brier"] == pytest.approx(np.mean([0.01, 0.64, 0.2025, 0.0025]))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    add_endpoint(database)
    yield database
    database.dispose()


def test_quality_per_day_and_variant_matches_sklearn(db) -> None:
    rng = np.random.default_rng(5)
    classes = ["billing", "bug", "other"]
    rows, truth = [], []
    for i in range(120):
        day, variant = i % 2, "ab"[i % 3 == 0]
        true = classes[rng.integers(0, 3)]
        guess = true if rng.random() < 0.7 else classes[rng.integers(0, 3)]
        confidence = float(rng.uniform(0.34, 1))
        rows.append({"ts": T0 + timedelta(days=day, minutes=i), "variant": variant,
                     "trace": classify_trace(guess, confidence),
                     "output": {"text": "x"}})  # fmt: skip
        truth.append(true)
    rows.append({"output": {"text": "no label here"}})
    ids = add_predictions(db, rows)
    add_feedback(db, [(pid, "label", t, "user") for pid, t in zip(ids, truth, strict=False)])
    add_feedback(db, [(ids[-1], "label", "billing", "human"), (ids[0], "label", "bug", "judge")])
    report = quality_over_time(db, "support", bucket="day")
    day0, day1 = T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)
    assert [(r["start"], r["variant"]) for r in report] == [
        (day0, "a"),
        (day0, "b"),
        (day1, "a"),
        (day1, "b"),
    ]
    for r in report:
        day = (r["start"] - T0.replace(hour=0)).days
        pick = [i for i in range(120) if i % 2 == day and "ab"[i % 3 == 0] == r["variant"]]
        y = [truth[i] for i in pick]
        p = [rows[i]["trace"]["spans"][0]["attributes"]["stoa.outputs"]["label"] for i in pick]
        assert r["n"] == len(pick)
        assert r["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert r["precision"] == pytest.approx(
            precision_score(y, p, average="macro", zero_division=0)
        )
        assert r["recall"] == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
        assert r["f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
        assert 0 <= r["ece"] <= 1 and 0 <= r["brier"] <= 1


def test_model_predictions_and_bad_bucket(db) -> None:
    ids = add_predictions(db, [{"output": {"prediction": 1}}, {"output": {"prediction": 0}}])
    add_feedback(db, [(ids[0], "label", 1, "system"), (ids[1], "label", "1", "system")])
    (row,) = quality_over_time(db, "support", bucket="hour")
    assert row["accuracy"] == 0.5 and row["ece"] is None
    assert quality_metrics([], [])["accuracy"] is None
    with pytest.raises(InvalidInputError) as bad:
        quality_over_time(db, "support", bucket="week")
    assert bad.value.field == "bucket"
