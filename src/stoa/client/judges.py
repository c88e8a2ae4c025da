"""``client.judges``: online judge policies, which score a sample of an endpoint's live
predictions in the server's background and store the scores as judge feedback."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation


class Judges(Resource):
    name = "judges"

    def _policies(self) -> Any:
        from stoa.measure.judging import JudgePolicies

        return JudgePolicies(self._local.db)

    @operation("POST", "/judges/policies", scope="write", status=201)
    def create_policy(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec``: endpoint, judges (``embedding``, ``llm:PROVIDER[:MODEL]``), criteria,
        rate, variants, max_per_run (docs/review.md#judges-online)."""
        return self._policies().create(name, spec, actor=self._local.actor)

    @operation("GET", "/judges/policies", scope="read")
    def policies(self) -> list[dict[str, Any]]:
        return self._policies().list()

    @operation("POST", "/judges/policies/{name}/enabled", scope="write")
    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Pause (``False``) or resume a policy; its cursor and scores stay."""
        return self._policies().set_enabled(name, enabled)

    @operation("POST", "/judges/run", scope="write")
    def run(self, policy: str | None = None) -> list[dict[str, Any]]:
        """Run every enabled policy (or one) over the predictions it has not seen yet,
        now, instead of waiting for the server's next pass."""
        return self._policies().run(self._local.solutions, name=policy)
