"""Alert rules refuse bad input by field and with a fix: each rule field, an unknown
metric or endpoint, a duplicate name, an unknown alert; and a list with one bad rule
writes none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stoa.core.db import Database
from stoa.core.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from stoa.govern.webhooks import Hook
from stoa.measure.alerts import (
    ack,
    create_rules,
    interval_from_env,
    list_rules,
    parse_rules_yaml,
)
from stoa.measure.definitions import MetricStore
from tests.measure.test_alerts import HOOKS, add_endpoint, rule


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'stoa.db'}")
    add_endpoint(database, "support")
    yield database
    database.dispose()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "Errors High"}, "rule.name", "lowercase letters"),
        ({"name": None}, "rule.name", "valid string"),
        ({"endpoint": ""}, "rule.endpoint", "at least 1 character"),
        ({"signal": "error_rate"}, "rule.signal", "valid dictionary"),
        ({"signal": {"metric": "ctr", "kind": "x"}}, "rule.signal.kind", "Extra inputs"),
        ({"signal": {}}, "rule.signal", "either {metric: NAME} or {drift"),
        ({"op": "=>"}, "rule.op", "'>', '>=', '<' or '<='"),
        ({"threshold": "high"}, "rule.threshold", "valid number"),
        ({"threshold": float("nan")}, "rule.threshold", "finite number"),
        ({"window": "5 minutes"}, "rule.window", "'5 minutes' is not a duration"),
        ({"window": "0m"}, "rule.window", "window must be positive"),
        ({"for": "-1m"}, "rule.for", "is not a duration"),
        ({"min_samples": 0}, "rule.min_samples", "greater than or equal to 1"),
        ({"no_data": "maybe"}, "rule.no_data", "'ok' or 'keep'"),
        ({"notify": "ops"}, "rule.notify", "valid list"),
        ({"notify": ["pagerduty"]}, "notify", "no webhook named 'pagerduty'"),
        ({"severity": "urgent"}, "rule.severity", "'info', 'warning' or 'critical'"),
        ({"page_me": True}, "rule.page_me", "Extra inputs are not permitted"),
        ({"signal": {"drift": {}, "variant": "a"}}, "rule.signal", "`variant` applies to a metric"),
        ({"signal": {"drift": {"colums": ["x"]}}}, "rule.signal", "unknown drift option 'colums'"),
        ({"signal": {"drift": {"columns": "x"}}}, "rule.signal", "a list of column names"),
    ],
)
def test_each_bad_field_is_named(db, change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        create_rules(db, HOOKS, [rule(**change)])
    assert refused.value.field == field and message in refused.value.message, refused.value
    assert refused.value.fix
    assert list_rules(db, include_disabled=True) == []


def test_a_missing_field_and_a_list_name_the_rule_by_position(db) -> None:
    doc = rule()
    del doc["threshold"]
    with pytest.raises(InvalidInputError, match="Field required") as refused:
        create_rules(db, HOOKS, [rule(name="fine"), doc])
    assert refused.value.field == "rules[1].threshold"
    assert list_rules(db) == []  # the good one was not written either
    with pytest.raises(InvalidInputError, match="given twice"):
        create_rules(db, HOOKS, [rule(), rule()])
    with pytest.raises(InvalidInputError, match="must be a mapping") as refused:
        create_rules(db, HOOKS, ["errors-high"])
    assert refused.value.field == "rule"


def test_unknown_metric_endpoint_and_hook_events(db) -> None:
    with pytest.raises(NotFoundError, match="no metric named 'ctrr'") as refused:
        create_rules(db, HOOKS, [rule(signal={"metric": "ctrr"})])
    assert refused.value.field == "signal.metric" and "stoa metrics list" in refused.value.fix
    with pytest.raises(NotFoundError, match="no endpoint named 'suport'") as refused:
        create_rules(db, HOOKS, [rule(endpoint="suport")])
    assert refused.value.field == "endpoint"
    registry_only = [Hook("ops", "http://127.0.0.1:9/", "x" * 16, frozenset({"alias.moved"}))]
    with pytest.raises(InvalidInputError, match=r"does not subscribe to alert\.firing"):
        create_rules(db, registry_only, [rule(notify=["ops"])])


def test_a_defined_metric_and_a_judge_score_are_signals(db) -> None:
    store = MetricStore(db)
    store.define({"name": "correctness", "kind": "judge", "criterion": "correctness"})
    [made] = create_rules(db, HOOKS, [rule(signal={"metric": "correctness", "variant": "b"},
                                           op="<", threshold=0.7)])  # fmt: skip
    assert (made["signal"], made["op"], made["threshold"]) == ("correctness[b]", "<", 0.7)
    assert made["spec"]["for"] == "10m" and made["state"] == "ok"


def test_a_duplicate_name_is_a_conflict_with_the_fix(db) -> None:
    create_rules(db, HOOKS, [rule()], actor="ana")
    with pytest.raises(ConflictError, match="an alert rule named 'errors-high' exists") as refused:
        create_rules(db, HOOKS, [rule(threshold=0.2)])
    assert refused.value.fix.startswith("disable it first")
    [kept] = list_rules(db)
    assert (kept["threshold"], kept["created_by"]) == (0.1, "ana")


def test_ack_refuses_an_unknown_or_malformed_id(db) -> None:
    with pytest.raises(NotFoundError, match="no alert with id 42") as refused:
        ack(db, 42, actor="ana")
    assert refused.value.field == "alert_id"
    with pytest.raises(InvalidInputError, match="is not an alert id"):
        ack(db, "abc", actor="ana")


def test_rules_yaml_takes_one_a_list_or_a_rules_key() -> None:
    one = "name: a\nendpoint: support\n"
    assert parse_rules_yaml(one) == [{"name": "a", "endpoint": "support"}]
    assert len(parse_rules_yaml("- name: a\n- name: b\n")) == 2
    assert len(parse_rules_yaml("rules:\n  - name: a\n")) == 1
    with pytest.raises(InvalidInputError, match="not valid YAML at line 2"):
        parse_rules_yaml("name: a\n  bad: [\n")
    with pytest.raises(InvalidInputError, match="no alert rules found"):
        parse_rules_yaml("")


def test_the_schedule_interval_comes_from_the_environment() -> None:
    assert interval_from_env({}) == 60.0
    assert interval_from_env({"STOA_ALERTS_EVERY_S": "15"}) == 15.0
    assert interval_from_env({"STOA_ALERTS_EVERY_S": "0"}) is None
    for bad in ("soon", "-5", "inf", "nan"):
        with pytest.raises(ConfigurationError, match="not a number of seconds"):
            interval_from_env({"STOA_ALERTS_EVERY_S": bad})
