"""``client.predictions``: read the logbook: filter, page, show one with its trace and
feedback, summarise an endpoint per variant, and export to JSONL or Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from stoa.client._operation import Resource, operation, remote_variant

Format = Literal["jsonl", "parquet"]


def _export_over_http(
    resource: Predictions, path: str | Path, *, format: Format = "jsonl", **filters: Any
) -> int:
    """Page through the server's logbook oldest first (ids are time-ordered, so pages are
    stable while predictions arrive) and write the same file a local export writes, one
    page in memory at a time."""
    from stoa.serve.predictions import write_rows

    def pages() -> Iterator[list[dict[str, Any]]]:
        after = ""
        while True:
            rows = resource.list(**filters, limit=1000, after_id=after, traces=True)
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    return write_rows(Path(path), format, pages())


class Predictions(Resource):
    name = "predictions"

    @operation("GET", "/predictions", scope="read")
    def list(
        self,
        *,
        endpoint: str | None = None,
        variant: str | None = None,
        unit_id: str | None = None,
        status: str | None = None,
        mode: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 100,
        before_id: str | None = None,
        after_id: str | None = None,
        traces: bool = False,
    ) -> list[dict[str, Any]]:
        """Newest first; page with ``before_id`` (the last id of the page before), or
        oldest first from ``after_id``."""
        from stoa.serve.predictions import list_predictions

        return list_predictions(
            self._local.db, endpoint=endpoint, variant=variant, unit_id=unit_id,
            status=status, mode=mode, since=since, until=until, search=search, limit=limit,
            before_id=before_id, after_id=after_id, traces=traces,
        )  # fmt: skip

    @operation("GET", "/predictions/{prediction_id}", scope="read")
    def show(self, prediction_id: str) -> dict[str, Any]:
        """One prediction with its trace, its feedback and its shadows' ids."""
        from stoa.serve.predictions import get_prediction

        return get_prediction(self._local.db, prediction_id)

    @operation("GET", "/predictions/-/summary", scope="read")
    def summary(self, endpoint: str, *, since: datetime | None = None) -> list[dict[str, Any]]:
        """Per variant: predictions, errors, p50/p95 latency and feedback by kind."""
        from stoa.serve.predictions import counts_by_variant

        return counts_by_variant(self._local.db, endpoint, since=since)

    @operation("GET", "/predictions/-/series", scope="read")
    def series(
        self, endpoint: str, *, bucket_s: int = 60, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Per time bucket and variant: requests, errors, mean and p95 latency."""
        from stoa.serve.predictions import series

        return series(self._local.db, endpoint, bucket_s=bucket_s, since=since)

    @remote_variant(_export_over_http)
    def export(self, path: str | Path, *, format: Format = "jsonl", **filters: Any) -> int:
        """Write every matching prediction (oldest first) to a new file; the count."""
        from stoa.serve.predictions import export_predictions

        return export_predictions(self._local.db, Path(path), format=format, **filters)
