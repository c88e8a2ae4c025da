"""The records an analysis returns. Each has ``to_dict()``: JSON-safe (NaN and
infinities become None, NumPy scalars become Python numbers), with stable keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stoa.measure.ab._json import json_safe
from stoa.measure.ab.srm import SrmCheck


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)


@dataclass(frozen=True)
class Interval(_Record):
    """An estimate with its interval; ``level`` is the interval's coverage (0.95)."""

    estimate: float
    ci_low: float
    ci_high: float
    level: float

    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


@dataclass(frozen=True)
class Arm(_Record):
    """One variant's estimate of one metric (a fixed-horizon interval)."""

    variant: str
    n: int
    estimate: Interval


@dataclass(frozen=True)
class Frequentist(_Record):
    """Fixed-horizon tests. ``p_value`` is for the relative lift (Welch's t on the
    delta-method variance, as gbstats computes it); ``p_value_absolute`` for B - A
    (Welch's t for means and ratios, a z-test for proportions). ``p_value_adjusted``
    is Holm's over the goal comparisons (None for guardrails). Intervals are at the
    unadjusted level."""

    p_value: float
    p_value_absolute: float
    p_value_adjusted: float | None
    relative: Interval
    absolute: Interval
    dof: float
    absolute_test: str


@dataclass(frozen=True)
class Sequential(_Record):
    """Always-valid confidence sequences at ``alpha`` (Bonferroni-split for goals) and
    the always-valid p-value of the relative lift (raw, and Holm-adjusted for goals)."""

    p_value: float
    p_value_adjusted: float | None
    relative: Interval
    absolute: Interval
    alpha: float
    tuning: float


@dataclass(frozen=True)
class Bayesian(_Record):
    """Chance that the treatment is better (in the metric's direction), and the expected
    loss, in relative-lift units, of shipping it (``risk_treatment``) or of keeping the
    control (``risk_control``). ``relative`` is the normal model's credible interval."""

    chance_to_win: float
    risk_treatment: float
    risk_control: float
    relative: Interval
    model: str


@dataclass(frozen=True)
class Comparison(_Record):
    """One treatment against the control on one metric.

    ``verdict`` is the decision rule's reading, in the metric's direction: ``better``,
    ``worse``, ``inconclusive``, or ``untestable`` (``note`` says why). The top-level
    ``relative_lift`` and ``absolute_lift`` carry the rule's own intervals.
    """

    variant: str
    metric: str
    kind: str
    role: str
    direction: str
    control: Arm
    treatment: Arm
    absolute_lift: Interval
    relative_lift: Interval
    frequentist: Frequentist | None
    sequential: Sequential | None
    bayesian: Bayesian | None
    verdict: str
    alpha: float
    note: str | None = None


@dataclass(frozen=True)
class Decision(_Record):
    """What to do: ``action`` is ship, keep, continue or invalid; ``label`` the words
    ("ship B", "keep A", "keep running (needs about 12,000 more units)",
    "invalid: SRM"); ``reason`` why, with the numbers."""

    variant: str | None
    action: str
    label: str
    reason: str
    more_units: int | None = None


@dataclass(frozen=True)
class VariantUnits(_Record):
    name: str
    units: int
    weight: float | None


@dataclass(frozen=True)
class ExperimentReport(_Record):
    control: str
    rule: str
    alpha: float
    correction: str
    variants: list[VariantUnits]
    srm: SrmCheck | None
    comparisons: list[Comparison]
    decisions: list[Decision]
    decision: Decision
    settings: dict[str, Any] = field(default_factory=dict)

    def comparison(self, variant: str, metric: str) -> Comparison:
        """The comparison of ``variant`` with the control on ``metric``."""
        for c in self.comparisons:
            if c.variant == variant and c.metric == metric:
                return c
        raise KeyError((variant, metric))
