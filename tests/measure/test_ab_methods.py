"""The A/B engine's numbers against independent references: SciPy's tests, hand
computations of the delta method and Holm, and large Monte Carlo samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from stoa.measure.ab import (
    MeanStats,
    MetricSpec,
    ProportionStats,
    RatioStats,
    analyze,
    stats_from_aggregates,
    summarize,
)
from stoa.measure.ab.bayesian import beta_compare, normal_chance_to_win, normal_risks
from stoa.measure.ab.frequentist import holm
from stoa.measure.ab.sequential import always_valid_p, cs_halfwidth

RNG_SEED = 20261204


def mean_stats(x: np.ndarray) -> MeanStats:
    return MeanStats(len(x), float(x.sum()), float((x * x).sum()))


def one(stats: dict, metric: MetricSpec, **kw):
    report = analyze(stats, metrics=[metric], control="a", **kw)
    return report.comparisons[0]


def test_welch_absolute_p_value_equals_scipy() -> None:
    rng = np.random.default_rng(RNG_SEED)
    for n_a, n_b, shift in [(40, 55, 0.3), (500, 800, 0.05), (3000, 2500, 0.0)]:
        a = rng.lognormal(1.0, 0.8, n_a)
        b = rng.lognormal(1.0 + shift, 1.0, n_b)
        c = one({"a": {"m": mean_stats(a)}, "b": {"m": mean_stats(b)}}, MetricSpec("m", "mean"))
        ref = sps.ttest_ind(b, a, equal_var=False)
        assert c.frequentist.p_value_absolute == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
        assert c.frequentist.dof == pytest.approx(ref.df, rel=1e-9)
        low, high = ref.confidence_interval(0.95)
        assert c.frequentist.absolute.ci_low == pytest.approx(low, rel=1e-9)
        assert c.frequentist.absolute.ci_high == pytest.approx(high, rel=1e-9)
        assert c.absolute_lift.estimate == pytest.approx(b.mean() - a.mean(), rel=1e-12)


def test_proportion_z_test_and_relative_delta_method_by_hand() -> None:
    a, b = ProportionStats(2000, 200), ProportionStats(2100, 252)
    c = one({"a": {"ctr": a}, "b": {"ctr": b}}, MetricSpec("ctr", "proportion"))
    pa, pb = 0.1, 252 / 2100
    se = math.sqrt(pa * (1 - pa) / 2000 + pb * (1 - pb) / 2100)
    z = (pb - pa) / se
    assert c.frequentist.p_value_absolute == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-10)
    assert c.frequentist.absolute_test == "z"
    # relative lift: delta method, Welch-Satterthwaite degrees of freedom (gbstats' test)
    rel = (pb - pa) / pa
    var = pb * (1 - pb) / (pa**2 * 2100) + pa * (1 - pa) * pb**2 / (pa**4 * 2000)
    qa, qb = pa * (1 - pa) / 2000, pb * (1 - pb) / 2100
    dof = (qa + qb) ** 2 / (qa**2 / 1999 + qb**2 / 2099)
    p_rel = 2 * sps.t.sf(abs(rel / math.sqrt(var)), dof)
    assert c.relative_lift.estimate == pytest.approx(rel, rel=1e-12)
    assert c.frequentist.p_value == pytest.approx(p_rel, rel=1e-10)
    half = sps.t.ppf(0.975, dof) * math.sqrt(var)
    assert c.frequentist.relative.ci_low == pytest.approx(rel - half, rel=1e-10)
    # Wilson's interval for the control arm, as SciPy computes it
    wilson = sps.binomtest(200, 2000).proportion_ci(0.95, method="wilson")
    assert c.control.estimate.ci_low == pytest.approx(wilson.low, rel=1e-9)
    assert c.control.estimate.ci_high == pytest.approx(wilson.high, rel=1e-9)


def test_ratio_welch_delta_method_against_hand_computation() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    frames = []
    for name, rate in (("a", 0.3), ("b", 0.36)):
        clicks = rng.poisson(2.0, 1500)
        conv = rng.binomial(clicks, rate)
        frames.append(pd.DataFrame({"v": name, "clicks": clicks, "conv": conv}))
    frame = pd.concat(frames, ignore_index=True)
    spec = MetricSpec("cpc", "ratio", numerator="conv", denominator="clicks")
    stats = summarize(frame, "v", [spec])
    c = one(stats, spec)

    def delta(g: pd.DataFrame) -> tuple[float, float, int]:
        x, y = g["conv"].to_numpy(float), g["clicks"].to_numpy(float)
        n, mx, my = len(x), x.mean(), y.mean()
        cov = np.cov(x, y, ddof=1)
        v = cov[0, 0] / my**2 - 2 * cov[0, 1] * mx / my**3 + mx**2 * cov[1, 1] / my**4
        return mx / my, v / n, n

    ra, va, na = delta(frame[frame.v == "a"])
    rb, vb, nb = delta(frame[frame.v == "b"])
    t = (rb - ra) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    assert c.control.estimate.estimate == pytest.approx(ra, rel=1e-12)
    assert c.absolute_lift.estimate == pytest.approx(rb - ra, rel=1e-10)
    assert c.frequentist.p_value_absolute == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-8)
    assert c.frequentist.absolute_test == "welch_t"


def test_summarize_matches_pandas_groupby_and_aggregates_agree() -> None:
    rng = np.random.default_rng(RNG_SEED + 2)
    n = 5000
    frame = pd.DataFrame(
        {
            "variant": rng.choice(["a", "b", "c"], n),
            "click": rng.random(n) < 0.1,
            "rating": np.where(rng.random(n) < 0.3, rng.integers(1, 6, n), np.nan),
        }
    )
    specs = [MetricSpec("ctr", "proportion", column="click"), MetricSpec("rating", "mean")]
    got = summarize(frame, "variant", specs)
    for v, g in frame.groupby("variant"):
        assert got[v]["ctr"] == ProportionStats(len(g), float(g.click.sum()))
        r = g.rating.dropna()
        assert got[v]["rating"].n == len(r)
        assert got[v]["rating"].mean == pytest.approx(r.mean(), rel=1e-12)
        assert got[v]["rating"].variance == pytest.approx(r.var(ddof=1), rel=1e-9)
    built = stats_from_aggregates("mean", n=3, sum=6.0, sum_sq=14.0)
    assert built == MeanStats(3, 6.0, 14.0) and built.variance == pytest.approx(1.0)
    ratio = stats_from_aggregates(
        "ratio", n=2, sum_x=1, sum_x2=1, sum_y=3, sum_y2=5, sum_xy=2, field="stats.b.cpc"
    )
    assert isinstance(ratio, RatioStats) and ratio.mean == pytest.approx(1 / 3)


def test_holm_against_hand_computation() -> None:
    # sorted p: 0.01, 0.02, 0.04, 0.3 -> x4, x3, x2, x1 = 0.04, 0.06, 0.08, 0.3, then monotone
    got = holm([0.04, 0.01, 0.3, 0.02])
    np.testing.assert_allclose(got, [0.08, 0.04, 0.3, 0.06])
    assert np.isnan(holm([np.nan, 0.5])[0]) and holm([np.nan, 0.5])[1] == pytest.approx(0.5)
    assert holm([0.9, 0.8]).max() == 1.0


def test_always_valid_p_crosses_alpha_where_the_sequence_excludes_zero() -> None:
    var, n = 0.0004, 20000
    half = float(cs_halfwidth(var, n, 0.05))
    assert float(always_valid_p(half * 1.001, var, n, 0.05)) < 0.05
    assert float(always_valid_p(half * 0.999, var, n, 0.05)) > 0.05
    # A confidence sequence is wider than the fixed-horizon interval, and widens with 1/alpha
    assert half > 1.96 * math.sqrt(var)
    assert float(cs_halfwidth(var, n, 0.025)) > half


def test_beta_binomial_chance_and_risk_against_monte_carlo() -> None:
    rng = np.random.default_rng(RNG_SEED + 3)
    draws = 2_000_000
    for n_a, s_a, n_b, s_b in [(1000, 100, 1000, 118), (40, 3, 6000, 270), (20, 0, 25, 2)]:
        chance, gain, loss = beta_compare(n_a, s_a, n_b, s_b)
        pa = rng.beta(1 + s_a, 1 + n_a - s_a, draws)
        pb = rng.beta(1 + s_b, 1 + n_b - s_b, draws)
        # Monte Carlo standard error of a probability at 2e6 draws is <= 3.5e-4
        assert chance == pytest.approx((pb > pa).mean(), abs=1.5e-3)
        assert gain == pytest.approx(np.maximum(pb - pa, 0).mean(), rel=1e-2)
        assert loss == pytest.approx(np.maximum(pa - pb, 0).mean(), rel=1e-2, abs=1e-6)


def test_beta_binomial_exact_closed_form() -> None:
    # Beta(1,1) vs Beta(2,1): P(B > A) = integral of 2y * y dy = 2/3
    chance, gain, loss = beta_compare(0, 0, 1, 1)
    assert chance == pytest.approx(2 / 3, abs=1e-8)
    # E[max(B - A, 0)] = integral_0^1 2y * y^2/2 dy = 1/4; E[B - A] = 2/3 - 1/2
    assert gain == pytest.approx(0.25, abs=1e-8)
    assert gain - loss == pytest.approx(2 / 3 - 1 / 2, abs=1e-8)


def test_normal_chance_and_risk_against_monte_carlo() -> None:
    rng = np.random.default_rng(RNG_SEED + 4)
    mu, var = 0.03, 0.02**2
    x = rng.normal(mu, math.sqrt(var), 2_000_000)
    assert float(normal_chance_to_win(mu, var)) == pytest.approx((x > 0).mean(), abs=1e-3)
    keep, ship = normal_risks(mu, var)
    assert float(keep) == pytest.approx(np.maximum(x, 0).mean(), rel=5e-3)
    assert float(ship) == pytest.approx(np.maximum(-x, 0).mean(), rel=2e-2)


def test_lower_is_better_flips_chance_and_verdict() -> None:
    a = mean_stats(np.full(500, 100.0) + np.arange(500) % 7)
    b = mean_stats(np.full(500, 90.0) + np.arange(500) % 7)
    stats = {"a": {"lat": a}, "b": {"lat": b}}
    low = one(stats, MetricSpec("lat", "mean", direction="lower"), rule="frequentist")
    high = one(stats, MetricSpec("lat", "mean", direction="higher"), rule="frequentist")
    assert low.verdict == "better" and high.verdict == "worse"
    assert low.bayesian.chance_to_win == pytest.approx(1 - high.bayesian.chance_to_win)
    assert low.bayesian.risk_treatment == pytest.approx(high.bayesian.risk_control)
