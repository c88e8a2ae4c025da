"""The prediction logbook: every prediction is written off the request path.

A request appends its row to a bounded in-memory queue and returns; one flusher thread
per process writes the rows in batches, one transaction each. The queue is the only
place a row can be lost, and only to ``kill -9`` (at most the unflushed rows). When the
queue is full a request waits a little for room and is then refused with a 503, so a
slow or unavailable database turns into backpressure, never into silent loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from stoa.core.db import Database
from stoa.core.errors import OverloadedError, TimedOutError
from stoa.core.schema import Prediction

log = logging.getLogger(__name__)

_TABLE = Prediction.__table__
_DEFAULTS: dict[str, Any] = {
    "config_version": 0,
    "variant": "",
    "mode": "live",
    "parent_id": None,
    "target": "",
    "unit_id": None,
    "input": None,
    "output": None,
    "status": "ok",
    "error": None,
    "latency_ms": 0.0,
    "tokens": 0,
    "cost_usd": 0.0,
    "trace": None,
}
_MAX_BACKOFF_S = 2.0


class Logbook:
    """A bounded queue of prediction rows and the thread that writes them."""

    def __init__(
        self,
        db: Database,
        *,
        max_queue: int,
        batch_size: int,
        flush_ms: int,
        full_wait_ms: int,
        on_depth: Callable[[int], None] | None = None,
    ):
        self.db = db
        self.max_queue = max(1, max_queue)
        self.batch_size = max(1, batch_size)
        self.flush_s = max(1, flush_ms) / 1000
        self.full_wait_s = max(0, full_wait_ms) / 1000
        self.on_depth = on_depth
        # (monotonic time recorded, row); rows stay in _by_id until they are committed,
        # so pending() sees a row in the batch being written too.
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()
        self._by_id: dict[str, dict[str, Any]] = {}
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._recorded = 0
        self._done = 0  # rows written or set aside
        self._flush_wanted = 0  # how many flush() calls are waiting
        self._outage = False
        self.written = 0
        self.failed_batches = 0
        self.failed_rows = 0
        self.refused = 0

    @classmethod
    def from_settings(cls, db: Database, settings: Any, **kwargs: Any) -> Logbook:
        return cls(
            db,
            max_queue=settings.logbook_queue,
            batch_size=settings.logbook_batch,
            flush_ms=settings.logbook_flush_ms,
            full_wait_ms=settings.logbook_full_wait_ms,
            **kwargs,
        )

    @property
    def depth(self) -> int:
        """Rows accepted and not yet written, the batch being written included."""
        return len(self._queue) + self._in_flight

    @property
    def alive(self) -> bool:
        """Whether the flusher thread runs: a readiness check fails without it."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._cond:
            if not self._closing:
                self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stoa-logbook", daemon=True)
            self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        """Queue one prediction row; raises OverloadedError when there is no room in time.

        The row's keys are the ``predictions`` columns; ``id``, ``endpoint`` and ``ts``
        are required, the rest default. Nothing is validated here: this is the hot path.
        """
        with self._cond:
            if self._closing:
                raise OverloadedError(
                    "the server is shutting down and takes no more predictions",
                    fix="retry against another server process",
                    retry_after_s=1.0,
                )
            if len(self._queue) + self._in_flight >= self.max_queue:
                self._wait_for_room()
            was_empty = not self._queue
            self._queue.append((time.monotonic(), row))
            self._by_id[row["id"]] = row
            self._recorded += 1
            if was_empty or len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def _wait_for_room(self) -> None:
        """Backpressure: wait up to full_wait_ms for the flusher to free room (lock held)."""
        deadline = time.monotonic() + self.full_wait_s
        while len(self._queue) + self._in_flight >= self.max_queue:
            left = deadline - time.monotonic()
            if left <= 0 or self._closing:
                self.refused += 1
                raise OverloadedError(
                    f"the prediction logbook is full ({self.max_queue} predictions waiting "
                    "to be written); the prediction was not served",
                    fix="retry shortly; if this persists, check the database or raise "
                    "STOA_LOGBOOK_QUEUE",
                    retry_after_s=_MAX_BACKOFF_S if self._outage else 1.0,
                )
            self._cond.wait(left)

    def pending(self, prediction_id: str) -> dict[str, Any] | None:
        """The row of a prediction accepted by this process and not yet committed."""
        return self._by_id.get(prediction_id)

    def flush(self, timeout_s: float = 30) -> None:
        """Return once every row recorded before the call is written (or set aside)."""
        with self._cond:
            target = self._recorded
            if self._done >= target:
                return
            self._ensure_thread()
            self._flush_wanted += 1
            self._cond.notify_all()
            try:
                finished = self._cond.wait_for(lambda: self._done >= target, timeout_s)
            finally:
                self._flush_wanted -= 1
        if not finished:
            raise TimedOutError(
                f"the logbook could not write {target - self._done} predictions "
                f"within {timeout_s:g} s",
                fix="check that the database is reachable and not locked",
            )

    def close(self, timeout_s: float = 30) -> None:
        """Graceful shutdown: refuse new rows, write every accepted one, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            self.flush(timeout_s)
        finally:
            thread = self._thread
            if thread is not None:  # with the queue empty it stops at once
                thread.join(timeout=5)

    # -- the flusher thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._report_depth()
            done = self._write(batch)
            with self._cond:
                for row in batch:
                    self._by_id.pop(row["id"], None)
                self._in_flight = 0
                self._done += len(batch)
                self.written += done
                self._cond.notify_all()
            self._report_depth()

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait until a batch is due (full, old enough, flushed or closing); None to stop."""
        with self._cond:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                waited = time.monotonic() - self._queue[0][0]
                due = (
                    len(self._queue) >= self.batch_size
                    or waited >= self.flush_s
                    or self._flush_wanted
                    or self._closing
                )
                if due:
                    break
                self._cond.wait(self.flush_s - waited)
            take = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft()[1] for _ in range(take)]
            self._in_flight = take
            return batch

    def _write(self, batch: list[dict[str, Any]]) -> int:
        """Write the batch; retry transient failures until they pass. Returns rows written."""
        rows = [_complete(row) for row in batch]
        pause = 0.05
        while True:
            try:
                self._insert(rows)
                self._end_outage()
                return len(rows)
            except Exception as exc:
                if _is_data_error(exc):
                    # one bad row must not hold back the others: find it
                    self.failed_batches += 1
                    log.warning(
                        "a logbook batch was refused as data (%s); writing its rows one by one",
                        _reason(exc),
                    )
                    return self._write_one_by_one(rows)
                self._start_outage(exc)  # down, locked or busy: keep the batch and retry
            time.sleep(pause)
            pause = min(pause * 2, _MAX_BACKOFF_S)

    def _write_one_by_one(self, rows: list[dict[str, Any]]) -> int:
        written = 0
        for row in rows:
            pause = 0.05
            while True:
                try:
                    self._insert([row])
                    written += 1
                    break
                except Exception as exc:
                    if _is_data_error(exc):
                        self.failed_rows += 1
                        log.error("prediction %s was not logged: %s", row.get("id"), _reason(exc))
                        break
                    self._start_outage(exc)
                    time.sleep(pause)
                    pause = min(pause * 2, _MAX_BACKOFF_S)
        self._end_outage()
        return written

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.db.write_connection() as conn:
            conn.execute(insert(_TABLE), rows)

    def _start_outage(self, exc: Exception) -> None:
        self.failed_batches += 1
        if not self._outage:
            self._outage = True
            log.warning(
                "the logbook cannot write to the database (%s); retrying, and holding "
                "predictions in memory until it can",
                _reason(exc),
            )

    def _end_outage(self) -> None:
        if self._outage:
            self._outage = False
            log.warning("the logbook writes to the database again")

    def _report_depth(self) -> None:
        if self.on_depth is not None:
            try:
                self.on_depth(self.depth)
            except Exception:  # a metrics callback must never stop the flusher
                log.exception("the logbook depth callback failed")


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Every column present (executemany needs one shape) and the time in UTC."""
    full = {**_DEFAULTS, **row}
    ts = full.get("ts")
    if isinstance(ts, datetime):
        full["ts"] = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return full


def _is_data_error(exc: Exception) -> bool:
    """A row the database will never take (a bad value, a duplicate id), as opposed to
    a database that is locked, busy or down, which is worth retrying with the same rows.
    Anything unrecognised counts as an outage: retrying forever fills the queue and
    turns into 503s, which is better than setting rows aside that might be fine."""
    if isinstance(exc, DataError | IntegrityError | TypeError | ValueError):
        return True  # (psycopg raises a value it cannot adapt as a bare TypeError)
    # a value that could not be bound (say, an input that is not JSON) never reached
    # the database at all
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
