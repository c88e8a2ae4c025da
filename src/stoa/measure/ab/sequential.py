"""Always-valid confidence sequences, so that looking every day is safe.

A fixed-horizon 95% interval checked at 14 daily peeks excludes zero at some peek in
about a fifth of A/A tests. The asymptotic normal-mixture confidence sequence of
Waudby-Smith et al. (2023, "Time-uniform central limit theory and asymptotic
confidence sequences", eq. 9 and 155) holds its coverage at every sample size at
once, so a decision may be taken at whichever peek it first excludes zero.

Its one tuning parameter is the total sample size (both arms) at which the sequence
is tightest. gbstats' default of 5,000 is kept: the width grows only slowly away from
it (see docs/experiments.md for the measured cost).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_TUNING = 5000.0


def mixture_rho(alpha: ArrayLike, tuning: float = DEFAULT_TUNING) -> np.ndarray:
    """The mixing scale that makes the sequence tightest at ``tuning`` units (eq. 161)."""
    log_a = np.log(np.asarray(alpha, float))
    return np.sqrt((-2.0 * log_a + np.log(-2.0 * log_a + 1.0)) / tuning)


def cs_halfwidth(
    variance: ArrayLike, n_total: ArrayLike, alpha: ArrayLike, tuning: float = DEFAULT_TUNING
) -> np.ndarray:
    """Half-width of the (1 - alpha) confidence sequence for a lift whose estimator has
    ``variance``, after ``n_total`` units in the two arms."""
    n = np.asarray(n_total, float)
    rho2 = mixture_rho(alpha, tuning) ** 2
    s2 = np.asarray(variance, float) * n  # the per-unit variance of the lift estimate
    nr1 = n * rho2 + 1.0
    return np.sqrt(s2 * 2.0 * nr1 * np.log(np.sqrt(nr1) / np.asarray(alpha)) / (n**2 * rho2))


def always_valid_p(
    lift: ArrayLike, variance: ArrayLike, n_total: ArrayLike,
    alpha: float, tuning: float = DEFAULT_TUNING,
) -> np.ndarray:  # fmt: skip
    """The smallest alpha whose sequence would exclude zero now: 1 / the mixture
    likelihood ratio, capped at 1. Below alpha exactly when the sequence excludes 0."""
    n = np.asarray(n_total, float)
    rho2 = mixture_rho(alpha, tuning) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = np.asarray(lift, float) ** 2 / np.asarray(variance, float)
    nr1 = n * rho2 + 1.0
    log_e = rho2 * n * z2 / (2.0 * nr1) - 0.5 * np.log(nr1)
    return np.minimum(np.exp(-log_e), 1.0)
