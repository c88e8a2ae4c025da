"""Chance to win and expected loss (risk).

Proportions use the exact beta-binomial model by default: each arm's rate has a
Beta(1 + successes, 1 + failures) posterior (a uniform prior), and P(B > A) and the
expected losses are one-dimensional integrals computed on a fine grid, accurate to
about 1e-7, not a Monte Carlo estimate. Means and ratios use the normal model that
gbstats uses: the relative lift is normal around its estimate with the delta-method
variance (a flat prior), which has closed forms.

Risk is the expected loss of a choice, in relative-lift units (0.002 = 0.2% of the
control's mean): ``risk_treatment`` is E[max(A better by x, 0)] if B is shipped.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

GRID = 401  # Simpson's rule between the 1e-15 and 1 - 1e-15 quantiles (odd count)
TAIL = 1e-15


def normal_chance_to_win(lift: ArrayLike, variance: ArrayLike) -> np.ndarray:
    """P(lift > 0) when the lift is normal(lift, variance)."""
    sd = np.sqrt(np.asarray(variance, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.ndtr(np.asarray(lift, float) / sd)


def normal_risks(lift: ArrayLike, variance: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(E[max(lift, 0)], E[max(-lift, 0)]) for a normal lift: the loss of keeping the
    control and the loss of shipping the treatment, when higher is better."""
    mu = np.asarray(lift, float)
    sd = np.sqrt(np.asarray(variance, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mu / sd
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    keep = mu * special.ndtr(z) + sd * pdf
    ship = -mu * special.ndtr(-z) + sd * pdf
    return keep, ship


def beta_posterior(n: float, successes: float) -> tuple[float, float]:
    """Beta parameters after a uniform prior."""
    return 1.0 + successes, 1.0 + n - successes


def _simpson_weights(count: int, step: float) -> np.ndarray:
    w = np.ones(count)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * step / 3.0


def beta_compare(n_a: float, s_a: float, n_b: float, s_b: float) -> tuple[float, float, float]:
    """(P(p_B > p_A), E[max(p_B - p_A, 0)], E[max(p_A - p_B, 0)]) for independent
    beta posteriors, in absolute rate units.

    The integral runs over the narrower posterior, against the closed-form CDF and
    partial expectations of the wider one, so the integrand stays smooth on the grid
    however different the two sample sizes are.
    """
    a_a, b_a = beta_posterior(n_a, s_a)
    a_b, b_b = beta_posterior(n_b, s_b)
    sd_a = np.sqrt(a_a * b_a / ((a_a + b_a) ** 2 * (a_a + b_a + 1)))
    sd_b = np.sqrt(a_b * b_b / ((a_b + b_b) ** 2 * (a_b + b_b + 1)))
    swap = sd_b < sd_a
    if swap:  # integrate over B instead; the answers come back mirrored
        a_a, b_a, a_b, b_b, sd_a = a_b, b_b, a_a, b_a, sd_b
    mean_b = a_b / (a_b + b_b)
    lo, hi = float(special.betaincinv(a_a, b_a, TAIL)), float(special.betainccinv(a_a, b_a, TAIL))
    x = np.linspace(lo, hi, GRID)
    with np.errstate(divide="ignore"):  # log(0) at an end point of weight 0
        log_pdf = (
            special.xlogy(a_a - 1, x) + special.xlog1py(b_a - 1, -x) - special.betaln(a_a, b_a)
        )
    w = _simpson_weights(GRID, (hi - lo) / (GRID - 1)) * np.exp(log_pdf)
    w /= w.sum()  # the mass outside the range is 2e-15
    sf_b = special.betaincc(a_b, b_b, x)
    # E[max(B - x, 0)] = mean_B * sf_{Beta(a+1, b)}(x) - x * sf_B(x), and the mirror
    sf_b1 = special.betaincc(a_b + 1, b_b, x)
    up = mean_b * sf_b1 - x * sf_b
    down = x * (1.0 - sf_b) - mean_b * (1.0 - sf_b1)
    chance = float(w @ sf_b)
    gain, loss = float(w @ np.maximum(up, 0.0)), float(w @ np.maximum(down, 0.0))
    if swap:
        return 1.0 - chance, loss, gain
    return chance, gain, loss
