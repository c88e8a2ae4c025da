"""``client.alerts`` over both transports, and the server evaluating rules on its own
schedule and stopping cleanly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic_core import to_jsonable_python

from stoa.client import LocalClient
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.core.settings import Settings
from stoa.serve.server import create_app
from tests.measure.test_alerts import MIN, add_endpoint, rule, traffic


def test_rules_alerts_and_ack_over_http(both) -> None:
    local, remote, _ = both
    add_endpoint(local.stores.db, "support")
    now = datetime.now(UTC)
    rate = traffic(local.stores.db, now - 4 * MIN, now - timedelta(seconds=1), 40, 10)

    [made] = remote.alerts.create_rules([rule(**{"for": 0})])
    assert (made["name"], made["state"], made["enabled"]) == ("errors-high", "ok", True)
    # The same rows either way (over HTTP, times arrive as ISO 8601 text).
    assert remote.alerts.list_rules() == to_jsonable_python(local.alerts.list_rules())

    [move] = remote.alerts.evaluate()
    assert (move["from"], move["to"]) == ("ok", "firing")
    assert move["value"] == pytest.approx(rate)
    [alert] = remote.alerts.list()
    assert (alert["id"], alert["state"], alert["acked_by"]) == (move["alert_id"], "firing", None)

    acked = remote.alerts.ack(alert["id"])
    assert acked["acked_by"] and acked["acked_at"] is not None
    again = local.acting_as("someone-else").alerts.ack(str(alert["id"]))
    assert to_jsonable_python(again) == acked  # the first acknowledgement stands

    with pytest.raises(InvalidInputError, match="'>', '>=', '<' or '<='") as refused:
        remote.alerts.create_rules([rule(name="other", op="!=")])
    assert refused.value.field == "rule.op"
    with pytest.raises(ConflictError, match="exists"):
        remote.alerts.create_rules([rule()])
    with pytest.raises(NotFoundError, match="no alert with id 999"):
        remote.alerts.ack(999)

    disabled = remote.alerts.disable_rule("errors-high")
    assert disabled["enabled"] is False
    assert remote.alerts.list() == []
    [resolved] = remote.alerts.list(active_only=False)
    assert resolved["state"] == "resolved" and resolved["acked_by"] == acked["acked_by"]
    assert remote.alerts.list_rules() == []
    assert [r["name"] for r in remote.alerts.list_rules(include_disabled=True)] == ["errors-high"]


def test_the_server_evaluates_on_its_schedule_and_stops(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STOA_ALERTS_EVERY_S", "0.2")
    settings = Settings(home=tmp_path / "home")
    setup = LocalClient(settings=settings)
    add_endpoint(setup.stores.db, "support")
    now = datetime.now(UTC)
    traffic(setup.stores.db, now - 4 * MIN, now - timedelta(seconds=1), 40, 10)
    setup.alerts.create_rules([rule(**{"for": 0})])

    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alerts = api.get("/api/v1/alerts").json()
            if alerts:
                break
            time.sleep(0.1)
        assert [a["rule"] for a in alerts] == ["errors-high"]
        assert any(t.name == "stoa-alerts" for t in threading.enumerate())
    assert not any(t.name == "stoa-alerts" for t in threading.enumerate())
    app.state.client.close()
    setup.close()


def test_a_bad_schedule_setting_stops_the_server_from_starting(tmp_path, monkeypatch) -> None:
    from stoa.core.errors import ConfigurationError

    monkeypatch.setenv("STOA_ALERTS_EVERY_S", "often")
    client = LocalClient(settings=Settings(home=tmp_path / "home"))
    with pytest.raises(ConfigurationError, match="STOA_ALERTS_EVERY_S='often'"):
        create_app(client=client)
    client.close()
