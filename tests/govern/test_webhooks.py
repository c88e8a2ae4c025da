"""Registry webhooks (issue 12, item 11): signed JSON POSTs from an outbox that commits
with the change, retried with backoff, to configured URLs only."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update

from stoa.client import LocalClient
from stoa.core.errors import ConfigurationError, NotFoundError
from stoa.core.schema import WebhookDelivery
from stoa.core.settings import Settings
from stoa.govern.webhooks import parse_hooks
from tests.artifacts import malicious_pickle, write_safetensors
from tests.servers import serve_in_thread

SECRET = "s3cret-signing-key-0123456789"


@contextlib.contextmanager
def receiver(fail_first: int = 0) -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on loopback that records what it got; the first ``fail_first``
    calls answer 500 with a body that must never reach Stoa's records."""
    app = FastAPI()
    got: list[dict] = []
    calls = {"n": 0}

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return JSONResponse({"secret": "receiver internals"}, status_code=500)
        body = await request.body()
        got.append({"headers": dict(request.headers), "body": body})
        return JSONResponse({"ok": True})

    with serve_in_thread(app) as url:
        yield f"{url}/hook", got


def _client(tmp_path: Path, url: str, monkeypatch, **hook) -> LocalClient:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    hooks = {"ops": {"url": url, "secret_env": "HOOK_SECRET", **hook}}
    return LocalClient(settings=Settings(home=tmp_path / "h", webhooks=hooks), actor="ana")


def test_events_are_signed_and_delivered(tmp_path, monkeypatch) -> None:
    with receiver() as (url, got):
        client = _client(tmp_path, url, monkeypatch)
        info = client.models.register("m", write_safetensors(tmp_path / "w.safetensors"),
                                      license="MIT")  # fmt: skip
        client.models.set_alias("m", 1, "champion")
        client.models.register("evil", _pickle(tmp_path))
        assert client.admin.deliver_webhooks() == {"delivered": 4, "retrying": 0, "failed": 0}
        client.close()
    events = [json.loads(g["body"])["event"] for g in got]
    assert events == ["version.registered", "alias.moved", "version.registered",
                      "version.blocked"]  # fmt: skip
    first = got[0]
    body = json.loads(first["body"])
    assert body["ref"] == "m@1" and body["sha256"] == info.sha256 and body["actor"] == "ana"
    stamp = first["headers"]["x-stoa-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + first["body"], hashlib.sha256)
    assert first["headers"]["x-stoa-signature"] == f"sha256={expected.hexdigest()}"
    assert first["headers"]["x-stoa-event"] == "version.registered"


def _pickle(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pkl"
    path.write_bytes(malicious_pickle())
    return path


def test_a_failing_receiver_is_retried_with_backoff_and_its_body_never_kept(
    tmp_path, monkeypatch
) -> None:
    with receiver(fail_first=2) as (url, got):
        client = _client(tmp_path, url, monkeypatch, events=["alias.moved"])
        client.models.register("m", write_safetensors(tmp_path / "w.safetensors"),
                               license="MIT")  # fmt: skip
        client.models.set_alias("m", 1, "prod")
        assert client.admin.deliver_webhooks()["retrying"] == 1
        assert client.admin.deliver_webhooks() == {"delivered": 0, "retrying": 0, "failed": 0}
        for _ in range(2):  # not due before its backoff: make it due, as time would
            with client.stores.db.write_connection() as conn:
                conn.execute(update(WebhookDelivery.__table__).values(next_at=_past()))
            client.admin.deliver_webhooks()
        [row] = client.admin.webhook_deliveries()
        client.close()
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 3, 200)
    assert "receiver internals" not in json.dumps(row, default=str)
    assert [json.loads(g["body"])["event"] for g in got] == ["alias.moved"]


def _past():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=1)


def test_a_refused_change_enqueues_nothing(tmp_path, monkeypatch) -> None:
    with receiver() as (url, got):
        client = _client(tmp_path, url, monkeypatch)
        with pytest.raises(NotFoundError):
            client.models.register("m", write_safetensors(tmp_path / "w.safetensors"),
                                   run_id="missing")  # fmt: skip
        assert client.admin.webhook_deliveries() == []
        client.close()
    assert got == []


def test_a_server_delivers_by_itself(tmp_path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from stoa.serve.server import create_app

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with receiver() as (url, got):
        hooks = {"ops": {"url": url, "secret_env": "HOOK_SECRET"}}
        app = create_app(Settings(home=tmp_path / "h", webhooks=hooks))
        with TestClient(app, base_url="http://127.0.0.1") as api:
            api.post("/api/v1/prompts", json={"name": "p", "template": "hi"})
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.1)
        app.state.client.close()
    assert [json.loads(g["body"])["ref"] for g in got] == ["p@1"]


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"url": "ftp://x", "secret_env": "HOOK_SECRET"}, r"http\(s\) URL"),
        ({"url": "http://x"}, "secret of at least 16 characters"),
        ({"url": "http://x", "secret_env": "HOOK_SECRET", "events": ["x"]}, "events must be"),
        ({"url": "http://x", "secret_env": "HOOK_SECRET", "retries": 3}, "unknown keys"),
    ],
)
def test_bad_webhook_settings_are_refused_by_name(monkeypatch, hook, message) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with pytest.raises(ConfigurationError, match=message) as refused:
        parse_hooks({"ops": hook})
    assert refused.value.field == "webhooks"
