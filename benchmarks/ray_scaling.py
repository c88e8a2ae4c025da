"""Stoa on Ray on this machine: batch scoring with 1 and 2 Ray workers, and an endpoint
with 1 and 2 Ray Serve replicas, each against the same work without Ray.

Run from the repository root::

    .venv/bin/python benchmarks/ray_scaling.py                 # 20,000 rows, 8 s cells, 3 repeats
    .venv/bin/python benchmarks/ray_scaling.py --quick         # a smoke run

Setup, in a temporary home whose database is a fresh PostgreSQL schema (dropped at the
end; several replicas write one logbook): the tests' TF-IDF ticket classifier as
``tickets@champion``, the five-step ``support`` solution over it (tests/artifacts.py) and
the endpoint ``support`` with one variant. The script starts one local Ray cluster,
``ray.init(num_cpus=2)``, and everything Ray runs on it; it is shut down at the end
(``ray.shutdown()``, never ``ray stop``, which would end other people's clusters).

- batch: ``client.batch.score`` of ``--rows`` ticket texts (in partitions of
  ``--partition-rows``) locally, then with ``ray=True, workers=1`` and ``workers=2``.
  "with start" is rows over the whole call (Ray Data starting, actors importing Stoa and
  loading the solution); "steady" is the rows beyond the start over the time beyond it,
  the start being measured by a run of one row per worker (one partition each) just before.
  The three output files must be equal but for ``latency_ms`` and ``trace``.
- serving: ``stoa server`` (one uvicorn worker) as the reference, then ``stoa serve
  endpoint:support --ray --address GCS --replicas N --replica-cpus 1`` for N = 1, 2.
  wrk POSTs /v1/endpoints/support/predict bodies (512 texts with unit ids) at each
  ``--concurrency`` for ``--seconds`` after 2 s of warm-up. The logbook
  (``client.predictions.summary``) is counted before and after each cell: every 2xx must
  be in it.

``--home DIR`` serves the endpoint ``support`` of a kept demo home (``stoa demo --keep``:
retrieval over the demo's knowledge base and extractive answers, with its shadow) with the
demo's own questions instead: the single-node figures of docs/scale.md's capacity plan.

Scaling efficiency = rate(2) / (2 x rate(1)); 1.00 is perfect. The machine's CPUs are
shared by the driver, the Ray workers or replicas, raylet, the Serve proxy, wrk and
PostgreSQL, so two workers cannot get two whole cores: the figures say what this
machine does, not what Ray does on a bigger one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_common import REPO, package_versions, table
from serve_vs_mlflow import _LUA, free_port, stop, wait_ready, wrk

sys.path.insert(0, str(REPO))

STOA = str(Path(sys.executable).parent / "stoa")
BODIES = 512
BATCH_MODES = ("local", "ray-1", "ray-2")
SERVERS = ("server", "ray-1", "ray-2")
#: Ticket texts that take every path of the solution: the rules (reject, tag, greet),
#: the three intents, and short vague texts that fall below the threshold to a human.
TEXTS = [
    "refund my order", "reset my password", "hi", "please send me your password",
    "my invoice is wrong and I was charged twice for the same order last month", "ok",
    "the app crashes on start", "I forgot my password", "I was charged twice",
    "error when saving my profile", "locked out of my account since yesterday",
    "the button does nothing when I click it", "where is my refund", "thanks",
]  # fmt: skip
#: Output columns that differ run to run by nature.
VOLATILE = ["latency_ms", "trace"]


def ticket_text(i: int) -> str:
    base = TEXTS[i % len(TEXTS)]
    return base if i % 3 else f"{base} (ticket {i})"


# -- setup ------------------------------------------------------------------------------


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    from sqlalchemy import create_engine, text

    base = "postgresql+psycopg://" + url.split("://", 1)[1]
    schema = f"bench_ray_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(settings: Any) -> None:
    """tickets@champion, support@1 and the one-variant endpoint ``support``."""
    from stoa.client import LocalClient
    from tests.artifacts import SUPPORT_SPEC, ticket_classifier

    with LocalClient(settings=settings, actor="bench") as client:
        client.models.log("tickets", ticket_classifier(), license="MIT")
        client.models.set_alias("tickets", 1, "champion")
        client.solutions.register(SUPPORT_SPEC)
        client.endpoints.create("support", ["a=support@1:100"], description="ray_scaling")


# -- batch ------------------------------------------------------------------------------


def timed_score(settings: Any, mode: str, source: Path, out: Path, partition_rows: int) -> dict:
    """One ``client.batch.score`` call on a fresh client (a cold solution), timed whole."""
    from stoa.client import LocalClient

    marks: list[tuple[float, int]] = []
    with LocalClient(settings=settings, actor="bench") as client:
        started = time.perf_counter()
        summary = client.batch.score(
            "support@1", str(source), out, input_columns=["text"],
            partition_rows=partition_rows, progress=lambda d, _: marks.append(
                (time.perf_counter(), d)),
            ray=mode != "local", workers=None if mode == "local" else int(mode[-1]),
        )  # fmt: skip
        took = time.perf_counter() - started
    return {"rows": summary["rows"], "seconds": took, "first_s": marks[0][0] - started,
            "by_status": summary["by_status"],
            "arrivals": [(round(t - started, 3), d) for t, d in marks]}  # fmt: skip


def batch_cell(settings: Any, mode: str, work: Path, source: Path, out: Path, partition_rows: int
               ) -> dict:  # fmt: skip
    """The whole table, and the start alone: one row per worker, one partition each
    (each actor starts, imports Stoa, loads the solution, scores one row). Steady rate =
    the rows beyond those over the time beyond the start run's."""
    workers = 1 if mode == "local" else int(mode[-1])
    small = work / f"start-{workers}.parquet"
    start = timed_score(settings, mode, small, out.with_suffix(".start.parquet"), 1)
    out.with_suffix(".start.parquet").unlink()
    cell = timed_score(settings, mode, source, out, partition_rows)
    extra = cell["seconds"] - start["seconds"]
    cell["start_s"] = start["seconds"]
    cell["rps"] = cell["rows"] / cell["seconds"]
    cell["steady_rps"] = (cell["rows"] - workers) / extra if extra > 0 else float("nan")
    return cell


