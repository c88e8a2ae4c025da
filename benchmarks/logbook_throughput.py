"""The prediction logbook and the feedback writer alone, then the logbook behind a server.

Run from the repository root::

    .venv/bin/python benchmarks/logbook_throughput.py --rows 100000 --repeats 3

Three measurements, each with a count check that proves nothing accepted was lost:

- logbook: ``Logbook.record`` from ``--threads`` threads (the server's request threads),
  then ``close()``; the rate is rows over the time from the first record to the end of
  the close, so it is what the single writer thread sustains, not what the queue takes.
  Rows are shaped as ``stoa serve`` logs a one-row ``/invocations`` call (ten features
  in, one class out). The server's default settings (queue 20,000, batches of 1,000,
  200 ms flush, 2 s wait when full); a record refused with 503 is retried, as a client
  would, and counted.
- feedback: ``parse_events`` then ``FeedbackWriter.add`` of one event per call (one
  ``POST /v1/feedback`` each) from ``--feedback-threads`` threads, every event with its
  own idempotency key (the lookup at-least-once clients make the writer do); each call
  returns only once its event is committed.
  A last cell sends ``--per-call`` events per call (a batch POST) from 16 threads.
- server: ``stoa serve churn@prod --workers 1`` (logging on) driven by wrk at 64 clients
  on ``/invocations``; the predictions the single process logged per second, and every
  acknowledged request present in the logbook.

SQLite always; PostgreSQL too when ``--postgres`` (default 127.0.0.1:5432/test) answers,
in a schema of its own that is dropped afterwards. Targets of issue 16: at least 5,000
predictions/s and 5,000 feedback events/s, with zero loss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from stoa.core.db import Database
from stoa.core.errors import OverloadedError
from stoa.core.schema import FeedbackEvent, Prediction
from stoa.core.settings import Settings
from stoa.serve.feedback import FeedbackWriter, parse_events
from stoa.serve.ids import new_id
from stoa.serve.logbook import Logbook

HERE = Path(__file__).resolve().parent
TARGET = 5000.0
FEATURES = ["tenure_months", "monthly_charges", "total_charges", "contract", "e_check",
            "support_tickets_90d", "num_products", "has_discount", "paperless_billing",
            "last_login_days"]  # fmt: skip


def prediction_row(i: int) -> dict[str, Any]:
    """One row as ``stoa serve`` logs a one-row /invocations request."""
    values = [float(i % 72), 64.5, 1290.0, 1.0, 0.0, 1.0, 2.0, 0.0, 1.0, 7.0]
    return {
        "id": new_id(),
        "endpoint": "churn",
        "config_version": 1,
        "variant": "main",
        "mode": "live",
        "target": "model:churn@1",
        "unit_id": None,
        "ts": datetime.now(UTC),
        "input": {"index": [0], "columns": FEATURES, "data": [values]},
        "output": [i % 2],
        "status": "ok",
        "latency_ms": 1.2,
    }


def count(db: Database, table: Any) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def in_threads(threads: int, work: Callable[[int], None]) -> None:
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def bench_logbook(db: Database, rows: int, threads: int) -> dict[str, Any]:
    """Rows/s from the first record to the end of close(), and the count check."""
    settings = Settings()
    book = Logbook.from_settings(db, settings)
    before = count(db, Prediction)
    per_thread = rows // threads
    prepared = [[prediction_row(t * per_thread + i) for i in range(per_thread)]
                for t in range(threads)]  # fmt: skip
    retries = [0] * threads
    book.start()

    def work(t: int) -> None:
        for row in prepared[t]:
            while True:
                try:
                    book.record(row)
                    break
                except OverloadedError:
                    retries[t] += 1

    started = time.perf_counter()
    in_threads(threads, work)
    queued = time.perf_counter() - started
    book.close(timeout_s=600)
    seconds = time.perf_counter() - started
    sent = per_thread * threads
    stored = count(db, Prediction) - before
    return {"n": sent, "seconds": seconds, "rate": sent / seconds, "queued_s": queued,
            "stored": stored, "lost": sent - stored, "refused": sum(retries),
            "batches": book.written and -(-book.written // settings.logbook_batch)}  # fmt: skip


def bench_feedback(db: Database, events: int, threads: int, per_call: int = 1) -> dict[str, Any]:
    """Events/s through FeedbackWriter.add, ``per_call`` events per call (one POST each),
    and the count check."""
    predictions = [prediction_row(i) for i in range(min(events, 20_000))]
    book = Logbook(db, max_queue=len(predictions), batch_size=1000, flush_ms=50,
                   full_wait_ms=60_000)  # fmt: skip
    for row in predictions:
        book.record(row)
    book.close(timeout_s=600)
    ids = [row["id"] for row in predictions]
    writer = FeedbackWriter(db)
    writer.start()
    before = count(db, FeedbackEvent)
    per_thread = events // threads // per_call * per_call
    run = uuid.uuid4().hex[:8]
    kinds = [("click", True), ("thumb", "up"), ("rating", 4), ("conversion", 19.9)]

    def event(n: int) -> dict[str, Any]:
        kind, value = kinds[n % len(kinds)]
        return {"prediction_id": ids[n % len(ids)], "kind": kind, "value": value,
                "idempotency_key": f"{run}-{n}"}  # fmt: skip

    def work(t: int) -> None:
        for i in range(0, per_thread, per_call):
            n = t * per_thread + i
            payload = event(n) if per_call == 1 else [event(n + j) for j in range(per_call)]
            writer.add(parse_events(payload))

    started = time.perf_counter()
    in_threads(threads, work)
    seconds = time.perf_counter() - started
    writer.close()
    sent = per_thread * threads
    stored = count(db, FeedbackEvent) - before
    return {"n": sent, "seconds": seconds, "rate": sent / seconds, "stored": stored,
            "lost": sent - stored, "accepted": writer.accepted, "groups": writer.groups,
            "per_group": writer.accepted / max(1, writer.groups)}  # fmt: skip


@contextmanager
def sqlite_db(work: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{work / 'stoa.db'}")
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def postgres_db(url: str) -> Iterator[Database]:
    """A schema of our own on the shared server, dropped afterwards."""
    admin_url = "postgresql+psycopg://" + url.split("://", 1)[1]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in admin_url else "?"
    db = Database(f"{admin_url}{sep}options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_up(url: str) -> bool:
    try:
        engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def bench_server(seconds: int, concurrency: int) -> dict[str, Any]:
    """Predictions/s that one `stoa serve` process logs while serving /invocations."""
    import serve_vs_mlflow as svm

    with tempfile.TemporaryDirectory(prefix="stoa-logbook-bench-") as tmp:
        work = Path(tmp)
        frame, _ = svm.churn_data()
        model = svm.train(frame)
        bodies = svm.bodies(frame, rows=1)
        stoa = svm.StoaSide(work, model, workers=1)
        try:
            stoa.predict(bodies[0])  # the model loads on its first request
            cell = stoa.drive(bodies, concurrency, seconds, warmup=2)
        finally:
            stoa.stop()
    return {"rps": cell["rps"], "logged": cell["logged"], "completed": cell["completed"],
            "lost": cell["lost"], "rate": cell["logged"] / cell["seconds"]}  # fmt: skip


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="predictions per run")
    parser.add_argument("--threads", type=int, default=16, help="threads calling record")
    parser.add_argument("--events", type=int, default=40_000, help="feedback events per run")
    parser.add_argument("--feedback-threads", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--per-call", type=int, default=50,
                        help="events per call in the batched feedback cell")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median shown)")
    parser.add_argument("--postgres", default=os.environ.get(
        "STOA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    parser.add_argument("--seconds", type=int, default=10, help="wrk time for the server cell")
    parser.add_argument("--no-server", action="store_true", help="skip the server cell")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    backends = ["sqlite"] + (["postgresql"] if postgres_up(args.postgres) else [])
    results: list[tuple[str, str, dict[str, Any]]] = []
    for backend in backends:
        cells: list[tuple[str, Callable[[Database], dict[str, Any]]]] = [
            (f"logbook, {args.threads} threads",
             lambda db: bench_logbook(db, args.rows, args.threads)),
            *((f"feedback, {t} threads", lambda db, t=t: bench_feedback(db, args.events, t))
              for t in args.feedback_threads),
            (f"feedback, 16 x {args.per_call}/call",
             lambda db: bench_feedback(db, args.events, 16, args.per_call)),
        ]  # fmt: skip
        for name, cell in cells:
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory(prefix="stoa-logbook-bench-") as tmp:
                    maker = sqlite_db(Path(tmp)) if backend == "sqlite" else postgres_db(
                        args.postgres)  # fmt: skip
                    with maker as db:
                        runs.append(cell(db))
            summary = {"rate": median_of(runs, "rate"), "runs": [r["rate"] for r in runs],
                       "n": runs[0]["n"], "lost": sum(r["lost"] for r in runs),
                       "extra": runs[-1]}  # fmt: skip
            results.append((backend, name, summary))
            print_row(backend, name, summary)
    server = None
    if not args.no_server:
        server = [bench_server(args.seconds, 64) for _ in range(args.repeats)]
    report(args, results, server)


def print_row(backend: str, name: str, s: dict[str, Any]) -> None:
    runs = " ".join(f"{r:,.0f}" for r in s["runs"])
    print(f"  {backend:<10} {name:<21} {s['rate']:>9,.0f}/s  {s['n']:>7,}  lost {s['lost']}"
          f"  (runs {runs})", flush=True)  # fmt: skip


def report(
    args: argparse.Namespace,
    results: list[tuple[str, str, dict[str, Any]]],
    server: list[dict[str, Any]] | None,
) -> None:
    import platform

    print()
    print("Logbook and feedback throughput (medians of "
          f"{args.repeats} runs; rate = rows or events per second, committed)")  # fmt: skip
    print(f"  machine  {os.cpu_count()} CPUs, {platform.platform()}")
    print("  store      cell                       median   per run  lost  notes")
    met = True
    for backend, name, s in results:
        extra = s["extra"]
        if name.startswith("logbook"):
            notes = f"{extra['refused']} refusals retried"
        else:
            notes = f"{extra['per_group']:.0f} events per commit"
        print(f"  {backend:<10} {name:<21} {s['rate']:>9,.0f}/s  {s['n']:>7,}  {s['lost']:>4}"
              f"  {notes}")  # fmt: skip
        met = met and s["rate"] >= TARGET and s["lost"] == 0
    if server:
        rate = median_of(server, "rate")
        lost = sum(r["lost"] for r in server)
        runs = " ".join(f"{r['rate']:,.0f}" for r in server)
        print(f"  server: one `stoa serve` process, wrk 64 clients on /invocations: "
              f"{rate:,.0f} predictions/s logged (runs {runs}); {lost} acknowledged "
              "requests missing from the logbook")  # fmt: skip
        met = met and lost == 0
    print(f"  target, >= {TARGET:,.0f}/s for the logbook and for feedback, zero loss: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
