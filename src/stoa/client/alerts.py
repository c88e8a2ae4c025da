"""``client.alerts``: alert rules on an endpoint's metrics, the alerts they raise, and
their acknowledgement. A server evaluates the rules on its own schedule; ``evaluate``
runs one pass now."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation
from stoa.measure import alerts


class Alerts(Resource):
    name = "alerts"

    @operation("POST", "/alerts/rules", scope="write", status=201)
    def create_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create rules (all or none); a name an enabled rule holds is a conflict."""
        local = self._local
        return alerts.create_rules(local.db, local.hooks, rules, actor=local.actor)

    @operation("GET", "/alerts/rules", scope="read")
    def list_rules(self, include_disabled: bool = False) -> list[dict[str, Any]]:
        """Rules by name, with their state (ok, pending, firing) and last value."""
        return alerts.list_rules(self._local.db, include_disabled=include_disabled)

    @operation("POST", "/alerts/rules/{name}/disable", scope="write")
    def disable_rule(self, name: str) -> dict[str, Any]:
        """Stop evaluating a rule; its open alert resolves, its history stays."""
        local = self._local
        return alerts.disable_rule(local.db, local.hooks, name, actor=local.actor)

    @operation("GET", "/alerts", scope="read")
    def list(self, active_only: bool = True, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: the alerts still firing, or with ``active_only=False`` all."""
        return alerts.list_alerts(self._local.db, active_only=active_only, limit=limit)

    @operation("POST", "/alerts/{alert_id}/ack", scope="write")
    def ack(self, alert_id: int | str) -> dict[str, Any]:
        """Acknowledge an alert; acknowledging it again keeps the first acknowledgement."""
        local = self._local
        return alerts.ack(local.db, alert_id, actor=local.actor)

    @operation("POST", "/alerts/evaluate", scope="write")
    def evaluate(self) -> list[dict[str, Any]]:
        """Evaluate every rule once now; the transitions it made."""
        local = self._local
        return alerts.evaluate(local.db, local.hooks)
