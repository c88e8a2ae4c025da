"""From comparisons to a decision: ship, keep, keep running, or invalid.

Goal metrics decide; guardrails can only veto. A treatment ships when at least one
goal metric is better under the rule, none is worse, and no guardrail is worse; it
is dropped ("keep A") when a goal metric is worse or a guardrail is harmed; otherwise
the experiment keeps running, and the report says about how many more units the rule
needs to see the effect with the configured power.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stoa.measure.ab.compare import MIN_EVENTS, good_sign
from stoa.measure.ab.power import relative_unit_variance, required_units
from stoa.measure.ab.report import Comparison, Decision
from stoa.measure.ab.srm import SrmCheck
from stoa.measure.ab.stats import ProportionStats, Stats

#: When more than this many times the units already seen would be needed, say so
#: rather than print an estimate nobody will wait for.
MAX_GROWTH = 100


@dataclass(frozen=True)
class Plan:
    """What the power computation needs to know about the experiment."""

    rule: str
    alpha_goal: float
    power: float
    mde: float
    min_units: int
    tuning: float
    shares: Mapping[str, float]  # each variant's share of future traffic
    total_units: int


def verdict(c: Comparison, rule: str, alpha: float) -> str:
    """better / worse / inconclusive for the treatment, in the metric's direction."""
    if c.verdict == "untestable" or c.sequential is None:
        return c.verdict
    sign = good_sign(c.direction)
    if rule == "bayesian":
        assert c.bayesian is not None
        chance = c.bayesian.chance_to_win
        if chance >= 1 - c.alpha:
            return "better"
        return "worse" if chance <= c.alpha else "inconclusive"
    if rule == "frequentist":
        assert c.frequentist is not None
        p = c.frequentist.p_value_adjusted
        p = c.frequentist.p_value if p is None else p
        significant = p < alpha
    else:
        significant = c.relative_lift.excludes_zero()
    if not significant:
        return "inconclusive"
    return "better" if sign * c.relative_lift.estimate > 0 else "worse"


def pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.1f}%" if abs(x) >= 0.001 else f"{x * 100:+.2f}%"


def evidence(c: Comparison, rule: str) -> str:
    """'ctr +8.1% [+2.0%, +14.3%]' plus the rule's own figure."""
    r = c.relative_lift
    text = f"{c.metric} {pct(r.estimate)} [{pct(r.ci_low)}, {pct(r.ci_high)}]"
    if rule == "bayesian" and c.bayesian is not None:
        return f"{text} (chance to win {c.bayesian.chance_to_win * 100:.1f}%)"
    if rule == "frequentist" and c.frequentist is not None:
        p = c.frequentist.p_value_adjusted
        p = c.frequentist.p_value if p is None else p
        return f"{text} (p = {p:.2g})"
    return text


def _round2(n: float) -> int:
    """Two significant figures: 'about' means about."""
    if n < 100:
        return max(1, math.ceil(n))
    digits = math.floor(math.log10(n)) - 1
    return int(math.ceil(n / 10**digits) * 10**digits)


def more_units_needed(
    goals: Sequence[Comparison], stats: Mapping[str, Mapping[str, Stats]], plan: Plan
) -> tuple[float, str]:
    """Units still needed (all arms together) before the rule can decide, and why.

    Two needs: the minimum per arm, and 80% power (by default) for the larger of the
    observed lift and the minimum detectable effect, on whichever goal metric is
    cheapest to settle. ``inf`` when no goal is testable.
    """
    total = plan.total_units
    best, why = math.inf, "no goal metric can be tested yet"
    for c in goals:
        a = stats[c.control.variant][c.metric]
        b = stats[c.variant][c.metric]
        sa, sb = plan.shares[c.control.variant], plan.shares[c.variant]
        need_min = max(plan.min_units / sa, plan.min_units / sb)
        if c.verdict == "untestable":
            need = max(need_min, _units_for_events(a, b, sa, sb))
            text = f"{c.metric} cannot be tested yet ({c.note})"
        else:
            observed = c.relative_lift.estimate
            effect = max(abs(observed), plan.mde)
            unit_var = relative_unit_variance(a.mean, a.variance, sa, b.variance, sb, effect)
            t = required_units(
                effect,
                unit_var,
                rule=plan.rule,
                alpha=plan.alpha_goal,
                power=plan.power,
                pair_share=sa + sb,
                tuning=plan.tuning,
            )
            source = "the observed lift" if abs(observed) >= plan.mde else "the MDE"
            need = max(t, need_min)
            text = (
                f"{plan.power:.0%} power to detect a {pct(effect).lstrip('+')} change in "
                f"{c.metric} ({source}) needs about {_round2(need):,} units in all"
            )
        if need < best:
            best, why = need, text
    return best - total, why


def _units_for_events(a: Stats, b: Stats, sa: float, sb: float) -> float:
    """Total units at which each arm of a proportion expects MIN_EVENTS successes and
    MIN_EVENTS failures at its own rate so far (0 for other kinds of metric)."""
    if not (isinstance(a, ProportionStats) and isinstance(b, ProportionStats)):
        return 0.0
    need = 0.0
    for arm, share in ((a, sa), (b, sb)):
        rate = (arm.successes + 0.5) / (arm.n + 1)  # never 0: half an event so far
        need = max(need, MIN_EVENTS / min(rate, 1.0 - rate) / share)
    return need


