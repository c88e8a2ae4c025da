"""``client.selections``: train, measure and rank candidate models on a dataset version."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation
from stoa.core.errors import InvalidInputError


def _registered_data_only(_: Any, values: dict[str, Any]) -> None:
    """A path would let a caller read any file the server can."""
    data = (values.get("config") or {}).get("data")
    if isinstance(data, dict) and data.get("path"):
        raise InvalidInputError(
            "the server selects on registered datasets only",
            field="config.data.path",
            fix="register the file (POST /api/v1/datasets) and pass data.dataset: NAME@VERSION",
        )


class Selections(Resource):
    name = "selections"

    @operation("POST", "/selections", scope="write", guard=_registered_data_only)
    def run(self, config: dict[str, Any], register: str | None = None) -> dict[str, Any]:
        """The leaderboard of the ``stoa select`` config; ``register`` stores the
        recommendation under that name and points ``champion`` at it."""
        from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

        return numpy_safe(run_selection(self._client, parse_config(config), register=register))
