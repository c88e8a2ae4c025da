"""Two reviewer processes draining one queue never get the same item (SQLite's file
lock and PostgreSQL's row locks are both exercised)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

from stoa.core.db import Database
from stoa.measure import review
from tests.measure.review_rows import add_endpoint, add_predictions


def drain(url: str, reviewer: str, out: multiprocessing.Queue, start: Any) -> None:
    db = Database(url)
    start.wait(60)  # both processes ready: they race from the first item
    taken = []
    while (item := review.claim_next(db, "q", reviewer, refill=False)) is not None:
        taken.append(item["id"])
        review.label_item(db, item["id"], reviewer, "correct")
    db.dispose()
    out.put(taken)


def test_two_processes_claim_disjoint_items(db_url: str) -> None:
    db = Database(db_url)
    add_endpoint(db)
    add_predictions(db, [{} for _ in range(60)])
    review.create_queue(db, "q", "support", {"rules": [{"random": 1.0}]})
    review.fill(db, "q", now=datetime.now(UTC) + timedelta(hours=1))
    db.dispose()
    spawn = multiprocessing.get_context("spawn")
    out, start = spawn.Queue(), spawn.Barrier(2)
    workers = [
        spawn.Process(target=drain, args=(db_url, name, out, start)) for name in ("ann", "bob")
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    every = results[0] + results[1]
    assert len(every) == 60 and len(set(every)) == 60
