"""Text and embedding drift: the domain classifier's AUC and the centroid distance against
scikit-learn and NumPy computed here, shifted against same-distribution data."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from stoa.measure.drift import compare
from stoa.measure.drift.text import chance_auc

TOPICS = {
    "billing": ["invoice", "refund", "charge", "payment", "card", "price", "bill"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "late", "address", "box"],
    "login": ["password", "account", "reset", "locked", "email", "code", "sign"],
}
FILLER = ["my", "the", "please", "help", "with", "is", "not", "working", "today", "again"]


class HashingEmbedder:
    """A cheap deterministic embedder for tests: hashed word counts, unit length."""

    def __init__(self) -> None:
        self.vectorizer = HashingVectorizer(n_features=256, alternate_sign=False, norm="l2")
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return self.vectorizer.transform(list(texts)).toarray()


def _messages(rng: np.random.Generator, rows: int, mix: list[float]) -> list[str]:
    topics = list(TOPICS)
    out = []
    for t in rng.choice(len(topics), rows, p=mix):
        words = list(rng.choice(TOPICS[topics[t]], 3)) + list(rng.choice(FILLER, 4))
        rng.shuffle(words)
        out.append(" ".join(words) + f" #{rng.integers(1_000_000)}")
    return out


def test_text_drift_detected_on_a_topic_shift_not_on_the_same_mix() -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"message": _messages(rng, 400, [0.6, 0.3, 0.1])})
    same = pd.DataFrame({"message": _messages(rng, 300, [0.6, 0.3, 0.1])})
    moved = pd.DataFrame({"message": _messages(rng, 300, [0.1, 0.3, 0.6])})
    embedder = HashingEmbedder()
    calm = compare(ref, same, embedder=embedder).column("message")
    shifted = compare(ref, moved, embedder=embedder).column("message")
    assert calm.type == shifted.type == "text"
    assert calm.check.test == "domain_classifier" and calm.check.stattest_kind == "distance"
    assert not calm.drifted and shifted.drifted
    assert calm.check.score < 0.6 < shifted.check.score
    assert [c.test for c in shifted.secondary] == ["centroid_distance"]
    assert shifted.secondary[0].drifted and not calm.secondary[0].drifted
    assert embedder.calls == 2  # one call per comparison, both sides together


def test_embedding_scores_equal_sklearn_and_numpy() -> None:
    rng = np.random.default_rng(5)
    ref_vectors = rng.normal(0, 1, (300, 16))
    cur_vectors = rng.normal(0, 1, (200, 16))
    cur_vectors[:, 0] += 0.5
    ref = pd.DataFrame({"vec": list(ref_vectors)})
    cur = pd.DataFrame({"vec": [list(v) for v in cur_vectors]})
    col = compare(ref, cur).column("vec")
    assert col.type == "embedding"
    features = np.vstack([ref_vectors, cur_vectors])
    labels = np.r_[np.zeros(300), np.ones(200)]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    oof = cross_val_predict(LogisticRegression(max_iter=1_000), features, labels, cv=folds,
                            method="predict_proba")[:, 1]  # fmt: skip
    assert col.check.score == pytest.approx(roc_auc_score(labels, oof), abs=1e-12)
    assert col.check.threshold == pytest.approx(max(0.55, chance_auc(300, 200)))
    centroid = np.linalg.norm(ref_vectors.mean(axis=0) - cur_vectors.mean(axis=0))
    assert col.secondary[0].score == pytest.approx(centroid, rel=1e-12)
    assert col.secondary[0].threshold == 0.2
    assert col.drifted and col.secondary[0].drifted


def test_embedding_same_distribution_does_not_drift() -> None:
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"vec": list(rng.normal(0, 0.05, (500, 32)))})
    cur = pd.DataFrame({"vec": list(rng.normal(0, 0.05, (500, 32)))})
    col = compare(ref, cur).column("vec")
    assert not col.drifted and not col.secondary[0].drifted


def test_centroid_distance_can_decide_the_column() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"vec": list(rng.normal(0, 1, (100, 8)))})
    cur = pd.DataFrame({"vec": list(rng.normal(0.2, 1, (100, 8)))})
    col = compare(ref, cur, methods={"vec": "centroid_distance"},
                  thresholds={"vec": 0.3}).column("vec")  # fmt: skip
    assert col.check.test == "centroid_distance" and col.check.threshold == 0.3
    assert [c.test for c in col.secondary] == ["domain_classifier"]
    assert col.drifted == (col.check.score >= 0.3)


def test_chance_auc_matches_simulated_random_classifiers() -> None:
    rng = np.random.default_rng(9)
    ranks = rankdata(rng.random((4_000, 250)), axis=1)  # 150 reference rows, then 100 current
    aucs = (ranks[:, 150:].sum(axis=1) - 100 * 101 / 2) / (150 * 100)  # Mann-Whitney U / n1 n2
    assert chance_auc(150, 100) == pytest.approx(np.percentile(aucs, 95), abs=0.01)


def test_minilm_text_drift_on_a_small_sample() -> None:
    """The default embedder end to end: Stoa's offline MiniLM."""
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"message": _messages(rng, 60, [0.8, 0.1, 0.1])})
    moved = pd.DataFrame({"message": _messages(rng, 60, [0.1, 0.1, 0.8])})
    start = time.perf_counter()
    col = compare(ref, moved).column("message")
    assert time.perf_counter() - start < 10
    assert col.drifted and col.check.score > 0.8


def test_repeated_texts_are_embedded_once() -> None:
    class Counting(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.texts = 0

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            self.texts += len(texts)
            return super().embed(texts)

    embedder = Counting()
    ref = pd.DataFrame({"q": ["where is my parcel", "reset my password"] * 300})
    cur = pd.DataFrame({"q": ["where is my parcel", "cancel my order"] * 300})
    column = compare(ref, cur, column_types={"q": "text"}, embedder=embedder).column("q")
    assert embedder.texts == 3 and column.drifted
