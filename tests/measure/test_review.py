"""Review queues on SQLite and PostgreSQL: filling by rule, claims that never double up,
claim timeouts, labels stored as human feedback in one transaction, and bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.core.schema import FeedbackEvent, ReviewItem
from stoa.measure import review
from stoa.measure.review_spec import sampled
from tests.measure.review_rows import add_endpoint, add_feedback, add_predictions, classify_trace

LATER = datetime.now(UTC) + timedelta(hours=1)  # every test row has settled by then


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    add_endpoint(database)
    yield database
    database.dispose()


def make_queue(db: Database, name: str = "q", **spec) -> None:
    review.create_queue(db, name, "support", {"rules": [{"random": 1.0}], **spec}, actor="t")


def test_fill_by_rule_records_the_first_reason_and_is_idempotent(db) -> None:
    ids = add_predictions(
        db,
        [
            {"trace": classify_trace("billing", 0.4)},  # low confidence
            {"trace": classify_trace("billing", 0.9)},  # confident: only random could pick it
            {"input": {"q": "x", "tags": ["escalate"]}},  # request tag
            {"status": "error", "trace": classify_trace("billing", 0.1)},  # failed: skipped
            {"mode": "shadow", "trace": classify_trace("billing", 0.1)},  # shadow: skipped
            {},  # thumbs down later
            {},  # low judge score later
        ],
    )
    spec = {
        "rules": [
            {"low_confidence": 0.6},
            {"tags": ["escalate"]},
            {"thumbs_down": True},
            {"low_judge_score": {"criterion": "correctness", "below": 0.5}},
        ]
    }
    review.create_queue(db, "q", "support", spec)
    first = review.fill(db, "q", now=LATER)
    assert first["by_reason"] == {"low_confidence": 1, "tags": 1}
    add_feedback(
        db,
        [
            (ids[5], "thumb", -1, "user"),
            (ids[6], "judge.correctness", 0.2, "judge"),
            (ids[1], "judge.correctness", 0.9, "judge"),
            (ids[1], "thumb", 1, "user"),
        ],
    )
    second = review.fill(db, "q", now=LATER)
    assert second["by_reason"] == {"thumbs_down": 1, "low_judge_score": 1}
    assert review.fill(db, "q", now=LATER)["added"] == 0  # cursors moved: nothing again
    items = {i["prediction_id"]: i["reason"] for i in review.list_items(db, "q")}
    assert items == {ids[0]: "low_confidence", ids[2]: "tags", ids[5]: "thumbs_down",
                     ids[6]: "low_judge_score"}  # fmt: skip
    # A calibration queue takes every judged prediction, whatever its score.
    review.create_queue(db, "calibration", "support", {"rules": [{"judged": "correctness"}]})
    calibration = review.fill(db, "calibration", now=LATER)
    assert calibration["by_reason"] == {"judged": 2}
    queue = review.show_queue(db, "q")
    live = [pid for i, pid in enumerate(ids) if i != 4]
    assert queue["scanned_to"] == max(live) and queue["feedback_scanned_to"] > 0


def test_random_rule_is_a_fixed_hash_of_the_id_and_fills_in_pages(db) -> None:
    ids = add_predictions(db, [{} for _ in range(300)])
    expected = {pid for pid in ids if sampled(pid, 0.3)}
    assert 60 < len(expected) < 120  # about 30% of 300
    review.create_queue(db, "q", "support", {"rules": [{"random": 0.3}]})
    first = review.fill(db, "q", pages=2, page_size=100, now=LATER)
    assert first["predictions_scanned"] == 200 and first["more"]
    rest = review.fill(db, "q", pages=2, page_size=100, now=LATER)
    assert not rest["more"]
    assert {i["prediction_id"] for i in review.list_items(db, "q", limit=1000)} == expected


def test_young_predictions_are_queued_but_read_again(db) -> None:
    (pid,) = add_predictions(db, [{}])
    make_queue(db)
    assert review.fill(db, "q")["added"] == 1  # fresh id: queued at once
    assert review.show_queue(db, "q")["scanned_to"] == ""  # the cursor waits to settle
    assert review.fill(db, "q")["added"] == 0  # read again, not queued twice
    review.fill(db, "q", now=LATER)
    assert review.show_queue(db, "q")["scanned_to"] == pid


def test_claims_labels_and_feedback_in_one_transaction(db) -> None:
    ids = add_predictions(db, [{"variant": "b"}, {}, {}])
    make_queue(db)
    item = review.claim_next(db, "q", "ann")
    assert item["prediction_id"] == ids[0] and item["claimed_by"] == "ann"
    assert [e["name"] for e in item["labels"]] == ["correct", "partially", "wrong"]
    assert item["input"] == {"question": "q0"} and item["reason"] == "random"
    assert review.claim_next(db, "q", "ann")["id"] == item["id"]  # my claim comes back
    other = review.claim_next(db, "q", "bob")
    assert other["prediction_id"] == ids[1]
    with pytest.raises(ConflictError, match="claimed by ann"):
        review.label_item(db, item["id"], "bob", "correct")
    with pytest.raises(InvalidInputError, match="correct, partially, wrong") as bad:
        review.label_item(db, item["id"], "ann", "great")
    assert bad.value.field == "label"
    done = review.label_item(db, item["id"], "ann", "wrong", correction="Say 30 days.")
    assert done["status"] == "done" and done["label"] == "wrong"
    with pytest.raises(ConflictError, match="already labelled"):
        review.label_item(db, item["id"], "ann", "correct")
    with db.read() as session:
        rows = session.scalars(
            select(FeedbackEvent).where(FeedbackEvent.prediction_id == ids[0])
        ).all()
    assert {(r.kind, r.value, r.source, r.variant) for r in rows} == {
        ("label", "wrong", "human", "b"),
        ("correction", "Say 30 days.", "human", "b"),
    }
    # an open item can be labelled in one step; release gives a claim back
    review.label_item(db, review.list_items(db, "q", status="open")[0]["id"], "cy", "correct")
    review.release(db, other["id"], "bob")
    stats = review.queue_stats(db, "q")
    assert (stats["open"], stats["claimed"], stats["done"]) == (1, 0, 2)
    assert stats["by_label"] == {"correct": 1, "partially": 0, "wrong": 1}
    assert stats["by_reason"] == {"random": 3} and stats["median_s_to_label"] is not None
    assert review.claim_next(db, "q", "dee")["id"] == other["id"]
    assert review.claim_next(db, "q", "eve") is None


def test_a_failed_label_writes_nothing(db, monkeypatch) -> None:
    add_predictions(db, [{}])
    make_queue(db)
    item = review.claim_next(db, "q", "ann")

    class Broken(Exception):
        pass

    def broken_add(*_args, **_kwargs):
        raise Broken

    monkeypatch.setattr("stoa.measure.review.FeedbackEvent", broken_add)
    with pytest.raises(Broken):
        review.label_item(db, item["id"], "ann", "correct")
    with db.read() as session:
        assert session.scalar(select(ReviewItem.status)) == "claimed"
        assert session.scalars(select(FeedbackEvent)).all() == []


def test_a_lapsed_claim_goes_to_the_next_reviewer(db) -> None:
    add_predictions(db, [{}])
    make_queue(db, claim_timeout_s=60)
    t = datetime.now(UTC)
    item = review.claim_next(db, "q", "ann", now=t)
    assert review.claim_next(db, "q", "bob", now=t + timedelta(seconds=30)) is None
    taken = review.claim_next(db, "q", "bob", now=t + timedelta(seconds=61))
    assert taken["id"] == item["id"] and taken["claimed_by"] == "bob"
    with pytest.raises(ConflictError):
        review.release(db, item["id"], "ann", now=t + timedelta(seconds=62))
    review.label_item(db, item["id"], "bob", "correct", now=t + timedelta(seconds=63))


def test_two_reviewers_never_get_the_same_item(db) -> None:
    add_predictions(db, [{} for _ in range(40)])
    make_queue(db)
    review.fill(db, "q", now=LATER)
    got: dict[str, list[int]] = {"ann": [], "bob": [], "cy": []}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while (item := review.claim_next(db, "q", name, refill=False)) is not None:
                got[name].append(item["id"])
                review.label_item(db, item["id"], name, "correct")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    every = [i for ids in got.values() for i in ids]
    assert len(every) == 40 and len(set(every)) == 40


def test_bad_input(db) -> None:
    with pytest.raises(NotFoundError) as missing:
        review.fill(db, "nope")
    assert missing.value.field == "queue"
    with pytest.raises(NotFoundError, match="no endpoint"):
        review.create_queue(db, "q", "ghost", {"rules": [{"random": 0.1}]})
    cases = [
        ({"rules": []}, "spec.rules"),
        ({"rules": [{"random": 0}]}, "spec.rules[0].random"),
        ({"rules": [{"coin": 1}]}, "spec.rules[0]"),
        ({"rules": [{"low_judge_score": {"below": 0.3}}]}, "spec.rules[0].low_judge_score"),
        ({"rules": [{"judged": 3}]}, "spec.rules[0].judged"),
        ({"rules": [{"random": 0.1}], "labels": ["ok"]}, "spec.labels"),
        ({"rules": [{"random": 0.1}], "claim_timeout_s": 0}, "spec.claim_timeout_s"),
        ({"rules": [{"random": 0.1}], "colour": "red"}, "spec.colour"),
    ]
    for spec, field in cases:
        with pytest.raises(InvalidInputError) as bad:
            review.create_queue(db, "q", "support", spec)
        assert bad.value.field == field, (spec, bad.value.field)
    make_queue(db, corrections=False, labels={"good": 1, "bad": 0})
    with pytest.raises(ConflictError):
        make_queue(db)
    add_predictions(db, [{}])
    item = review.claim_next(db, "q", "ann")
    assert [e["score"] for e in item["labels"]] == [1.0, 0.0]
    with pytest.raises(InvalidInputError, match="no corrections"):
        review.label_item(db, item["id"], "ann", "good", correction="text")
    with pytest.raises(NotFoundError):
        review.label_item(db, 99999, "ann", "good")
    with pytest.raises(InvalidInputError) as who:
        review.claim_next(db, "q", "")
    assert who.value.field == "reviewer"
