"""Human review queues: filled by rule from the logbook and the feedback, claimed one
item at a time, labelled into the feedback table.

A queue keeps two cursors: the last prediction id and the last feedback id its rules
have seen. Ids are time-ordered, but a prediction is committed a moment after its id is
made (the logbook flushes in batches, a slow variant runs up to its timeout), so a
cursor only moves past rows older than a settling delay; younger rows are read again
next time, which is harmless because an item is unique per queue and prediction and the
random rule is a hash of the id.

A claim is one conditional UPDATE that picks the oldest claimable item and takes it only
if it is still claimable when the row is written, so two reviewers never hold one item;
a claim lapses after the queue's ``claim_timeout_s``. A label and its feedback rows are
written in one transaction.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update

from stoa.core.db import Database, for_dialect
from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError, OverloadedError
from stoa.core.names import validate_name
from stoa.core.schema import Endpoint, FeedbackEvent, Prediction, ReviewItem, ReviewQueue
from stoa.measure.outputs import context_of, lowest_confidence, tags_of
from stoa.measure.review_spec import parse_spec, reason_for_feedback, reason_for_prediction

#: A prediction cursor moves only past ids older than this: the endpoint timeout (30 s
#: by default) plus the logbook's flush.
SETTLE_PREDICTIONS_S = 45.0
#: Feedback is committed before it is acknowledged; this covers concurrent commits.
SETTLE_FEEDBACK_S = 5.0
PAGE = 1000
MAX_PAGES = 100
STATUSES = ("open", "claimed", "done")
MAX_CORRECTION = 4096
_FAILED = ("error", "timeout")
_ITEMS = ReviewItem.__table__
_CLAIM_TRIES = 50
_TIMES_SAMPLE = 10_000  # labels behind the median time to label


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


def _reviewer(reviewer: str) -> str:
    if not isinstance(reviewer, str) or not 0 < len(reviewer) <= 128 or "\x00" in reviewer:
        raise InvalidInputError(
            "a reviewer is named by 1 to 128 characters",
            field="reviewer",
            fix="pass --reviewer NAME, or call with a token that names you",
        )
    return reviewer


def _queue_row(session: Any, name: str) -> ReviewQueue:
    queue = session.scalar(select(ReviewQueue).where(ReviewQueue.name == name))
    if queue is None:
        raise NotFoundError(
            f"no review queue named {name!r}",
            field="queue",
            fix="list queues with `stoa review queues list`",
        )
    return queue


def _queue_dict(queue: ReviewQueue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "endpoint": queue.endpoint,
        "spec": queue.spec,
        "scanned_to": queue.scanned_to,
        "feedback_scanned_to": queue.feedback_scanned_to,
        "created_at": queue.created_at,
        "created_by": queue.created_by,
    }


def _item_dict(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "prediction_id": item.prediction_id,
        "reason": item.reason,
        "status": item.status,
        "claimed_by": item.claimed_by,
        "claimed_until": item.claimed_until,
        "label": item.label,
        "correction": item.correction,
        "reviewer": item.reviewer,
        "created_at": item.created_at,
        "labelled_at": item.labelled_at,
    }


# -- queues ---------------------------------------------------------------------------


def create_queue(
    db: Database, name: str, endpoint: str, spec: Any, *, actor: str = ""
) -> dict[str, Any]:
    """A new queue over an existing endpoint; its rules see predictions from now on
    only when asked (``fill`` starts at the endpoint's first prediction)."""
    validate_name(name, "name")
    checked = parse_spec(spec)
    with db.write() as session:
        if session.scalar(select(Endpoint.id).where(Endpoint.name == endpoint)) is None:
            raise NotFoundError(
                f"no endpoint named {endpoint!r}",
                field="endpoint",
                fix="create it first with `stoa endpoints create`, or check the name",
            )
        if session.scalar(select(ReviewQueue.id).where(ReviewQueue.name == name)) is not None:
            raise ConflictError(
                f"a review queue named {name!r} already exists",
                field="name",
                fix="choose another name",
            )
        queue = ReviewQueue(
            name=name,
            endpoint=endpoint,
            spec=checked,
            scanned_to="",
            feedback_scanned_to=0,
            created_at=datetime.now(UTC),
            created_by=actor,
        )
        session.add(queue)
        session.flush()
        return _queue_dict(queue)


def list_queues(db: Database, *, endpoint: str | None = None) -> list[dict[str, Any]]:
    query = select(ReviewQueue).order_by(ReviewQueue.name)
    if endpoint is not None:
        query = query.where(ReviewQueue.endpoint == endpoint)
    with db.read() as session:
        return [_queue_dict(q) for q in session.scalars(query)]


def show_queue(db: Database, name: str) -> dict[str, Any]:
    """The queue with its stats."""
    with db.read() as session:
        queue = _queue_dict(_queue_row(session, name))
    return {**queue, "stats": queue_stats(db, name)}


# -- filling --------------------------------------------------------------------------


def _id_ms(prediction_id: str) -> int:
    try:
        return uuid.UUID(prediction_id).int >> 80
    except ValueError:
        return 0


def _insert_items(conn: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert the items not queued yet; the ones actually inserted."""
    if not rows:
        return []
    statement = for_dialect(
        conn,
        "review_items_insert",
        lambda _dialect, dialect_insert: (
            dialect_insert(_ITEMS)
            .on_conflict_do_nothing(index_elements=["queue_id", "prediction_id"])
            .returning(_ITEMS.c.reason)
        ),
    )
    return list(conn.execute(statement, rows).all())


def _advance(conn: Any, queue_id: int, column: str, old: Any, new: Any) -> None:
    """Move a cursor forward unless another fill already moved it."""
    table = ReviewQueue.__table__
    conn.execute(
        update(table).where(table.c.id == queue_id, table.c[column] == old).values({column: new})
    )


def fill(
    db: Database,
    name: str,
    *,
    pages: int = 10,
    page_size: int = PAGE,
    now: datetime | None = None,
    settle_s: float | None = None,
) -> dict[str, Any]:
    """Scan new predictions and feedback (at most ``pages`` pages of each) and queue
    the ones a rule picks; ``more`` says a further call has rows left to read."""
    if not isinstance(pages, int) or not 1 <= pages <= MAX_PAGES:
        raise InvalidInputError(
            f"pages must be between 1 and {MAX_PAGES}", field="pages", fix="e.g. pages=10"
        )
    at = _now(now)
    with db.read() as session:
        queue = _queue_row(session, name)
        queue_id, endpoint, spec = queue.id, queue.endpoint, queue.spec
        cursors = (queue.scanned_to, queue.feedback_scanned_to)
    created = datetime.now(UTC)
    counts: dict[str, int] = {}
    scanned, more = _fill_predictions(
        db, queue_id, endpoint, spec, cursors[0], pages, page_size, at, settle_s, created, counts
    )
    events, more_events = _fill_feedback(
        db, queue_id, endpoint, spec, cursors[1], pages, page_size, at, settle_s, created, counts
    )
    return {
        "queue": name,
        "predictions_scanned": scanned,
        "feedback_scanned": events,
        "added": sum(counts.values()),
        "by_reason": counts,
        "more": more or more_events,
    }


def _fill_predictions(
    db: Database,
    queue_id: int,
    endpoint: str,
    spec: dict[str, Any],
    cursor: str,
    pages: int,
    page_size: int,
    at: datetime,
    settle_s: float | None,
    created: datetime,
    counts: dict[str, int],
) -> tuple[int, bool]:
    settle = SETTLE_PREDICTIONS_S if settle_s is None else settle_s
    settled_ms = int(at.timestamp() * 1000 - settle * 1000)
    rules = [r for r in spec["rules"] if not {"thumbs_down", "low_judge_score", "judged"} & set(r)]
    if not rules:  # nothing to read in the logbook itself
        return 0, False
    last, scanned = cursor, 0
    columns = (Prediction.id, Prediction.input, Prediction.output, Prediction.trace,
               Prediction.status)  # fmt: skip
    for _ in range(pages):
        query = (
            select(*columns)
            .where(Prediction.endpoint == endpoint, Prediction.mode == "live", Prediction.id > last)
            .order_by(Prediction.id)
            .limit(page_size)
        )
        with db.read() as session:
            rows = session.execute(query).all()
        if not rows:
            return scanned, False
        scanned += len(rows)
        items = []
        for pid, value, output, trace, status in rows:
            if status in _FAILED:
                continue
            reason = reason_for_prediction(
                rules, pid, lowest_confidence(output, trace), tags_of(value, output, trace)
            )
            if reason is not None:
                items.append(_new_item(queue_id, pid, reason, created))
        settled = [r[0] for r in rows if _id_ms(r[0]) <= settled_ms]
        moved = settled[-1] if settled and settled[-1] > cursor else None
        if items or moved:  # no write transaction (nor lock) for a page with nothing to do
            with db.write_connection() as conn:
                for (reason,) in _insert_items(conn, items):
                    counts[reason] = counts.get(reason, 0) + 1
                if moved:
                    _advance(conn, queue_id, "scanned_to", cursor, moved)
                    cursor = moved
        last = rows[-1][0]
        if len(rows) < page_size:
            return scanned, False
    return scanned, True


def _fill_feedback(
    db: Database,
    queue_id: int,
    endpoint: str,
    spec: dict[str, Any],
    cursor: int,
    pages: int,
    page_size: int,
    at: datetime,
    settle_s: float | None,
    created: datetime,
    counts: dict[str, int],
) -> tuple[int, bool]:
    settle = SETTLE_FEEDBACK_S if settle_s is None else settle_s
    settled_at = at - timedelta(seconds=settle)
    rules = spec["rules"]
    kinds = {"thumb" for r in rules if "thumbs_down" in r}
    kinds |= {f"judge.{r['low_judge_score']['criterion']}" for r in rules if "low_judge_score" in r}
    kinds |= {f"judge.{r['judged']}" for r in rules if "judged" in r}
    if not kinds:
        return 0, False
    last, scanned = cursor, 0
    columns = (FeedbackEvent.id, FeedbackEvent.prediction_id, FeedbackEvent.kind,
               FeedbackEvent.value, FeedbackEvent.received_at)  # fmt: skip
    for _ in range(pages):
        query = (
            select(*columns)
            .where(
                FeedbackEvent.endpoint == endpoint,
                FeedbackEvent.kind.in_(sorted(kinds)),
                FeedbackEvent.id > last,
            )
            .order_by(FeedbackEvent.id)
            .limit(page_size)
        )
        with db.read() as session:
            rows = session.execute(query).all()
        if not rows:
            return scanned, False
        scanned += len(rows)
        items, seen = [], set()
        for _id, pid, kind, value, _received in rows:
            reason = reason_for_feedback(rules, kind, value)
            if reason is not None and pid not in seen:
                seen.add(pid)
                items.append(_new_item(queue_id, pid, reason, created))
        settled = 0
        for row in rows:  # a prefix: a younger event stops the cursor
            if row[4] > settled_at:
                break
            settled = row[0]
        if items or settled > cursor:
            with db.write_connection() as conn:
                for (reason,) in _insert_items(conn, items):
                    counts[reason] = counts.get(reason, 0) + 1
                if settled > cursor:
                    _advance(conn, queue_id, "feedback_scanned_to", cursor, settled)
                    cursor = settled
        last = rows[-1][0]
        if len(rows) < page_size:
            return scanned, False
    return scanned, True


def _new_item(queue_id: int, prediction_id: str, reason: str, at: datetime) -> dict[str, Any]:
    return {
        "queue_id": queue_id,
        "prediction_id": prediction_id,
        "reason": reason,
        "status": "open",
        "created_at": at,
    }


# -- claims ---------------------------------------------------------------------------


def _claimable(queue_id: int, reviewer: str, at: datetime) -> Any:
    """Open, or claimed by this reviewer, or claimed by anyone whose claim lapsed."""
    return and_(
        ReviewItem.queue_id == queue_id,
        or_(
            ReviewItem.status == "open",
            and_(
                ReviewItem.status == "claimed",
                or_(ReviewItem.claimed_until < at, ReviewItem.claimed_by == reviewer),
            ),
        ),
    )


def claim_next(
    db: Database,
    name: str,
    reviewer: str,
    *,
    now: datetime | None = None,
    refill: bool = True,
) -> dict[str, Any] | None:
    """The item this reviewer now holds, with everything needed to label it, or None
    when the queue has nothing left; a reviewer's unexpired claim comes back first."""
    _reviewer(reviewer)
    if refill:
        fill(db, name, now=now)
    at = _now(now)
    with db.read() as session:
        queue = _queue_row(session, name)
        queue_id, timeout = queue.id, float(queue.spec["claim_timeout_s"])
    until = at + timedelta(seconds=timeout)
    mine = case((ReviewItem.claimed_by == reviewer, 0), else_=1)
    for attempt in range(_CLAIM_TRIES):
        pick = (
            select(ReviewItem.id)
            .where(_claimable(queue_id, reviewer, at))
            .order_by(mine, ReviewItem.id)
            .limit(1)
            .scalar_subquery()
        )
        # The condition is checked again on the row being written: a reviewer who lost
        # the race (PostgreSQL re-reads the row after the winner commits) updates nothing.
        claim = (
            update(_ITEMS)
            .where(_ITEMS.c.id == pick, _claimable(queue_id, reviewer, at))
            .values(status="claimed", claimed_by=reviewer, claimed_until=until)
            .returning(_ITEMS.c.id)
        )
        with db.write_connection() as conn:
            won = conn.execute(claim).first()
        if won is not None:
            return item_view(db, won[0])
        with db.read() as session:
            left = session.scalar(select(ReviewItem.id).where(_claimable(queue_id, reviewer, at)))
        if left is None:
            return None
        time.sleep(0.001 * (attempt + 1))
    raise OverloadedError(
        "too many reviewers claimed at once; nothing was claimed", fix="try again"
    )


def _item_row(session: Any, item_id: int, *, lock: bool = False) -> ReviewItem:
    query = select(ReviewItem).where(ReviewItem.id == item_id)
    item = session.scalar(query.with_for_update() if lock else query)
    if item is None:
        raise NotFoundError(
            f"no review item {item_id}",
            field="item",
            fix="claim one with `stoa review next QUEUE`",
        )
    return item


def _held_elsewhere(item: ReviewItem, reviewer: str, at: datetime) -> bool:
    return (
        item.status == "claimed"
        and item.claimed_by != reviewer
        and item.claimed_until is not None
        and item.claimed_until > at
    )


def release(
    db: Database, item_id: int, reviewer: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Give an item back to the queue; only its holder may (a lapsed claim is open)."""
    _reviewer(reviewer)
    at = _now(now)
    with db.write() as session:
        item = _item_row(session, item_id, lock=True)
        if item.status == "done":
            raise ConflictError(
                f"item {item_id} is already labelled", field="item", fix="claim another item"
            )
        if _held_elsewhere(item, reviewer, at):
            raise ConflictError(
                f"item {item_id} is claimed by {item.claimed_by}, not {reviewer}",
                field="item",
                fix="only the reviewer holding an item can release it",
            )
        item.status, item.claimed_by, item.claimed_until = "open", None, None
        return _item_dict(item)


def _check_correction(correction: str | None, allowed: bool) -> str | None:
    if correction is None or not correction.strip():
        return None
    if not allowed:
        raise InvalidInputError(
            "this queue takes no corrections",
            field="correction",
            fix="label without a correction, or create a queue with corrections: true",
        )
    if "\x00" in correction or len(correction.encode()) > MAX_CORRECTION:
        raise InvalidInputError(
            f"a correction is text of at most {MAX_CORRECTION} bytes",
            field="correction",
            fix="shorten the correction",
        )
    return correction


def label_item(
    db: Database,
    item_id: int,
    reviewer: str,
    label: str,
    correction: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Label an item, claimed by this reviewer or open (one step), and store the label
    (and correction) as feedback with source ``human``, all in one transaction."""
    _reviewer(reviewer)
    at = _now(now)
    with db.write() as session:
        item = _item_row(session, item_id, lock=True)
        queue = session.get(ReviewQueue, item.queue_id)
        assert queue is not None
        names = [entry["name"] for entry in queue.spec["labels"]]
        if label not in names:
            raise InvalidInputError(
                f"unknown label {label!r}",
                field="label",
                fix=f"use one of: {', '.join(names)}",
            )
        text = _check_correction(correction, queue.spec["corrections"])
        if item.status == "done":
            raise ConflictError(
                f"item {item_id} was already labelled {item.label!r} by {item.reviewer}",
                field="item",
                fix="claim the next item with `stoa review next`",
            )
        if _held_elsewhere(item, reviewer, at):
            raise ConflictError(
                f"item {item_id} is claimed by {item.claimed_by} until "
                f"{item.claimed_until:%Y-%m-%d %H:%M:%S} UTC",
                field="item",
                fix="label an item you claimed; claim one with `stoa review next`",
            )
        where = session.execute(
            select(Prediction.endpoint, Prediction.variant).where(
                Prediction.id == item.prediction_id
            )
        ).first()
        endpoint, variant = where if where is not None else (queue.endpoint, "")
        item.status, item.label, item.correction = "done", label, text
        item.reviewer, item.labelled_at = reviewer, at
        item.claimed_by, item.claimed_until = reviewer, None
        events = [("label", label)] + ([("correction", text)] if text is not None else [])
        for kind, value in events:
            session.add(
                FeedbackEvent(
                    prediction_id=item.prediction_id,
                    endpoint=endpoint,
                    variant=variant,
                    kind=kind,
                    value=value,
                    source="human",
                    ts=at,
                    received_at=datetime.now(UTC),
                    idempotency_key=f"review:{item.id}:{kind}",
                )
            )
        return _item_dict(item)


# -- reading --------------------------------------------------------------------------


def item_view(db: Database, item_id: int) -> dict[str, Any]:
    """What a reviewer needs: the input, the retrieved context with the cited passages
    marked, the output, the trace, why it was queued, the label schema and the claim.
    Judge scores and other feedback are left out, so a reviewer is not anchored by them
    and the judge-human agreement stays a fair measure."""
    with db.read() as session:
        item = _item_row(session, item_id)
        queue = session.get(ReviewQueue, item.queue_id)
        assert queue is not None
        prediction = session.execute(
            select(
                Prediction.input, Prediction.output, Prediction.trace, Prediction.variant,
                Prediction.ts, Prediction.status,
            ).where(Prediction.id == item.prediction_id)
        ).first()  # fmt: skip
    value, output, trace, variant, ts, status = prediction or (None,) * 6
    return {
        **_item_dict(item),
        "queue": queue.name,
        "endpoint": queue.endpoint,
        "labels": queue.spec["labels"],
        "criterion": queue.spec["criterion"],
        "corrections": queue.spec["corrections"],
        "variant": variant,
        "ts": ts,
        "prediction_status": status,
        "input": value,
        "context": context_of(output, trace),
        "output": output,
        "trace": trace,
    }


def list_items(
    db: Database,
    name: str,
    *,
    status: str | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """Items oldest first; page with ``after_id`` (the last id of the page before)."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"unknown status {status!r}", field="status", fix=f"use {', '.join(STATUSES)}"
        )
    if not isinstance(limit, int) or not 1 <= limit <= PAGE:
        raise InvalidInputError(
            f"limit must be between 1 and {PAGE}", field="limit", fix="page with after_id"
        )
    with db.read() as session:
        queue = _queue_row(session, name)
        query = select(ReviewItem).where(ReviewItem.queue_id == queue.id)
        if status is not None:
            query = query.where(ReviewItem.status == status)
        if after_id is not None:
            query = query.where(ReviewItem.id > after_id)
        query = query.order_by(ReviewItem.id).limit(limit)
        return [_item_dict(i) for i in session.scalars(query)]


def queue_stats(db: Database, name: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Open (a lapsed claim counts as open), claimed, done, done by label and every item
    by reason, and the median seconds from queued to labelled (latest 10,000 labels)."""
    at = _now(now)
    with db.read() as session:
        queue = _queue_row(session, name)
        lapsed = and_(ReviewItem.status == "claimed", ReviewItem.claimed_until < at)
        state = case((lapsed, "open"), else_=ReviewItem.status)
        mine = ReviewItem.queue_id == queue.id
        by_state = dict(
            session.execute(select(state, func.count()).where(mine).group_by(state)).all()
        )
        by_reason = dict(
            session.execute(
                select(ReviewItem.reason, func.count()).where(mine).group_by(ReviewItem.reason)
            ).all()
        )
        done = mine & (ReviewItem.status == "done")
        by_label = {
            str(value): count
            for value, count in session.execute(
                select(ReviewItem.label, func.count()).where(done).group_by(ReviewItem.label)
            ).all()
        }
        times = session.execute(
            select(ReviewItem.created_at, ReviewItem.labelled_at)
            .where(done)
            .order_by(ReviewItem.id.desc())
            .limit(_TIMES_SAMPLE)
        ).all()
    waits = [(b - a).total_seconds() for a, b in times if a is not None and b is not None]
    return {
        "queue": name,
        "endpoint": queue.endpoint,
        "open": by_state.get("open", 0),
        "claimed": by_state.get("claimed", 0),
        "done": by_state.get("done", 0),
        "by_label": {e["name"]: by_label.get(e["name"], 0) for e in queue.spec["labels"]},
        "by_reason": by_reason,
        "median_s_to_label": statistics.median(waits) if waits else None,
    }
