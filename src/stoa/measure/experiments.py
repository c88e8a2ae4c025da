"""A/B decisions for an endpoint, from nothing but its logbook and feedback.

The analysis runs on one endpoint config version at a time by default (the current
one): within it the split and the weights are fixed, so a unit belongs to one variant
and the sample-ratio check has a well-defined expectation. The goal metrics are the
ones named, else the built-in business metrics that have feedback; the guardrails
(latency p95, error rate, cost per 1,000) are always checked. Each metric is per unit
(docs/experiments.md, "From the logbook"), so users with many requests are not counted
as many independent samples.

``promote`` moves all live traffic to the winner as the endpoint's next config and
records the report's decision as its note; it refuses a variant the report does not
recommend unless forced, with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from stoa.core.db import Database
from stoa.core.errors import ConflictError, InvalidInputError
from stoa.measure.ab import MetricSpec as AbMetric
from stoa.measure.ab import analyze
from stoa.measure.ab.summarize import summarize
from stoa.measure.definitions import BUILTINS, GUARDRAILS, MetricSpec, MetricStore
from stoa.measure.outcomes import UnitOutcomes, load_feedback, load_predictions, unit_outcomes

#: Goal metrics tried, in this order, when none is named: those with feedback are used.
DEFAULT_GOALS = ("ctr", "conversion_rate", "csat", "thumbs_up_rate")


def endpoint_report(
    db: Database,
    endpoint_info: Any,
    *,
    metrics: Sequence[str] | None = None,
    guardrails: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    config_version: int | None = None,
    control: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The A/B report of an endpoint (``EndpointInfo``) on its live variants."""
    version = config_version or endpoint_info.version
    config = _config(endpoint_info, version)
    live = [v for v in config.variants if v.mode == "live"]
    if len(live) < 2:
        raise InvalidInputError(
            f"config v{version} of {endpoint_info.name!r} has {len(live)} live variant(s); "
            "an experiment compares at least two",
            field="config_version",
            fix="pick a config version with two or more live variants",
        )
    weights = {v.name: v.weight for v in live}
    control = control or live[0].name
    if control not in weights:
        raise InvalidInputError(
            f"no live variant named {control!r}",
            field="control",
            fix=f"the live variants are {', '.join(weights)}",
        )
    store = MetricStore(db)
    specs = [store.get(m) for m in metrics] if metrics else None
    rails = [store.get(m) for m in (guardrails if guardrails is not None else GUARDRAILS)]
    predictions = load_predictions(
        db, endpoint_info.name, since=since, until=until, config_version=version
    )
    if predictions.empty:
        raise InvalidInputError(
            f"no live predictions of {endpoint_info.name!r} under config v{version} in the "
            "analysed period",
            field="since",
            fix="widen --since, pick another --config-version, or send traffic first",
        )
    candidates = specs if specs is not None else [BUILTINS[name] for name in DEFAULT_GOALS]
    kinds = set().union(*(m.feedback_kinds for m in [*candidates, *rails]))
    feedback = load_feedback(db, endpoint_info.name, kinds, since=since)
    if specs is None:
        specs = _goals_with_feedback(endpoint_info.name, candidates, set(feedback["kind"]))
    outcomes = unit_outcomes(predictions, feedback, [*specs, *rails])
    frame = outcomes.frame[outcomes.frame["variant"].isin(list(weights))]
    stats, engine_specs = _statistics(frame, outcomes, specs, rails, control)
    units = {v: int((frame["variant"] == v).sum()) for v in weights}
    missing = [v for v, n in units.items() if n == 0]
    if missing:
        raise InvalidInputError(
            f"variant(s) {', '.join(missing)} have no predictions in the analysed period",
            field="since",
            fix="wait for traffic, or widen --since",
        )
    report = analyze(
        stats, metrics=engine_specs, control=control, weights=weights, units=units, **options
    )
    return {
        "endpoint": endpoint_info.name,
        "config_version": version,
        "period": {"first": outcomes.first_ts, "last": outcomes.last_ts},
        "predictions": int(frame["predictions"].sum()),
        "metrics": {m.name: m.model_dump(exclude_defaults=True) for m in [*specs, *rails]},
        **report.to_dict(),
    }


def _config(info: Any, version: int) -> Any:
    if version == info.version:
        return info
    for config in info.history:
        if config.version == version:
            return config
    raise InvalidInputError(
        f"endpoint {info.name!r} has no config v{version}",
        field="config_version",
        fix=f"its configs run from 1 to {info.version}",
    )