def decide_treatment(
    variant: str,
    control: str,
    goals: Sequence[Comparison],
    guardrails: Sequence[Comparison],
    stats: Mapping[str, Mapping[str, Stats]],
    srm: SrmCheck | None,
    plan: Plan,
) -> Decision:
    """The decision for one treatment against the control."""
    if srm is not None and srm.flagged:
        return invalid_srm(srm, variant)
    rule = plan.rule
    lacking = [
        (arm.variant, arm.n)
        for c in (*goals, *guardrails)
        for arm in (c.control, c.treatment)
        if arm.n < plan.min_units
    ]
    if lacking:
        name, n = min(lacking, key=lambda x: x[1])
        more, why = more_units_needed(goals, stats, plan)
        text = (
            f"{name} has {n:,} units on some metric; at least {plan.min_units:,} per arm are "
            f"needed before any decision"
        )
        return _continue(variant, max(more, 1.0), f"{text}; {why}", plan.total_units)
    worse = [c for c in goals if c.verdict == "worse"]
    better = [c for c in goals if c.verdict == "better"]
    harmed = [c for c in guardrails if c.verdict == "worse"]
    if worse:
        listed = "; ".join(evidence(c, rule) for c in worse)
        return Decision(
            variant,
            "keep",
            f"keep {control}",
            f"{variant} is significantly worse than {control} on {listed} "
            f"({_rule_words(worse[0], rule)})",
        )
    if harmed:
        listed = "; ".join(
            f"guardrail {evidence(c, rule)}"
            + (" (lower is better)" if c.direction == "lower" else "")
            for c in harmed
        )
        wins = "; ".join(evidence(c, rule) for c in better)
        lead = f"{variant} harms {listed}"
        if better:
            lead = f"{variant} wins on {wins}, but harms {listed}"
        return Decision(
            variant,
            "keep",
            f"keep {control}",
            f"{lead} ({_rule_words(harmed[0], rule)}); not recommended",
        )
    if better:
        wins = "; ".join(evidence(c, rule) for c in better)
        names = ", ".join(c.metric for c in guardrails)
        guards = f"; no guardrail harmed ({names})" if guardrails else ""
        return Decision(
            variant,
            "ship",
            f"ship {variant}",
            f"{variant} beats {control} on {wins} ({_rule_words(better[0], rule)}); "
            f"no goal metric worse{guards}",
        )
    more, why = more_units_needed(goals, stats, plan)
    shown = "; ".join(evidence(c, rule) for c in goals if c.verdict != "untestable")
    lead = f"no goal metric differs yet ({shown})" if shown else "no goal metric can be tested yet"
    return _continue(variant, more, f"{lead}; {why}", plan.total_units)


def _rule_words(c: Comparison, rule: str) -> str:
    level = f"{(1 - c.alpha) * 100:.4g}%"
    if rule == "sequential":
        return f"always-valid {level} confidence sequence"
    if rule == "frequentist":
        return f"fixed-horizon test at alpha {c.alpha:.3g}" + (
            ", Holm-adjusted" if c.role == "goal" else ""
        )
    return f"Bayesian, decided at chance to win {level}"


def _continue(variant: str | None, more: float, why: str, total: int) -> Decision:
    cap = MAX_GROWTH * max(total, 1)
    if not math.isfinite(more) or more > cap:
        return Decision(
            variant,
            "continue",
            f"keep running (needs more than {_round2(cap):,} more units)",
            f"{why}: over {MAX_GROWTH}x the {total:,} units so far; the difference may be too "
            "small to matter, consider stopping",
            None,
        )
    more_i = _round2(max(more, 1.0))
    return Decision(
        variant, "continue", f"keep running (needs about {more_i:,} more units)", why, more_i
    )


def invalid_srm(srm: SrmCheck, variant: str | None) -> Decision:
    observed = ", ".join(f"{k} {v:,}" for k, v in srm.observed.items())
    expected = ", ".join(f"{k} {v:,.0f}" for k, v in srm.expected.items())
    return Decision(
        variant,
        "invalid",
        "invalid: SRM",
        f"sample-ratio mismatch: units {observed} against expected {expected} "
        f"(chi-squared p = {srm.p_value:.2g} < {srm.threshold}); assignment or logging is "
        "broken, so no result can be trusted until it is fixed",
    )


def decide_overall(
    control: str,
    decisions: Sequence[Decision],
    comparisons: Sequence[Comparison],
    srm: SrmCheck | None,
) -> Decision:
    """One decision for the experiment: the best shippable treatment, else keep running
    while any treatment is undecided, else keep the control."""
    if srm is not None and srm.flagged:
        return invalid_srm(srm, None)
    ships = [d for d in decisions if d.action == "ship"]
    if ships:
        lead = next(c.metric for c in comparisons if c.role == "goal")

        def score(d: Decision) -> float:
            c = next(c for c in comparisons if c.variant == d.variant and c.metric == lead)
            return good_sign(c.direction) * c.relative_lift.estimate

        best = max(ships, key=score)
        others = [d.variant for d in ships if d is not best]
        also = (
            f"; {', '.join(str(v) for v in others)} also beat {control}, by less on {lead}"
            if others
            else ""
        )
        return Decision(best.variant, "ship", best.label, best.reason + also)
    running = [d for d in decisions if d.action == "continue"]
    if running:
        worst = max(running, key=lambda d: math.inf if d.more_units is None else d.more_units)
        return Decision(None, "continue", worst.label, _joined(decisions), worst.more_units)
    return Decision(None, "keep", f"keep {control}", _joined(decisions))


def _joined(decisions: Sequence[Decision]) -> str:
    if len(decisions) == 1:
        return decisions[0].reason
    return "; ".join(f"{d.variant}: {d.label} ({d.reason})" for d in decisions)
