"""Alert rules (issue 17, item 7): the state machine under an injected clock, no
flapping, no-data handling, and one firing however many evaluators race, on SQLite and
PostgreSQL. Signals are computed here by hand from the rows the test writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from stoa.core.db import Database
from stoa.core.schema import Alert, AlertRule, Endpoint, Prediction, WebhookDelivery
from stoa.govern.webhooks import Hook
from stoa.measure.alerts import create_rules, disable_rule, evaluate, list_alerts, next_state

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ALERT_EVENTS = frozenset({"alert.firing", "alert.resolved"})
HOOKS = [Hook("ops", "http://127.0.0.1:9/hook", "x" * 16, ALERT_EVENTS)]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    add_endpoint(database, "support")
    yield database
    database.dispose()


def add_endpoint(db: Database, name: str) -> None:
    with db.write_connection() as conn:
        row = {"name": name, "salt": "0" * 16, "current": 1, "created_at": T0 - timedelta(days=1)}
        conn.execute(insert(Endpoint.__table__).values(**row))


_seq = iter(range(10**9))


def traffic(db: Database, start: datetime, end: datetime, n: int, errors: int,
            endpoint: str = "support") -> float:  # fmt: skip
    """``n`` live predictions spread over [start, end), the first ``errors`` of them
    failed; returns the error rate they make."""
    step = (end - start) / n
    rows = [
        {"id": f"{next(_seq):036d}", "endpoint": endpoint, "config_version": 1, "variant": "a",
         "mode": "live", "target": "solution:s@1", "unit_id": f"u{i}", "ts": start + step * i,
         "input": None, "output": None, "status": "error" if i < errors else "ok",
         "latency_ms": 10.0, "tokens": 0, "cost_usd": 0.0}
        for i in range(n)
    ]  # fmt: skip
    with db.write_connection() as conn:
        conn.execute(insert(Prediction.__table__), rows)
    return errors / n


def rule(**overrides: Any) -> dict[str, Any]:
    base = {"name": "errors-high", "endpoint": "support", "signal": {"metric": "error_rate"},
            "op": ">", "threshold": 0.1, "window": "5m", "for": "10m",
            "min_samples": 20}  # fmt: skip
    return {**base, **overrides}


def alerts_of(db: Database) -> list[Any]:
    with db.read() as session:
        return session.execute(select(Alert.__table__).order_by(Alert.id)).all()


def deliveries(db: Database) -> list[tuple[str, dict]]:
    with db.read() as session:
        rows = session.execute(
            select(WebhookDelivery.event, WebhookDelivery.payload).order_by(WebhookDelivery.id)
        ).all()
    return [(r.event, r.payload) for r in rows]


def test_pending_then_firing_after_for_then_resolved(db: Database) -> None:
    create_rules(db, HOOKS, [rule()], actor="ana")
    rate = traffic(db, T0 - 4 * MIN, T0, 50, 10)
    [move] = evaluate(db, HOOKS, now=T0)
    assert (move["from"], move["to"], move["alert_id"]) == ("ok", "pending", None)
    assert move["value"] == pytest.approx(rate) and move["n"] == 50

    # Still breached 5 minutes on: pending, nothing sent (5m < for=10m).
    traffic(db, T0 + MIN, T0 + 5 * MIN, 40, 12)
    assert evaluate(db, HOOKS, now=T0 + 5 * MIN) == []
    assert alerts_of(db) == [] and deliveries(db) == []

    # 10 minutes after the first breach: fires, with its row and its delivery.
    rate = traffic(db, T0 + 6 * MIN, T0 + 10 * MIN, 30, 9)
    [move] = evaluate(db, HOOKS, now=T0 + 10 * MIN)
    assert (move["from"], move["to"]) == ("pending", "firing")
    assert move["value"] == pytest.approx(rate) and move["n"] == 30
    [alert] = alerts_of(db)
    assert alert.id == move["alert_id"] and alert.started_at == T0 + 10 * MIN
    assert (
        alert.value == pytest.approx(0.3)
        and "error_rate on support is 0.3 (> 0.1)" in alert.message
    )
    [(event, payload)] = deliveries(db)
    assert event == "alert.firing" and payload["event"] == "alert.firing"
    assert payload["alert"]["id"] == alert.id and payload["alert"]["state"] == "firing"
    assert payload["alert"]["value"] == pytest.approx(0.3) and payload["alert"]["n"] == 30

    # Breached again: still firing, no second alert and no second delivery.
    traffic(db, T0 + 11 * MIN, T0 + 15 * MIN, 30, 30)
    assert evaluate(db, HOOKS, now=T0 + 15 * MIN) == []

    # Healthy traffic: resolves the alert and says so once.
    traffic(db, T0 + 16 * MIN, T0 + 20 * MIN, 40, 2)
    [move] = evaluate(db, HOOKS, now=T0 + 20 * MIN)
    assert (move["from"], move["to"], move["alert_id"]) == ("firing", "ok", alert.id)
    assert move["value"] == pytest.approx(0.05)
    [alert] = alerts_of(db)
    assert alert.resolved_at == T0 + 20 * MIN
    assert [e for e, _ in deliveries(db)] == ["alert.firing", "alert.resolved"]
    assert deliveries(db)[1][1]["alert"]["resolved_at"] == (T0 + 20 * MIN).isoformat()
    assert list_alerts(db) == [] and len(list_alerts(db, active_only=False)) == 1


def test_a_breach_that_clears_before_for_never_fires(db: Database) -> None:
    create_rules(db, HOOKS, [rule()])
    for minute in range(0, 60, 10):  # breached, then healthy, every other evaluation
        errors = 20 if minute % 20 == 0 else 0
        traffic(db, T0 + (minute - 4) * MIN, T0 + minute * MIN, 40, errors)
        moves = evaluate(db, HOOKS, now=T0 + minute * MIN)
        expected = ("ok", "pending") if errors else ("pending", "ok")
        assert [(m["from"], m["to"]) for m in moves] == [expected]
    assert alerts_of(db) == [] and deliveries(db) == []


def test_for_zero_fires_on_the_first_breached_evaluation_and_lt_compares_down(db) -> None:
    create_rules(db, HOOKS, [rule(name="ok-share-low", op="<", threshold=0.5, **{"for": 0},
                                  signal={"metric": "error_rate"})])  # fmt: skip
    traffic(db, T0 - 4 * MIN, T0, 40, 4)
    [move] = evaluate(db, HOOKS, now=T0)
    assert (move["from"], move["to"]) == ("ok", "firing")
    assert len(alerts_of(db)) == 1


def test_too_few_samples_is_no_data_and_no_data_keeps_or_clears(db: Database) -> None:
    create_rules(db, HOOKS, [rule(name="keeps", **{"for": 0}),
                             rule(name="clears", no_data="ok", **{"for": 0})])  # fmt: skip
    traffic(db, T0 - 4 * MIN, T0, 19, 19)  # every one failed, but 19 < min_samples
    assert evaluate(db, HOOKS, now=T0) == []
    traffic(db, T0 + MIN, T0 + 5 * MIN, 20, 19)
    assert {m["rule"]: m["to"] for m in evaluate(db, HOOKS, now=T0 + 5 * MIN)} == {
        "keeps": "firing", "clears": "firing"}  # fmt: skip
    # No traffic at all: "keep" stays firing, "ok" resolves.
    [move] = evaluate(db, HOOKS, now=T0 + 30 * MIN)
    assert (move["rule"], move["from"], move["to"], move["value"]) == (
        "clears",
        "firing",
        "ok",
        None,
    )
    open_alerts = list_alerts(db)
    assert [a["rule"] for a in open_alerts] == ["keeps"]
    with db.read() as session:
        states = dict(session.execute(select(AlertRule.name, AlertRule.state)).all())
    assert states == {"keeps": "firing", "clears": "ok"}


def test_disable_resolves_the_open_alert_and_keeps_history(db: Database) -> None:
    create_rules(db, HOOKS, [rule(**{"for": 0})])
    traffic(db, T0 - 4 * MIN, T0, 40, 20)
    evaluate(db, HOOKS, now=T0)
    info = disable_rule(db, HOOKS, "errors-high", actor="ana")
    assert (info["enabled"], info["state"]) == (False, "ok")
    assert [e for e, _ in deliveries(db)] == ["alert.firing", "alert.resolved"]
    assert deliveries(db)[1][1]["alert"]["reason"] == "rule disabled"
    assert evaluate(db, HOOKS, now=T0 + 10 * MIN) == []  # disabled: not evaluated
    assert disable_rule(db, HOOKS, "errors-high")["enabled"] is False  # idempotent
    # The name can be taken again; the old alert stays listed.
    again = create_rules(db, HOOKS, [rule(threshold=0.9)])[0]
    assert (again["enabled"], again["threshold"], again["state"]) == (True, 0.9, "ok")
    assert len(list_alerts(db, active_only=False)) == 1


@pytest.mark.parametrize("same_clock", [True, False])
def test_racing_evaluators_fire_once(db: Database, same_clock: bool) -> None:
    create_rules(db, HOOKS, [rule(name=f"r{k}", **{"for": 0}) for k in range(6)])
    traffic(db, T0 - 4 * MIN, T0, 40, 20)
    moves: list[dict] = []
    barrier = threading.Barrier(4)

    def run(k: int) -> None:
        barrier.wait()
        now = T0 if same_clock else T0 + timedelta(milliseconds=k)
        moves.extend(evaluate(db, HOOKS, now=now))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted((m["rule"], m["from"], m["to"]) for m in moves) == [
        (f"r{k}", "ok", "firing") for k in range(6)
    ]
    assert sorted(a.rule for a in alerts_of(db)) == [f"r{k}" for k in range(6)]
    with db.read() as session:
        count = session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert count == 6


def test_an_evaluation_within_min_gap_of_the_last_is_skipped(db: Database) -> None:
    create_rules(db, HOOKS, [rule(**{"for": 0})])
    traffic(db, T0 - 4 * MIN, T0, 40, 20)
    gap = timedelta(seconds=30)
    assert evaluate(db, HOOKS, now=T0 - 10 * MIN, min_gap=gap) == []  # ok, no traffic yet
    assert len(evaluate(db, HOOKS, now=T0, min_gap=gap)) == 1
    traffic(db, T0, T0 + MIN, 40, 0)
    assert evaluate(db, HOOKS, now=T0 + timedelta(seconds=20), min_gap=gap) == []
    assert evaluate(db, HOOKS, now=T0 + timedelta(seconds=31), min_gap=gap) == []  # still breached
    assert [m["to"] for m in evaluate(db, HOOKS, now=T0 + 4 * MIN, min_gap=gap)] == ["ok"]


@pytest.mark.parametrize(
    ("state", "since", "breached", "now", "hold", "expected"),
    [
        ("ok", None, False, T0, MIN, "ok"),
        ("ok", None, True, T0, MIN, "pending"),
        ("ok", None, True, T0, timedelta(0), "firing"),
        ("pending", T0, True, T0 + MIN - timedelta(seconds=1), MIN, "pending"),
        ("pending", T0, True, T0 + MIN, MIN, "firing"),
        ("pending", T0, False, T0 + 5 * MIN, MIN, "ok"),
        ("firing", T0, True, T0 + 5 * MIN, MIN, "firing"),
        ("firing", T0, False, T0 + 5 * MIN, MIN, "ok"),
    ],
)
def test_next_state(state, since, breached, now, hold, expected) -> None:
    assert next_state(state, since, breached, now, hold) == expected
