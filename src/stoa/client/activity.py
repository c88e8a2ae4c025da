"""``client.activity``: the audit trail, newest first."""

from __future__ import annotations

from datetime import datetime

from stoa.client._operation import Resource, operation
from stoa.govern.activity import recent_events
from stoa.govern.types import AuditInfo


class Activity(Resource):
    name = "activity"

    @operation("GET", "/activity", scope="read")
    def recent(
        self, limit: int = 50, before: datetime | None = None, action: str | None = None
    ) -> list[AuditInfo]:
        """Alias moves, approvals, rejections, archiving, deletes and knowledge-base
        changes, newest first; ``before`` pages back, ``action`` filters."""
        return recent_events(self._local.db, limit, before, action)
