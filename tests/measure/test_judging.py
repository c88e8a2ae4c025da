"""Judges online: a deterministic sample of live predictions scored by the real
embedding judge, stored as judge feedback once, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from stoa.client import LocalClient
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.core.schema import FeedbackEvent
from stoa.measure.judging import JudgePolicies, sampled
from stoa.measure.records import exchange
from tests.measure.logbook_rows import prediction, write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PASSAGES = [
    {"n": 1, "text": "Refunds are paid within 14 days of the return.", "source": "refunds.md"},
    {"n": 2, "text": "Shipping to Norway takes five working days.", "source": "shipping.md"},
]
TRACE = {"spans": [
    {"name": "retrieve", "attributes": {"stoa.step.kind": "retrieve",
                                        "stoa.outputs": {"passages": PASSAGES, "count": 2}}},
    {"name": "generate", "attributes": {"stoa.step.kind": "generate",
                                        "stoa.outputs": {"text": "x"}}},
]}  # fmt: skip


def answered(i: int, variant: str = "a", **fields) -> dict:
    return prediction(
        "help", variant, T0 + timedelta(seconds=i),
        input={"question": "How long do refunds take?"},
        output={"text": "Refunds are paid within 14 days [1]."},
        trace=TRACE, **fields,
    )  # fmt: skip


@pytest.fixture
def client(settings) -> Iterator[LocalClient]:
    c = LocalClient(settings=settings)
    yield c
    c.close()


def _scores(client: LocalClient) -> list[FeedbackEvent]:
    with client.stores.db.read() as session:
        return list(session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)).all())


def test_exchange_reads_question_passages_answer_and_citations() -> None:
    seen = exchange(answered(0)).to_dict()
    assert seen["question"] == "How long do refunds take?"
    assert seen["answer"].startswith("Refunds are paid")
    assert [p["cited"] for p in seen["passages"]] == [True, False]
    model = exchange({"input": {"a": 1, "b": 2}, "output": {"prediction": [0.2]}})
    assert model.question == '{"a": 1, "b": 2}' and model.passages == []


def test_a_policy_scores_its_sample_once(client: LocalClient) -> None:
    db = client.stores.db
    rows = [answered(i, "a" if i % 2 else "b") for i in range(12)]
    rows.append(answered(99, status="error"))  # failed: nothing to judge
    rows.append(answered(98, mode="shadow"))  # a shadow: not what users saw
    write(db, rows)
    policies = JudgePolicies(db)
    policies.create("help-embed", {"endpoint": "help", "rate": 0.5})
    [result] = policies.run(client.stores.solutions)
    expected = [r["id"] for r in rows[:12] if sampled("help-embed", r["id"], 0.5)]
    assert 0 < len(expected) < 12 and result["scored"] == len(expected)
    assert result["caught_up"] is True
    scores = _scores(client)
    assert sorted({s.prediction_id for s in scores}) == sorted(expected)
    assert {s.kind for s in scores} == {"judge.relevance", "judge.groundedness"}
    assert {s.source for s in scores} == {"judge"}
    assert all(0 <= s.value <= 1 for s in scores)
    grounded = [s.value for s in scores if s.kind == "judge.groundedness"]
    assert min(grounded) > 0.6  # the answer repeats its cited passage
    again = policies.run(client.stores.solutions)
    assert again[0]["scored"] == 0 and len(_scores(client)) == len(scores)


def test_criteria_variants_and_a_cap(client: LocalClient) -> None:
    db = client.stores.db
    write(db, [answered(i, "a" if i % 2 else "b") for i in range(8)])
    policies = JudgePolicies(db)
    spec = {"endpoint": "help", "rate": 1, "criteria": ["groundedness"], "variants": ["a"],
            "max_per_run": 2}  # fmt: skip
    policies.create("grounded", spec)
    first = policies.run(client.stores.solutions, name="grounded")[0]
    assert (first["scored"], first["scores"], first["caught_up"]) == (2, 2, False)
    policies.run(client.stores.solutions, name="grounded")
    scores = _scores(client)
    assert {s.kind for s in scores} == {"judge.groundedness"} and len(scores) == 4
    assert {s.variant for s in scores} == {"a"}


def test_bad_policies_are_refused(client: LocalClient) -> None:
    policies = JudgePolicies(client.stores.db)
    with pytest.raises(InvalidInputError, match="unknown judge 'gpt'") as info:
        policies.create("p", {"endpoint": "help", "judges": ["gpt"]})
    assert info.value.field == "policy.judges"
    with pytest.raises(InvalidInputError) as info:
        policies.create("p", {"endpoint": "help", "rate": 0})
    assert info.value.field == "policy.rate" and "greater than 0" in info.value.message
    with pytest.raises(InvalidInputError) as info:
        policies.create("p", {"endpoint": "help", "sample": 0.1})
    assert info.value.field == "policy.sample"
    policies.create("p", {"endpoint": "help"})
    with pytest.raises(ConflictError, match="a judge policy named 'p' exists"):
        policies.create("p", {"endpoint": "help"})
    with pytest.raises(NotFoundError, match="no judge policy named 'q'"):
        policies.run(client.stores.solutions, name="q")
    assert policies.set_enabled("p", False)["enabled"] is False
    assert policies.run(client.stores.solutions) == []


def test_the_server_runs_policies_on_its_schedule(tmp_path, monkeypatch) -> None:
    import threading
    import time

    from fastapi.testclient import TestClient

    from stoa.core.settings import Settings
    from stoa.serve.server import create_app

    monkeypatch.setenv("STOA_JUDGES_EVERY_S", "0.2")
    settings = Settings(home=tmp_path / "home")
    setup = LocalClient(settings=settings)
    write(setup.stores.db, [answered(i) for i in range(3)])
    setup.judges.create_policy("all", {"endpoint": "help", "rate": 1})
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_scores(setup)) < 6:
            time.sleep(0.2)
        assert len(_scores(setup)) == 6
        assert any(t.name == "stoa-judges" for t in threading.enumerate())
    assert not any(t.name == "stoa-judges" for t in threading.enumerate())
    app.state.client.close()
    setup.close()
