"""What a metric is to the A/B engine: a kind, a direction and a role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stoa.core.errors import InvalidInputError
from stoa.measure.ab.stats import KINDS

DIRECTIONS = ("higher", "lower")
ROLES = ("goal", "guardrail")


@dataclass(frozen=True)
class MetricSpec:
    """One metric of an experiment.

    ``column`` holds the per-unit outcome of a proportion or mean metric (default: the
    metric's name); a ratio takes two per-unit columns, ``numerator`` and
    ``denominator``. A guardrail is a metric the winner must not significantly harm.
    """

    name: str
    kind: str
    direction: str = "higher"
    role: str = "goal"
    column: str | None = None
    numerator: str | None = None
    denominator: str | None = None

    def __post_init__(self) -> None:
        field = f"metrics.{self.name}" if self.name else "metrics"
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(
                "a metric needs a name", field="metrics.name", fix="name every metric"
            )
        if self.kind not in KINDS:
            raise InvalidInputError(
                f"unknown metric kind {self.kind!r}",
                field=f"{field}.kind",
                fix=f"use one of {', '.join(KINDS)}",
            )
        if self.direction not in DIRECTIONS:
            raise InvalidInputError(
                f"unknown direction {self.direction!r}",
                field=f"{field}.direction",
                fix="use 'higher' (higher is better) or 'lower'",
            )
        if self.role not in ROLES:
            raise InvalidInputError(
                f"unknown role {self.role!r}",
                field=f"{field}.role",
                fix="use 'goal' or 'guardrail'",
            )
        if self.kind == "ratio" and not (self.numerator and self.denominator):
            raise InvalidInputError(
                "a ratio metric needs a numerator and a denominator column",
                field=f"{field}.numerator",
                fix="set numerator= and denominator= (e.g. conversions per click)",
            )
        if self.kind != "ratio" and (self.numerator or self.denominator):
            raise InvalidInputError(
                f"numerator/denominator apply to ratio metrics, not {self.kind}",
                field=f"{field}.kind",
                fix="use kind='ratio' or set column= instead",
            )

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-unit columns this metric reads from a table."""
        if self.kind == "ratio":
            return (str(self.numerator), str(self.denominator))
        return (self.column or self.name,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "direction": self.direction,
            "role": self.role,
            "columns": list(self.columns),
        }
