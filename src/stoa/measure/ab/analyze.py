"""The entry points: an experiment's statistics (or a table of units) in, a report out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from stoa.core.errors import InvalidInputError
from stoa.measure.ab.compare import compare
from stoa.measure.ab.decide import Plan, decide_overall, decide_treatment, verdict
from stoa.measure.ab.frequentist import holm
from stoa.measure.ab.power import RULES
from stoa.measure.ab.report import Comparison, ExperimentReport, VariantUnits
from stoa.measure.ab.sequential import DEFAULT_TUNING
from stoa.measure.ab.spec import MetricSpec
from stoa.measure.ab.srm import check_srm
from stoa.measure.ab.stats import Stats
from stoa.measure.ab.summarize import summarize

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_UNITS = 100
DEFAULT_MDE = 0.05
DEFAULT_POWER = 0.8


def analyze(
    stats: Mapping[str, Mapping[str, Stats]],
    *,
    metrics: Sequence[MetricSpec],
    control: str,
    weights: Mapping[str, float] | None = None,
    units: Mapping[str, int] | None = None,
    rule: str = "sequential",
    alpha: float = DEFAULT_ALPHA,
    min_units: int = DEFAULT_MIN_UNITS,
    mde: float = DEFAULT_MDE,
    power: float = DEFAULT_POWER,
    tuning: float = DEFAULT_TUNING,
    beta_exact: bool = True,
) -> ExperimentReport:
    """Compare every treatment with ``control`` on every metric and decide.

    ``stats`` is ``{variant: {metric: Stats}}``. ``units`` are the variants' unit
    counts for the sample-ratio check and the traffic shares (default: the largest
    ``n`` over the variant's metrics). Without ``weights`` there is no SRM check and
    future traffic is assumed to split as it did so far. ``alpha`` is split over goal
    metrics x treatments (docs/experiments.md, "Several metrics and variants").
    """
    _check_options(rule, alpha, min_units, mde, power, tuning)
    specs = _check_metrics(metrics)
    variants = _check_stats(stats, specs, control)
    unit_counts = _unit_counts(stats, variants, units)
    w = _check_weights(weights, variants) if weights is not None else None
    srm = check_srm(unit_counts, w) if w is not None else None

    treatments = [v for v in variants if v != control]
    goals = [s for s in specs if s.role == "goal"]
    m = len(goals) * len(treatments)
    alpha_goal = alpha / m
    comparisons: list[Comparison] = []
    for v in treatments:
        for s in specs:
            used = alpha_goal if s.role == "goal" else alpha
            comparisons.append(
                compare(
                    s,
                    control,
                    stats[control][s.name],
                    v,
                    stats[v][s.name],
                    rule=rule,
                    alpha=alpha,
                    alpha_used=used,
                    tuning=tuning,
                    beta_exact=beta_exact,
                )
            )
    comparisons = _adjust(comparisons, rule, alpha)

    total = int(sum(unit_counts.values()))
    if w is not None and sum(w.values()) > 0:
        shares = {v: w[v] / sum(w.values()) for v in variants}
    else:
        shares = {v: unit_counts[v] / total if total else 1 / len(variants) for v in variants}
    shares = {v: max(s, 1e-9) for v, s in shares.items()}
    plan = Plan(rule, alpha_goal, power, mde, min_units, tuning, shares, total)
    decisions = [
        decide_treatment(
            v,
            control,
            [c for c in comparisons if c.variant == v and c.role == "goal"],
            [c for c in comparisons if c.variant == v and c.role == "guardrail"],
            stats,
            srm,
            plan,
        )
        for v in treatments
    ]
    overall = decide_overall(control, decisions, comparisons, srm)
    return ExperimentReport(
        control=control,
        rule=rule,
        alpha=alpha,
        correction=_correction_text(rule, alpha, m, len(goals), len(treatments)),
        variants=[VariantUnits(v, unit_counts[v], None if w is None else w[v]) for v in variants],
        srm=srm,
        comparisons=comparisons,
        decisions=decisions,
        decision=overall,
        settings={
            "rule": rule,
            "alpha": alpha,
            "alpha_per_goal": alpha_goal,
            "min_units": min_units,
            "mde": mde,
            "power": power,
            "tuning": tuning,
            "beta_exact": beta_exact,
            "metrics": [s.to_dict() for s in specs],
        },
    )


def analyze_frame(
    frame: pd.DataFrame,
    variant_col: str,
    metrics: Sequence[MetricSpec],
    *,
    weights: Mapping[str, float] | None = None,
    control: str | None = None,
    **options: Any,
) -> ExperimentReport:
    """:func:`analyze` on a table with one row per unit.

    The control defaults to the first variant in ``weights``, else a variant named
    ``control``, else the first variant in sorted order. Each variant's unit count
    (for the SRM check) is its number of rows.
    """
    stats = summarize(frame, variant_col, metrics)
    rows = frame[variant_col].astype(str).value_counts()
    present = list(stats)
    if weights is not None:
        missing = [str(v) for v in weights if str(v) not in stats]
        if missing:
            raise InvalidInputError(
                f"variant(s) {', '.join(missing)} have weights but no rows in column "
                f"{variant_col!r} (variants found: {', '.join(present)})",
                field="weights",
                fix="check the variant column, or leave those variants out of the weights",
            )
    if control is None:
        if weights:
            control = str(next(iter(weights)))
        elif "control" in stats:
            control = "control"
        else:
            control = present[0]
    units = {v: int(rows.get(v, 0)) for v in present}
    return analyze(stats, metrics=metrics, control=control, weights=weights, units=units, **options)


def _adjust(comparisons: list[Comparison], rule: str, alpha: float) -> list[Comparison]:
    """Holm-adjust the goal comparisons' p-values, then read each verdict."""
    goal_idx = [i for i, c in enumerate(comparisons) if c.role == "goal" and c.frequentist]
    if goal_idx:
        fp = holm([comparisons[i].frequentist.p_value for i in goal_idx])  # type: ignore[union-attr]
        sp = holm([comparisons[i].sequential.p_value for i in goal_idx])  # type: ignore[union-attr]
        for i, f, s in zip(goal_idx, fp, sp, strict=True):
            c = comparisons[i]
            comparisons[i] = replace(
                c,
                frequentist=replace(c.frequentist, p_value_adjusted=float(f)),  # type: ignore[arg-type]
                sequential=replace(c.sequential, p_value_adjusted=float(s)),  # type: ignore[arg-type]
            )
    return [replace(c, verdict=verdict(c, rule, alpha)) for c in comparisons]


def _correction_text(rule: str, alpha: float, m: int, goals: int, arms: int) -> str:
    family = f"{goals} goal metric(s) x {arms} treatment(s) = {m} comparison(s)"
    if m == 1:
        return f"none needed: {family}; guardrails at alpha {alpha:g}"
    if rule == "frequentist":
        how = f"Holm-adjusted p-values at alpha {alpha:g}; intervals at alpha/{m} (Bonferroni)"
    elif rule == "sequential":
        how = f"confidence sequences at alpha/{m} = {alpha / m:.3g} each (Bonferroni)"
    else:
        how = f"chance to win needs >= 1 - alpha/{m} = {1 - alpha / m:.4g} (Bonferroni)"
    return f"{how} over {family}; guardrails unadjusted at alpha {alpha:g}"


# -- validation -----------------------------------------------------------------------


def _check_options(
    rule: str, alpha: float, min_units: int, mde: float, power: float, tuning: float
) -> None:
    if rule not in RULES:
        raise InvalidInputError(
            f"unknown decision rule {rule!r}", field="rule", fix=f"use one of {', '.join(RULES)}"
        )
    for name, value, lo, hi, fix in (
        ("alpha", alpha, 0.0, 0.5, "use a level such as 0.05"),
        ("power", power, 0.0, 1.0, "use a probability such as 0.8"),
    ):
        if not isinstance(value, int | float) or not lo < value < hi:
            raise InvalidInputError(
                f"{name} must lie strictly between {lo:g} and {hi:g}, got {value!r}",
                field=name,
                fix=fix,
            )
    if not isinstance(mde, int | float) or not (math.isfinite(mde) and mde > 0):
        raise InvalidInputError(
            f"mde must be a relative lift > 0, got {mde!r}",
            field="mde",
            fix="use e.g. 0.05 for a 5% relative change",
        )
    if not isinstance(min_units, int | np.integer) or min_units < 0:
        raise InvalidInputError(
            f"min_units must be a whole number >= 0, got {min_units!r}",
            field="min_units",
            fix="use e.g. 100 units per arm",
        )
    if not isinstance(tuning, int | float) or not (math.isfinite(tuning) and tuning > 0):
        raise InvalidInputError(
            f"tuning must be a positive number of units, got {tuning!r}",
            field="tuning",
            fix="use the total sample size you expect, e.g. 5000",
        )


def _check_metrics(metrics: Sequence[MetricSpec]) -> list[MetricSpec]:
    specs = list(metrics or [])
    if not specs:
        raise InvalidInputError("no metrics given", field="metrics", fix="pass at least one metric")
    for s in specs:
        if not isinstance(s, MetricSpec):
            raise InvalidInputError(
                f"expected a MetricSpec, got {type(s).__name__}",
                field="metrics",
                fix="build metrics with MetricSpec(name, kind, ...)",
            )
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(
            f"metric(s) named twice: {', '.join(dupes)}",
            field="metrics",
            fix="give each metric a unique name",
        )
    if not any(s.role == "goal" for s in specs):
        raise InvalidInputError(
            "every metric is a guardrail; a decision needs at least one goal metric",
            field="metrics",
            fix="mark the metric you want to improve with role='goal'",
        )
    return specs


def _check_stats(
    stats: Mapping[str, Mapping[str, Stats]], specs: Sequence[MetricSpec], control: str
) -> list[str]:
    if not isinstance(stats, Mapping) or len(stats) < 2:
        count = len(stats) if isinstance(stats, Mapping) else 0
        raise InvalidInputError(
            f"an experiment needs at least two variants, got {count}",
            field="variants",
            fix="pass statistics for the control and at least one treatment",
        )
    variants = [str(v) for v in stats]
    if control not in stats:
        raise InvalidInputError(
            f"unknown control variant {control!r} (variants: {', '.join(variants)})",
            field="control",
            fix="name one of the variants as the control",
        )
    for v in variants:
        for s in specs:
            got = stats[v].get(s.name)
            if got is None:
                raise InvalidInputError(
                    f"variant {v!r} has no statistics for metric {s.name!r}",
                    field=f"stats.{v}.{s.name}",
                    fix="pass every metric for every variant",
                )
            if getattr(got, "kind", None) != s.kind:
                raise InvalidInputError(
                    f"metric {s.name!r} is a {s.kind} but variant {v!r} has "
                    f"{getattr(got, 'kind', type(got).__name__)} statistics",
                    field=f"stats.{v}.{s.name}",
                    fix="build the statistics with the metric's kind",
                )
            if got.n == 0:
                raise InvalidInputError(
                    f"variant {v!r} has no units for metric {s.name!r}",
                    field=f"stats.{v}.{s.name}",
                    fix="wait for traffic on every arm, or leave the empty variant out",
                )
    return [control, *(v for v in variants if v != control)]


def _unit_counts(
    stats: Mapping[str, Mapping[str, Stats]], variants: list[str], units: Mapping[str, int] | None
) -> dict[str, int]:
    if units is None:
        return {v: max(s.n for s in stats[v].values()) for v in variants}
    missing = [v for v in variants if v not in units]
    if missing:
        raise InvalidInputError(
            f"no unit count for variant(s) {', '.join(missing)}",
            field="units",
            fix="give a unit count for every variant",
        )
    return {v: int(units[v]) for v in variants}


def _check_weights(weights: Mapping[str, float], variants: list[str]) -> dict[str, float]:
    keys = [str(k) for k in weights]
    unknown = [k for k in keys if k not in variants]
    missing = [v for v in variants if v not in keys]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown variant(s) {', '.join(unknown)}")
        if missing:
            parts.append(f"no weight for {', '.join(missing)}")
        raise InvalidInputError(
            f"weights do not match the variants ({'; '.join(parts)}; "
            f"variants: {', '.join(variants)})",
            field="weights",
            fix="give one weight per variant, e.g. " + ",".join(f"{v}=50" for v in variants),
        )
    out: dict[str, float] = {}
    for k, value in weights.items():
        ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or float(value) < 0:
            raise InvalidInputError(
                f"weight of {k!r} must be a number >= 0, got {value!r}",
                field="weights",
                fix="use traffic percentages or shares, e.g. a=50,b=50",
            )
        out[str(k)] = float(value)
    if sum(out.values()) <= 0:
        raise InvalidInputError(
            "weights sum to 0", field="weights", fix="give at least one variant a positive weight"
        )
    return out
