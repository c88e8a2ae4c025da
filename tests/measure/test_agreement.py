"""Judge-human agreement checked against scikit-learn and SciPy, the replace rule both
ways, and the loader on stored labels and judge scores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.measure import review
from stoa.measure.agreement import agreement, agreement_for, nearest_labels
from tests.measure.review_rows import add_endpoint, add_feedback, add_predictions

LABELS = [{"name": "correct", "score": 1.0}, {"name": "partially", "score": 0.5},
          {"name": "wrong", "score": 0.0}]  # fmt: skip
NAMES = ["wrong", "partially", "correct"]  # by score
SCORE = {"wrong": 0.0, "partially": 0.5, "correct": 1.0}


def simulated(n: int, noise: float, seed: int = 1) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    return [NAMES[t] for t in truth], np.clip(truth / 2 + rng.normal(0, noise, n), 0, 1)


def test_nearest_label_ties_go_to_the_lower_score() -> None:
    got = nearest_labels([0.0, 0.24, 0.25, 0.26, 0.75, 0.9, 1.0], [1.0, 0.5, 0.0])
    assert [[1.0, 0.5, 0.0][i] for i in got] == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_figures_match_sklearn_and_scipy(weights) -> None:
    human, scores = simulated(300, 0.25)
    report = agreement(human, scores, LABELS, weights=weights)
    judge = [NAMES[int(np.argmin(np.abs(np.array([0, 0.5, 1]) - s)))] for s in scores]
    assert report["kappa"]["value"] == pytest.approx(cohen_kappa_score(human, judge), abs=1e-12)
    assert report["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(human, judge, labels=NAMES, weights=weights), abs=1e-12
    )
    rho = spearmanr([SCORE[h] for h in human], scores).statistic
    assert report["spearman"]["value"] == pytest.approx(rho, abs=1e-12)
    counts = np.array(report["confusion"]["counts"])
    assert counts.sum() == 300 and report["confusion"]["labels"] == NAMES
    for entry in (report["kappa"], report["weighted_kappa"], report["spearman"]):
        assert entry["low"] < entry["value"] < entry["high"]
    assert report["verdict"]["replace"] and report["verdict"]["rule"]["statistic"] == (
        "weighted_kappa"
    )
    # the same seed gives the same interval
    again = agreement(human, scores, LABELS, weights=weights)
    assert again["kappa"] == report["kappa"]


def test_bootstrap_interval_matches_a_plain_loop() -> None:
    human, scores = simulated(80, 0.3, seed=4)
    report = agreement(human, scores, LABELS, resamples=400, seed=7, min_items=10)
    rng = np.random.default_rng(7)
    judge = np.array([NAMES[i] for i in nearest_labels(scores, [0.0, 0.5, 1.0])])
    h = np.array(human)
    loop = []
    for _ in range(400):
        pick = rng.integers(0, 80, 80)
        loop.append(cohen_kappa_score(h[pick], judge[pick], labels=NAMES))
    low, high = np.percentile(loop, [2.5, 97.5])
    assert report["kappa"]["low"] == pytest.approx(low, abs=1e-9)
    assert report["kappa"]["high"] == pytest.approx(high, abs=1e-9)


def test_the_rule_refuses_with_a_reason() -> None:
    few = agreement(*simulated(50, 0.1), LABELS)
    assert not few["verdict"]["replace"] and "too few items: 50" in few["verdict"]["reason"]
    human, _ = simulated(200, 0.1)
    lenient = np.array([1.0 if h == "wrong" else SCORE[h] for h in human])  # calls wrong correct
    bad = agreement(human, lenient, LABELS)
    verdict = bad["verdict"]
    assert not verdict["replace"] and "too low" in verdict["reason"]
    wrong = human.count("wrong")
    top = bad["disagreements"][0]
    assert (top["human"], top["judge"], top["count"], top["of"]) == (
        "wrong",
        "correct",
        wrong,
        wrong,
    )
    assert (
        f"the judge says correct on {wrong} of {wrong} items humans call wrong" in verdict["reason"]
    )
    strict = agreement(*simulated(300, 0.25), LABELS, min_kappa=0.99)
    assert not strict["verdict"]["replace"]


def test_binary_labels_use_plain_kappa() -> None:
    labels = [{"name": "good", "score": 1.0}, {"name": "bad", "score": 0.0}]
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 150)
    scores = np.clip(truth + rng.normal(0, 0.3, 150), 0, 1)
    human = ["good" if t else "bad" for t in truth]
    report = agreement(human, scores, labels)
    judge = ["good" if s > 0.5 else "bad" for s in scores]
    assert not report["ordinal"] and report["verdict"]["rule"]["statistic"] == "kappa"
    assert report["kappa"]["value"] == pytest.approx(cohen_kappa_score(human, judge))


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError) as bad:
        agreement(["great"], [0.5], LABELS)
    assert bad.value.field == "labels"
    with pytest.raises(InvalidInputError) as bad:
        agreement(["wrong"], [1.5], LABELS)
    assert bad.value.field == "judge_scores"
    with pytest.raises(InvalidInputError):
        agreement(["wrong"], [0.5], LABELS, weights="cubic")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    add_endpoint(database)
    yield database
    database.dispose()


def test_agreement_for_pairs_stored_labels_with_judge_scores(db) -> None:
    human, scores = simulated(30, 0.2, seed=9)
    ids = add_predictions(db, [{} for _ in range(32)])
    review.create_queue(db, "q", "support", {"rules": [{"random": 1.0}]})
    review.fill(db, "q", now=datetime.now(UTC) + timedelta(hours=1))
    items = {i["prediction_id"]: i["id"] for i in review.list_items(db, "q")}
    for pid, label in zip(ids[:30], human, strict=True):
        review.label_item(db, items[pid], "ann", label)
    review.label_item(db, items[ids[31]], "ann", "correct")  # no judge score: left out
    add_feedback(db, [(pid, "judge.correctness", 0.0, "judge") for pid in ids[:30]])
    add_feedback(db, [(pid, "judge.correctness", float(s), "judge")  # the latest wins
                      for pid, s in zip(ids[:30], scores, strict=True)])  # fmt: skip
    add_feedback(db, [(ids[30], "judge.correctness", 1.0, "judge")])  # no human label
    report = agreement_for(db, "support", "correctness", min_items=10)
    expected = agreement(human, scores, LABELS, min_items=10)
    assert report["n"] == 30 and report["kappa"] == expected["kappa"]
    assert report["spearman"] == expected["spearman"]
    with pytest.raises(NotFoundError):
        agreement_for(db, "support", "tone")
