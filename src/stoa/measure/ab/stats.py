"""Per-variant sufficient statistics: the few sums every A/B method needs.

The engine never sees individual units. A logbook query (SQL ``COUNT``/``SUM``) and a
table of per-unit outcomes both reduce to these sums, so one engine serves both, as
GrowthBook's does from a warehouse query.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from stoa.core.errors import InvalidInputError

Kind = Literal["proportion", "mean", "ratio"]
KINDS: tuple[str, ...] = ("proportion", "mean", "ratio")


@dataclass(frozen=True)
class ProportionStats:
    """Units and how many of them converted (clicked, thumbed up, ...)."""

    n: int
    successes: float

    kind = "proportion"

    @property
    def mean(self) -> float:
        return self.successes / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Per-unit variance p(1-p): the Bernoulli variance, as gbstats uses."""
        p = self.mean
        return p * (1.0 - p) if self.n else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class MeanStats:
    """Units, the sum of their values and the sum of their squares."""

    n: int
    sum: float
    sum_sq: float

    kind = "mean"

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Per-unit sample variance (n - 1 in the denominator), never below zero."""
        if self.n < 2:
            return math.nan
        return max((self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RatioStats:
    """Units with a numerator x and a denominator y each (conversions and clicks).

    The ratio is sum(x) / sum(y); its variance comes from the delta method, so the
    units (not the clicks) stay the independent observations.
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float
    sum_y2: float
    sum_xy: float

    kind = "ratio"

    @property
    def mean(self) -> float:
        return self.sum_x / self.sum_y if self.sum_y else math.nan

    @property
    def variance(self) -> float:
        """n times the delta-method variance of sum(x)/sum(y): a per-unit variance, so
        the ratio's standard error is sqrt(variance / n) like a mean's."""
        n = self.n
        if n < 2 or self.sum_y == 0:
            return math.nan
        mx, my = self.sum_x / n, self.sum_y / n
        vx = (self.sum_x2 - self.sum_x * mx) / (n - 1)
        vy = (self.sum_y2 - self.sum_y * my) / (n - 1)
        cxy = (self.sum_xy - self.sum_x * my) / (n - 1)
        v = vx / my**2 - 2.0 * cxy * mx / my**3 + mx**2 * vy / my**4
        return max(v, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


Stats = ProportionStats | MeanStats | RatioStats
_FIELDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "proportion": (ProportionStats, ("n", "successes")),
    "mean": (MeanStats, ("n", "sum", "sum_sq")),
    "ratio": (RatioStats, ("n", "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy")),
}


def stats_from_aggregates(kind: str, *, field: str = "stats", **values: float) -> Stats:
    """Build one variant's statistics from sums computed elsewhere (a SQL query).

    ``field`` names where the values came from, for the error message.
    """
    if kind not in _FIELDS:
        raise InvalidInputError(
            f"unknown metric kind {kind!r}",
            field=f"{field}.kind",
            fix=f"use one of {', '.join(KINDS)}",
        )
    cls, names = _FIELDS[kind]
    missing = [k for k in names if k not in values]
    extra = [k for k in values if k not in names]
    if missing or extra:
        raise InvalidInputError(
            f"a {kind} statistic needs exactly {', '.join(names)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(extra)}" if extra else ""),
            field=field,
            fix=f"pass {', '.join(names)}",
        )
    clean: dict[str, float] = {}
    for key in names:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # numpy scalars, Decimal from a database
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"{key} must be a number, got {value!r}",
                    field=f"{field}.{key}",
                    fix="pass a finite number",
                ) from None
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{key} must be finite, got {value!r}",
                field=f"{field}.{key}",
                fix="drop units with missing or infinite values first",
            )
        clean[key] = value
    n = clean["n"]
    if n < 0 or n != int(n):
        raise InvalidInputError(
            f"n must be a whole number of units >= 0, got {n!r}",
            field=f"{field}.n",
            fix="count units, not events",
        )
    clean["n"] = int(n)
    if kind == "proportion" and not 0 <= clean["successes"] <= clean["n"]:
        raise InvalidInputError(
            f"successes must lie between 0 and n={int(n)}, got {clean['successes']!r}",
            field=f"{field}.successes",
            fix="count each unit at most once as a success",
        )
    for key in ("sum_sq", "sum_x2", "sum_y2"):
        if clean.get(key, 0.0) < 0:
            raise InvalidInputError(
                f"{key} is a sum of squares and cannot be negative",
                field=f"{field}.{key}",
                fix="pass the sum of squared values",
            )
    return cls(**clean)