def same_outputs(paths: list[Path]) -> bool:
    import pandas as pd

    frames = [pd.read_parquet(p).drop(columns=VOLATILE) for p in paths]
    return all(frames[0].equals(f) for f in frames[1:])


def run_batch(args: argparse.Namespace, settings: Any, work: Path, repeat: int) -> dict:
    import pandas as pd

    source = work / "tickets.parquet"
    if not source.exists():
        pd.DataFrame({"text": [ticket_text(i) for i in range(args.rows)]}).to_parquet(source)
        for workers in (1, 2):
            frame = pd.DataFrame({"text": [ticket_text(i) for i in range(workers)]})
            frame.to_parquet(work / f"start-{workers}.parquet")
    cells, outs = {}, []
    for mode in BATCH_MODES:
        out = work / f"scored-{mode}-{repeat}.parquet"
        cells[mode] = batch_cell(settings, mode, work, source, out, args.partition_rows)
        outs.append(out)
        c = cells[mode]
        print(f"  batch {mode:<6} {c['rps']:>8.0f} rows/s with start, {c['steady_rps']:>8.0f} "
              f"steady; start alone {c['start_s']:.1f} s", flush=True)  # fmt: skip
    cells["equal"] = same_outputs(outs)
    for out in outs:
        out.unlink()
    return cells


# -- serving ----------------------------------------------------------------------------


def request_bodies(demo: bool) -> list[dict[str, Any]]:
    """``BODIES`` predict bodies: ticket texts, or (``--home`` of a kept demo) the demo's
    own day of questions, planned as its traffic step plans them."""
    if not demo:
        return [{"input": {"text": ticket_text(i)}, "unit_id": f"user-{i}"}
                for i in range(BODIES)]  # fmt: skip
    from stoa.demo.traffic import USERS, _guide_questions, _ticket_questions, plan_day

    day = plan_day(_guide_questions(), _ticket_questions(), n=BODIES, users=USERS, seed=5)
    return [{"input": {"text": r.text, "hour": r.hour}, "unit_id": r.unit_id} for r in day]


