"""``client.monitor``: is an endpoint still working (drift of its inputs and outputs,
quality, business metrics), and do two tables differ (Evidently's core use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stoa.client._operation import Resource, operation


class Monitor(Resource):
    name = "monitor"

    @operation("GET", "/monitor/{endpoint}", scope="read")
    def report(
        self, endpoint: str, *, window: str = "24h", reference: str | None = None
    ) -> dict[str, Any]:
        """The last ``window`` against ``reference``: the window before it (default),
        ``logbook:START/END``, or a dataset version (docs/monitoring.md)."""
        from stoa.measure.monitor import monitor_report
        from stoa.measure.tables import dataset_fetcher

        return monitor_report(
            self._local.db, endpoint, window=window, reference=reference,
            fetch=dataset_fetcher(self._client),
        )  # fmt: skip

    def drift(
        self,
        reference: str,
        current: str,
        *,
        columns: list[str] | None = None,
        column_types: Mapping[str, str] | None = None,
        methods: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        drift_share: float = 0.5,
    ) -> dict[str, Any]:
        """Drift of table ``current`` against table ``reference``: each a dataset
        version or a CSV/Parquet/JSONL path. Runs here, where the tables are; a dataset
        version is downloaded from the stores or the server this client talks to."""
        from stoa.measure.drift import compare
        from stoa.measure.tables import dataset_fetcher, load_table

        fetch = dataset_fetcher(self._client)
        ref, ref_source = load_table(reference, fetch, field="reference")
        cur, cur_source = load_table(current, fetch, field="current")
        report = compare(
            ref, cur, columns=columns, column_types=column_types, methods=methods,
            thresholds=thresholds, drift_share=drift_share,
        )  # fmt: skip
        return {
            "reference": {"source": ref_source, "rows": len(ref)},
            "current": {"source": cur_source, "rows": len(cur)},
            **report.to_dict(),
        }
