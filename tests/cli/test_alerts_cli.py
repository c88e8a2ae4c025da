"""`stoa alerts` as users run it: rules from YAML, evaluate, list, ack, disable; bad
input exits 2 with one line on stderr, a conflict exits 1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stoa.client import LocalClient
from stoa.core.settings import Settings
from tests.cli.test_cli import ok_json, one_line_error, stoa  # noqa: F401 - fixture
from tests.measure.test_alerts import MIN, add_endpoint, traffic

RULES = """\
rules:
  - name: errors-high
    endpoint: support
    signal: {metric: error_rate}
    op: ">"
    threshold: 0.1
    window: 5m
    severity: critical
  - name: slow
    endpoint: support
    signal: {metric: latency_p95}
    op: ">"
    threshold: 500
    window: 5m
    for: 10m
"""


def test_rules_evaluate_list_ack_and_disable(stoa, tmp_path):  # noqa: F811
    setup = LocalClient(settings=Settings(home=tmp_path / "home"))
    add_endpoint(setup.stores.db, "support")
    now = datetime.now(UTC)
    traffic(setup.stores.db, now - 4 * MIN, now - timedelta(seconds=1), 40, 10)
    setup.close()
    (tmp_path / "rules.yaml").write_text(RULES)

    created = ok_json(stoa("alerts", "rules", "create", "rules.yaml", "--json"))
    assert [r["name"] for r in created] == ["errors-high", "slow"]

    moves = ok_json(stoa("alerts", "evaluate", "--json"))
    assert [(m["rule"], m["from"], m["to"]) for m in moves] == [("errors-high", "ok", "firing")]
    assert moves[0]["value"] == 0.25
    [alert] = ok_json(stoa("alerts", "list", "--json"))
    assert (alert["rule"], alert["severity"], alert["id"]) == ("errors-high", "critical", 1)
    listed = stoa("alerts", "list")
    assert "errors-high" in listed.stdout and "firing" in listed.stdout

    acked = stoa("alerts", "ack", "1")
    assert acked.returncode == 0 and acked.stdout.strip() == (
        "alert 1 (errors-high) acknowledged by tester"
    )
    one_line_error(stoa("alerts", "ack", "999"), 2, "alert_id: no alert with id 999")
    exists = "name: an alert rule named 'errors-high' exists"
    one_line_error(stoa("alerts", "rules", "create", "rules.yaml"), 1, exists, "disable it first")

    (tmp_path / "bad.yaml").write_text(
        RULES.replace('op: ">"\n    threshold: 500', "op: ~\n    threshold: 500")
    )
    one_line_error(stoa("alerts", "rules", "create", "bad.yaml"), 2, "rules[1].op:")

    assert stoa("alerts", "rules", "disable", "errors-high").stdout.strip() == (
        "disabled alert rule errors-high"
    )
    assert stoa("alerts", "list").stdout.strip() == "no alerts firing"
    [old] = ok_json(stoa("alerts", "list", "--all", "--json"))
    assert (old["state"], old["acked_by"]) == ("resolved", "tester")
    rules = ok_json(stoa("alerts", "rules", "list", "--all", "--json"))
    assert [(r["name"], r["enabled"]) for r in rules] == [("errors-high", False), ("slow", True)]
