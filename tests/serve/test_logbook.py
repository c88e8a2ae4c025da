"""The prediction logbook on real SQLite and PostgreSQL: nothing accepted is lost."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from stoa.core.db import Database
from stoa.core.errors import OverloadedError
from stoa.core.schema import Prediction
from stoa.serve.ids import new_id
from stoa.serve.logbook import Logbook


def row(**extra):
    base = {
        "id": new_id(),
        "endpoint": "support",
        "config_version": 1,
        "variant": "a",
        "mode": "live",
        "target": "solution:support@1",
        "unit_id": "u1",
        "ts": datetime.now(UTC),
        "input": {"q": "hello"},
        "output": {"a": "hi"},
        "status": "ok",
        "latency_ms": 1.5,
    }
    return {**base, **extra}


def count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Prediction))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@contextlib.contextmanager
def locked(db: Database) -> Iterator[None]:
    """Another connection holds the predictions table, so the logbook's writes wait."""
    if db.is_sqlite:
        conn = sqlite3.connect(make_url(db.url).database, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with db.engine.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def test_rows_from_many_threads_are_all_written(db: Database) -> None:
    book = Logbook(db, max_queue=5000, batch_size=500, flush_ms=50, full_wait_ms=10_000)
    book.start()

    def work() -> None:
        for _ in range(2500):
            book.record(row())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    book.close()
    assert count(db) == 20_000
    assert book.written == 20_000
    assert book.depth == 0 and book.refused == 0 and book.failed_rows == 0


def test_a_full_logbook_refuses_and_loses_nothing_it_accepted(db: Database) -> None:
    book = Logbook(db, max_queue=4, batch_size=2, flush_ms=5, full_wait_ms=100)
    book.start()
    accepted = []
    with locked(db):
        with pytest.raises(OverloadedError) as caught:
            for _ in range(100):
                r = row()
                book.record(r)
                accepted.append(r["id"])
        assert "logbook is full" in caught.value.message
        assert caught.value.retry_after_s > 0
        assert book.refused == 1
        assert len(accepted) == 4  # the queue's size: the batch being written counts too
    book.close()
    with db.read() as session:
        stored = set(session.scalars(select(Prediction.id)))
    assert stored == set(accepted)


def test_pending_sees_a_row_until_it_is_written(db: Database) -> None:
    book = Logbook(db, max_queue=100, batch_size=100, flush_ms=60_000, full_wait_ms=0)
    r = row(unit_id="u7")
    book.record(r)
    assert book.pending(r["id"])["unit_id"] == "u7"
    assert count(db) == 0
    book.flush()
    assert book.pending(r["id"]) is None
    assert count(db) == 1
    book.close()


def test_a_row_is_written_by_time_without_close(db: Database) -> None:
    book = Logbook(db, max_queue=100, batch_size=100, flush_ms=20, full_wait_ms=0)
    book.start()
    book.record(row())
    deadline = time.monotonic() + 10
    while count(db) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count(db) == 1
    book.close()


def test_a_bad_row_is_set_aside_and_the_rest_of_its_batch_is_written(db: Database) -> None:
    book = Logbook(db, max_queue=100, batch_size=100, flush_ms=60_000, full_wait_ms=0)
    good = [row() for _ in range(5)]
    for r in good[:2]:
        book.record(r)
    book.record(row(input={"not json": object()}))
    book.record(row(id=good[0]["id"]))  # a duplicate id
    for r in good[2:]:
        book.record(r)
    book.close()
    assert count(db) == 5
    assert book.failed_rows == 2 and book.written == 5


def test_record_after_close_is_refused(db: Database) -> None:
    book = Logbook(db, max_queue=10, batch_size=10, flush_ms=10, full_wait_ms=0)
    book.start()
    book.close()
    with pytest.raises(OverloadedError, match="shutting down"):
        book.record(row())


def test_from_settings_reads_the_logbook_settings(settings) -> None:
    db = Database(settings.database_url)
    book = Logbook.from_settings(db, settings)
    assert book.max_queue == settings.logbook_queue
    assert book.batch_size == settings.logbook_batch
    db.dispose()


def test_a_failing_database_is_retried_with_one_warning(db: Database, caplog) -> None:
    """Writes that fail (here: the table is briefly gone) keep their rows and retry."""
    book = Logbook(db, max_queue=1000, batch_size=10, flush_ms=5, full_wait_ms=0)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE predictions RENAME TO predictions_away")
    book.start()
    rows = [row() for _ in range(25)]
    for r in rows:
        book.record(r)
    deadline = time.monotonic() + 10
    while book.failed_batches < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert book.failed_batches >= 2  # tried, failed, tried again
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE predictions_away RENAME TO predictions")
    book.close()
    with db.read() as session:
        assert set(session.scalars(select(Prediction.id))) == {r["id"] for r in rows}
    starts = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    assert len(starts) == 1
    assert book.failed_rows == 0
