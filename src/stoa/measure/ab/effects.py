"""The lift of a treatment over the control, and its sampling variance.

Every function here works elementwise on NumPy arrays as well as on floats, so the
simulations in ``simulate.py`` run thousands of experiments in one call.

The *relative* lift (B - A) / A is the scale Stoa decides on, as gbstats does: it is
comparable across metrics and reads as "+8% CTR". Its variance comes from the delta
method; the absolute lift B - A is reported beside it with its own test.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def absolute_lift(
    mean_a: ArrayLike, var_a: ArrayLike, n_a: ArrayLike,
    mean_b: ArrayLike, var_b: ArrayLike, n_b: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """B - A and its variance, from per-unit variances."""
    mean_a, mean_b = np.asarray(mean_a, float), np.asarray(mean_b, float)
    return mean_b - mean_a, np.asarray(var_a) / n_a + np.asarray(var_b) / n_b


def relative_lift(
    mean_a: ArrayLike, var_a: ArrayLike, n_a: ArrayLike,
    mean_b: ArrayLike, var_b: ArrayLike, n_b: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(B - A) / A and its delta-method variance; NaN where A's mean is 0."""
    mean_a, mean_b = np.asarray(mean_a, float), np.asarray(mean_b, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (mean_b - mean_a) / mean_a
        var = np.asarray(var_b) / (mean_a**2 * n_b) + np.asarray(var_a) * mean_b**2 / (
            mean_a**4 * n_a
        )
    bad = mean_a == 0
    return np.where(bad, np.nan, lift), np.where(bad, np.nan, var)


def welch_dof(var_a: ArrayLike, n_a: ArrayLike, var_b: ArrayLike, n_b: ArrayLike) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom from the two arms' per-unit variances."""
    qa = np.asarray(var_a, float) / n_a
    qb = np.asarray(var_b, float) / n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        return (qa + qb) ** 2 / (qa**2 / (np.asarray(n_a) - 1) + qb**2 / (np.asarray(n_b) - 1))
