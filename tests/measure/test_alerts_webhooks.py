"""Alert notifications: the alert.firing payload reaches a real HTTP receiver, signed,
after the outbox retried it with backoff; and every transition is one structured log
line."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import stoa.govern.webhooks as webhooks
from stoa.core.db import Database
from stoa.govern.webhooks import Dispatcher, Hook, parse_hooks
from stoa.measure.alerts import create_rules, evaluate
from stoa.serve.logs import JsonFormatter
from tests.measure.test_alerts import MIN, T0, add_endpoint, rule, traffic

SECRET = "alert-signing-secret-0123456789"


@contextlib.contextmanager
def flaky_receiver(failures: int) -> Iterator[tuple[str, list[dict]]]:
    """``http.server`` on loopback: answers 500 ``failures`` times, then 200, and keeps
    what each call carried."""
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body})  # fmt: skip
            status = 500 if len(calls) <= failures else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'stoa.db'}")
    add_endpoint(database, "support")
    yield database
    database.dispose()


def test_firing_reaches_a_flaky_receiver_signed_after_backoff(db, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with flaky_receiver(failures=2) as (url, calls):
        hooks = parse_hooks({"pager": {"url": url, "secret_env": "HOOK_SECRET",
                                       "events": ["alert.firing", "alert.resolved"]}})  # fmt: skip
        create_rules(db, hooks, [rule(**{"for": 0}, severity="critical",
                                      description="errors above 10%")])  # fmt: skip
        rate = traffic(db, T0 - 4 * MIN, T0, 50, 15)
        [move] = evaluate(db, hooks, now=T0)

        # The dispatcher's clock, moved by hand: each retry is due only after its backoff.
        clock = [webhooks.utcnow()]
        monkeypatch.setattr(webhooks, "utcnow", lambda: clock[0])
        dispatcher = Dispatcher(db, hooks, timeout=5)
        assert dispatcher.deliver_due()["retrying"] == 1  # 500
        for wait_s, expected in [(2, "retrying"), (4, "delivered")]:
            clock[0] += timedelta(seconds=wait_s - 0.5)
            assert dispatcher.deliver_due() == {"delivered": 0, "retrying": 0, "failed": 0}
            clock[0] += timedelta(seconds=0.5)
            assert dispatcher.deliver_due()[expected] == 1
    assert len(calls) == 3
    delivered = calls[-1]
    body = json.loads(delivered["body"])
    assert (
        body["event"] == "alert.firing" and delivered["headers"]["x-stoa-event"] == "alert.firing"
    )
    alert = body["alert"]
    assert (alert["id"], alert["rule"], alert["endpoint"]) == (
        move["alert_id"],
        "errors-high",
        "support",
    )
    assert (alert["severity"], alert["state"], alert["op"], alert["threshold"]) == (
        "critical", "firing", ">", 0.1)  # fmt: skip
    assert alert["value"] == pytest.approx(rate) and alert["n"] == 50
    assert alert["description"] == "errors above 10%" and alert["started_at"] == T0.isoformat()
    stamp = delivered["headers"]["x-stoa-timestamp"]
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + delivered["body"], hashlib.sha256)
    assert delivered["headers"]["x-stoa-signature"] == f"sha256={mac.hexdigest()}"
    # Every attempt carried the same delivery.
    assert {c["headers"]["x-stoa-delivery"] for c in calls} == {
        delivered["headers"]["x-stoa-delivery"]
    }


def test_notify_picks_hooks_and_a_hook_without_alert_events_gets_none(db, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    hooks = [Hook("registry", "http://127.0.0.1:9/a", SECRET, frozenset({"alias.moved"})),
             Hook("pager", "http://127.0.0.1:9/b", SECRET, frozenset(webhooks.EVENTS)),
             Hook("chat", "http://127.0.0.1:9/c", SECRET, frozenset(webhooks.EVENTS))]  # fmt: skip
    create_rules(db, hooks, [rule(name="everyone", **{"for": 0}),
                             rule(name="pager-only", notify=["pager"], **{"for": 0})])  # fmt: skip
    traffic(db, T0 - 4 * MIN, T0, 50, 15)
    evaluate(db, hooks, now=T0)
    sent = sorted((d["hook"], d["event"]) for d in webhooks.recent(db))
    assert sent == [("chat", "alert.firing"), ("pager", "alert.firing"), ("pager", "alert.firing")]


def test_every_transition_is_one_structured_log_line(db, caplog) -> None:
    create_rules(db, [], [rule(**{"for": "5m"})])
    traffic(db, T0 - 4 * MIN, T0, 50, 15)
    with caplog.at_level(logging.INFO, logger="stoa.alerts"):
        evaluate(db, [], now=T0)
        traffic(db, T0, T0 + 5 * MIN, 50, 15)
        [firing] = evaluate(db, [], now=T0 + 5 * MIN)
    records = [r for r in caplog.records if r.name == "stoa.alerts"]
    assert [(r.state_from, r.state_to, r.levelname) for r in records] == [
        ("ok", "pending", "INFO"), ("pending", "firing", "WARNING")]  # fmt: skip
    line = json.loads(JsonFormatter().format(records[1]))
    assert (line["logger"], line["event"], line["rule"], line["endpoint"]) == (
        "stoa.alerts", "alert.firing", "errors-high", "support")  # fmt: skip
    assert line["alert_id"] == firing["alert_id"] and line["value"] == pytest.approx(0.3)
    assert "errors-high: pending -> firing" in line["message"]
