"""The per-column drift tests, each computed from a cleaned column (see columns.py).

Each test returns a score; a ``Method`` says whether that score is a p-value or a
distance, its default threshold and how the decision compares: the comparisons are
Evidently's, so that a score on the threshold itself decides the same way (KS drifts at
``p <= threshold``, chi-squared and the z-test at ``p < threshold``; the distances at
``score >= threshold``; the domain classifier at ``AUC > threshold``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

from stoa.measure.drift.columns import Counts, Prepared

P_VALUE = "p_value"
DISTANCE = "distance"

#: Wasserstein distance is divided by the reference's standard deviation, floored here so
#: that a constant reference column does not divide by zero (Evidently's floor).
MIN_STD = 0.001


@dataclass(frozen=True)
class Method:
    """A drift test: its name, what its score is, its default threshold and the range a
    threshold may take, and how a score is compared with the threshold."""

    name: str
    kind: str
    default_threshold: float
    low: float
    high: float
    compare: str  # "<", "<=", ">=" or ">"
    applies_to: tuple[str, ...]

    def drifted(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        return {
            "<": score < threshold,
            "<=": score <= threshold,
            ">=": score >= threshold,
            ">": score > threshold,
        }[self.compare]

    def threshold_ok(self, threshold: float) -> bool:
        return math.isfinite(threshold) and self.low < threshold <= self.high


_TABULAR = ("numeric", "categorical", "binary")
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", P_VALUE, 0.05, 0.0, 1.0, "<=", ("numeric",)),
        Method("chisquare", P_VALUE, 0.05, 0.0, 1.0, "<", _TABULAR),
        Method("chisquare_homogeneity", P_VALUE, 0.05, 0.0, 1.0, "<", _TABULAR),
        Method("z", P_VALUE, 0.05, 0.0, 1.0, "<", ("binary", "categorical", "numeric")),
        Method("wasserstein", DISTANCE, 0.1, 0.0, math.inf, ">=", ("numeric",)),
        Method("jensenshannon", DISTANCE, 0.1, 0.0, 1.0, ">=", _TABULAR),
        Method("psi", DISTANCE, 0.1, 0.0, math.inf, ">=", _TABULAR),
        Method("domain_classifier", DISTANCE, 0.55, 0.5, 1.0, ">", ("text", "embedding")),
        Method("centroid_distance", DISTANCE, 0.2, 0.0, math.inf, ">=", ("text", "embedding")),
    )
}


def ks_p_value(col: Prepared) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (SciPy's, exact for small samples)."""
    return float(stats.ks_2samp(col.reference_sorted, col.current_sorted).pvalue)


def chisquare_p_value(col: Prepared) -> float:
    """Chi-squared goodness of fit of the current counts to the reference's proportions
    scaled to the current size, as Evidently tests. A value never seen in the reference
    gives p = 0. The reference's proportions are taken as exact, so with two samples of
    similar size it drifts by chance far more often than the threshold says (measured in
    docs/monitoring.md); ``chisquare_homogeneity`` does not."""
    counts = counts_of(col)
    expected = counts.reference * (counts.n_current / counts.n_reference)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.chisquare(counts.current, expected).pvalue)


