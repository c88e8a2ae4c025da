"""Feedback events: validation of every kind, prediction checks, idempotency and group
commit, on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.core.schema import FeedbackEvent
from stoa.serve.feedback import FeedbackWriter, parse_events
from stoa.serve.ids import new_id
from stoa.serve.logbook import Logbook

VALID = [
    ("click", None, True),
    ("click", False, False),
    ("thumb", True, 1),
    ("thumb", False, -1),
    ("thumb", 1, 1),
    ("thumb", -1, -1),
    ("thumb", "up", 1),
    ("thumb", "DOWN", -1),
    ("rating", 4, 4),
    ("rating", 3.5, 3.5),
    ("rating", -2, -2),
    ("conversion", True, True),
    ("conversion", 19.99, 19.99),
    ("conversion", 0, 0),
    ("label", "spam", "spam"),
    ("label", 2, 2),
    ("label", False, False),
    ("label", ["billing", "urgent"], ["billing", "urgent"]),
    ("csat", 5, 5),
    ("escalated", True, True),
    ("agent.note", "called back", "called back"),
    ("reopened", None, None),
]

INVALID = [
    ("click", "yes", "a click takes true or false"),
    ("click", 1, "a click takes true or false"),
    ("thumb", 0, "a thumb takes true/false, 1/-1"),
    ("thumb", 2, "a thumb takes"),
    ("thumb", "sideways", "a thumb takes"),
    ("rating", True, "a rating takes a finite number"),
    ("rating", "5", "a rating takes a finite number"),
    ("rating", float("nan"), "a rating takes a finite number"),
    ("rating", None, "a rating takes a finite number"),
    ("conversion", -3, "a number >= 0"),
    ("conversion", "sold", "a conversion takes"),
    ("label", {"a": 1}, "a label takes a string"),
    ("label", ["ok", 3], "a list of up to 256 strings"),
    ("label", "x" * 5000, "a label takes a string (up to 4096 bytes)"),
    ("csat", [1, 2], "a custom kind takes a finite number"),
    ("csat", {"score": 5}, "a custom kind takes"),
    ("csat", "y" * 4097, "a custom kind takes"),
]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def log_predictions(db: Database, n: int, *, variant: str = "a") -> list[str]:
    book = Logbook(db, max_queue=10_000, batch_size=1000, flush_ms=10, full_wait_ms=1000)
    ids = []
    for _ in range(n):
        pid = new_id()
        ids.append(pid)
        book.record({"id": pid, "endpoint": "support", "variant": variant, "ts": datetime.now(UTC)})
    book.close()
    return ids


def stored(db: Database) -> list[FeedbackEvent]:
    with db.read() as session:
        return list(session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)))


@pytest.fixture
def writer(db: Database) -> Iterator[FeedbackWriter]:
    w = FeedbackWriter(db, grace_s=0.3)
    w.start()
    yield w
    w.close()


@pytest.mark.parametrize(("kind", "value", "normalised"), VALID)
def test_valid_values_are_normalised(kind, value, normalised) -> None:
    event = {"prediction_id": new_id(), "kind": kind}
    if value is not None:
        event["value"] = value
    (parsed,) = parse_events(event)
    assert parsed.value == normalised and type(parsed.value) is type(normalised)


@pytest.mark.parametrize(("kind", "value", "message"), INVALID)
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(kind, value, message) -> None:
    good = {"prediction_id": new_id(), "kind": "click"}
    with pytest.raises(InvalidInputError) as caught:
        parse_events([good, {"prediction_id": new_id(), "kind": kind, "value": value}])
    assert caught.value.http_status == 422
    assert caught.value.field == "events[1].value"
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({"kind": "Thumbs Up"}, "kind", "a kind is click, thumb"),
        ({"kind": "9lives"}, "kind", "a kind is"),
        ({"kind": "click", "source": "robot"}, "source", "'user', 'human', 'judge' or 'system'"),
        ({"kind": "click", "ts": "yesterday"}, "ts", "datetime"),
        ({"kind": "click", "values": 1}, "values", "'values' is not a field"),
        ({"kind": "click", "idempotency_key": "k" * 129}, "idempotency_key", "128"),
        ({"kind": "click", "prediction_id": 7}, "prediction_id", "string"),
    ],
)
def test_other_bad_fields_are_refused_by_name(event, field, message) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_events({"prediction_id": new_id(), **event})
    assert caught.value.field == field
    assert message in caught.value.message


def test_payload_shapes() -> None:
    one = {"prediction_id": new_id(), "kind": "click"}
    assert len(parse_events(one)) == 1
    assert len(parse_events([one, one])) == 2
    assert len(parse_events({"events": [one, one, one]})) == 3
    for bad, message in (
        ([], "no events"),
        ([one] * 1001, "at most 1000 events"),
        ("click", "one event object"),
        ([one, "click"], "each event is a JSON object"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            parse_events(bad)


def test_a_naive_time_is_taken_as_utc() -> None:
    (event,) = parse_events({"prediction_id": new_id(), "kind": "click", "ts": "2024-05-01T12:00"})
    assert event.ts == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_every_kind_is_written_with_its_prediction_variant(db, writer) -> None:
    ids = log_predictions(db, 1, variant="b")
    events = [
        {"prediction_id": ids[0], "kind": kind, **({} if value is None else {"value": value})}
        for kind, value, _ in VALID
    ]
    answers = writer.add(parse_events(events))
    assert [a["status"] for a in answers] == ["accepted"] * len(VALID)
    rows = stored(db)
    assert [r.value for r in rows] == [n for _, _, n in VALID]
    assert {(r.endpoint, r.variant, r.source) for r in rows} == {("support", "b", "user")}
    assert [a["id"] for a in answers] == [r.id for r in rows]


def test_an_unknown_prediction_is_a_404_at_once(db, writer) -> None:
    old_v7 = str(uuid.UUID(int=(1 << 76) * 7 + (1 << 62) * 2 + 12345))  # made in 1970
    for pid in ("not-a-uuid", str(uuid.uuid4()), old_v7):
        with pytest.raises(NotFoundError) as caught:
            writer.add(parse_events({"prediction_id": pid, "kind": "click"}))
        assert caught.value.field == "prediction_id"
        assert pid in caught.value.message
    assert stored(db) == []


def test_a_fresh_unknown_id_waits_out_the_grace_then_404s(db, writer) -> None:
    started = time.monotonic()
    with pytest.raises(NotFoundError):
        writer.add(parse_events({"prediction_id": new_id(), "kind": "click"}))
    assert time.monotonic() - started >= 0.2  # waited (grace_s is 0.3)


def test_a_fresh_id_that_another_worker_writes_during_the_grace_is_accepted(db) -> None:
    w = FeedbackWriter(db, grace_s=30)
    pid = new_id()
    other_worker = Logbook(db, max_queue=10, batch_size=10, flush_ms=10, full_wait_ms=0)

    def write_later() -> None:
        time.sleep(0.3)
        other_worker.record(
            {"id": pid, "endpoint": "support", "variant": "c", "ts": datetime.now(UTC)}
        )
        other_worker.close()

    thread = threading.Thread(target=write_later)
    thread.start()
    (answer,) = w.add(parse_events({"prediction_id": pid, "kind": "thumb", "value": "up"}))
    thread.join()
    w.close()
    assert answer["status"] == "accepted"
    assert [(r.variant, r.value) for r in stored(db)] == [("c", 1)]


def test_a_prediction_still_in_the_logbook_queue_counts(db) -> None:
    book = Logbook(db, max_queue=10, batch_size=10, flush_ms=60_000, full_wait_ms=0)
    pid = new_id()
    book.record({"id": pid, "endpoint": "support", "variant": "z", "ts": datetime.now(UTC)})
    w = FeedbackWriter(db, pending=book.pending, grace_s=0)
    (answer,) = w.add(parse_events({"prediction_id": pid, "kind": "rating", "value": 5}))
    w.close()
    book.close()
    assert answer["status"] == "accepted"
    assert [(r.prediction_id, r.variant) for r in stored(db)] == [(pid, "z")]


def test_an_idempotency_key_is_written_once(db, writer) -> None:
    (pid,) = log_predictions(db, 1)
    event = {"prediction_id": pid, "kind": "click", "idempotency_key": "k1"}
    first = writer.add(parse_events([event, event]))
    assert [a["status"] for a in first] == ["accepted", "duplicate"]
    assert first[0]["id"] == first[1]["id"]
    (again,) = writer.add(parse_events(event))
    assert again == {"id": first[0]["id"], "prediction_id": pid, "status": "duplicate"}
    assert len(stored(db)) == 1


def test_a_batch_with_one_unknown_id_is_refused_whole(db, writer) -> None:
    (pid,) = log_predictions(db, 1)
    events = [
        {"prediction_id": pid, "kind": "click"},
        {"prediction_id": str(uuid.uuid4()), "kind": "click"},
        {"prediction_id": pid, "kind": "thumb", "value": "up"},
    ]
    with pytest.raises(NotFoundError) as caught:
        writer.add(parse_events(events))
    assert caught.value.field == "events[1].prediction_id"
    assert stored(db) == []


def test_concurrent_callers_are_all_written(db, writer) -> None:
    ids = log_predictions(db, 50)
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                writer.add(
                    parse_events(
                        {
                            "prediction_id": ids[i % 50],
                            "kind": "rating",
                            "value": i,
                            "idempotency_key": f"{n}-{i}",
                        }
                    )
                )
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackEvent)) == 16 * 40
    assert writer.accepted == 640 and writer.groups <= 640


def test_two_writers_racing_on_one_key_store_it_once(db) -> None:
    """Two processes' writers on one database: the unique key decides, no error."""
    (pid,) = log_predictions(db, 1)
    writers = [FeedbackWriter(db), FeedbackWriter(db)]
    answers: list[str] = []
    barrier = threading.Barrier(8)

    def work(w: FeedbackWriter) -> None:
        barrier.wait()
        event = {"prediction_id": pid, "kind": "click", "idempotency_key": "race"}
        answers.extend(a["status"] for a in w.add(parse_events(event)))

    threads = [threading.Thread(target=work, args=(writers[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    assert sorted(answers) == ["accepted"] + ["duplicate"] * 7
    assert len(stored(db)) == 1
