"""Alerts: rules on an endpoint's metrics (judge scores included), evaluated on a
schedule, that fire, notify and resolve without flapping.

A rule compares one number (``metric_value`` over its window) with a threshold. A
breach must last ``for`` before the rule fires, and a breach that clears sooner ends
quietly, so one noisy window pages nobody. Firing writes an ``alerts`` row and its
webhook deliveries in one transaction (the outbox of ``stoa.govern.webhooks``), and
logs one structured line; resolving does the same with ``alert.resolved``.

Several server processes may run the scheduler. Each claims a rule by moving its
``evaluated_at`` forward in one conditional UPDATE, and writes its verdict only if the
rule still carries that claim and the state it read, so a rule fires once however many
processes evaluate it.
"""

from __future__ import annotations

import logging
import operator
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from stoa.core.db import Database
from stoa.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StoaError,
    from_validation,
)
from stoa.core.schema import Alert, AlertRule, Endpoint, utcnow
from stoa.govern.webhooks import Hook, enqueue
from stoa.measure import background
from stoa.measure.definitions import MetricStore, parse_duration

log = logging.getLogger("stoa.alerts")
# The server routes it to its log; a CLI pass prints its own table instead.
log.addHandler(logging.NullHandler())

R = AlertRule.__table__
A = Alert.__table__
FIRING, RESOLVED = "alert.firing", "alert.resolved"
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip
_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
DOCS = "see docs/alerts.md#rule-fields"
#: How often a server evaluates every rule, unless STOA_ALERTS_EVERY_S says otherwise.
DEFAULT_EVERY_S = 60.0


#: What a drift signal may say (``stoa.measure.monitor.drift_score``'s options).
DRIFT_OPTIONS = {"reference", "columns", "column"}


class Signal(BaseModel):
    """What a rule measures: a metric (a judge score is a metric of kind ``judge``), over
    every live variant or one; or a drift score."""

    model_config = ConfigDict(extra="forbid")

    metric: str | None = None
    variant: str | None = None
    drift: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Signal:
        if (self.metric is None) == (self.drift is None):
            raise ValueError("a signal is either {metric: NAME} or {drift: {...}}")
        if self.drift is not None and self.variant is not None:
            raise ValueError("`variant` applies to a metric signal")
        unknown = sorted(set(self.drift or {}) - DRIFT_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown drift option {unknown[0]!r}: use {', '.join(sorted(DRIFT_OPTIONS))}"
            )
        columns = (self.drift or {}).get("columns")
        if columns is not None and (
            not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
        ):
            raise ValueError("drift `columns` is a list of column names")
        return self

    @property
    def label(self) -> str:
        if self.metric is not None:
            return self.metric + (f"[{self.variant}]" if self.variant else "")
        return "drift"


class RuleSpec(BaseModel):
    """One rule as YAML or JSON declares it (docs/alerts.md lists every field)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    endpoint: str = Field(min_length=1, max_length=128)
    signal: Signal
    op: Literal[">", ">=", "<", "<="]
    threshold: float = Field(allow_inf_nan=False)
    window: str
    hold: str | int | float = Field(default=0, alias="for")
    min_samples: int = Field(default=20, ge=1)
    no_data: Literal["ok", "keep"] = "keep"
    notify: list[str] | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    description: str = Field(default="", max_length=2000)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _RULE_NAME.match(name):
            raise ValueError(
                "a rule name is lowercase letters, digits, '_', '.' and '-', starting with a "
                "letter or digit (128 characters at most)"
            )
        return name

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        parse_duration(window)
        return window

    @field_validator("hold")
    @classmethod
    def _hold(cls, hold: str | int | float) -> str | int | float:
        parse_duration(hold, "for", allow_zero=True)
        return hold

    @property
    def window_td(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def hold_td(self) -> timedelta:
        return parse_duration(self.hold, "for", allow_zero=True)

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_rule(doc: Any, where: str = "rule") -> RuleSpec:
    """A rule from a mapping; the error names the field (``rule.threshold``) and the fix."""
    if not isinstance(doc, Mapping):
        raise InvalidInputError(f"{where} must be a mapping of fields", field=where, fix=DOCS)
    try:
        return RuleSpec.model_validate(dict(doc))
    except ValidationError as exc:
        raise from_validation(exc, where, DOCS) from None
    except StoaError as exc:  # a duration, from parse_duration: keep its fix
        raise InvalidInputError(
            exc.message, field=f"{where}.{exc.field}", fix=exc.fix or DOCS
        ) from None


def parse_rules_yaml(text: str) -> list[dict[str, Any]]:
    """One rule, a list, or ``{rules: [...]}``, as mappings (the server checks them)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"not valid YAML{line}", field="rules") from None
    if isinstance(doc, Mapping) and "rules" in doc:
        doc = doc["rules"]
    docs = doc if isinstance(doc, list) else [doc]
    if not docs or docs == [None]:
        raise InvalidInputError("no alert rules found", field="rules", fix=DOCS)
    return docs


