"""A/B reports of an endpoint from its logbook and feedback: a planted lift is found per
unit, guardrails veto, an unbalanced split is invalid, and promote records why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stoa.client import LocalClient
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.measure.experiments import endpoint_report, promote
from stoa.serve.endpoints import EndpointStore
from tests.measure.logbook_rows import feedback, prediction, write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPEC = "name: help\nsteps:\n  - id: s\n    kind: respond\n    template: x\n"


@pytest.fixture
def client(tmp_path) -> Iterator[LocalClient]:
    """SQLite only: the queries under these reports run on both in test_outcomes.py."""
    from stoa.core.settings import Settings

    c = LocalClient(settings=Settings(home=tmp_path / "home"))
    c.solutions.register(SPEC)
    c.solutions.register(SPEC.replace("template: x", "template: y"))
    c.endpoints.create("shop", ["a=help@1:50", "b=help@2:50", "s=help@2:shadow=10"])
    yield c
    c.close()


def simulate(client: LocalClient, *, users: int, lift: float, b_share: float = 0.5,
             slow_b: bool = False, seed: int = 0) -> None:  # fmt: skip
    """Each user makes 1-4 requests; a request is clicked with probability 0.2 (x lift
    on b); a user's own propensity varies, so units are correlated."""
    rng = np.random.default_rng(seed)
    rows, events = [], []
    for u in range(users):
        variant = "b" if rng.random() < b_share else "a"
        propensity = 0.2 * rng.uniform(0.5, 1.5) * (1 + lift if variant == "b" else 1)
        for r in range(int(rng.integers(1, 5))):
            at = T0 + timedelta(seconds=u * 10 + r)
            latency = float(rng.gamma(4, 10)) * (2.0 if slow_b and variant == "b" else 1.0)
            row = prediction("shop", variant, at, unit_id=f"u{u}", latency_ms=latency)
            rows.append(row)
            if rng.random() < propensity:
                events.append(feedback(row, "click", True, at + timedelta(minutes=5)))
    write(client.stores.db, rows, events)


def _report(client: LocalClient, **options):
    info = EndpointStore(client.stores.db, client.stores.registry).show("shop")
    return endpoint_report(client.stores.db, info, **options)


def test_a_planted_lift_ships_b(client: LocalClient) -> None:
    simulate(client, users=6000, lift=0.25)
    report = _report(client)
    assert report["decision"]["label"] == "ship b", report["decision"]
    ctr = next(c for c in report["comparisons"] if c["metric"] == "ctr")
    assert ctr["kind"] == "ratio"  # several requests per user: the delta method
    assert 0.15 < ctr["relative_lift"]["estimate"] < 0.35
    assert report["srm"]["flagged"] is False
    assert {c["metric"] for c in report["comparisons"]} == {
        "ctr", "latency_p95", "error_rate", "cost_per_1k"}  # fmt: skip
    assert report["predictions"] > 6000 and report["config_version"] == 1


def test_no_lift_keeps_running_and_says_how_long(client: LocalClient) -> None:
    simulate(client, users=600, lift=0.0)
    decision = _report(client)["decision"]
    assert decision["action"] == "continue" and decision["more_units"] > 0
    assert "keep running (needs about" in decision["label"]


def test_a_slower_winner_is_vetoed_by_its_guardrail(client: LocalClient) -> None:
    simulate(client, users=6000, lift=0.25, slow_b=True)
    report = _report(client)
    assert report["decision"]["action"] != "ship", report["decision"]
    assert "latency_p95" in report["decision"]["reason"]


def test_an_unbalanced_split_is_invalid(client: LocalClient) -> None:
    simulate(client, users=3000, lift=0.25, b_share=0.6)
    decision = _report(client)["decision"]
    assert decision["label"] == "invalid: SRM" and "sample-ratio mismatch" in decision["reason"]


def test_promote_moves_traffic_and_records_why(client: LocalClient) -> None:
    simulate(client, users=600, lift=0.0)
    store = EndpointStore(client.stores.db, client.stores.registry)
    with pytest.raises(ConflictError, match="the report does not recommend b: keep running"):
        promote(store, client.stores.db, "shop", "b")
    with pytest.raises(InvalidInputError, match="needs a reason"):
        promote(store, client.stores.db, "shop", "b", force=True)
    done = promote(store, client.stores.db, "shop", "b", force=True, reason="legal asked")
    assert done["forced"] is True and done["version"] == 2
    info = store.show("shop")
    live = {v.name: v.weight for v in info.variants if v.mode == "live"}
    assert live == {"a": 0.0, "b": 100.0}
    assert [(v.name, v.sample) for v in info.variants if v.mode == "shadow"] == [("s", 0.1)]
    assert info.history[0].note.startswith("promoted b: keep running")
    assert info.history[0].note.endswith("| legal asked")


def test_bad_requests_name_the_field(client: LocalClient) -> None:
    with pytest.raises(InvalidInputError, match="no live predictions of 'shop' under config v1"):
        _report(client)
    write(client.stores.db, [prediction("shop", v, T0, unit_id=v) for v in "ab"])
    with pytest.raises(InvalidInputError, match="no clicks, conversions, ratings or thumbs"):
        _report(client)
    simulate(client, users=50, lift=0.0)
    with pytest.raises(NotFoundError, match="no metric named 'revenue'"):
        _report(client, metrics=["revenue"])
    with pytest.raises(InvalidInputError, match="no live variant named 's'") as info:
        _report(client, control="s")
    assert info.value.field == "control"
    with pytest.raises(InvalidInputError, match="has no config v7"):
        _report(client, config_version=7)
    with pytest.raises(InvalidInputError, match="no live predictions") as info:
        _report(client, since=T0 + timedelta(days=30))
    assert info.value.field == "since"
    store = EndpointStore(client.stores.db, client.stores.registry)
    with pytest.raises(InvalidInputError, match="no live variant named 'z'"):
        promote(store, client.stores.db, "shop", "z")