def chisquare_homogeneity_p_value(col: Prepared) -> float:
    """Pearson's chi-squared test that both sides come from one distribution (a 2 x k
    contingency table, no continuity correction). Unlike ``chisquare``, which takes the
    reference's proportions as exact, it counts the reference's own sampling noise, so
    its false-positive rate stays at the threshold when both samples are small."""
    counts = counts_of(col)
    if len(counts.values) < 2:
        return 1.0
    table = np.vstack([counts.reference, counts.current])
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def z_p_value(col: Prepared) -> float:
    """Two-sided two-proportion z-test on the share of rows that are not the first value
    (values sorted); a column with the same single value on both sides has p = 1."""
    counts = counts_of(col)
    if len(counts.values) == 1:
        return 1.0
    n1, n2 = counts.n_reference, counts.n_current
    p1 = (n1 - counts.reference[0]) / n1
    p2 = (n2 - counts.current[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def wasserstein_normed(col: Prepared) -> float:
    """Exact 1-Wasserstein distance (SciPy's semantics) over the reference's population
    standard deviation, from the two sorted samples without building their union."""
    ref, cur = col.reference_sorted, col.current_sorted
    assert ref is not None and cur is not None
    std = max(float(np.std(ref)), MIN_STD)
    return wasserstein_sorted(ref, cur) / std


def wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """W1 = integral over t in (0, 1) of |U^-1(t) - V^-1(t)|, the quantile functions of two
    sorted samples. They are step functions changing at i/n and j/m, so the integral is a
    sum over the merged steps; in units of 1/(n*m) the steps are the integers i*m and j*n."""
    n, m = u.size, v.size
    if n == m:
        return float(np.abs(u - v).mean())
    steps = np.concatenate([np.arange(1, n + 1, dtype=np.int64) * m,
                            np.arange(1, m + 1, dtype=np.int64) * n])  # fmt: skip
    steps.sort(kind="stable")  # two sorted runs: a linear merge
    starts = np.concatenate([[0], steps[:-1]])
    widths = steps - starts
    keep = widths > 0
    starts, widths = starts[keep], widths[keep]
    gaps = np.abs(u[starts // m] - v[starts // n])
    return float(np.dot(gaps, widths) / (n * m))


def jensenshannon_distance(col: Prepared) -> float:
    """Jensen-Shannon distance (natural log) between the two sides' shares, binned as
    Evidently bins them (see ``binned_shares``)."""
    ref, cur = binned_shares(col, fill_zeros=False)
    return float(distance.jensenshannon(ref, cur))


def psi(col: Prepared) -> float:
    """Population stability index, sum((r - c) * ln(r / c)) over the bins of
    ``binned_shares``, with empty bins given a small share so the log stays finite."""
    ref, cur = binned_shares(col, fill_zeros=True)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


#: Numeric columns with more distinct reference values than this are binned into
#: Sturges' number of equal-width bins over both sides' range; fewer are counted as values.
BIN_BY_VALUE_LIMIT = 20


def binned_shares(col: Prepared, *, fill_zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """The share of each side in each bin. Categories (and numbers with at most 20
    distinct reference values) are their own bins; other numbers get Sturges'
    equal-width bins over the range of both sides together, as Evidently bins them.
    With ``fill_zeros`` an empty bin gets 1e-4, or a millionth of the smallest
    non-empty share when that is at most 1e-4."""
    if col.reference_sorted is None:
        counts = counts_of(col)
        ref, cur = counts.reference / counts.n_reference, counts.current / counts.n_current
    else:
        a, b = col.reference_sorted, col.current_sorted
        assert b is not None
        if _distinct_in_sorted(a) <= BIN_BY_VALUE_LIMIT:
            counts = counts_of(col)
            ref, cur = counts.reference / a.size, counts.current / b.size
        else:
            edges = sturges_edges(a, b)
            ref = sorted_histogram(a, edges) / a.size
            cur = sorted_histogram(b, edges) / b.size
    if fill_zeros:
        ref, cur = _fill_zeros(ref), _fill_zeros(cur)
    return ref, cur


def _distinct_in_sorted(a: np.ndarray) -> int:
    return 0 if a.size == 0 else int(np.count_nonzero(a[1:] != a[:-1])) + 1


def sturges_edges(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.histogram_bin_edges(concat(a, b), "sturges")`` from two sorted arrays, without
    the concatenation: width = range / (log2(n) + 1), as many bins as that width needs."""
    first, last = min(a[0], b[0]), max(a[-1], b[-1])
    spread = last - first
    if spread == 0:
        return np.linspace(first - 0.5, last + 0.5, 2)
    width = spread / (math.log2(a.size + b.size) + 1.0)
    return np.linspace(first, last, math.ceil(spread / width) + 1)


def sorted_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for sorted values: half-open bins, the last
    closed, found by binary search instead of a pass over every value."""
    positions = np.searchsorted(values, edges, side="left")
    positions[-1] = np.searchsorted(values, edges[-1], side="right")
    return np.diff(positions)


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares > 0].min()
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, fill, shares)


def counts_of(col: Prepared) -> Counts:
    """The column's value counts; a numeric column's are counted from its sorted sides
    the first time a test asks, then kept."""
    if col.counts is not None:
        return col.counts
    a, b = col.reference_sorted, col.current_sorted
    assert a is not None and b is not None
    values = np.union1d(a, b)
    ra = np.diff(np.searchsorted(a, values, side="left"), append=a.size)
    rb = np.diff(np.searchsorted(b, values, side="left"), append=b.size)
    col.counts = Counts(values.tolist(), ra.astype(np.int64), rb.astype(np.int64))
    return col.counts


TABULAR_TESTS: dict[str, Callable[[Prepared], float]] = {
    "ks": ks_p_value,
    "chisquare": chisquare_p_value,
    "chisquare_homogeneity": chisquare_homogeneity_p_value,
    "z": z_p_value,
    "wasserstein": wasserstein_normed,
    "jensenshannon": jensenshannon_distance,
    "psi": psi,
}
