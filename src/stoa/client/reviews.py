"""``client.reviews``: human review queues (create, fill, claim, label, stats), the
judge-human agreement report and quality over time.

A reviewer is the caller's token (``token:NAME``) when the call carries one, so a
holder of a token cannot label as someone else; otherwise the ``reviewer`` argument,
else the local user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from stoa.client._operation import Resource, operation


class Reviews(Resource):
    name = "reviews"

    def _reviewer(self, reviewer: str | None) -> str:
        actor = self._local.actor
        if actor.startswith("token:"):
            return actor
        return reviewer or actor

    @operation("POST", "/reviews/queues", scope="write", status=201)
    def create_queue(self, name: str, endpoint: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A queue over an endpoint: ``spec`` holds its rules and label schema."""
        from stoa.measure.review import create_queue

        return create_queue(self._local.db, name, endpoint, spec, actor=self._local.actor)

    @operation("GET", "/reviews/queues", scope="read")
    def list_queues(self, *, endpoint: str | None = None) -> list[dict[str, Any]]:
        from stoa.measure.review import list_queues

        return list_queues(self._local.db, endpoint=endpoint)

    @operation("GET", "/reviews/queues/{name}", scope="read")
    def show_queue(self, name: str) -> dict[str, Any]:
        """The queue's spec, cursors and stats."""
        from stoa.measure.review import show_queue

        return show_queue(self._local.db, name)

    @operation("POST", "/reviews/queues/{name}/fill", scope="write")
    def fill(self, name: str, *, pages: int = 10) -> dict[str, Any]:
        """Queue the new predictions the rules pick; counts by reason."""
        from stoa.measure.review import fill

        return fill(self._local.db, name, pages=pages)

    @operation("POST", "/reviews/queues/{name}/next", scope="write")
    def next(self, name: str, *, reviewer: str | None = None) -> dict[str, Any] | None:
        """Claim the next item (your unexpired claim first); None when none is left."""
        from stoa.measure.review import claim_next

        return claim_next(self._local.db, name, self._reviewer(reviewer))

    @operation("GET", "/reviews/queues/{name}/items", scope="read")
    def items(
        self,
        name: str,
        *,
        status: Literal["open", "claimed", "done"] | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        from stoa.measure.review import list_items

        return list_items(self._local.db, name, status=status, limit=limit, after_id=after_id)

    @operation("GET", "/reviews/queues/{name}/stats", scope="read")
    def stats(self, name: str) -> dict[str, Any]:
        """Open, claimed, done, by label, by reason and the median time to label."""
        from stoa.measure.review import queue_stats

        return queue_stats(self._local.db, name)

    @operation("GET", "/reviews/items/{item_id}", scope="read")
    def show_item(self, item_id: int) -> dict[str, Any]:
        from stoa.measure.review import item_view

        return item_view(self._local.db, item_id)

    @operation("POST", "/reviews/items/{item_id}/release", scope="write")
    def release(self, item_id: int, *, reviewer: str | None = None) -> dict[str, Any]:
        from stoa.measure.review import release

        return release(self._local.db, item_id, self._reviewer(reviewer))

    @operation("POST", "/reviews/items/{item_id}/label", scope="write")
    def label(
        self,
        item_id: int,
        label: str,
        *,
        correction: str | None = None,
        reviewer: str | None = None,
    ) -> dict[str, Any]:
        """Label an item you hold (or an open one); stored as ``human`` feedback."""
        from stoa.measure.review import label_item

        return label_item(
            self._local.db, item_id, self._reviewer(reviewer), label, correction=correction
        )

    @operation("GET", "/reviews/agreement/{endpoint}", scope="read")
    def agreement(
        self,
        endpoint: str,
        *,
        criterion: str = "correctness",
        queue: str | None = None,
        since: datetime | None = None,
        weights: Literal["linear", "quadratic"] = "linear",
        min_items: int = 100,
        min_kappa: float = 0.6,
        resamples: int = 1000,
    ) -> dict[str, Any]:
        """Judge-human agreement and whether the judge can replace human review."""
        from stoa.measure.agreement import agreement_for

        return agreement_for(
            self._local.db, endpoint, criterion, queue=queue, since=since, weights=weights,
            min_items=min_items, min_kappa=min_kappa, resamples=resamples,
        )  # fmt: skip

    @operation("GET", "/reviews/quality/{endpoint}", scope="read")
    def quality(
        self, endpoint: str, *, bucket: str = "day", since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Accuracy, precision, recall, F1 and calibration per window and variant."""
        from stoa.measure.quality import quality_over_time

        size: str | int = int(bucket) if bucket.isdigit() else bucket
        return quality_over_time(self._local.db, endpoint, bucket=size, since=since)
