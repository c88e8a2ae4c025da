"""``client.endpoints``: serve solutions and models behind a stable name with A/B,
canary and shadow variants, and send them traffic and feedback.

The control plane (create, list, show, set_traffic, archive) lives under
``/api/v1/endpoints``; ``predict`` and ``feedback`` are the data plane's
``/v1/endpoints/{name}/predict`` and ``/v1/feedback`` over HTTP, and the same
``Serving`` object in process.
"""

from __future__ import annotations

from typing import Any

from stoa.client._operation import Resource, operation, remote_variant
from stoa.client._transport import seg
from stoa.core.errors import InvalidInputError
from stoa.serve.endpoints import EndpointInfo, EndpointStore


def _variants(values: list[str | dict[str, Any]] | None) -> list[Any] | None:
    """Variants as ``NAME=REF:WEIGHT`` strings or as objects, checked the same way."""
    from stoa.serve.traffic import Variant, parse_variant

    if values is None:
        return None
    if not isinstance(values, list):
        raise InvalidInputError("variants must be a list", field="variants")
    out = []
    for index, value in enumerate(values):
        if isinstance(value, str):
            out.append(parse_variant(value))
        elif isinstance(value, dict):
            try:
                out.append(Variant.from_dict(value))
            except InvalidInputError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"variant {index} is not a variant: {exc}",
                    field=f"variants[{index}]",
                    fix='give {"name": "a", "target": "support@1", "weight": 50} '
                    'or "a=support@1:50"',
                ) from None
        else:
            raise InvalidInputError(
                f"variant {index} is a {type(value).__name__}",
                field=f"variants[{index}]",
                fix='give "a=support@1:50" or an object',
            )
    return out


def _predict_over_http(
    resource: Endpoints,
    name: str,
    input: Any,
    *,
    unit_id: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    http = resource._http
    body: dict[str, Any] = {"input": input, "unit_id": unit_id}
    if variant is not None:
        body["variant"] = variant
    return http.call("POST", f"{http.url}/v1/endpoints/{seg(name)}/predict", json=body).json()


def _feedback_over_http(resource: Endpoints, events: Any) -> dict[str, Any]:
    http = resource._http
    return http.call("POST", f"{http.url}/v1/feedback", json=events).json()


class Endpoints(Resource):
    name = "endpoints"

    def _store(self) -> EndpointStore:
        local = self._local
        return EndpointStore(local.db, local.registry)

    @operation("POST", "/endpoints", scope="write", status=201)
    def create(
        self,
        name: str,
        variants: list[str | dict[str, Any]],
        *,
        options: dict[str, Any] | None = None,
        description: str = "",
    ) -> EndpointInfo:
        """A new endpoint over ``variants`` (``"a=support@1:50"``, ``"s=support@2:shadow"``,
        or objects); each reference is resolved and stored as the version it names."""
        return self._store().create(
            name,
            _variants(variants) or [],
            options=options,
            description=description,
            actor=self._local.actor,
        )

    @operation("GET", "/endpoints", scope="read")
    def list(self, *, archived: bool = False) -> list[EndpointInfo]:
        """Every endpoint with its current split (archived ones with ``archived``)."""
        return self._store().list(archived=archived)

    @operation("GET", "/endpoints/{name}", scope="read")
    def show(self, name: str) -> EndpointInfo:
        """The current config and every earlier one, newest first."""
        return self._store().show(name)

    @operation("POST", "/endpoints/{name}/traffic", scope="write")
    def set_traffic(
        self,
        name: str,
        *,
        weights: dict[str, float] | None = None,
        variants: list[str | dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
        note: str = "",
    ) -> EndpointInfo:
        """Write the next config: new weights by variant name (a shadow's weight is the
        percent it mirrors), a new set of variants, or new options. Serving processes
        take it up within a second or two, without a restart."""
        return self._store().set_traffic(
            name,
            weights=weights,
            variants=_variants(variants),
            options=options,
            note=note,
            actor=self._local.actor,
        )

    @operation("POST", "/endpoints/{name}/archive", scope="write")
    def archive(self, name: str) -> EndpointInfo:
        """Stop serving it; its configs and logbook stay readable."""
        return self._store().archive(name, actor=self._local.actor)

    @remote_variant(_predict_over_http)
    def predict(
        self,
        name: str,
        input: Any,
        *,
        unit_id: str | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """One prediction: its id, variant, output and latency. Logged like any other."""
        return self._local.serving.predict(name, input, unit_id=unit_id, variant=variant).to_dict()

    @remote_variant(_feedback_over_http)
    def feedback(self, events: Any) -> dict[str, Any]:
        """Attach one event or a list (``prediction_id``, ``kind``, ``value``, ``source``,
        ``ts``, ``idempotency_key``); returns once every event is durable."""
        return self._local.serving.add_feedback(events)