# -- rules -------------------------------------------------------------------------


def create_rules(
    db: Database, hooks: Sequence[Hook], docs: Sequence[Any], *, actor: str = ""
) -> list[dict[str, Any]]:
    """Check every rule, then write them all in one transaction (or none).

    A name in use by an enabled rule is a conflict; a disabled rule's name is taken over:
    the new spec replaces the old one and the alerts it raised stay listed.
    """
    if not docs:
        raise InvalidInputError("no alert rules given", field="rules", fix=DOCS)
    specs = [parse_rule(d, "rule" if len(docs) == 1 else f"rules[{i}]") for i, d in enumerate(docs)]
    names = [s.name for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise InvalidInputError(f"rule {name!r} is given twice", field="rules.name")
    for spec in specs:
        _check_references(db, hooks, spec)
    now = utcnow()
    try:
        with db.write_connection() as conn:
            for spec in specs:
                _store_rule(conn, spec, actor, now)
    except IntegrityError:  # another writer created one of these names meanwhile
        raise ConflictError(
            "an alert rule with one of these names was created meanwhile",
            field="name",
            fix="list the rules with `stoa alerts rules list` and choose another name",
        ) from None
    return [get_rule(db, name) for name in names]


def _check_references(db: Database, hooks: Sequence[Hook], spec: RuleSpec) -> None:
    with db.read() as session:
        known = session.scalar(select(Endpoint.id).where(Endpoint.name == spec.endpoint))
    if known is None:
        raise NotFoundError(
            f"no endpoint named {spec.endpoint!r}",
            field="endpoint",
            fix="see `stoa endpoints list`",
        )
    if spec.signal.metric is not None:
        try:
            MetricStore(db).get(spec.signal.metric)
        except StoaError as exc:
            raise type(exc)(exc.message, field="signal.metric", fix=exc.fix) from None
    else:
        _drift_scorer()
    by_name = {hook.name: hook for hook in hooks}
    for name in spec.notify or []:
        hook = by_name.get(name)
        if hook is None:
            raise InvalidInputError(
                f"no webhook named {name!r} is configured",
                field="notify",
                fix="name hooks from STOA_WEBHOOKS ("
                + (", ".join(sorted(by_name)) or "none configured")
                + "), or leave notify out to use every hook subscribed to alert events",
            )
        if FIRING not in hook.events:
            raise InvalidInputError(
                f"webhook {name!r} does not subscribe to {FIRING}",
                field="notify",
                fix=f"add {FIRING} and {RESOLVED} to its events in STOA_WEBHOOKS",
            )


def _store_rule(conn: Connection, spec: RuleSpec, actor: str, now: datetime) -> None:
    existing = conn.execute(select(R.c.id, R.c.enabled).where(R.c.name == spec.name)).first()
    fresh = {"spec": spec.to_doc(), "state": "ok", "state_since": now, "last_value": None,
             "evaluated_at": None, "enabled": True, "created_at": now,
             "created_by": actor}  # fmt: skip
    if existing is None:
        conn.execute(insert(R).values(name=spec.name, **fresh))
    elif existing.enabled:
        raise ConflictError(
            f"an alert rule named {spec.name!r} exists",
            field="name",
            fix=f"disable it first (`stoa alerts rules disable {spec.name}`) "
            "or choose another name",
        )
    else:
        conn.execute(update(R).where(R.c.id == existing.id).values(**fresh))


def get_rule(db: Database, name: str) -> dict[str, Any]:
    with db.read() as session:
        row = session.execute(select(R).where(R.c.name == name)).first()
    if row is None:
        raise NotFoundError(
            f"no alert rule named {name!r}", field="name", fix="see `stoa alerts rules list`"
        )
    return _rule_info(row)


def list_rules(db: Database, *, include_disabled: bool = False) -> list[dict[str, Any]]:
    query = select(R).order_by(R.c.name)
    if not include_disabled:
        query = query.where(R.c.enabled.is_(True))
    with db.read() as session:
        return [_rule_info(row) for row in session.execute(query).all()]


def disable_rule(
    db: Database, hooks: Sequence[Hook], name: str, *, actor: str = "", now: datetime | None = None
) -> dict[str, Any]:
    """Stop evaluating a rule, keeping it and its alerts; an open alert resolves (and
    says so to its hooks). Disabling a disabled rule changes nothing."""
    now = now or utcnow()
    get_rule(db, name)  # a clear error for an unknown name
    with db.write_connection() as conn:
        row = conn.execute(
            update(R).where(R.c.name == name, R.c.enabled.is_(True))
            .values(enabled=False, state="ok", state_since=now).returning(R.c.id, R.c.spec)
        ).first()  # fmt: skip
        resolved = (
            _resolve_open(conn, hooks, row.id, row.spec, now, None, 0, "rule disabled")
            if row
            else []
        )
    for alert in resolved:
        _log_transition(name, row.spec, "firing", "ok", alert, reason=f"disabled by {actor}")
    return get_rule(db, name)


def _rule_info(row: Any) -> dict[str, Any]:
    spec = dict(row.spec)
    return {
        "name": row.name,
        "endpoint": spec.get("endpoint"),
        "signal": Signal.model_validate(spec.get("signal") or {}).label,
        "op": spec.get("op"),
        "threshold": spec.get("threshold"),
        "window": spec.get("window"),
        "for": spec.get("for", 0),
        "severity": spec.get("severity", "warning"),
        "enabled": bool(row.enabled),
        "state": row.state,
        "state_since": row.state_since,
        "last_value": row.last_value,
        "evaluated_at": row.evaluated_at,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "spec": spec,
    }


# -- evaluation ----------------------------------------------------------------------


def next_state(
    state: str, since: datetime | None, breached: bool, now: datetime, hold: timedelta
) -> str:
    """The state machine: ok -> pending -> firing while breached (pending is skipped when
    ``hold`` is 0), and straight back to ok when the breach clears."""
    if not breached:
        return "ok"
    if state == "firing":
        return "firing"
    started = since if state == "pending" and since is not None else now
    return "firing" if now - started >= hold else "pending"


def evaluate(
    db: Database,
    hooks: Sequence[Hook],
    now: datetime | None = None,
    *,
    min_gap: timedelta = timedelta(0),
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every enabled rule once; the transitions made (``from``, ``to``, value,
    alert id), plus ``{"rule", "error"}`` for a rule whose signal could not be computed.

    A rule evaluated less than ``min_gap`` before ``now`` (by this or another process) is
    skipped, as is one another evaluator holds."""
    now = now or utcnow()
    with db.read() as session:
        ids = session.scalars(select(R.c.id).where(R.c.enabled.is_(True)).order_by(R.c.id)).all()
    out: list[dict[str, Any]] = []
    for rule_id in ids:
        if stop is not None and stop.is_set():
            break
        row = _claim(db, rule_id, now, min_gap)
        if row is None:
            continue
        try:
            out += _evaluate_rule(db, hooks, row, now)
        except StoaError as exc:
            log.warning("alert rule %s: %s", row.name, exc, extra={"rule": row.name})
            out.append({"rule": row.name, "error": str(exc)})
        except Exception:  # one rule's bug must not stop the others
            log.exception("alert rule %s failed", row.name, extra={"rule": row.name})
            out.append({"rule": row.name, "error": "internal error; see the server log"})
    return out


def _claim(db: Database, rule_id: int, now: datetime, min_gap: timedelta) -> Any:
    """Take the rule for this evaluation: its ``evaluated_at`` moves to ``now`` only if
    nobody evaluated it since ``now - min_gap``. The row as claimed, or None."""
    with db.write_connection() as conn:
        taken = conn.execute(
            update(R)
            .where(R.c.id == rule_id, R.c.enabled.is_(True),
                   or_(R.c.evaluated_at.is_(None), R.c.evaluated_at < now - min_gap))
            .values(evaluated_at=now)
        )  # fmt: skip
        if taken.rowcount != 1:
            return None
        return conn.execute(select(R).where(R.c.id == rule_id)).first()


def _evaluate_rule(
    db: Database, hooks: Sequence[Hook], row: Any, now: datetime
) -> list[dict[str, Any]]:
    spec = RuleSpec.model_validate(row.spec)
    value, n = signal_value(db, spec, now)
    has_data = value is not None and n >= spec.min_samples
    if not has_data and spec.no_data == "keep":
        target = row.state
    else:
        breached = has_data and OPS[spec.op](float(value), spec.threshold)  # type: ignore[arg-type]
        target = next_state(row.state, row.state_since, breached, now, spec.hold_td)
    shown = value if has_data else None
    with db.write_connection() as conn:
        changes: dict[str, Any] = {"last_value": shown}
        if target != row.state:
            changes.update(state=target, state_since=now)
        kept = conn.execute(
            update(R)
            .where(R.c.id == row.id, R.c.enabled.is_(True), R.c.evaluated_at == now,
                   R.c.state == row.state)
            .values(**changes)
        )  # fmt: skip
        if kept.rowcount != 1 or target == row.state:
            return []  # unchanged, or another evaluator claimed the rule since: its verdict stands
        alerts: list[dict[str, Any]] = []
        if target == "firing":
            alerts = [_fire(conn, hooks, row, spec, shown, n, now)]
        elif row.state == "firing":
            reason = "no data" if not has_data else "back within the threshold"
            alerts = _resolve_open(conn, hooks, row.id, row.spec, now, shown, n, reason)
    transition = {
        "rule": row.name, "endpoint": spec.endpoint, "from": row.state, "to": target,
        "value": shown, "n": n, "op": spec.op, "threshold": spec.threshold, "at": now,
        "alert_id": alerts[0]["id"] if alerts else None,
    }  # fmt: skip
    _log_transition(
        row.name, row.spec, row.state, target, alerts[0] if alerts else None, value=shown
    )
    return [transition]


def signal_value(db: Database, spec: RuleSpec, now: datetime) -> tuple[float | None, int]:
    """The rule's number over its window, and how many observations it rests on."""
    if spec.signal.drift is not None:
        score = _drift_scorer()
        return score(db, spec.endpoint, window=spec.window_td, now=now, **spec.signal.drift)
    from stoa.measure.signals import metric_value  # pandas: only when a rule is evaluated

    assert spec.signal.metric is not None
    metric = MetricStore(db).get(spec.signal.metric)
    return metric_value(
        db, spec.endpoint, metric, window=spec.window_td, now=now, variant=spec.signal.variant
    )


def _drift_scorer() -> Callable[..., tuple[float | None, int]]:
    """Imported when a drift rule is used: the drift engine loads scipy and sklearn."""
    from stoa.measure.monitor import drift_score

    return drift_score


def _message(spec: RuleSpec, value: float | None, n: int) -> str:
    shown = "no data" if value is None else f"{value:.4g}"
    return (f"{spec.signal.label} on {spec.endpoint} is {shown} ({spec.op} {spec.threshold:g}) "
            f"over the last {spec.window}, n={n}")  # fmt: skip


def _fire(
    conn: Connection, hooks: Sequence[Hook], row: Any, spec: RuleSpec, value: float | None,
    n: int, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    message = _message(spec, value, n)
    alert_id = conn.execute(
        insert(A).values(rule_id=row.id, rule=row.name, value=value, message=message,
                         started_at=now).returning(A.c.id)
    ).scalar_one()  # fmt: skip
    alert = {"id": alert_id, "rule": row.name, "value": value, "message": message,
             "started_at": now, "resolved_at": None}  # fmt: skip
    _notify(conn, hooks, FIRING, row.spec, alert, n)
    return alert


def _resolve_open(
    conn: Connection, hooks: Sequence[Hook], rule_id: int, spec_doc: Mapping[str, Any],
    now: datetime, value: float | None, n: int, reason: str,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = conn.execute(
        update(A).where(A.c.rule_id == rule_id, A.c.resolved_at.is_(None))
        .values(resolved_at=now)
        .returning(A.c.id, A.c.rule, A.c.message, A.c.started_at)
    ).all()  # fmt: skip
    resolved = []
    for r in rows:
        alert = {"id": r.id, "rule": r.rule, "value": value, "message": r.message,
                 "started_at": r.started_at, "resolved_at": now, "reason": reason}  # fmt: skip
        _notify(conn, hooks, RESOLVED, spec_doc, alert, n)
        resolved.append(alert)
    return resolved


def _notify(
    conn: Connection, hooks: Sequence[Hook], event: str, spec_doc: Mapping[str, Any],
    alert: Mapping[str, Any], n: int,
) -> None:  # fmt: skip
    """Deliveries to the rule's hooks (every hook subscribed, when it names none), in the
    caller's transaction: the alert and its notifications commit together."""
    wanted = spec_doc.get("notify")
    targets = [hook for hook in hooks if wanted is None or hook.name in wanted]
    body = {
        **{k: v for k, v in alert.items() if k != "value"},
        "state": "firing" if event == FIRING else "resolved",
        "endpoint": spec_doc.get("endpoint"), "severity": spec_doc.get("severity", "warning"),
        "signal": spec_doc.get("signal"), "op": spec_doc.get("op"),
        "threshold": spec_doc.get("threshold"), "window": spec_doc.get("window"),
        "description": spec_doc.get("description", ""), "value": alert.get("value"), "n": n,
    }  # fmt: skip
    for key in ("started_at", "resolved_at"):
        if isinstance(body.get(key), datetime):
            body[key] = body[key].isoformat()
    enqueue(conn, targets, event, {"alert": body})


def _log_transition(
    name: str, spec_doc: Mapping[str, Any], old: str, new: str, alert: Mapping[str, Any] | None,
    *, value: float | None = None, reason: str | None = None,
) -> None:  # fmt: skip
    event = FIRING if new == "firing" else RESOLVED if old == "firing" else f"alert.{new}"
    level = logging.WARNING if new == "firing" else logging.INFO
    text = f"alert rule {name}: {old} -> {new}"
    if alert is not None:
        text += f" (alert {alert['id']}: {alert['message']})"
    if reason:
        text += f"; {reason}"
    log.log(level, text, extra={
        "event": event, "rule": name, "endpoint": spec_doc.get("endpoint"),
        "severity": spec_doc.get("severity", "warning"), "state_from": old, "state_to": new,
        "value": value if alert is None else alert.get("value"),
        "threshold": spec_doc.get("threshold"), "alert_id": alert["id"] if alert else None,
    })  # fmt: skip


# -- alerts ---------------------------------------------------------------------------


def list_alerts(
    db: Database, *, active_only: bool = True, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first; ``active_only`` keeps the alerts still firing (acknowledged or not)."""
    if isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise InvalidInputError("limit must be 1..1000", field="limit")
    query = select(A, R.c.spec).join(R, R.c.id == A.c.rule_id).order_by(A.c.id.desc()).limit(limit)
    if active_only:
        query = query.where(A.c.resolved_at.is_(None))
    with db.read() as session:
        return [_alert_info(row) for row in session.execute(query).all()]


def ack(
    db: Database, alert_id: int | str, *, actor: str = "", now: datetime | None = None
) -> dict[str, Any]:
    """Record who acknowledged an alert. Idempotent: the first acknowledgement stands, and
    a resolved alert may still be acknowledged (a page answered after it cleared)."""
    number = _alert_number(alert_id)
    now = now or utcnow()
    with db.write_connection() as conn:
        found = conn.execute(select(A.c.id).where(A.c.id == number)).first()
        if found is None:
            raise NotFoundError(
                f"no alert with id {number}", field="alert_id", fix="see `stoa alerts list --all`"
            )
        taken = conn.execute(
            update(A).where(A.c.id == number, A.c.acked_at.is_(None))
            .values(acked_at=now, acked_by=actor)
        ).rowcount  # fmt: skip
    if taken:
        extra = {"event": "alert.acked", "alert_id": number, "actor": actor}
        log.info("alert %s acknowledged by %s", number, actor, extra=extra)
    with db.read() as session:
        row = session.execute(
            select(A, R.c.spec).join(R, R.c.id == A.c.rule_id).where(A.c.id == number)
        ).one()
    return _alert_info(row)


def _alert_number(alert_id: int | str) -> int:
    text = str(alert_id).strip()
    if isinstance(alert_id, bool) or not text.isdigit():
        raise InvalidInputError(
            f"{alert_id!r} is not an alert id", field="alert_id", fix="see `stoa alerts list --all`"
        )
    return int(text)


def _alert_info(row: Any) -> dict[str, Any]:
    spec = row.spec or {}
    return {
        "id": row.id,
        "rule": row.rule,
        "endpoint": spec.get("endpoint"),
        "severity": spec.get("severity", "warning"),
        "state": "firing" if row.resolved_at is None else "resolved",
        "value": row.value,
        "message": row.message,
        "started_at": row.started_at,
        "resolved_at": row.resolved_at,
        "acked_at": row.acked_at,
        "acked_by": row.acked_by,
    }


# -- the schedule ------------------------------------------------------------------------


def interval_from_env(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between evaluations from ``STOA_ALERTS_EVERY_S`` (default 60; 0 turns the
    scheduler off)."""
    return background.interval_from_env("STOA_ALERTS_EVERY_S", DEFAULT_EVERY_S, environ)


class Scheduler(background.Periodic):
    """Evaluates every rule every ``every_s`` seconds on a daemon thread."""

    def __init__(self, db: Database, hooks: Sequence[Hook], every_s: float = DEFAULT_EVERY_S):
        self.db = db
        self.hooks = list(hooks)
        super().__init__("alerts", every_s, self._evaluate)

    def _evaluate(self, stop: threading.Event) -> list[dict[str, Any]]:
        # Other processes run the same schedule: a rule one of them evaluated in the last
        # half interval is left alone.
        gap = timedelta(seconds=self.every_s / 2)
        return evaluate(self.db, self.hooks, min_gap=gap, stop=stop)


__all__ = [
    "FIRING",
    "RESOLVED",
    "RuleSpec",
    "Scheduler",
    "Signal",
    "ack",
    "create_rules",
    "disable_rule",
    "evaluate",
    "get_rule",
    "interval_from_env",
    "list_alerts",
    "list_rules",
    "next_state",
    "parse_rule",
    "parse_rules_yaml",
]
