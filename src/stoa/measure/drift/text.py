"""Drift of text and embedding columns: two checks on the vectors of both sides.

- ``domain_classifier``: a logistic regression trained to tell reference rows from
  current ones, scored by the cross-validated ROC AUC of its out-of-fold probabilities.
  0.5 means the two sides cannot be told apart. The column drifts when the AUC is above
  0.55 (Evidently's default for its text and embedding classifiers) and above the AUC
  that chance alone exceeds 5% of the time at these sample sizes, so that a few dozen
  rows cannot drift by luck. This check decides the column by default.
- ``centroid_distance``: the Euclidean distance between the two sides' mean vectors
  (threshold 0.2, Evidently's default). It is cheap and easy to read, but on small
  samples of 384-dimensional vectors noise alone moves the centroid by about 0.1-0.2,
  so it is reported beside the classifier rather than deciding by default.

Text is embedded first, by the given embedder (Stoa's offline MiniLM by default). Each
side is sampled down to ``MAX_ROWS`` rows (seeded) before embedding and training: the
checks need hundreds of rows, not millions, and embedding is the costly part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

#: Rows sampled from each side for text and embedding checks.
MAX_ROWS = 5_000
#: Folds of the domain classifier's cross-validation.
FOLDS = 5
#: Chance AUCs stay below this quantile 95% of the time.
_Z95 = 1.6448536269514722


class TextEmbedder(Protocol):
    """What drift needs of an embedder: texts in, one row per text out."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def default_embedder() -> TextEmbedder:
    """Stoa's offline MiniLM, loaded once per process."""
    from stoa.develop.rag.embed import load_embedder, parse_embedder

    return load_embedder(parse_embedder(None))


@dataclass(frozen=True)
class VectorDrift:
    """Both checks on one column, with the classifier's out-of-fold probabilities
    binned per side for plotting."""

    auc: float
    auc_threshold: float
    centroid_distance: float
    rows_reference: int
    rows_current: int
    edges: list[float]
    reference_shares: list[float]
    current_shares: list[float]


def sample_rows(count: int, limit: int, seed: int) -> np.ndarray:
    """Row indices to keep: all of them up to ``limit``, else a seeded sample in order."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def chance_auc(n_reference: int, n_current: int) -> float:
    """The AUC a classifier with no signal exceeds 5% of the time: the normal
    approximation of the Mann-Whitney statistic, mean 1/2 and variance (n1+n2+1)/(12 n1 n2)."""
    variance = (n_reference + n_current + 1) / (12.0 * n_reference * n_current)
    return 0.5 + _Z95 * math.sqrt(variance)


def auc_threshold(n_reference: int, n_current: int, floor: float) -> float:
    """The default decision threshold: ``floor`` (0.55), raised to chance's 95% level."""
    return max(floor, chance_auc(n_reference, n_current))


def vector_drift(
    reference: np.ndarray, current: np.ndarray, *, auc_floor: float = 0.55, seed: int = 0
) -> VectorDrift:
    """Both checks on two matrices of vectors (rows, dimension), each with two rows or more."""
    reference = reference[sample_rows(len(reference), MAX_ROWS, seed)]
    current = current[sample_rows(len(current), MAX_ROWS, seed + 1)]
    n1, n2 = len(reference), len(current)
    centroid = float(np.linalg.norm(reference.mean(axis=0) - current.mean(axis=0)))
    features = np.vstack([reference, current])
    labels = np.concatenate([np.zeros(n1, dtype=np.int8), np.ones(n2, dtype=np.int8)])
    folds = StratifiedKFold(n_splits=min(FOLDS, n1, n2), shuffle=True, random_state=seed)
    scores = cross_val_predict(
        LogisticRegression(max_iter=1_000), features, labels, cv=folds, method="predict_proba"
    )[:, 1]
    auc = float(roc_auc_score(labels, scores))
    edges = np.linspace(0.0, 1.0, 11)
    ref_hist = np.histogram(scores[:n1], edges)[0] / n1
    cur_hist = np.histogram(scores[n1:], edges)[0] / n2
    return VectorDrift(
        auc=auc,
        auc_threshold=auc_threshold(n1, n2, auc_floor),
        centroid_distance=centroid,
        rows_reference=n1,
        rows_current=n2,
        edges=edges.tolist(),
        reference_shares=ref_hist.tolist(),
        current_shares=cur_hist.tolist(),
    )


def text_vectors(
    reference: list[str], current: list[str], embedder: TextEmbedder, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' texts, sampled to ``MAX_ROWS`` each, embedded in one call."""
    ref = [reference[i] for i in sample_rows(len(reference), MAX_ROWS, seed)]
    cur = [current[i] for i in sample_rows(len(current), MAX_ROWS, seed + 1)]
    # Logged inputs repeat (the same question, the same canned answer): each distinct
    # text is embedded once.
    distinct, rows = np.unique(np.asarray(ref + cur, dtype=object).astype(str), return_inverse=True)
    vectors = np.asarray(embedder.embed(list(distinct)), dtype=np.float64)[rows]
    return vectors[: len(ref)], vectors[len(ref) :]