def logged(client: Any) -> int:
    """Predictions of ``support`` in the logbook once it has settled (each server's
    writer flushes every 200 ms)."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = sum(r["predictions"] for r in client.predictions.summary("support"))
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 1.5:
            return now
        time.sleep(0.2)
    return last


class Server:
    """One server process under wrk: ``stoa server`` or ``stoa serve --ray``."""

    def __init__(self, kind: str, work: Path, env: dict[str, str], gcs: str, port: int):
        command = [STOA, "server", "--port", str(port)]
        if kind != "server":
            command = [STOA, "serve", "endpoint:support", "--ray", "--address", gcs,
                       "--replicas", kind[-1], "--replica-cpus", "1",
                       "--port", str(port)]  # fmt: skip
        self.log = work / f"{kind}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{self.url}/readyz", self.proc, self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM: ``stoa serve --ray`` takes its app down and the replicas write their
        logbooks (up to 30 s); kill only if that hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                stop(self.proc)


def serve_cell(server: Server, client: Any, script: Path, c: int, seconds: int) -> dict:
    url = server.url + "/v1/endpoints/support/predict"
    wrk(url, script, c, 2)  # warm-up
    before = logged(client)
    cell = wrk(url, script, c, seconds)
    cell["logged"] = logged(client) - before
    acknowledged = cell["completed"] - cell["non2xx"]
    cell["lost"] = max(0, acknowledged - cell["logged"])  # answered 2xx, yet not logged
    return cell


def run_serving(args: argparse.Namespace, settings: Any, work: Path, gcs: str) -> dict:
    from ray import serve

    from stoa.client import LocalClient

    script = work / "predict.lua"
    if not script.exists():
        bodies = [json.dumps(body) for body in request_bodies(args.home is not None)]
        script.write_text(_LUA % ",\n".join(f"[==[{b}]==]" for b in bodies))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOA_")}
    env.update(STOA_HOME=str(settings.home), STOA_DATABASE_URL=settings.resolved_database_url,
               STOA_USER="bench", RAY_ADDRESS=gcs)  # fmt: skip
    cells: dict[str, dict[int, dict]] = {}
    with LocalClient(settings=settings, actor="bench") as client:
        for kind in SERVERS:
            server = Server(kind, work, env, gcs, free_port())
            try:
                cells[kind] = {}
                for c in args.concurrency:
                    cell = cells[kind][c] = serve_cell(server, client, script, c, args.seconds)
                    print(f"  serve {kind:<6} c={c:<3} {cell['rps']:>7.0f} r/s  p50 "
                          f"{cell['p50_ms']:.1f} ms  p99 {cell['p99_ms']:.1f} ms  non-2xx "
                          f"{cell['non2xx']}  lost {cell['lost']}", flush=True)  # fmt: skip
            finally:
                server.stop()
                if kind != "server":
                    serve.shutdown()  # the proxy too: the next deployment starts clean
    return cells


# -- report -----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(args: argparse.Namespace, runs: list[dict]) -> dict:
    n = len(runs)
    summary: dict[str, Any] = {"args": vars(args), "runs": runs}
    print()
    print(f"Stoa on Ray: 1 vs 2 workers / replicas (medians of {n} run(s); preliminary)")
    print(f"  machine  {os.cpu_count()} CPUs, {platform.platform()}; ONE local Ray cluster "
          "ray.init(num_cpus=2)")  # fmt: skip
    print("  note     the 2 cores are shared by the driver, the Ray workers/replicas, raylet,")
    print("           the Serve proxy, wrk and PostgreSQL: 2 workers never get 2 whole cores")
    print(f"  versions {', '.join(package_versions(['stoa', 'ray', 'scikit-learn', 'pandas']))}")
    if "batch" in args.parts:
        keys = ("rps", "steady_rps", "seconds", "start_s")
        b = {m: {k: median([r["batch"][m][k] for r in runs]) for k in keys}
             for m in BATCH_MODES}  # fmt: skip
        rows = [[m, b[m]["rps"], b[m]["steady_rps"], b[m]["seconds"], b[m]["start_s"]]
                for m in BATCH_MODES]  # fmt: skip
        table(f"batch: support@1 on {args.rows:,} ticket texts, partitions of "
              f"{args.partition_rows:,} rows", ["engine", "rows/s with start", "rows/s steady",
              "seconds", "start alone s"], rows)  # fmt: skip
        equal = all(r["batch"]["equal"] for r in runs)
        statuses = runs[0]["batch"]["local"]["by_status"]
        print(f"  outputs of local, ray-1 and ray-2 equal (without {', '.join(VOLATILE)}): "
              f"{'yes' if equal else 'NO'}; statuses {statuses}")  # fmt: skip
        for key, label in (("rps", "with start"), ("steady_rps", "steady")):
            eff = b["ray-2"][key] / (2 * b["ray-1"][key])
            summary[f"batch_efficiency_{key}"] = eff
            print(f"  batch scaling efficiency {label}: rate(2)/(2 x rate(1)) = {eff:.2f} "
                  f"(ray-2 / ray-1 = {b['ray-2'][key] / b['ray-1'][key]:.2f}x; "
                  f"ray-1 / local = {b['ray-1'][key] / b['local'][key]:.2f}x)")  # fmt: skip
    if "serve" in args.parts:
        rows, lost, completed = [], 0, 0
        s: dict[str, dict[int, dict[str, float]]] = {}
        for kind in SERVERS:
            s[kind] = {}
            for c in args.concurrency:
                cells = [r["serve"][kind][c] for r in runs]
                m = {k: median([x[k] for x in cells]) for k in ("rps", "p50_ms", "p99_ms")}
                m["non2xx"] = sum(x["non2xx"] + x["socket_errors"] for x in cells)
                m["lost"] = sum(x["lost"] for x in cells)
                lost += m["lost"]
                completed += sum(x["completed"] for x in cells)
                s[kind][c] = m
                rows.append([kind, c, m["rps"], m["p50_ms"], m["p99_ms"], m["non2xx"],
                             m["lost"]])  # fmt: skip
        solution = "the demo solution" if args.home else "the ticket solution"
        table(f"serving {solution}: POST /v1/endpoints/support/predict, wrk {args.seconds} s "
              "per cell "
              "after 2 s warm-up", ["server", "clients", "requests/s", "p50 ms", "p99 ms",
              "non-2xx+socket err", "lost"], rows)  # fmt: skip
        print("  server = `stoa server`, 1 uvicorn worker; ray-N = `stoa serve --ray "
              "--replicas N --replica-cpus 1`")  # fmt: skip
        print(f"  logbook: {completed:,} requests completed in the measured cells, "
              f"{lost} answered 2xx but not logged")  # fmt: skip
        for c in args.concurrency:
            eff = s["ray-2"][c]["rps"] / (2 * s["ray-1"][c]["rps"])
            summary[f"serve_efficiency_c{c}"] = eff
            print(f"  serving scaling efficiency at {c} clients: {eff:.2f} (ray-2 / ray-1 = "
                  f"{s['ray-2'][c]['rps'] / s['ray-1'][c]['rps']:.2f}x; ray-1 / server = "
                  f"{s['ray-1'][c]['rps'] / s['server'][c]['rps']:.2f}x)")  # fmt: skip
    return summary


# -- the run ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="batch table rows")
    parser.add_argument("--partition-rows", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3, help="whole runs; medians shown")
    parser.add_argument("--parts", nargs="+", choices=["batch", "serve"],
                        default=["batch", "serve"])  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 rows, 2 s cells, 1 repeat")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the raw cells here")
    parser.add_argument("--home", type=Path, help="serve the endpoint `support` of this "
                        "home (a kept `stoa demo --keep` home: the demo solution) instead "
                        "of the ticket solution; implies --parts serve")  # fmt: skip
    parser.add_argument("--postgres", default=os.environ.get(
        "STOA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.partition_rows, args.seconds, args.repeats = 2000, 200, 2, 1
    if args.home is not None:
        args.parts = ["serve"]
    import ray

    from stoa.core.settings import Settings

    runs = []
    with (tempfile.TemporaryDirectory(prefix="stoa-ray-bench-") as tmp,
          postgres_schema(args.postgres) as database_url):  # fmt: skip
        work = Path(tmp)
        if args.home is not None:  # the demo's SQLite home: one node shares it
            settings = Settings(home=args.home.resolve())
        else:
            settings = Settings(home=work / "home", database_url=database_url)
            prepare(settings)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)  # fmt: skip
        import ray.data  # it sets its loggers up on import; quiet them after

        for name in ("ray.data", "ray.serve"):  # their progress lines drown the figures
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            gcs = ray.get_runtime_context().gcs_address
            for repeat in range(args.repeats):
                print(f"run {repeat + 1} of {args.repeats}", flush=True)
                run: dict[str, Any] = {}
                if "batch" in args.parts:
                    run["batch"] = run_batch(args, settings, work, repeat)
                if "serve" in args.parts:
                    run["serve"] = run_serving(args, settings, work, gcs)
                runs.append(run)
        finally:
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    summary = report(args, runs)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
