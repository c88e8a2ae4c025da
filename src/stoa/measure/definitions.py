"""Business metrics, declared once and used by A/B reports, monitors and alerts.

A definition names what to count and how: a *proportion* (the share of predictions
with at least one matching event within the attribution window), a *mean* (of an
event's value, or of a logged field such as latency or cost), a *ratio* (the sum of one
event per the sum of another, per unit) or a *judge* score (the mean of a judge's
score). Every definition has a direction, so "better" is never guessed.

Built-ins cover the usual ones and cannot be redefined under their names; a team's own
definitions are versioned like everything else: redefining a name writes version n+1
and earlier analyses keep naming the version they used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError, from_validation
from stoa.core.schema import MetricDefinition

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Fields every prediction carries, usable by a ``mean`` or ``proportion`` metric.
FIELDS = ("latency_ms", "cost_usd", "tokens", "error")


def parse_duration(
    text: str | int | float, field: str = "window", *, allow_zero: bool = False
) -> timedelta:
    """``"24h"``, ``"30m"``, ``"7d"``, ``"90s"`` or a number of seconds (``90``, ``"90"``);
    zero only with ``allow_zero`` (an alert's ``for``: fire on the first breached
    evaluation)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InvalidInputError(
                f"{text!r} is not a duration",
                field=field,
                fix='write it like "90s", "30m", "24h" or "7d"',
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInputError(f"{field} must be positive, not {text!r}", field=field)
    return timedelta(seconds=seconds)


class EventMatch(BaseModel):
    """A feedback event of ``event`` kind, optionally only with ``value`` (``up``)."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    value: Any = None
    source: Literal["user", "human", "judge", "system"] | None = None


class MetricSpec(BaseModel):
    """One metric as YAML or JSON declares it (docs/experiments.md lists every field)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["proportion", "mean", "ratio", "judge"]
    direction: Literal["higher", "lower"] = "higher"
    description: str = ""
    #: How long after a prediction its events still count.
    window: str = "24h"
    #: proportion: a matching event; or a prediction field (``error``) being true.
    event: str | None = None
    value: Any = None
    source: Literal["user", "human", "judge", "system"] | None = None
    #: mean: a feedback event's value (``event``) or a prediction field.
    field: Literal["latency_ms", "cost_usd", "tokens", "error"] | None = None
    #: mean over a field: the 95th percentile instead (latency p95); tested as the share
    #: of a variant's requests above the control's p95 (docs/experiments.md).
    quantile: float | None = Field(default=None, gt=0, lt=1)
    #: Multiplies values, e.g. 1000 for cost per 1,000 predictions.
    scale: float = 1.0
    numerator: EventMatch | None = None
    denominator: EventMatch | None = None
    criterion: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                "a metric name is lowercase letters, digits and '_', starting with a letter "
                "(64 characters at most)"
            )
        return name

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        try:
            parse_duration(window)
        except InvalidInputError as exc:
            raise ValueError(f"{exc.message} ({exc.fix})") from None
        return window

    @model_validator(mode="after")
    def _fits_kind(self) -> MetricSpec:
        kind = self.kind
        if kind == "proportion" and (self.event is None) == (self.field != "error"):
            raise ValueError("a proportion counts an `event` (e.g. click), or `field: error`")
        if kind == "mean" and (self.event is None) == (self.field is None):
            raise ValueError("a mean takes either an `event` (e.g. rating) or a `field`")
        if kind == "ratio" and (self.numerator is None or self.denominator is None):
            raise ValueError("a ratio needs a `numerator` and a `denominator` event")
        if kind == "judge" and not self.criterion:
            raise ValueError("a judge metric names its `criterion` (e.g. correctness)")
        if self.quantile is not None and (kind != "mean" or self.field is None):
            raise ValueError("a `quantile` applies to a mean over a prediction field")
        return self

    @property
    def window_td(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def feedback_kinds(self) -> set[str]:
        """The feedback kinds this metric reads (none for a field metric)."""
        if self.kind == "ratio":
            assert self.numerator and self.denominator
            return {self.numerator.event, self.denominator.event}
        if self.kind == "judge":
            return {f"judge.{self.criterion}"}
        return {self.event} if self.event else set()


BUILTINS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(name="ctr", kind="proportion", event="click", window="24h",
                   description="click-through: the share of predictions clicked within 24 h"),
        MetricSpec(name="csat", kind="mean", event="rating", window="7d",
                   description="customer satisfaction: the mean rating"),
        MetricSpec(name="conversion_rate", kind="ratio", numerator=EventMatch(event="conversion"),
                   denominator=EventMatch(event="click"), window="7d",
                   description="conversions per click"),
        MetricSpec(name="thumbs_up_rate", kind="proportion", event="thumb", value=1, window="24h",
                   description="the share of predictions with a thumb up"),
        MetricSpec(name="latency_p95", kind="mean", field="latency_ms", quantile=0.95,
                   direction="lower", description="the 95th percentile of latency (ms)"),
        MetricSpec(name="cost_per_1k", kind="mean", field="cost_usd", scale=1000,
                   direction="lower", description="cost (USD) per 1,000 predictions"),
        MetricSpec(name="error_rate", kind="proportion", field="error", direction="lower",
                   description="the share of predictions that failed"),
    )
}  # fmt: skip
#: Reported beside the goal metrics of every endpoint experiment.
GUARDRAILS = ("latency_p95", "error_rate", "cost_per_1k")


