"""Fixed-horizon tests: valid when the sample size was fixed in advance and the data
are looked at once. Welch's t for means and ratios, a z-test for proportions."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special


def t_test(
    lift: ArrayLike, variance: ArrayLike, dof: ArrayLike, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-value of lift = 0 and the half-width of the (1 - alpha) interval,
    with Student's t on ``dof`` degrees of freedom (Welch's test when ``dof`` is
    Welch-Satterthwaite's)."""
    se = np.sqrt(np.asarray(variance, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.asarray(lift, float) / se
    p = 2.0 * special.stdtr(dof, -np.abs(t))
    return p, special.stdtrit(dof, 1.0 - alpha / 2.0) * se


def z_test(lift: ArrayLike, variance: ArrayLike, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-value and (1 - alpha) half-width under the normal distribution."""
    se = np.sqrt(np.asarray(variance, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(lift, float) / se
    return 2.0 * special.ndtr(-np.abs(z)), special.ndtri(1.0 - alpha / 2.0) * se


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted).

    Holm controls the family-wise error rate like Bonferroni, under any dependence
    between the tests, and rejects at least as often.
    """
    p = np.asarray(p_values, float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out
