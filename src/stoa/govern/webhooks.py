"""Registry webhooks: a signed JSON POST to a configured URL when a version is
registered, blocked, approved or rejected, or when an alias moves.

Deliveries are a transactional outbox: the change and its delivery rows commit together,
so a crash loses neither, and a delivery is retried with exponential backoff until the
receiver answers 2xx or the attempts run out. Several server processes share the outbox:
each claims a delivery by moving its next attempt forward in one conditional UPDATE.

URLs and secrets come only from configuration (``STOA_WEBHOOKS``), never from a request;
an error records the receiver's status, never its body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from stoa.core.db import Database
from stoa.core.errors import ConfigurationError
from stoa.core.schema import WebhookDelivery, utcnow

log = logging.getLogger("stoa.webhooks")

EVENTS = (
    "version.registered",
    "version.blocked",
    "version.approved",
    "version.rejected",
    "alias.moved",
    "alias.deleted",
    # Raised by measure's alert rules (stoa.measure.alerts), delivered by the same outbox.
    "alert.firing",
    "alert.resolved",
)
MAX_ATTEMPTS = 10
#: Seconds before the n-th retry: 2, 4, 8, ... capped at an hour.
MAX_BACKOFF_S = 3600
#: How long a claimed delivery is left to its claimer before another may try it.
LEASE_S = 60
D = WebhookDelivery.__table__


@dataclass(frozen=True)
class Hook:
    name: str
    url: str
    secret: str
    events: frozenset[str]


def parse_hooks(config: Mapping[str, Mapping[str, Any]]) -> list[Hook]:
    """``{"NAME": {"url": "https://…", "secret_env": "VAR", "events": [...]}}``; the
    secret is read from the variable, and a hook without one is a configuration error."""
    hooks = []
    for name, values in (config or {}).items():
        where = f"STOA_WEBHOOKS[{name!r}]"
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"{where} must be an object", field="webhooks")
        unknown = set(values) - {"url", "secret_env", "events"}
        if unknown:
            raise ConfigurationError(
                f"{where} has unknown keys {sorted(unknown)}",
                field="webhooks",
                fix="use url, secret_env and events",
            )
        url = values.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{where}.url must be an http(s) URL", field="webhooks")
        secret = os.environ.get(str(values.get("secret_env") or ""), "")
        if len(secret) < 16:
            raise ConfigurationError(
                f"{where} needs a secret of at least 16 characters in the variable its "
                "secret_env names",
                field="webhooks",
                fix="set secret_env to a variable holding the signing secret",
            )
        events = values.get("events", list(EVENTS))
        if not isinstance(events, list) or not set(events) <= set(EVENTS):
            raise ConfigurationError(
                f"{where}.events must be a list of {', '.join(EVENTS)}", field="webhooks"
            )
        hooks.append(Hook(str(name), url, secret, frozenset(events)))
    return hooks


def enqueue(
    conn: Connection, hooks: Sequence[Hook], event: str, payload: Mapping[str, Any]
) -> None:
    """Record one delivery per hook that wants ``event``, in the caller's transaction."""
    now = utcnow()
    body = {"event": event, "at": now.isoformat(), **payload}
    rows = [
        {"hook": hook.name, "event": event, "payload": body, "attempts": 0, "next_at": now,
         "created_at": now, "status": "pending", "last_status": None}
        for hook in hooks
        if event in hook.events
    ]  # fmt: skip
    if rows:
        conn.execute(insert(D), rows)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` HMAC of ``TIMESTAMP.BODY``: the receiver recomputes it, and refuses an
    old timestamp to stop replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class Dispatcher:
    """Delivers what the outbox holds; ``deliver_due`` is one pass, ``start`` loops it."""

    def __init__(self, db: Database, hooks: Sequence[Hook], *, timeout: float = 10.0):
        self.db = db
        self.hooks = {hook.name: hook for hook in hooks}
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_due(self, limit: int = 50) -> dict[str, int]:
        import httpx

        counts = {"delivered": 0, "retrying": 0, "failed": 0}
        with httpx.Client(timeout=self.timeout) as http:
            for row in self._claim(limit):
                hook = self.hooks.get(row.hook)
                if hook is None:  # configuration changed: keep it for a hook that returns
                    continue
                status = self._post(http, hook, row)
                counts[self._record(row, status)] += 1
        return counts

    def _claim(self, limit: int) -> list[Any]:
        now = utcnow()
        with self.db.write_connection() as conn:
            due = conn.execute(
                select(D).where(D.c.status == "pending", D.c.next_at <= now)
                .order_by(D.c.id).limit(limit)
            ).all()  # fmt: skip
            claimed = []
            for row in due:
                # The same condition as the select: a delivery another process claimed
                # meanwhile has its next attempt in the future and is not taken twice.
                taken = conn.execute(
                    update(D)
                    .where(D.c.id == row.id, D.c.status == "pending", D.c.next_at <= now)
                    .values(next_at=now + timedelta(seconds=LEASE_S))
                )
                if taken.rowcount == 1:
                    claimed.append(row)
            return claimed

    def _post(self, http: Any, hook: Hook, row: Any) -> int | None:
        import httpx

        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Stoa-Event": row.event,
            "X-Stoa-Delivery": str(row.id),
            "X-Stoa-Timestamp": stamp,
            "X-Stoa-Signature": signature(hook.secret, stamp, body),
        }
        try:
            return http.post(hook.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            log.warning("webhook %s delivery %s: %s", hook.name, row.id, type(exc).__name__)
            return None

    def _record(self, row: Any, status: int | None) -> str:
        attempts = row.attempts + 1
        now = utcnow()
        if status is not None and 200 <= status < 300:
            values = {"status": "delivered", "delivered_at": now}
            outcome = "delivered"
        elif attempts >= MAX_ATTEMPTS:
            values, outcome = {"status": "failed"}, "failed"
        else:
            delay = min(2**attempts, MAX_BACKOFF_S)
            values = {"next_at": now + timedelta(seconds=delay)}
            outcome = "retrying"
        with self.db.write_connection() as conn:
            conn.execute(
                update(D).where(D.c.id == row.id)
                .values(attempts=attempts, last_status=status, **values)
            )  # fmt: skip
        return outcome

    def start(self, every_s: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.deliver_due()
                except Exception:  # a bad row or a database hiccup must not stop delivery
                    log.exception("webhook delivery pass failed")

        self._thread = threading.Thread(target=loop, name="stoa-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def recent(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    """The newest deliveries, for ``stoa webhooks list``."""
    with db.read() as session:
        rows = session.execute(select(D).order_by(D.c.id.desc()).limit(limit)).all()
    return [
        {"id": r.id, "hook": r.hook, "event": r.event, "status": r.status,
         "attempts": r.attempts, "last_status": r.last_status,
         "created_at": _aware(r.created_at), "delivered_at": _aware(r.delivered_at)}
        for r in rows
    ]  # fmt: skip


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def version_payload(info: Any, actor: str) -> dict[str, Any]:
    return {"actor": actor, "kind": info.kind, "ref": info.ref, "status": info.status,
            "sha256": info.sha256, "license": info.license, "flavor": info.flavor}  # fmt: skip


__all__ = ["EVENTS", "Dispatcher", "Hook", "enqueue", "parse_hooks", "recent"]
