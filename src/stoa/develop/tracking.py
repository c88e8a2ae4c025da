"""Run tracking: params, tags, metric history and artifacts, and searching runs by them.

One implementation behind ``stoa.start_run`` (through either client), the
``/api/v1/runs`` routes and ``stoa runs``. Metrics arrive in batches: a training
loop buffers points on the client side and each flush is one transaction with one
multi-row insert, plus one upsert that keeps each run's latest value per metric.
Search reads those latest values, so it never scans the history.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Connection,
    Float,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    literal,
    null,
    select,
    tuple_,
    union_all,
)

from stoa.core.db import Database, for_dialect
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError
from stoa.core.names import validate_name
from stoa.core.schema import (
    AuditEvent,
    LineageLink,
    Run,
    RunArtifact,
    RunLatestMetric,
    RunMetric,
    RunParam,
    RunTag,
    utcnow,
)
from stoa.govern.registry import Registry, check_json
from stoa.govern.types import MetricPoint, RunDetail, RunInfo

R = Run.__table__
P = RunParam.__table__
T = RunTag.__table__
M = RunMetric.__table__
L = RunLatestMetric.__table__
A = RunArtifact.__table__
LINKS = LineageLink.__table__

RUN_STATUSES = ("running", "finished", "failed", "killed")
#: The fewest characters of a run id that ``resolve_run_id`` accepts as a prefix.
MIN_RUN_ID_PREFIX = 6
_RUN_ID_PREFIX = re.compile(rf"^[0-9a-fA-F]{{{MIN_RUN_ID_PREFIX},31}}$")
_CANDIDATES_NAMED = 5
MAX_BATCH = 10_000  # metric points in one call
MAX_SEARCH = 10_000
#: How far into a search's matches a page may start; past it, a narrower search is faster.
MAX_OFFSET = 1_000_000
_KEY = re.compile(r"^[\w\-./:][\w\-./: ]{0,249}$")
_MAX_PARAM = 6000
_MAX_TAG = 5000
_CONDITION = re.compile(
    r"^\s*(?P<key>[\w\-./:][\w\-./: ]*?)\s*(?P<op>>=|<=|!=|==|=|>|<)\s*(?P<value>\S+)\s*$"
)
_OPS = {">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__", "=": "__eq__",
        "==": "__eq__", "!=": "__ne__"}  # fmt: skip


def check_key(key: Any, field: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key != key.strip():
        raise InvalidInputError(
            f"{key!r} is not a valid key",
            field=field,
            fix="use up to 250 letters, digits, spaces and _ - . / :",
        )
    return key


def clean_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Params are stored as text, like MLflow's; each value is written once."""
    return _as_text(params, "param", _MAX_PARAM)


def clean_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return _as_text(tags, "tag", _MAX_TAG)


