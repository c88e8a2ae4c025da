"""A/B statistics: per-variant sufficient statistics in, a decision with its reasons out.

    analyze(stats, metrics=[MetricSpec("ctr", "proportion")], control="a",
            weights={"a": 50, "b": 50})             # from aggregates (a logbook query)
    analyze_frame(frame, "variant", metrics)        # from one row per unit

The default rule is sequential (always-valid confidence sequences), because people
peek. See docs/experiments.md, "How Stoa decides".
"""

from stoa.measure.ab.analyze import analyze, analyze_frame
from stoa.measure.ab.report import (
    Arm,
    Bayesian,
    Comparison,
    Decision,
    ExperimentReport,
    Frequentist,
    Interval,
    Sequential,
    VariantUnits,
)
from stoa.measure.ab.simulate import simulate_peeking, simulate_power
from stoa.measure.ab.spec import MetricSpec
from stoa.measure.ab.srm import SrmCheck, check_srm
from stoa.measure.ab.stats import (
    MeanStats,
    ProportionStats,
    RatioStats,
    Stats,
    stats_from_aggregates,
)
from stoa.measure.ab.summarize import summarize

__all__ = [
    "Arm",
    "Bayesian",
    "Comparison",
    "Decision",
    "ExperimentReport",
    "Frequentist",
    "Interval",
    "MeanStats",
    "MetricSpec",
    "ProportionStats",
    "RatioStats",
    "Sequential",
    "SrmCheck",
    "Stats",
    "VariantUnits",
    "analyze",
    "analyze_frame",
    "check_srm",
    "simulate_peeking",
    "simulate_power",
    "stats_from_aggregates",
    "summarize",
]
