"""``client.experiments``: sound A/B decisions on an endpoint's business metrics, on a
table of per-unit outcomes from anywhere, and promoting the winner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stoa.client._operation import Resource, operation


class Experiments(Resource):
    name = "experiments"

    def _endpoints(self) -> Any:
        from stoa.serve.endpoints import EndpointStore

        return EndpointStore(self._local.db, self._local.registry)

    @operation("GET", "/experiments/{endpoint}", scope="read")
    def report(
        self,
        endpoint: str,
        *,
        metrics: list[str] | None = None,
        guardrails: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        config_version: int | None = None,
        control: str | None = None,
        rule: str = "sequential",
        alpha: float = 0.05,
    ) -> dict[str, Any]:
        """Every live variant against the control on the goal ``metrics`` (default: the
        built-in ones with feedback) and the ``guardrails`` (default: latency p95, error
        rate, cost per 1,000), with the decision and its reason (docs/experiments.md)."""
        from stoa.measure.experiments import endpoint_report

        return endpoint_report(
            self._local.db, self._endpoints().show(endpoint), metrics=metrics,
            guardrails=guardrails, since=since, until=until, config_version=config_version,
            control=control, rule=rule, alpha=alpha,
        )  # fmt: skip

    @operation("POST", "/experiments/{endpoint}/promote", scope="write")
    def promote(
        self,
        endpoint: str,
        variant: str,
        *,
        reason: str = "",
        force: bool = False,
        metrics: list[str] | None = None,
        since: datetime | None = None,
    ) -> dict[str, Any]:
        """All live traffic to ``variant`` as the endpoint's next config, with the
        report's decision as its note; refused when the report does not recommend it,
        unless ``force`` with a ``reason``."""
        from stoa.measure.experiments import promote

        return promote(
            self._endpoints(), self._local.db, endpoint, variant, reason=reason, force=force,
            actor=self._local.actor, metrics=metrics, since=since,
        )  # fmt: skip

    def analyze(
        self,
        table: str,
        *,
        variant: str,
        metrics: Sequence[str],
        weights: Mapping[str, float] | None = None,
        control: str | None = None,
        rule: str = "sequential",
        alpha: float = 0.05,
    ) -> dict[str, Any]:
        """The same engine on a table with one row per unit (a dataset version or a
        CSV/Parquet/JSONL path): ``metrics`` as ``COLUMN:proportion``, ``COLUMN:mean``,
        ``NUM/DEN:ratio``, each optionally ``:lower`` and/or ``:guardrail``. Runs here,
        where the table is."""
        from stoa.measure.ab import analyze_frame
        from stoa.measure.table_metrics import parse_table_metrics
        from stoa.measure.tables import dataset_fetcher, load_table

        frame, source = load_table(table, dataset_fetcher(self._client))
        specs = parse_table_metrics(metrics)
        report = analyze_frame(
            frame, variant, specs, weights=weights, control=control, rule=rule, alpha=alpha
        )
        return {"table": source, "rows": len(frame), **report.to_dict()}
