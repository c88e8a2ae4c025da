"""``client.admin``: upkeep of the stores: garbage collection of blobs and temporaries."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation
from stoa.core.errors import InvalidInputError
from stoa.govern import gc, webhooks


class Admin(Resource):
    name = "admin"

    @operation("POST", "/admin/gc", scope="admin")
    def gc(self, min_age_s: int = gc.DEFAULT_MIN_AGE_S, dry_run: bool = False) -> dict[str, Any]:
        """Delete blobs no version or run artifact references, and temporaries a crash
        left, all older than ``min_age_s``; ``dry_run`` only counts them."""
        local = self._local
        return gc.collect(local.db, local.blobs, min_age_s=min_age_s, dry_run=dry_run)

    @operation("GET", "/admin/webhooks", scope="admin")
    def webhook_deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest webhook deliveries: event, status, attempts, the receiver's last
        HTTP status (never its body)."""
        if isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be 1..1000", field="limit")
        return webhooks.recent(self._local.db, limit)

    @operation("POST", "/admin/webhooks/deliver", scope="admin")
    def deliver_webhooks(self) -> dict[str, int]:
        """Deliver what is due now (a server does this every second by itself)."""
        local = self._local
        return webhooks.Dispatcher(local.db, local.hooks).deliver_due()
