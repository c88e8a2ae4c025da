"""``client.admin``: upkeep of the stores: garbage collection of blobs and temporaries."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation
from stoa.govern import gc


class Admin(Resource):
    name = "admin"

    @operation("POST", "/admin/gc", scope="admin")
    def gc(self, min_age_s: int = gc.DEFAULT_MIN_AGE_S, dry_run: bool = False) -> dict[str, Any]:
        """Delete blobs no version or run artifact references, and temporaries a crash
        left, all older than ``min_age_s``; ``dry_run`` only counts them."""
        local = self._local
        return gc.collect(local.db, local.blobs, min_age_s=min_age_s, dry_run=dry_run)
