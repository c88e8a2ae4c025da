"""One treatment against the control on one metric, by every method at once.

The decision rule picks one reading later (``decide.py``); the others stay in the
report so a reader can see, say, the Bayesian chance to win beside the sequential
interval that decided.
"""

from __future__ import annotations

import math

from scipy import special

from stoa.measure.ab.bayesian import beta_compare, normal_chance_to_win, normal_risks
from stoa.measure.ab.effects import absolute_lift, relative_lift, welch_dof
from stoa.measure.ab.frequentist import t_test, z_test
from stoa.measure.ab.report import Arm, Bayesian, Comparison, Frequentist, Interval, Sequential
from stoa.measure.ab.sequential import DEFAULT_TUNING, always_valid_p, cs_halfwidth
from stoa.measure.ab.spec import MetricSpec
from stoa.measure.ab.stats import ProportionStats, Stats


def arm_interval(stats: Stats, alpha: float) -> Interval:
    """The arm's own estimate: Wilson's interval for a proportion (sound near 0 and 1
    and at small n), Student's t for a mean, the normal one for a ratio."""
    level = 1.0 - alpha
    n, est = stats.n, stats.mean
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, level)
    if isinstance(stats, ProportionStats):
        z = float(-special.ndtri(alpha / 2))
        centre = (est + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(est * (1 - est) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return Interval(est, centre - half, centre + half, level)
    if n < 2 or not math.isfinite(stats.variance):
        return Interval(est, math.nan, math.nan, level)
    if stats.kind == "mean":
        q = float(special.stdtrit(n - 1, 1 - alpha / 2))
    else:
        q = float(-special.ndtri(alpha / 2))
    half = q * math.sqrt(stats.variance / n)
    return Interval(est, est - half, est + half, level)


def _interval(estimate: float, half: float, level: float) -> Interval:
    return Interval(estimate, estimate - half, estimate + half, level)


#: Successes and failures each arm of a proportion needs before it is tested: the usual
#: np >= 10 condition for the normal approximation, without which A/A tests of rare
#: events peeked from small arms flag more often than alpha.
MIN_EVENTS = 10


def untestable_reason(a: Stats, b: Stats) -> str | None:
    """Why no test can run on this pair, or None."""
    if a.n < 2 or b.n < 2:
        return "each arm needs at least 2 units"
    if isinstance(a, ProportionStats) and isinstance(b, ProportionStats):
        events = min(a.successes, a.n - a.successes, b.successes, b.n - b.successes)
        if events < MIN_EVENTS:
            return f"each arm needs at least {MIN_EVENTS} successes and {MIN_EVENTS} failures"
    if a.mean == 0 or not math.isfinite(a.mean):
        return "the control's value is 0, so a relative lift is undefined"
    if not (a.variance > 0 or b.variance > 0):
        return "every unit has the same value in both arms (zero variance)"
    return None


def compare(
    spec: MetricSpec,
    control: str,
    a: Stats,
    variant: str,
    b: Stats,
    *,
    rule: str,
    alpha: float,
    alpha_used: float,
    tuning: float = DEFAULT_TUNING,
    beta_exact: bool = True,
) -> Comparison:
    """Every method's reading of ``variant`` against ``control`` on ``spec``.

    ``alpha`` is the nominal level (reported intervals, per-arm intervals);
    ``alpha_used`` the level the decision rule applies to this comparison (alpha split
    across goal comparisons, alpha itself for a guardrail). The verdict is left
    ``inconclusive`` here: it depends on the whole family (Holm), see ``decide.py``.
    """
    level = 1.0 - alpha
    arm_a = Arm(control, a.n, arm_interval(a, alpha))
    arm_b = Arm(variant, b.n, arm_interval(b, alpha))
    abs_lift = b.mean - a.mean
    rel_lift = abs_lift / a.mean if a.mean else math.nan
    why = untestable_reason(a, b)
    if why is not None:
        nan = math.nan
        return Comparison(
            variant,
            spec.name,
            spec.kind,
            spec.role,
            spec.direction,
            arm_a,
            arm_b,
            Interval(abs_lift, nan, nan, level),
            Interval(rel_lift, nan, nan, level),
            None,
            None,
            None,
            "untestable",
            alpha_used,
            why,
        )
    va, vb = a.variance, b.variance
    d_abs, v_abs = (float(x) for x in absolute_lift(a.mean, va, a.n, b.mean, vb, b.n))
    d_rel, v_rel = (float(x) for x in relative_lift(a.mean, va, a.n, b.mean, vb, b.n))
    dof = float(welch_dof(va, a.n, vb, b.n))

    # Fixed horizon, at the nominal level (the numbers gbstats reports).
    p_rel, h_rel = t_test(d_rel, v_rel, dof, alpha)
    if spec.kind == "proportion":
        p_abs, h_abs = z_test(d_abs, v_abs, alpha)
        abs_test = "z"
    else:
        p_abs, h_abs = t_test(d_abs, v_abs, dof, alpha)
        abs_test = "welch_t"
    freq = Frequentist(
        float(p_rel),
        float(p_abs),
        None,
        _interval(d_rel, float(h_rel), level),
        _interval(d_abs, float(h_abs), level),
        dof,
        abs_test,
    )

    # Always valid, at the level the rule uses for this comparison.
    n_pair = a.n + b.n
    cs_rel = float(cs_halfwidth(v_rel, n_pair, alpha_used, tuning))
    cs_abs = float(cs_halfwidth(v_abs, n_pair, alpha_used, tuning))
    seq = Sequential(
        float(always_valid_p(d_rel, v_rel, n_pair, alpha, tuning)),
        None,
        _interval(d_rel, cs_rel, 1 - alpha_used),
        _interval(d_abs, cs_abs, 1 - alpha_used),
        alpha_used,
        tuning,
    )

    bayes = _bayesian(spec, a, b, d_rel, v_rel, alpha, beta_exact)

    if rule == "sequential":
        rel_i, abs_i = seq.relative, seq.absolute
    elif rule == "frequentist":
        _, h_rel_u = t_test(d_rel, v_rel, dof, alpha_used)
        if spec.kind == "proportion":
            _, h_abs_u = z_test(d_abs, v_abs, alpha_used)
        else:
            _, h_abs_u = t_test(d_abs, v_abs, dof, alpha_used)
        rel_i = _interval(d_rel, float(h_rel_u), 1 - alpha_used)
        abs_i = _interval(d_abs, float(h_abs_u), 1 - alpha_used)
    else:  # a two-sided 1 - 2*alpha credible interval excludes 0 as chance crosses 1 - alpha
        z = float(-special.ndtri(alpha_used))
        rel_i = _interval(d_rel, z * math.sqrt(v_rel), 1 - 2 * alpha_used)
        abs_i = _interval(d_abs, z * math.sqrt(v_abs), 1 - 2 * alpha_used)
    return Comparison(
        variant,
        spec.name,
        spec.kind,
        spec.role,
        spec.direction,
        arm_a,
        arm_b,
        abs_i,
        rel_i,
        freq,
        seq,
        bayes,
        "inconclusive",
        alpha_used,
    )


def _bayesian(
    spec: MetricSpec, a: Stats, b: Stats, d_rel: float, v_rel: float, alpha: float, beta_exact: bool
) -> Bayesian:
    z = float(-special.ndtri(alpha / 2))
    credible = _interval(d_rel, z * math.sqrt(v_rel), 1 - alpha)
    if beta_exact and isinstance(a, ProportionStats) and isinstance(b, ProportionStats):
        up, gain, loss = beta_compare(a.n, a.successes, b.n, b.successes)
        gain, loss = gain / a.mean, loss / a.mean  # absolute rate units -> relative lift
        model = "beta"
    else:
        up = float(normal_chance_to_win(d_rel, v_rel))
        g, lo = normal_risks(d_rel, v_rel)
        gain, loss = float(g), float(lo)
        model = "normal"
    if spec.higher_is_better:
        return Bayesian(up, loss, gain, credible, model)
    return Bayesian(1.0 - up, gain, loss, credible, model)


def good_sign(spec_direction: str) -> float:
    """+1 when higher is better, -1 when lower is."""
    return 1.0 if spec_direction == "higher" else -1.0