def _goals_with_feedback(
    endpoint: str, candidates: list[MetricSpec], present: set[str]
) -> list[MetricSpec]:
    goals = [m for m in candidates if m.feedback_kinds <= present]
    if not goals:
        raise InvalidInputError(
            f"endpoint {endpoint!r} has no clicks, conversions, ratings or thumbs yet",
            field="metrics",
            fix="send feedback to /v1/feedback, or name a metric with --metric",
        )
    return goals


def _statistics(
    frame: pd.DataFrame,
    outcomes: UnitOutcomes,
    goals: list[MetricSpec],
    rails: list[MetricSpec],
    control: str,
) -> tuple[dict[str, dict[str, Any]], list[AbMetric]]:
    """Per variant and metric, the engine's sufficient statistics: a proportion or a
    mean when every unit has one observation, else a ratio of per-unit sums."""
    stats: dict[str, dict[str, Any]] = {str(v): {} for v in frame["variant"].unique()}
    engine: list[AbMetric] = []
    for spec, role in [*((g, "goal") for g in goals), *((r, "guardrail") for r in rails)]:
        num, den = frame[f"{spec.name}__num"], frame[f"{spec.name}__den"]
        kind = spec.kind
        if spec.quantile is not None:
            num = _above_control_quantile(frame, outcomes, spec, control)
            kind = "proportion"
        has = den > 0
        table = pd.DataFrame({"variant": frame["variant"][has], "num": num[has], "den": den[has]})
        if table.empty:
            raise InvalidInputError(
                f"metric {spec.name!r} has no observations in the analysed period",
                field="metrics",
                fix="choose another metric or period",
            )
        single = bool((table["den"] == 1).all())
        binary = bool(table["num"].isin((0, 1)).all())
        if single and binary and kind == "proportion":
            metric = AbMetric(spec.name, "proportion", spec.direction, role, column="num")
        elif single:
            metric = AbMetric(spec.name, "mean", spec.direction, role, column="num")
        else:
            metric = AbMetric(spec.name, "ratio", spec.direction, role,
                              numerator="num", denominator="den")  # fmt: skip
        for variant, per_metric in summarize(table, "variant", [metric]).items():
            stats.setdefault(str(variant), {}).update(per_metric)
        engine.append(metric)
    return stats, engine


def _above_control_quantile(
    frame: pd.DataFrame, outcomes: UnitOutcomes, spec: MetricSpec, control: str
) -> pd.Series:
    """Per unit, how many of its predictions were beyond the control's percentile: a
    percentile is compared as the share of each variant's requests above the
    control's, which is the percentile's own share in the control (docs/experiments.md)."""
    values = outcomes.quantiles[spec.name]
    mine = values["value"][values["variant"] == control]
    if mine.empty:
        return pd.Series(0.0, index=frame.index)
    threshold = float(np.quantile(mine.to_numpy(), spec.quantile))
    beyond = values.assign(above=(values["value"] > threshold).astype(float))
    per_unit = beyond.groupby(["variant", "unit"], sort=False)["above"].sum()
    keys = pd.MultiIndex.from_frame(frame[["variant", "unit"]])
    return pd.Series(per_unit.reindex(keys).fillna(0.0).to_numpy(), index=frame.index)


def promote(
    endpoints: Any,
    db: Database,
    name: str,
    variant: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str = "",
    **report_options: Any,
) -> dict[str, Any]:
    """All live traffic to ``variant``; the note says why (the report's decision)."""
    info = endpoints.show(name)
    live = [v.name for v in info.variants if v.mode == "live"]
    if variant not in live:
        raise InvalidInputError(
            f"no live variant named {variant!r}",
            field="variant",
            fix=f"the live variants are {', '.join(live)}",
        )
    report = endpoint_report(db, info, **report_options)
    decision = report["decision"]
    recommended = decision["action"] == "ship" and decision["variant"] == variant
    if not recommended and not force:
        raise ConflictError(
            f"the report does not recommend {variant}: {decision['label']} ({decision['reason']})",
            field="variant",
            fix="wait for the report to decide, or pass force with a reason",
        )
    if force and not recommended and not reason.strip():
        raise InvalidInputError(
            "promoting against the report needs a reason", field="reason", fix="say why"
        )
    note = f"promoted {variant}: {decision['label']}: {decision['reason']}"
    if reason.strip():
        note += f" | {reason.strip()}"
    weights = {v: (100.0 if v == variant else 0.0) for v in live}
    updated = endpoints.set_traffic(name, weights=weights, note=note[:4000], actor=actor)
    return {"endpoint": name, "variant": variant, "version": updated.version, "note": note,
            "forced": force and not recommended, "decision": decision}  # fmt: skip
