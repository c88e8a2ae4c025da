"""Metrics of a table of per-unit outcomes, as the command line writes them.

``clicked:proportion``, ``revenue:mean``, ``orders/visits:ratio``; a suffix ``:lower``
says lower is better and ``:guardrail`` makes it a guardrail, in either order:
``latency_ms:mean:lower:guardrail``.
"""

from __future__ import annotations

from collections.abc import Sequence

from stoa.core.errors import InvalidInputError
from stoa.measure.ab import MetricSpec

FORM = "write COLUMN:proportion, COLUMN:mean or NUM/DEN:ratio, optionally :lower and :guardrail"


def parse_table_metric(text: str) -> MetricSpec:
    column, _, rest = text.partition(":")
    parts = [p.strip().lower() for p in rest.split(":")] if rest else []
    if not column.strip() or not parts:
        raise InvalidInputError(f"metric {text!r} has no kind", field="metric", fix=FORM)
    kind, flags = parts[0], parts[1:]
    unknown = [f for f in flags if f not in ("lower", "higher", "guardrail", "goal")]
    if unknown:
        raise InvalidInputError(
            f"metric {text!r}: unknown option {unknown[0]!r}", field="metric", fix=FORM
        )
    direction = "lower" if "lower" in flags else "higher"
    role = "guardrail" if "guardrail" in flags else "goal"
    if kind == "ratio":
        numerator, slash, denominator = column.partition("/")
        if not slash or not numerator or not denominator:
            raise InvalidInputError(
                f"metric {text!r}: a ratio names NUM/DEN columns", field="metric", fix=FORM
            )
        return MetricSpec(column, "ratio", direction, role, numerator=numerator,
                          denominator=denominator)  # fmt: skip
    if kind not in ("proportion", "mean"):
        raise InvalidInputError(f"metric {text!r}: unknown kind {kind!r}", field="metric", fix=FORM)
    return MetricSpec(column, kind, direction, role)


def parse_table_metrics(texts: Sequence[str]) -> list[MetricSpec]:
    if not texts:
        raise InvalidInputError("name at least one metric", field="metric", fix=FORM)
    return [parse_table_metric(t) for t in texts]
