"""Simulated experiments, to measure what the rules promise: the false-positive rate
when peeking every day at an A/A test, and the power on a planted lift.

Everything is vectorised over experiments and days (one binomial draw per arm and
day), so 1,000 experiments x 14 peeks take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from stoa.measure.ab._json import json_safe
from stoa.measure.ab.compare import MIN_EVENTS
from stoa.measure.ab.effects import relative_lift
from stoa.measure.ab.sequential import DEFAULT_TUNING, cs_halfwidth


@dataclass(frozen=True)
class PeekingResult:
    """Share of experiments in which each rule declared a difference (in the planted
    direction when ``lift`` > 0, either direction for an A/A test) at some daily peek.

    ``fixed_final`` looks once, on the last day: the fixed-horizon test used as
    designed. ``fixed_peeking`` applies the same test every day and stops at the first
    significant look: what people do. ``bayesian_peeking`` stops when the chance to
    win leaves [alpha, 1 - alpha].
    """

    experiments: int
    days: int
    units_per_day: int
    metric: str
    rate: float
    sigma: float | None
    lift: float
    alpha: float
    sequential: float
    fixed_peeking: float
    fixed_final: float
    bayesian_peeking: float
    sequential_days_to_detect: float | None

    def to_dict(self) -> dict[str, object]:
        return json_safe(self)


def simulate_peeking(
    *,
    experiments: int = 1000,
    days: int = 14,
    units_per_day: int = 1000,
    rate: float = 0.10,
    lift: float = 0.0,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    min_units: int = 100,
    metric: str = "proportion",
    sigma: float = 1.0,
    seed: int = 0,
) -> PeekingResult:
    """Two-arm experiments, ``units_per_day`` new units per arm per day, a look at the
    end of each day. ``lift=0`` measures false positives; ``lift>0`` measures power.

    ``metric="proportion"``: control rate ``rate``, treatment ``rate * (1 + lift)``.
    ``metric="lognormal"``: per-unit values exp(N(0, sigma)) (revenue-like skew at
    sigma 2), the treatment's scaled by 1 + lift. A look counts only where the engine
    would test: ``min_units`` per arm, and for proportions ``MIN_EVENTS`` successes
    and failures per arm."""
    rng = np.random.default_rng(seed)
    n = units_per_day * np.arange(1, days + 1, dtype=float)
    if metric == "proportion":
        shape = (experiments, days)
        s_a = rng.binomial(units_per_day, rate, shape).cumsum(axis=1)
        s_b = rng.binomial(units_per_day, rate * (1 + lift), shape).cumsum(axis=1)
        m_a, m_b = s_a / n, s_b / n
        v_a, v_b = m_a * (1 - m_a), m_b * (1 - m_b)
        # the engine's guard: successes and failures per arm
        events = np.minimum(np.minimum(s_a, n - s_a), np.minimum(s_b, n - s_b))
        enough = events >= MIN_EVENTS
    elif metric == "lognormal":
        (m_a, v_a), (m_b, v_b) = (
            _lognormal_arm(rng, experiments, days, units_per_day, sigma, shift)
            for shift in (0.0, np.log1p(lift))
        )
        enough = np.ones(m_a.shape, dtype=bool)
    else:
        raise ValueError(f"unknown metric {metric!r}: use 'proportion' or 'lognormal'")
    with np.errstate(divide="ignore", invalid="ignore"):
        d, v = relative_lift(m_a, v_a, n, m_b, v_b, n)
        z = d / np.sqrt(v)
    valid = np.isfinite(z) & (v > 0) & (n >= min_units) & enough
    z = np.where(valid, z, 0.0)
    want = (lambda x: x > 0) if lift > 0 else (lambda x: x != 0)
    # +1 / -1 when a rule says the treatment is better / worse at that look
    seq_half = cs_halfwidth(np.where(valid, v, np.inf), 2 * n, alpha, tuning)
    d = np.where(valid, d, 0.0)
    seq = np.sign(d) * (np.abs(d) > seq_half)
    z_crit = -special.ndtri(alpha / 2)
    fixed = np.sign(z) * (np.abs(z) > z_crit)
    chance = special.ndtr(z)
    bayes = (chance >= 1 - alpha).astype(int) - (chance <= alpha).astype(int)

    def first_signal(signal: np.ndarray) -> np.ndarray:
        hit = signal != 0
        first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        sign = np.where(first >= 0, signal[np.arange(experiments), np.maximum(first, 0)], 0)
        return np.where(want(sign), first, -1)

    seq_first = first_signal(seq)
    detected_days = seq_first[seq_first >= 0] + 1
    return PeekingResult(
        experiments=experiments,
        days=days,
        units_per_day=units_per_day,
        metric=metric,
        rate=rate,
        sigma=sigma if metric == "lognormal" else None,
        lift=lift,
        alpha=alpha,
        sequential=float((seq_first >= 0).mean()),
        fixed_peeking=float((first_signal(fixed) >= 0).mean()),
        fixed_final=float(want(fixed[:, -1]).mean()),
        bayesian_peeking=float((first_signal(bayes) >= 0).mean()),
        sequential_days_to_detect=float(np.median(detected_days)) if detected_days.size else None,
    )


def _lognormal_arm(
    rng: np.random.Generator, experiments: int, days: int, per_day: int, sigma: float, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative mean and per-unit variance at each day, one day drawn at a time."""
    total = np.zeros((experiments, days))
    squares = np.zeros((experiments, days))
    for day in range(days):
        x = rng.lognormal(shift, sigma, (experiments, per_day))
        total[:, day], squares[:, day] = x.sum(axis=1), (x * x).sum(axis=1)
    total, squares = total.cumsum(axis=1), squares.cumsum(axis=1)
    n = per_day * np.arange(1, days + 1, dtype=float)
    mean = total / n
    return mean, (squares - total * mean) / (n - 1)


def simulate_power(
    *,
    experiments: int = 500,
    days: int = 14,
    units_per_day: int = 1000,
    rate: float = 0.10,
    lift: float = 0.10,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    min_units: int = 100,
    metric: str = "proportion",
    sigma: float = 1.0,
    seed: int = 1,
) -> PeekingResult:
    """:func:`simulate_peeking` with a planted ``lift``: each rate is the share of
    experiments in which the rule detected it, in the right direction."""
    if lift <= 0:
        raise ValueError("simulate_power needs a planted lift > 0")
    return simulate_peeking(
        experiments=experiments,
        days=days,
        units_per_day=units_per_day,
        metric=metric,
        rate=rate,
        sigma=sigma,
        lift=lift,
        alpha=alpha,
        tuning=tuning,
        min_units=min_units,
        seed=seed,
    )
