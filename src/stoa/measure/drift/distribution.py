"""The small per-column distributions a drift report carries for plotting: both sides on
shared bins (numbers) or the same categories (values), as shares of each side's rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from stoa.measure.drift.columns import Counts, Prepared
from stoa.measure.drift.statistics import counts_of, sorted_histogram

MAX_BINS = 30
MAX_CATEGORIES = 20


def numeric_histogram(ref: np.ndarray, cur: np.ndarray, bins: int = MAX_BINS) -> dict[str, Any]:
    """Equal-width bins over the range of both sides, each side's share per bin."""
    low, high = min(ref[0], cur[0]), max(ref[-1], cur[-1])
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    return {
        "kind": "histogram",
        "edges": [float(e) for e in edges],
        "reference": _shares(sorted_histogram(ref, edges), ref.size),
        "current": _shares(sorted_histogram(cur, edges), cur.size),
    }


def category_shares(counts: Counts, limit: int = MAX_CATEGORIES) -> dict[str, Any]:
    """The ``limit`` most frequent values over both sides, then ``other`` for the rest."""
    total = counts.reference / max(counts.n_reference, 1) + counts.current / max(
        counts.n_current, 1
    )
    top = np.argsort(-total, kind="stable")[:limit]
    ref = _shares(counts.reference[top], counts.n_reference)
    cur = _shares(counts.current[top], counts.n_current)
    labels = [_label(counts.values[i]) for i in top]
    if len(counts.values) > limit:
        labels.append("other")
        ref.append(max(0.0, 1.0 - sum(ref)))
        cur.append(max(0.0, 1.0 - sum(cur)))
    return {"kind": "categories", "categories": labels, "reference": ref, "current": cur}


def column_distribution(col: Prepared, by_value: bool) -> dict[str, Any]:
    """Categories for columns tested by counting values, a histogram for the others."""
    if by_value or col.reference_sorted is None:
        return category_shares(counts_of(col))
    assert col.current_sorted is not None
    return numeric_histogram(col.reference_sorted, col.current_sorted)


def _shares(counts: np.ndarray, total: int) -> list[float]:
    return [float(c) / total if total else 0.0 for c in counts]


def _label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