def parse_spec(doc: Mapping[str, Any], where: str = "metric") -> MetricSpec:
    """A definition from a mapping; the error names the field and the fix."""
    if not isinstance(doc, Mapping):
        raise InvalidInputError(f"{where} must be a mapping of fields", field=where)
    try:
        return MetricSpec.model_validate(dict(doc))
    except ValidationError as exc:
        raise from_validation(exc, where, "see docs/experiments.md#metric-definitions") from None


def parse_yaml(text: str) -> list[MetricSpec]:
    """One definition, a list, or ``{metrics: [...]}``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"not valid YAML{line}", field="metrics") from None
    if isinstance(doc, Mapping) and "metrics" in doc:
        doc = doc["metrics"]
    docs = doc if isinstance(doc, list) else [doc]
    if not docs:
        raise InvalidInputError("no metric definitions found", field="metrics")
    return [parse_spec(d, f"metrics[{i}]") for i, d in enumerate(docs)]


class MetricStore:
    """Definitions in the database; built-ins in code."""

    def __init__(self, db: Database):
        self.db = db

    def define(self, spec: MetricSpec | Mapping[str, Any], *, actor: str = "") -> dict[str, Any]:
        """Write the next version of ``spec.name``; an unchanged spec writes nothing."""
        spec = spec if isinstance(spec, MetricSpec) else parse_spec(spec)
        if spec.name in BUILTINS:
            raise InvalidInputError(
                f"{spec.name!r} is a built-in metric",
                field="metric.name",
                fix="choose another name (built-ins: " + ", ".join(BUILTINS) + ")",
            )
        doc = spec.model_dump(exclude_defaults=True)
        with self.db.write() as session:
            latest = session.scalars(
                select(MetricDefinition)
                .where(MetricDefinition.name == spec.name)
                .order_by(MetricDefinition.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.spec == doc:
                return _info(latest.name, latest.version, spec, builtin=False)
            version = (latest.version + 1) if latest else 1
            row = MetricDefinition(name=spec.name, version=version, spec=doc, created_by=actor)
            session.add(row)
        return _info(spec.name, version, spec, builtin=False)

    def get(self, name: str) -> MetricSpec:
        """A built-in, or the latest version of a defined metric (``name@2`` for another)."""
        base, _, version = name.partition("@")
        if base in BUILTINS and not version:
            return BUILTINS[base]
        with self.db.read() as session:
            query = select(MetricDefinition).where(MetricDefinition.name == base)
            if version:
                if not version.isdigit():
                    raise InvalidInputError(f"{name!r}: a version is a number", field="metric")
                query = query.where(MetricDefinition.version == int(version))
            row = session.scalars(query.order_by(MetricDefinition.version.desc()).limit(1)).first()
        if row is None:
            raise NotFoundError(
                f"no metric named {name!r}",
                field="metric",
                fix="see `stoa metrics list`, or define it with `stoa metrics define FILE`",
            )
        return MetricSpec.model_validate(row.spec)

    def list(self) -> list[dict[str, Any]]:
        """Built-ins first, then each defined metric at its latest version."""
        out = [_info(name, 0, spec, builtin=True) for name, spec in BUILTINS.items()]
        with self.db.read() as session:
            latest = (
                select(MetricDefinition.name, func.max(MetricDefinition.version).label("v"))
                .group_by(MetricDefinition.name)
                .subquery()
            )
            rows = session.scalars(
                select(MetricDefinition)
                .join(
                    latest,
                    (MetricDefinition.name == latest.c.name)
                    & (MetricDefinition.version == latest.c.v),
                )
                .order_by(MetricDefinition.name)
            ).all()
            for row in rows:
                spec = MetricSpec.model_validate(row.spec)
                out.append(_info(row.name, row.version, spec, builtin=False))
        return out


def _info(name: str, version: int, spec: MetricSpec, *, builtin: bool) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "builtin": builtin,
        "kind": spec.kind,
        "direction": spec.direction,
        "window": spec.window,
        "description": spec.description,
        "spec": spec.model_dump(exclude_defaults=True),
    }
