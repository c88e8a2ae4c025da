"""``client.feedback``: reviewed feedback back into training data (sending feedback is
``client.endpoints.feedback``, on the data plane)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stoa.client._operation import Resource, operation


class Feedback(Resource):
    name = "feedback"

    @operation("POST", "/feedback/{endpoint}/export", scope="write")
    def export(
        self,
        endpoint: str,
        dataset: str,
        *,
        format: str = "jsonl",
        since: datetime | None = None,
        sources: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Register reviewers' labels and corrections on ``endpoint``'s predictions as the
        next version of ``dataset``, linked to the versions that served them."""
        from stoa.measure.training_data import export_to_dataset

        return export_to_dataset(
            self._local, endpoint, dataset, format=format, since=since,
            sources=sources or ["human"], description=description,
        )  # fmt: skip
