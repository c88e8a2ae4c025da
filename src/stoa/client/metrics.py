"""``client.metrics``: business metrics declared once (built-ins and versioned ones of
your own) and used by A/B reports, monitors and alerts."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation


class Metrics(Resource):
    name = "metrics"

    def _store(self) -> Any:
        from stoa.measure.definitions import MetricStore

        return MetricStore(self._local.db)

    @operation("POST", "/metrics", scope="write", status=201)
    def define(self, spec: dict[str, Any] | str) -> list[dict[str, Any]]:
        """One definition (a mapping) or YAML text holding one or a list; each becomes
        the next version of its name unless it is unchanged."""
        from stoa.measure.definitions import parse_spec, parse_yaml

        specs = parse_yaml(spec) if isinstance(spec, str) else [parse_spec(spec)]
        store = self._store()
        return [store.define(s, actor=self._local.actor) for s in specs]

    @operation("GET", "/metrics", scope="read")
    def list(self) -> list[dict[str, Any]]:
        """Built-ins first, then every defined metric at its latest version."""
        return self._store().list()

    @operation("GET", "/metrics/{name}", scope="read")
    def show(self, name: str) -> dict[str, Any]:
        """A built-in or a defined metric (``name@2`` for an earlier version)."""
        spec = self._store().get(name)
        return {"name": name, **spec.model_dump(exclude_defaults=True)}
