"""Feedback events: validated, tied to a logged prediction, and durable before the answer.

Every request thread hands its events to one writer thread and waits. The writer takes
every event waiting, from all threads at once, checks their predictions and idempotency
keys, and commits them in one transaction (group commit): one commit per group instead
of one per event, which is what lets a small SQLite file take thousands of events a
second while still answering each caller only after its events are on disk.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError, NotFoundError, OverloadedError, StoaError
from stoa.core.schema import FeedbackEvent, Prediction

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
MAX_TEXT = 4096
MAX_LABELS = 256
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_TABLE = FeedbackEvent.__table__
_CHUNK = 500  # ids per IN (...) list
_RECHECK_S = 0.05  # how often a fresh unknown prediction id is looked up again
#: A group smaller than this waits up to _GATHER_S for more callers before it commits.
_GATHER_BELOW = 32
_GATHER_S = 0.001
_MAX_GROUP = 5000  # events committed in one transaction at most
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _number(value: Any) -> bool:
    """A finite int or float; a bool is not a number here."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and "\x00" not in value and len(value.encode()) <= MAX_TEXT


def _click(value: Any) -> Any:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    raise ValueError("a click takes true or false (or no value, meaning true)")


def _thumb(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else -1
    if isinstance(value, str) and value.lower() in ("up", "down"):
        return 1 if value.lower() == "up" else -1
    if _number(value) and value in (1, -1):
        return int(value)
    raise ValueError('a thumb takes true/false, 1/-1 or "up"/"down"')


def _rating(value: Any) -> Any:
    if _number(value):
        return value
    raise ValueError("a rating takes a finite number")


def _conversion(value: Any) -> Any:
    if isinstance(value, bool) or (_number(value) and value >= 0):
        return value
    raise ValueError("a conversion takes true/false or a revenue value (a number >= 0)")


def _label(value: Any) -> Any:
    if isinstance(value, bool) or _number(value) or _short_text(value):
        return value
    if (
        isinstance(value, list)
        and len(value) <= MAX_LABELS
        and all(_short_text(item) for item in value)
    ):
        return value
    raise ValueError(
        f"a label takes a string (up to {MAX_TEXT} bytes), a number, true/false or a "
        f"list of up to {MAX_LABELS} strings"
    )


def _custom(value: Any) -> Any:
    if value is None or isinstance(value, bool) or _number(value) or _short_text(value):
        return value
    raise ValueError(
        f"a custom kind takes a finite number, true/false, a string (up to {MAX_TEXT} "
        "bytes) or null"
    )


_KINDS: dict[str, Callable[[Any], Any]] = {
    "click": _click,
    "thumb": _thumb,
    "rating": _rating,
    "conversion": _conversion,
    "label": _label,
}


class FeedbackIn(BaseModel):
    """One feedback event as it arrives on the wire; its value is normalised on parse."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=128, pattern=_NO_NUL)
    kind: str
    value: Any = Field(default=None, validate_default=True)
    source: Literal["user", "human", "judge", "system"] = "user"
    ts: datetime | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128, pattern=_NO_NUL)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if not _KIND.match(kind):
            raise ValueError(
                "a kind is click, thumb, rating, conversion, label, or a custom name of "
                "lowercase letters, digits, '_', '.' or '-' starting with a letter "
                "(64 characters at most)"
            )
        return kind

    @field_validator("value")
    @classmethod
    def _value_fits_kind(cls, value: Any, info: Any) -> Any:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself was refused; that error says enough
            return value
        return _KINDS.get(kind, _custom)(value)

    @field_validator("ts")
    @classmethod
    def _aware(cls, ts: datetime | None) -> datetime | None:
        if ts is None:
            return None
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_events(payload: Any) -> list[FeedbackIn]:
    """One event object, a list of them, or ``{"events": [...]}``; at most 1000."""
    single = isinstance(payload, dict) and "events" not in payload
    items = [payload] if single else payload.get("events") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise InvalidInputError(
            'feedback is one event object, a list of events, or {"events": [...]}',
            field="events",
            fix='send {"prediction_id": ..., "kind": ..., "value": ...} or a list of them',
        )
    if not items:
        raise InvalidInputError(
            "the batch holds no events", field="events", fix="send at least one event"
        )
    if len(items) > MAX_EVENTS:
        raise InvalidInputError(
            f"a batch holds at most {MAX_EVENTS} events, not {len(items)}",
            field="events",
            fix=f"split the batch into parts of {MAX_EVENTS} events or fewer",
        )
    events = []
    for index, item in enumerate(items):
        where = "" if single else f"events[{index}]"
        if not isinstance(item, dict):
            raise InvalidInputError(
                "each event is a JSON object",
                field=where or "events",
                fix='send {"prediction_id": ..., "kind": ..., "value": ...}',
            )
        try:
            events.append(FeedbackIn.model_validate(item))
        except ValidationError as exc:
            raise _invalid(exc, where) from None
    return events


def _invalid(exc: ValidationError, where: str) -> InvalidInputError:
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"{name!r} is not a field of a feedback event"
    fixes = {
        "value": "send the value type this kind takes",
        "kind": "use click, thumb, rating, conversion, label or a custom name like 'csat'",
        "source": "use user, human, judge or system",
        "ts": "send an ISO-8601 time such as 2024-05-01T12:00:00Z",
    }
    return InvalidInputError(
        message,
        field=f"{where}.{name}" if where else name,
        fix=fixes.get(name, "see the feedback event format in docs/serving.md"),
    )


@dataclass
class _Call:
    """One add() call waiting for the writer thread."""

    events: list[FeedbackIn]
    future: Future[list[dict[str, Any]]] = field(default_factory=Future)
    # prediction id -> (endpoint, variant), once resolved
    found: dict[str, tuple[str, str]] = field(default_factory=dict)
    recheck_at: float = 0.0


Lookup = Callable[[list[str]], dict[str, tuple[str, str]]]


class FeedbackWriter:
    """Writes feedback events in group commits from one thread; ``add`` blocks until its
    events are committed (or refused as a whole)."""

    def __init__(
        self,
        db: Database,
        *,
        lookup: Lookup | None = None,
        pending: Callable[[str], dict[str, Any] | None] | None = None,
        grace_s: float = 2.0,
    ):
        self.db = db
        self.lookup = lookup
        self.pending = pending
        self.grace_s = grace_s
        self._waiting: list[_Call] = []
        self._deferred: list[_Call] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.accepted = 0
        self.duplicates = 0
        self.groups = 0

    def start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="stoa-feedback", daemon=True)
                self._thread.start()

    def close(self, timeout_s: float = 30) -> None:
        """Finish every call already made, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def add(self, events: list[FeedbackIn]) -> list[dict[str, Any]]:
        """Write the events; per event ``{"id", "prediction_id", "status"}`` in order,
        status ``accepted`` or ``duplicate`` (an idempotency key already stored)."""
        if not events:
            return []
        call = _Call(events)
        self.start()
        with self._cond:
            if self._closing:
                raise OverloadedError(
                    "the server is shutting down and takes no more feedback",
                    fix="retry against another server process",
                )
            self._waiting.append(call)
            self._cond.notify_all()
        return call.future.result()

    # -- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._due_deferred():
                    if self._closing and not self._deferred:
                        return
                    self._cond.wait(self._next_recheck())
                # A moment for the callers that are on their way: one commit for more
                # events costs each caller far less than the millisecond.
                gather_until = time.monotonic() + _GATHER_S
                while self._waiting and self._waiting_events() < _GATHER_BELOW:
                    left = gather_until - time.monotonic()
                    if left <= 0 or self._closing:
                        break
                    self._cond.wait(left)
                now = time.monotonic()
                calls = [c for c in self._deferred if c.recheck_at <= now]
                self._deferred = [c for c in self._deferred if c.recheck_at > now]
                size = sum(len(c.events) for c in calls)
                while self._waiting and (
                    not calls or size + len(self._waiting[0].events) <= _MAX_GROUP
                ):
                    call = self._waiting.pop(0)
                    calls.append(call)
                    size += len(call.events)
            try:
                self._handle(calls)
            except Exception as exc:  # never leave a caller hanging
                log.exception("the feedback writer failed")
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(_as_overloaded(exc))

    def _waiting_events(self) -> int:
        return sum(len(c.events) for c in self._waiting)

    def _due_deferred(self) -> bool:
        now = time.monotonic()
        return any(c.recheck_at <= now for c in self._deferred)

    def _next_recheck(self) -> float | None:
        if not self._deferred:
            return None
        return max(0.0, min(c.recheck_at for c in self._deferred) - time.monotonic())

    def _handle(self, calls: list[_Call]) -> None:
        """One transaction for the whole group: find the predictions, find the stored
        idempotency keys, insert the new events; then answer every caller.

        Keys are checked inside the write transaction: on SQLite it holds the write lock,
        so no one can race us. On PostgreSQL another process may insert the same key
        between our check and our insert; the unique constraint then refuses the
        transaction, and we check again. If the group fails for another reason, each
        call is tried alone, so a call the database refuses fails by itself.
        """
        self._from_pending(calls)
        for _attempt in range(5):
            try:
                with self.db.write_connection() as conn:
                    self._from_database(conn, calls)
                    ready, later, missing = self._sort(calls)
                    answers = self._insert(conn, ready)
                break
            except IntegrityError:
                continue
            except Exception as exc:
                if len(calls) == 1 or not _is_data_error(exc):
                    # locked or down: every call gets its 503 now, none waits again
                    for call in calls:
                        call.future.set_exception(_as_overloaded(exc))
                    return
                for call in calls:
                    self._handle([call])
                return
        else:
            for call in calls:
                call.future.set_exception(
                    OverloadedError(
                        "feedback could not be written: its idempotency keys kept colliding "
                        "with other writers; nothing in this batch was stored",
                        fix="retry the request",
                    )
                )
            return
        self.groups += 1
        for call, answer in zip(ready, answers, strict=True):
            for item in answer:
                if item["status"] == "accepted":
                    self.accepted += 1
                else:
                    self.duplicates += 1
            call.future.set_result(answer)
        for call, error in missing:
            call.future.set_exception(error)
        if later:
            with self._cond:
                self._deferred.extend(later)

    def _from_pending(self, calls: list[_Call]) -> None:
        """Predictions still in this process's logbook queue. Looked up before the
        database: the logbook forgets a row only after it is committed."""
        if self.pending is None:
            return
        for call in calls:
            for event in call.events:
                pid = event.prediction_id
                if pid not in call.found:
                    row = self.pending(pid)
                    if row is not None:
                        call.found[pid] = (row.get("endpoint", ""), row.get("variant", ""))

    def _from_database(self, conn: Connection, calls: list[_Call]) -> None:
        missing: dict[str, list[_Call]] = {}
        for call in calls:
            for event in call.events:
                if event.prediction_id not in call.found:
                    missing.setdefault(event.prediction_id, []).append(call)
        if not missing:
            return
        found = self.lookup(list(missing)) if self.lookup else _lookup(conn, list(missing))
        for pid, where in found.items():
            for call in missing[pid]:
                call.found[pid] = where

    def _sort(
        self, calls: list[_Call]
    ) -> tuple[list[_Call], list[_Call], list[tuple[_Call, NotFoundError]]]:
        """Calls whose predictions are all known; calls to look at again shortly (an
        unknown id young enough to sit in another worker's unflushed batch); and calls
        refused with a 404."""
        from stoa.serve.ids import id_age_s

        ready, later, missing = [], [], []
        for call in calls:
            unknown = [
                (i, e.prediction_id)
                for i, e in enumerate(call.events)
                if e.prediction_id not in call.found
            ]
            if not unknown:
                ready.append(call)
                continue
            ages = [id_age_s(pid) for _, pid in unknown]
            if all(age is not None and age < self.grace_s for age in ages):
                youngest_left = min(self.grace_s - age for age in ages if age is not None)
                call.recheck_at = time.monotonic() + min(_RECHECK_S, youngest_left + 0.01)
                later.append(call)
                continue
            index, pid = next(
                (i, pid)
                for (i, pid), age in zip(unknown, ages, strict=True)
                if age is None or age >= self.grace_s
            )
            where = "prediction_id" if len(call.events) == 1 else f"events[{index}].prediction_id"
            error = NotFoundError(
                f"no prediction {pid!r} was logged",
                field=where,
                fix="send the prediction_id a predict call returned; nothing in this "
                "batch was stored",
            )
            missing.append((call, error))
        return ready, later, missing

    def _insert(self, conn: Connection, calls: list[_Call]) -> list[list[dict[str, Any]]]:
        keys = [e.idempotency_key for c in calls for e in c.events if e.idempotency_key]
        stored = _stored_keys(conn, list(dict.fromkeys(keys))) if keys else {}
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        # per call, per event: ("row", index into rows) or ("id", an existing id)
        plan: list[list[tuple[str, Any]]] = []
        first_row: dict[str, int] = {}  # key -> index of the row that writes it
        for call in calls:
            steps = []
            for event in call.events:
                key = event.idempotency_key
                if key in stored:
                    steps.append(("id", stored[key]))
                elif key is not None and key in first_row:
                    steps.append(("dup", first_row[key]))
                else:
                    endpoint, variant = call.found[event.prediction_id]
                    if key is not None:
                        first_row[key] = len(rows)
                    steps.append(("row", len(rows)))
                    rows.append(
                        {
                            "prediction_id": event.prediction_id,
                            "endpoint": endpoint,
                            "variant": variant,
                            "kind": event.kind,
                            "value": event.value,
                            "source": event.source,
                            "ts": event.ts or now,
                            "received_at": now,
                            "idempotency_key": key,
                        }
                    )
            plan.append(steps)
        ids: list[int] = []
        if rows:
            statement = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
            ids = [row_id for (row_id,) in conn.execute(statement, rows)]
        answers = []
        for call, steps in zip(calls, plan, strict=True):
            answer = []
            for event, (how, ref) in zip(call.events, steps, strict=True):
                row_id = ids[ref] if how in ("row", "dup") else ref
                status = "accepted" if how == "row" else "duplicate"
                answer.append(
                    {"id": row_id, "prediction_id": event.prediction_id, "status": status}
                )
            answers.append(answer)
        return answers


def _select_in(conn: Connection, query: str, values: list[str]) -> list[Any]:
    """Rows of ``query ... IN (values)``, chunked. Plain driver SQL: these two lookups
    run once per group commit, and SQLAlchemy's statement machinery cost more than the
    database did."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        chunk = tuple(values[start : start + _CHUNK])
        sql = f"{query} IN ({', '.join([mark] * len(chunk))})"
        rows.extend(conn.exec_driver_sql(sql, chunk).all())
    return rows


def _lookup(conn: Connection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Prediction id -> (endpoint, variant) for the ids that are logged."""
    query = f"SELECT id, endpoint, variant FROM {Prediction.__tablename__} WHERE id"
    return {pid: (endpoint, variant) for pid, endpoint, variant in _select_in(conn, query, ids)}


def _stored_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    query = f"SELECT idempotency_key, id FROM {_TABLE.name} WHERE idempotency_key"
    return {key: row_id for key, row_id in _select_in(conn, query, keys)}


def _is_data_error(exc: Exception) -> bool:
    """A value the database refuses, as opposed to a database that is locked or down."""
    return isinstance(exc, DataError | TypeError | ValueError) or (
        isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
    )


def _as_overloaded(exc: Exception) -> StoaError:
    if isinstance(exc, StoaError):
        return exc
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return OverloadedError(
        f"feedback could not be written now ({reason[0] if reason else type(exc).__name__}); "
        "nothing in this batch was stored",
        fix="retry shortly with the same idempotency keys",
        retry_after_s=1.0,
    )
