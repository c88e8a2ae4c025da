"""How many units an experiment needs: the "keep running (needs about N more units)".

Sizes are for 80% power by default, on the relative lift, under the rule that will
decide (a confidence sequence needs more units than a single fixed-horizon test:
that is the price of being allowed to peek).
"""

from __future__ import annotations

import math

from scipy import optimize, special

from stoa.measure.ab.sequential import DEFAULT_TUNING, cs_halfwidth

RULES = ("sequential", "frequentist", "bayesian")


def relative_unit_variance(
    mean_a: float, var_a: float, share_a: float, var_b: float, share_b: float, lift: float
) -> float:
    """c such that the relative lift's variance is c / T after T units in the whole
    experiment, of which the arms get ``share_a`` and ``share_b``. The treatment's mean
    is the control's moved by ``lift``; its per-unit variance is ``var_b``."""
    mean_b = mean_a * (1.0 + lift)
    return var_b / (mean_a**2 * share_b) + var_a * mean_b**2 / (mean_a**4 * share_a)


def critical_multiplier(rule: str, alpha: float) -> float:
    """The z a fixed-horizon test needs: two-sided for frequentist, one-sided for the
    Bayesian chance to win >= 1 - alpha."""
    return float(-special.ndtri(alpha / 2.0 if rule == "frequentist" else alpha))


def required_units(
    lift: float,
    unit_variance: float,
    *,
    rule: str = "sequential",
    alpha: float = 0.05,
    power: float = 0.8,
    pair_share: float = 1.0,
    tuning: float = DEFAULT_TUNING,
) -> float:
    """Total units T (all arms) at which a true relative ``lift`` is detected with
    probability ``power``: the lift must clear the rule's critical half-width plus
    z_power standard errors. ``pair_share`` is the two compared arms' share of T (the
    sequence's sample size counts only them)."""
    if lift == 0 or not math.isfinite(lift) or not unit_variance > 0:
        return math.inf
    z_power = float(special.ndtri(power))
    if rule != "sequential":
        z = critical_multiplier(rule, alpha)
        return unit_variance * (z + z_power) ** 2 / lift**2

    def gap(log_t: float) -> float:
        t = math.exp(log_t)
        var = unit_variance / t
        width = float(cs_halfwidth(var, t * pair_share, alpha, tuning))
        return abs(lift) - width - z_power * math.sqrt(var)

    lo, hi = math.log(4.0), math.log(1e15)
    if gap(hi) < 0:
        return math.inf
    if gap(lo) > 0:
        return 4.0
    return math.exp(optimize.brentq(gap, lo, hi, xtol=1e-6))