def _as_text(values: Mapping[str, Any] | None, what: str, limit: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        check_key(key, f"{what}s.{key}")
        text = str(value)
        if len(text) > limit or "\x00" in text:
            raise InvalidInputError(
                f"{what} {key!r} is longer than {limit} characters or holds NUL",
                field=f"{what}s.{key}",
            )
        out[key] = text
    return out


_good_keys: set[str] = set()  # keys already checked: a training loop logs the same few


def check_point(key: Any, value: Any, step: Any, stamp: Any) -> tuple[str, float, int, int]:
    """One metric point, checked; the fast path costs a set lookup and three type tests."""
    if type(key) is not str or key not in _good_keys:
        check_key(key, "metrics.key")
        if len(_good_keys) < 100_000:
            _good_keys.add(key)
    kind = type(value)
    if kind is not float:  # numpy scalars are what metric code returns: accept any real
        if kind is bool or not isinstance(value, numbers.Real):
            raise InvalidInputError(
                f"metric {key!r} must be a number, not {kind.__name__}", field=f"metrics.{key}"
            )
        try:
            value = float(value)
        except OverflowError:
            raise InvalidInputError(
                f"metric {key!r} is too large for a float", field=f"metrics.{key}"
            ) from None
    if not math.isfinite(value):
        raise InvalidInputError(
            f"metric {key!r} is {value}; only finite values are stored",
            field=f"metrics.{key}",
            fix="log NaN or infinite values as a tag, or skip the point",
        )
    if step is None:
        step = 0
    elif type(step) is not int:
        if type(step) is bool or not isinstance(step, numbers.Integral):
            raise InvalidInputError(f"step of {key!r} must be an integer", field="metrics.step")
        step = int(step)
    if abs(step) > 2**62:
        raise InvalidInputError(f"step of {key!r} is out of range", field="metrics.step")
    if stamp is None:
        stamp = int(time.time() * 1000)
    elif type(stamp) is not int and isinstance(stamp, numbers.Integral) and type(stamp) is not bool:
        stamp = int(stamp)
    if type(stamp) is not int or not 0 <= stamp < 2**62:
        raise InvalidInputError(
            f"timestamp of {key!r} must be milliseconds since the epoch",
            field="metrics.timestamp",
        )
    return key, float(value), step, stamp


def clean_metrics(points: Iterable[Any]) -> list[tuple[str, float, int, int]]:
    """(key, value, step, timestamp) tuples; every bad point is refused with its key."""
    rows: list[tuple[str, float, int, int]] = []
    for point in points:
        if type(point) is tuple and 2 <= len(point) <= 4:
            key, value, step, stamp = (*point, None, None)[:4]
        elif isinstance(point, Mapping):
            key, value = point.get("key"), point.get("value")
            step, stamp = point.get("step", 0), point.get("timestamp")
        elif isinstance(point, MetricPoint):
            key, value, step, stamp = point.key, point.value, point.step, point.timestamp
        elif isinstance(point, list) and 2 <= len(point) <= 4:
            key, value, step, stamp = (*point, None, None)[:4]
        else:
            raise InvalidInputError(
                f"{point!r:.60} is not a metric point",
                field="metrics",
                fix="send {key, value, step, timestamp} or [key, value, step, timestamp]",
            )
        rows.append(check_point(key, value, step, stamp))
        if len(rows) > MAX_BATCH:
            raise InvalidInputError(
                f"more than {MAX_BATCH} metric points in one batch",
                field="metrics",
                fix="send them in several batches",
            )
    return rows


def no_run(run_id: Any, field: str = "run_id") -> NotFoundError:
    return NotFoundError(
        f"no run {run_id!r}",
        field=field,
        fix=f"give the full id or a unique prefix of at least {MIN_RUN_ID_PREFIX} of its "
        "characters, as `stoa runs list` shows",
    )


def resolve_run_id(source: Database | Connection, run_id: Any, field: str = "run_id") -> Any:
    """The full id of the one run whose id starts with ``run_id``, for a prefix of 6 to
    31 hex characters; anything else comes back unchanged for the caller to look up.

    Every operation that takes a run id calls this, so the short id ``stoa runs list``
    prints works everywhere. A prefix that names no run is a 404; one that names
    several is a 422 listing them.
    """
    if not isinstance(run_id, str) or not _RUN_ID_PREFIX.match(run_id):
        return run_id  # a full id (the hot path of logging) costs nothing here
    if isinstance(source, Database):
        with source.engine.connect() as conn:
            return resolve_run_id(conn, run_id, field)
    prefix = run_id.lower()
    # A range on the primary key (hex sorts below "g"), so the lookup uses its index.
    found = source.execute(
        select(R.c.id, R.c.name)
        .where(R.c.id >= prefix, R.c.id < prefix + "g", R.c.id.startswith(prefix))
        .order_by(R.c.id)
        .limit(_CANDIDATES_NAMED + 1)
    ).all()
    if not found:
        raise no_run(run_id, field)
    if len(found) > 1:
        named = ", ".join(f"{row.id[:12]} ({row.name})" for row in found[:_CANDIDATES_NAMED])
        more = ", and more" if len(found) > _CANDIDATES_NAMED else ""
        raise InvalidInputError(
            f"run id prefix {run_id!r} is ambiguous: it matches {named}{more}",
            field=field,
            fix="give more characters of the id",
        )
    return found[0].id


def create_run(
    registry: Registry,
    name: str,
    *,
    actor: str,
    inputs: Iterable[str] = (),
    status: str = "finished",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_id: str | None = None,
    environment: Mapping[str, Any] | None = None,
) -> RunInfo:
    """Record a run, the dataset versions it read (lineage) and what it starts with.

    ``stoa runs create`` records a finished run for lineage (it ends as it is created:
    ``ended_at`` is ``created_at``); ``start_run`` opens a ``running`` one that logs
    until it is finished. The registry resolves the inputs in the same transaction, so
    a run never points at a dataset that does not exist.
    """
    validate_name(name, "run")
    if status not in ("running", "finished"):
        raise InvalidInputError("a new run is running or finished", field="status")
    params_text, tags_text = clean_params(params), clean_tags(tags)
    check_json(environment, "environment")
    with registry.db.write() as session:
        if parent_id is not None:
            parent_id = resolve_run_id(session.connection(), parent_id, "parent_id")
            if session.get(Run, parent_id) is None:
                raise no_run(parent_id, "parent_id")
        now = utcnow()
        run = Run(
            id=uuid.uuid4().hex, name=name, created_by=actor, status=status, created_at=now,
            ended_at=now if status == "finished" else None, parent_id=parent_id,
            environment=dict(environment or {}),
        )  # fmt: skip
        session.add(run)
        session.flush()
        conn = session.connection()
        registry.link_parents(conn, [("dataset", ref) for ref in inputs], "run", run.id)
        write_params(conn, run.id, params_text)
        write_tags(conn, run.id, tags_text)
        return RunInfo.model_validate(run, from_attributes=True)


def _latest_upsert(_: str, insert: Any) -> Any:
    """Keep the point with the highest (step, timestamp); ties go to the newer write."""
    statement = insert(L)
    newer = tuple_(statement.excluded.step, statement.excluded.timestamp) >= tuple_(
        L.c.step, L.c.timestamp
    )
    return statement.on_conflict_do_update(
        index_elements=[L.c.run_id, L.c.key],
        set_={
            "value": statement.excluded.value,
            "step": statement.excluded.step,
            "timestamp": statement.excluded.timestamp,
        },
        where=newer,
    )


def _insert_new(table: Any) -> Any:
    def build(_: str, insert: Any) -> Any:
        return insert(table).on_conflict_do_nothing(index_elements=[table.c.run_id, table.c.key])

    return build


def _tag_upsert(_: str, insert: Any) -> Any:
    statement = insert(T)
    return statement.on_conflict_do_update(
        index_elements=[T.c.run_id, T.c.key], set_={"value": statement.excluded.value}
    )


def _running(conn: Connection, run_id: str) -> str:
    """The run's full id, once it is known to be running."""
    run_id = resolve_run_id(conn, run_id)
    status = conn.execute(select(R.c.status).where(R.c.id == run_id)).scalar()
    if status is None:
        raise no_run(run_id)
    if status != "running":
        raise ConflictError(
            f"run {run_id} is {status}; only running runs take new values",
            field="run_id",
            fix="start a new run",
        )
    return run_id


def write_params(conn: Connection, run_id: str, params: dict[str, str]) -> None:
    """Params are immutable: the same value again is fine, a different one is refused."""
    if not params:
        return
    query = select(P.c.key, P.c.value).where(P.c.run_id == run_id, P.c.key.in_(list(params)))
    existing = {key: value for key, value in conn.execute(query)}
    changed = sorted(k for k, v in existing.items() if v != params[k])
    if changed:
        key = changed[0]
        raise ConflictError(
            f"param {key!r} of run {run_id} is already {existing[key]!r}, not {params[key]!r}",
            field=f"params.{key}",
            fix="params are written once; log a metric or a tag for values that change",
        )
    new = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items() if k not in existing]
    if new:
        conn.execute(for_dialect(conn, "param_insert", _insert_new(P)), new)
        # Another writer may have stored one of these keys since the read above (the
        # insert skipped it): compare again, so its value is never silently kept over ours.
        stored = {key: value for key, value in conn.execute(query)}
        raced = sorted(k for k in params if stored.get(k) != params[k])
        if raced:
            key = raced[0]
            raise ConflictError(
                f"param {key!r} of run {run_id} is already {stored.get(key)!r}, "
                f"not {params[key]!r}",
                field=f"params.{key}",
                fix="params are written once; log a metric or a tag for values that change",
            )


