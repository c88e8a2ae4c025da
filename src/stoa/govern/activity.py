"""What happened lately: the audit trail read newest first, for the dashboard's overview
and ``GET /api/v1/activity``.

Every change that is not itself a new row (alias moves, approvals, archiving, deletes,
knowledge-base ingests) writes an ``AuditEvent`` in its own transaction; new versions and
runs are rows of their own and are read from their tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import AuditEvent
from stoa.govern.types import AuditInfo

#: Token changes stay out of the feed that every reader sees; ``stoa tokens list`` shows them.
_PRIVATE_PREFIX = "token:"


def recent_events(
    db: Database, limit: int = 50, before: datetime | None = None, action: str | None = None
) -> list[AuditInfo]:
    """The newest audit events, newest first, without token changes."""
    if isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise InvalidInputError("limit must be 1..1000", field="limit")
    query = select(AuditEvent).where(~AuditEvent.subject.startswith(_PRIVATE_PREFIX))
    if before is not None:
        query = query.where(AuditEvent.at < before)
    if action:
        query = query.where(AuditEvent.action == action)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    with db.read() as session:
        return [
            AuditInfo(at=e.at, actor=e.actor, action=e.action, subject=e.subject, detail=e.detail)
            for e in session.scalars(query)
        ]