def write_tags(conn: Connection, run_id: str, tags: dict[str, str]) -> None:
    if tags:
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
        conn.execute(for_dialect(conn, "tag_upsert", _tag_upsert), rows)


def write_metrics(conn: Connection, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """The history in one executemany of plain tuples, then one upsert per metric key."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    insert = (
        'INSERT INTO run_metrics (run_id, "key", "value", step, "timestamp") '
        f"VALUES ({', '.join([mark] * 5)})"
    )
    conn.exec_driver_sql(insert, [(run_id, *row) for row in rows])
    latest: dict[str, tuple[str, float, int, int]] = {}
    for row in rows:  # the batch's own latest point per key
        best = latest.get(row[0])
        if best is None or (row[2], row[3]) >= (best[2], best[3]):
            latest[row[0]] = row
    upsert = [{"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t}
              for k, v, s, t in latest.values()]  # fmt: skip
    conn.execute(for_dialect(conn, "latest_upsert", _latest_upsert), upsert)


def log_batch(
    db: Database,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Iterable[Any] = (),
    tags: Mapping[str, Any] | None = None,
) -> None:
    """One transaction for whatever a client flushed: all of it lands, or none."""
    clean_p, clean_t, rows = clean_params(params), clean_tags(tags), clean_metrics(metrics)
    with db.write_connection() as conn:
        run_id = _running(conn, run_id)
        write_params(conn, run_id, clean_p)
        write_tags(conn, run_id, clean_t)
        write_metrics(conn, run_id, rows)


def log_artifact(db: Database, run_id: str, path: str, stored: Any) -> None:
    """Record a file or folder already stored in the blob store under ``path``."""
    with db.write_connection() as conn:
        run_id = _running(conn, run_id)
        values = {"sha256": stored.sha256, "artifact": stored.artifact, "size": stored.size}
        updated = conn.execute(
            A.update().where(A.c.run_id == run_id, A.c.path == path).values(**values)
        ).rowcount
        if not updated:
            conn.execute(A.insert().values(run_id=run_id, path=path, **values))


def finish(db: Database, run_id: str, status: str = "finished") -> RunInfo:
    if status not in RUN_STATUSES[1:]:
        raise InvalidInputError(
            f"{status!r} is not a final status",
            field="status",
            fix=f"use one of {', '.join(RUN_STATUSES[1:])}",
        )
    with db.write_connection() as conn:
        run_id = _running(conn, run_id)
        conn.execute(R.update().where(R.c.id == run_id).values(status=status, ended_at=utcnow()))
    return get(db, run_id).info


def delete_run(db: Database, run_id: str, *, actor: str) -> RunInfo:
    """Remove a run for good (admins): params, tags, metrics, artifact records and the
    lineage edges to its inputs, in one transaction; artifact bytes go at the next
    ``stoa gc`` unless shared. Refused while a child run or a registered version names
    it: deleting it would erase where they came from."""
    with db.write() as session:
        conn = session.connection()
        run_id = resolve_run_id(conn, run_id)
        row = session.get(Run, run_id)
        if row is None:
            raise no_run(run_id)
        child = conn.execute(select(R.c.id).where(R.c.parent_id == run_id).limit(1)).scalar()
        if child is not None:
            raise ConflictError(
                f"run {run_id} has child runs (such as {child})",
                field="run_id",
                fix="delete the child runs first",
            )
        made = conn.execute(
            select(LINKS.c.child_type, LINKS.c.child_id)
            .where(LINKS.c.parent_type == "run", LINKS.c.parent_id == run_id).limit(1)
        ).first()  # fmt: skip
        if made is not None:
            raise ConflictError(
                f"run {run_id} is the lineage of a registered {made[0]}",
                field="run_id",
                fix="delete the versions it produced first; lineage is never rewritten",
            )
        info = RunInfo.model_validate(row, from_attributes=True)
        conn.execute(delete(LINKS).where(LINKS.c.child_type == "run", LINKS.c.child_id == run_id))
        session.delete(row)
        session.add(AuditEvent(actor=actor, action="run.delete", subject=f"run:{run_id}",
                               detail={"name": info.name}))  # fmt: skip
        return info


def get(db: Database, run_id: str) -> RunDetail:
    with db.read() as session:
        conn = session.connection()
        run_id = resolve_run_id(conn, run_id)
        rows = list(conn.execute(select(*_RUN_COLUMNS, R.c.environment).where(R.c.id == run_id)))
        details = _details(conn, rows, with_environment=True)
    if not details:
        raise no_run(run_id)
    return details[0]


def history(db: Database, run_id: str, key: str) -> list[MetricPoint]:
    """Every point of one metric, in step order (then logging order)."""
    check_key(key, "key")
    with db.read() as session:
        conn = session.connection()
        run_id = resolve_run_id(conn, run_id)
        if conn.execute(select(R.c.id).where(R.c.id == run_id)).scalar() is None:
            raise no_run(run_id)
        rows = conn.execute(
            select(M.c.key, M.c.value, M.c.step, M.c.timestamp)
            .where(M.c.run_id == run_id, M.c.key == key)
            .order_by(M.c.step, M.c.timestamp, M.c.id)
        ).all()
    return [MetricPoint(key=r.key, value=r.value, step=r.step, timestamp=r.timestamp) for r in rows]


#: The most points ``curve`` sends for one metric unless asked for fewer: more than any
#: chart is wide, in pixels.
CURVE_POINTS = 1000
_CURVE_LIMITS = (10, 100_000)


class MetricCurve(BaseModel):
    """One metric by step, thinned for drawing: ``steps`` and ``values`` side by side, and
    how many steps it had before thinning (``total``)."""

    key: str
    steps: list[int]
    values: list[float]
    total: int

    @property
    def thinned(self) -> bool:
        return self.total > len(self.steps)


def thin(
    steps: Sequence[int], values: Sequence[float], max_points: int = CURVE_POINTS
) -> tuple[list[int], list[float]]:
    """At most ``max_points`` of a curve, in step order: the first and last points and
    each stretch's lowest and highest, so spikes and dips survive the thinning."""
    n = len(steps)
    if n <= max_points:
        return list(steps), list(values)
    buckets = max(1, (max_points - 2) // 2)  # between the two ends, two points each
    keep = {0, n - 1}
    size = (n - 2) / buckets
    for b in range(buckets):
        lo, hi = 1 + int(b * size), min(1 + int((b + 1) * size), n - 1)
        if hi > lo:
            stretch = range(lo, hi)
            keep.add(min(stretch, key=values.__getitem__))
            keep.add(max(stretch, key=values.__getitem__))
    chosen = sorted(keep)
    return [steps[i] for i in chosen], [values[i] for i in chosen]


def curve(db: Database, run_id: str, key: str, max_points: int = CURVE_POINTS) -> MetricCurve:
    """One metric by step for a chart: the last value logged at each step, thinned to at
    most ``max_points`` (``thin``). Reads plain rows, not ``MetricPoint``s, so a curve of
    100,000 points costs a fraction of ``history``."""
    check_key(key, "key")
    low, high = _CURVE_LIMITS
    if (
        isinstance(max_points, bool)
        or not isinstance(max_points, int)
        or not (low <= max_points <= high)
    ):
        raise InvalidInputError(f"max_points must be {low}..{high:,}", field="max_points")
    with db.engine.connect() as conn:
        run_id = resolve_run_id(conn, run_id)
        if conn.execute(select(R.c.id).where(R.c.id == run_id)).scalar() is None:
            raise no_run(run_id)
        rows = conn.execute(
            select(M.c.step, M.c.value)
            .where(M.c.run_id == run_id, M.c.key == key)
            .order_by(M.c.step, M.c.timestamp, M.c.id)
        ).all()
    by_step: dict[int, float] = dict(rows)  # in logging order per step: the last one stays
    steps, values = thin(list(by_step), list(by_step.values()), max_points)
    return MetricCurve(key=key, steps=steps, values=values, total=len(by_step))


def parse_condition(text: str) -> tuple[str, str, float]:
    """'acc>0.9' -> ('acc', '>', 0.9): a metric condition for search."""
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if not match:
        raise InvalidInputError(
            f"{text!r} is not a metric condition",
            field="metrics",
            fix="write KEY OP NUMBER, e.g. 'acc>0.9' or 'loss<=0.2' (OP: > >= < <= = !=)",
        )
    try:
        value = float(match["value"])
    except ValueError:
        raise InvalidInputError(
            f"{match['value']!r} in {text!r} is not a number", field="metrics"
        ) from None
    return check_key(match["key"], "metrics"), match["op"], value


def search(
    db: Database,
    *,
    name: str | None = None,
    status: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = (),
    order_by: str | None = None,
    limit: int = 100,
    parent_id: str | None = None,
    offset: int = 0,
) -> list[RunDetail]:
    """Runs whose params and tags equal the given values and whose latest metric values
    meet every condition, newest first unless ``order_by`` says otherwise; ``offset``
    skips that many matches first (a page of a long list)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH:
        raise InvalidInputError(f"limit must be 1..{MAX_SEARCH}", field="limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInputError(
            f"offset must be 0..{MAX_OFFSET}", field="offset", fix="narrow the search instead"
        )
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInputError(
            f"unknown status {status!r}", field="status", fix=f"use one of {RUN_STATUSES}"
        )
    values: dict[str, Any] = {"limit": limit, "offset": offset}
    shape: list[Any] = [order_by or "-created_at"]
    for field_name, value in (("name", name), ("status", status), ("parent_id", parent_id)):
        if value is not None:
            values[field_name] = value
            shape.append(field_name)
    for prefix, pairs in (("p", clean_params(params)), ("t", clean_tags(tags))):
        for i, (key, value) in enumerate(pairs.items()):
            values[f"{prefix}{i}k"], values[f"{prefix}{i}v"] = key, value
            shape.append(prefix)
    for i, condition in enumerate(metrics):
        key, op, value = parse_condition(condition)
        values[f"m{i}k"], values[f"m{i}v"] = key, value
        shape.append(("m", op))
    key_ = tuple(shape)
    query = _SEARCHES.get(key_)
    if query is None:  # a bad order_by is refused here, before it is ever cached
        query = _search_statement(shape, order_by)
        if len(_SEARCHES) < 512:
            _SEARCHES[key_] = query
    with db.engine.connect() as conn:  # a plain connection: no ORM session for a read
        if parent_id is not None:
            values["parent_id"] = resolve_run_id(conn, parent_id, "parent_id")
        return _details(conn, list(conn.execute(query, values)), with_environment=False)


# A search's statement depends only on its shape (which filters, which operators, which
# order); values are bound. Building it is most of a small search's cost, so it is kept.
_SEARCHES: dict[tuple[Any, ...], Any] = {}


def _search_statement(shape: list[Any], order_by: str | None) -> Any:
    where = []
    counters = {"p": 0, "t": 0, "m": 0}
    for item in shape[1:]:
        if item in ("name", "status", "parent_id"):
            where.append(R.c[item] == bindparam(item))
        elif item in ("p", "t"):
            table = P if item == "p" else T
            i = counters[item]
            counters[item] += 1
            where.append(exists().where(
                table.c.run_id == R.c.id, table.c.key == bindparam(f"{item}{i}k"),
                table.c.value == bindparam(f"{item}{i}v"),
            ))  # fmt: skip
        else:
            op = item[1]
            i = counters["m"]
            counters["m"] += 1
            compare = getattr(L.c.value, _OPS[op])(bindparam(f"m{i}v", type_=Float))
            where.append(exists().where(
                L.c.run_id == R.c.id, L.c.key == bindparam(f"m{i}k"), compare
            ))  # fmt: skip
    query = select(*_RUN_COLUMNS)
    query = query.where(and_(*where)) if where else query
    return _ordered(query, order_by).limit(bindparam("limit")).offset(bindparam("offset"))


def _ordered(query: Any, order_by: str | None) -> Any:
    """'-metrics.acc', 'params.lr', 'created_at' (the default is '-created_at')."""
    text = order_by or "-created_at"
    descending = text.startswith("-")
    field = text.lstrip("-+")
    if field in ("created_at", "name", "status", "ended_at"):
        column = R.c[field]
    elif field.startswith(("metrics.", "params.", "tags.")):
        source, key = field.split(".", 1)
        check_key(key, "order_by")
        table = {"metrics": L, "params": P, "tags": T}[source].alias("ordering")
        query = query.outerjoin(table, and_(table.c.run_id == R.c.id, table.c.key == key))
        column = table.c.value
    else:
        raise InvalidInputError(
            f"cannot order by {text!r}",
            field="order_by",
            fix="use created_at, name, status, ended_at, metrics.KEY, params.KEY or tags.KEY; "
            "prefix - for descending",
        )
    # Runs without the value sort last either way; the id keeps the order stable.
    return query.order_by(column.is_(None), column.desc() if descending else column.asc(), R.c.id)


_RUN_COLUMNS = (R.c.id, R.c.name, R.c.status, R.c.created_at, R.c.created_by, R.c.ended_at,
                R.c.parent_id)  # fmt: skip


def _logged_values() -> Any:
    """Params, tags and latest metrics of many runs in one statement, built once."""
    none_text, none_number = null().cast(Text), null().cast(Float)
    ids = bindparam("ids", expanding=True)
    return union_all(
        select(P.c.run_id, literal("p"), P.c.key, P.c.value, none_number).where(
            P.c.run_id.in_(ids)
        ),
        select(T.c.run_id, literal("t"), T.c.key, T.c.value, none_number).where(
            T.c.run_id.in_(ids)
        ),
        select(L.c.run_id, literal("m"), L.c.key, none_text, L.c.value).where(L.c.run_id.in_(ids)),
    )


_LOGGED = _logged_values()


def _details(conn: Connection, rows: list[Any], *, with_environment: bool) -> list[RunDetail]:
    """RunDetails for run rows (``_RUN_COLUMNS``, plus environment when asked), in order.

    Values come from the database's own types and columns, so the models are built
    without re-validating them: a search answering 100 runs does no per-field checks.
    """
    if not rows:
        return []
    ids = [row.id for row in rows]
    logged: dict[str, tuple[dict[str, str], dict[str, str], dict[str, float]]] = {
        run_id: ({}, {}, {}) for run_id in ids
    }
    slot = {"p": 0, "t": 1, "m": 2}
    for run_id, kind, key, text, number in conn.execute(_LOGGED, {"ids": ids}):
        logged[run_id][slot[kind]][key] = number if kind == "m" else text
    artifacts: dict[str, list[dict[str, Any]]] = {}
    if with_environment:
        for row in conn.execute(select(A).where(A.c.run_id.in_(ids)).order_by(A.c.path)):
            entry = {"path": row.path, "sha256": row.sha256, "artifact": row.artifact}
            artifacts.setdefault(row.run_id, []).append({**entry, "size": row.size})
    out = []
    for row in rows:
        environment = row.environment if with_environment else {}
        if isinstance(environment, str):  # SQLite hands JSON back as text through Core
            environment = json.loads(environment)
        info = RunInfo.model_construct(
            id=row.id, name=row.name, status=row.status, created_at=_aware(row.created_at),
            created_by=row.created_by, ended_at=_aware(row.ended_at), parent_id=row.parent_id,
        )  # fmt: skip
        params, tags, metrics = logged[row.id]
        out.append(
            RunDetail.model_construct(
                info=info,
                params=params,
                tags=tags,
                metrics=metrics,
                environment=environment or {},
                artifacts=artifacts.get(row.id, []),
            )
        )
    return out


def _aware(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
