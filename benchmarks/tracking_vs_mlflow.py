"""Stoa's run tracking against MLflow's (SQLite back-end), on the same machine in one run.

Run from the repository root with Stoa's virtualenv::

    .venv/bin/python benchmarks/tracking_vs_mlflow.py --repeats 3
    .venv/bin/python benchmarks/tracking_vs_mlflow.py --quick --mlflow-only

Each repeat logs the same runs into a fresh store, then searches them. By default: 100 runs,
each with five params (lr, depth, seed, model, batch), two tags (team, idx) and a training loop
of 500 steps that logs ``loss`` and ``acc`` at every step, so 1,000 metric points a run and
100,000 in all. Every run ends on its own final ``acc``. The search phase is 200 searches
``acc > t`` for varying t, ordered by ``acc`` descending, limit 10, and 50 more that add
``params.model = 'xgb'``. Each side checks every search's result (the runs, in order) against
the workload, so both are known to return the same runs. ``--quick`` is 10 runs of 100 points
and 20 + 5 searches.

Stoa logs with ``LocalClient.start_run`` and ``run.log_metrics({...}, step=step)`` at every
step, and searches with ``LocalClient.search_runs``. MLflow runs three ways, each in a fresh
store and a process of its own:

* ``log_metrics``: the code its docs show, ``mlflow.start_run``, ``mlflow.log_params``,
  ``mlflow.set_tags`` and ``mlflow.log_metrics({...}, step=step)`` at every step; searches
  with ``mlflow.search_runs(..., output_format="list")``.
* ``async``: the same code after ``mlflow.config.enable_async_logging()``, which queues the
  calls and writes them in batches from a thread; the queue is flushed before the clock stops.
* ``log_batch``: ``MlflowClient.log_batch`` with 1,000 ``Metric`` objects a call (MLflow's
  largest batch); searches with ``MlflowClient.search_runs``, which skips the fluent layer.

Each phase's speed-up is taken against MLflow's fastest way in that phase. MLflow's SQLite
store keeps SQLite's default journal (rollback, ``synchronous=FULL``) and Stoa's uses WAL with
``synchronous=NORMAL``; ``--wal-variant`` adds an informational table with MLflow's
connections set as Stoa's (see benchmarks/registry_vs_mlflow.py, which explains it).

MLflow is never a Stoa dependency: it lives in ``benchmarks/.venv-mlflow``, set up on first use
by the helper of registry_vs_mlflow.py (imported by path), and runs as a subprocess of this
same file in that virtualenv (``--peer mlflow --way WAY --json``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def load_registry_bench() -> ModuleType:
    """benchmarks/registry_vs_mlflow.py, for its MLflow virtualenv and SQLite helpers."""
    spec = importlib.util.spec_from_file_location(
        "stoa_bench_registry", HERE / "registry_vs_mlflow.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


registry_bench = load_registry_bench()

MODELS = ("xgb", "lgbm", "rf")
TEAMS = 4
LIMIT = 10  # results per search
BATCH = 1000  # metric points per MlflowClient.log_batch call, MLflow's maximum
WAYS = ("log_metrics", "async", "log_batch")


@dataclass(frozen=True)
class RunSpec:
    """One run to log, in logging order."""

    index: int
    name: str
    params: dict[str, Any]
    tags: dict[str, str]
    final_acc: float


@dataclass(frozen=True)
class Query:
    threshold: float
    model: str | None  # also filter on params.model when set


def workload(runs: int, seed: int) -> list[RunSpec]:
    """Runs with distinct final accuracies, spread over (0.5, 0.9) in shuffled order."""
    ranks = list(range(runs))
    random.Random(seed).shuffle(ranks)
    specs = []
    for i in range(runs):
        params = {
            "lr": [0.1, 0.03, 0.01, 0.003][i % 4],
            "depth": 3 + i % 6,
            "seed": i,
            "model": MODELS[i % len(MODELS)],
            "batch": [32, 64, 128][i % 3],
        }
        tags = {"team": f"t{i % TEAMS}", "idx": str(i)}
        final_acc = 0.5 + 0.4 * (ranks[i] + 1) / (runs + 1)
        specs.append(RunSpec(i, f"run-{i}", params, tags, final_acc))
    return specs


def curve(spec: RunSpec, steps: int) -> list[dict[str, float]]:
    """The metrics of each step: ``acc`` rises to the run's final value, ``loss`` falls."""
    return [
        {
            "loss": (1 - spec.final_acc) + 1 / (step + 1),
            "acc": spec.final_acc * (step + 1) / steps,
        }
        for step in range(steps)
    ]


def search_queries(runs: int, metric_only: int, with_param: int, seed: int) -> list[Query]:
    """Thresholds halfway between two runs' final accuracies, so no comparison is a tie."""
    rng = random.Random(seed + 1)
    cut = [0.5 + 0.4 * (k + 0.5) / (runs + 1) for k in range(runs + 2)]
    queries = [Query(rng.choice(cut), None) for _ in range(metric_only)]
    queries += [Query(rng.choice(cut), "xgb") for _ in range(with_param)]
    return queries


def expected_result(specs: list[RunSpec], query: Query) -> list[str]:
    hits = [
        s
        for s in specs
        if s.final_acc > query.threshold
        and (query.model is None or s.params["model"] == query.model)
    ]
    hits.sort(key=lambda s: s.final_acc, reverse=True)
    return [s.tags["idx"] for s in hits[:LIMIT]]


def mlflow_filter(query: Query) -> str:
    where = f"metrics.acc > {query.threshold!r}"
    return f"params.model = '{query.model}' and {where}" if query.model else where


# -- one side of the comparison --------------------------------------------------------


class Side:
    """What the workload needs from a tracking library."""

    name = ""

    def __init__(self) -> None:
        self.idx_of: dict[str, str] = {}  # run id -> the run's idx tag

    def open(self, folder: Path) -> None: ...
    def log_run(self, spec: RunSpec, steps: list[dict[str, float]]) -> None: ...
    def flush(self) -> None:
        """Make everything logged so far durable and visible; inside the timed phase."""

    def search(self, query: Query) -> list[str]: ...
    def close(self) -> None: ...


class StoaSide(Side):
    name = "stoa"

    def open(self, folder: Path) -> None:
        from stoa.client import LocalClient

        self.client = LocalClient(home=folder, actor="bench")

    def log_run(self, spec: RunSpec, steps: list[dict[str, float]]) -> None:
        with self.client.runs.start(spec.name, params=spec.params, tags=spec.tags) as run:
            for step, values in enumerate(steps):
                run.log_metrics(values, step=step)
        self.idx_of[run.id] = spec.tags["idx"]

    def search(self, query: Query) -> list[str]:
        found = self.client.runs.search(
            params={"model": query.model} if query.model else None,
            metrics=[f"acc>{query.threshold!r}"],
            order_by="-metrics.acc",
            limit=LIMIT,
        )
        return [self.idx_of[r.info.id] for r in found]

    def close(self) -> None:
        self.client.close()


class MlflowFluentSide(Side):
    """``mlflow.log_metrics`` at every step, as MLflow's docs and examples do."""

    name = "log_metrics"

    def open(self, folder: Path) -> None:
        import mlflow

        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.uri)
        # Builds the store and its tables, as Stoa's LocalClient does in its constructor.
        self.experiment = mlflow.set_experiment("bench").experiment_id

    def log_run(self, spec: RunSpec, steps: list[dict[str, float]]) -> None:
        import mlflow

        with mlflow.start_run(run_name=spec.name) as run:
            mlflow.log_params(spec.params)
            mlflow.set_tags(spec.tags)
            for step, values in enumerate(steps):
                mlflow.log_metrics(values, step=step)
        self.idx_of[run.info.run_id] = spec.tags["idx"]

    def search(self, query: Query) -> list[str]:
        import mlflow

        found = mlflow.search_runs(
            experiment_ids=[self.experiment],
            filter_string=mlflow_filter(query),
            order_by=["metrics.acc DESC"],
            max_results=LIMIT,
            output_format="list",
        )
        return [self.idx_of[r.info.run_id] for r in found]

    def close(self) -> None:
        # The SQL store keeps one engine per URI for the life of the process; drop this one.
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(self.uri, None)
        if engine is not None:
            engine.dispose()


class MlflowAsyncSide(MlflowFluentSide):
    """The same code with MLflow's asynchronous logging switched on."""

    name = "async"

    def open(self, folder: Path) -> None:
        import mlflow

        # Without a buffering time every call is written on its own, by a pool of threads
        # that contend for SQLite's one writer: slower than synchronous logging. One second
        # (the variable takes whole seconds) lets the queue merge calls into batches.
        os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
        mlflow.config.enable_async_logging(True)
        super().open(folder)

    def flush(self) -> None:
        import mlflow

        mlflow.flush_async_logging()


class MlflowBatchSide(MlflowFluentSide):
    """``MlflowClient.log_batch``, 1,000 points a call: MLflow's fastest documented path."""

    name = "log_batch"

    def open(self, folder: Path) -> None:
        from mlflow import MlflowClient

        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = self.client.create_experiment("bench")

    def log_run(self, spec: RunSpec, steps: list[dict[str, float]]) -> None:
        from mlflow.entities import Metric, Param, RunStatus

        run = self.client.create_run(self.experiment, run_name=spec.name, tags=spec.tags)
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in spec.params.items()])
        batch: list[Metric] = []
        for step, values in enumerate(steps):
            now = int(time.time() * 1000)
            batch += [Metric(key, value, now, step) for key, value in values.items()]
            if len(batch) >= BATCH:
                self.client.log_batch(run_id, metrics=batch)
                batch = []
        if batch:
            self.client.log_batch(run_id, metrics=batch)
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        self.idx_of[run_id] = spec.tags["idx"]

    def search(self, query: Query) -> list[str]:
        found = self.client.search_runs(
            [self.experiment],
            filter_string=mlflow_filter(query),
            order_by=["metrics.acc DESC"],
            max_results=LIMIT,
        )
        return [self.idx_of[r.info.run_id] for r in found]


MLFLOW_SIDES: dict[str, Callable[[], Side]] = {
    "log_metrics": MlflowFluentSide,
    "async": MlflowAsyncSide,
    "log_batch": MlflowBatchSide,
}


def run_once(
    side: Side,
    specs: list[RunSpec],
    steps: int,
    queries: list[Query],
    workdir: Path,
) -> dict[str, Any]:
    """One full repeat in a fresh folder: open, log phase, search phase."""
    curves = [curve(spec, steps) for spec in specs]  # the training loop's values, untimed
    store = workdir / "store"
    store.mkdir()
    # Flush what the set-up (and the previous side) left in the page cache, so that no
    # side's timed phase pays for another's disk writes.
    os.sync()
    clock = time.perf_counter
    t0 = clock()
    side.open(store)
    t1 = clock()
    for spec, values in zip(specs, curves, strict=True):
        side.log_run(spec, values)
    side.flush()
    t2 = clock()
    results = [side.search(q) for q in queries]
    t3 = clock()
    side.close()
    return {
        "open_s": t1 - t0,
        "log_s": t2 - t1,
        "search_s": t3 - t2,
        "runs": len(specs),
        "points": sum(len(v) * len(v[0]) for v in curves),
        "searches": len(queries),
        "with_param": sum(q.model is not None for q in queries),
        "results": results,
    }


def run_side(make: Callable[[], Side], args: argparse.Namespace) -> list[dict[str, Any]]:
    specs = workload(args.runs, args.seed)
    queries = search_queries(args.runs, args.searches, args.param_searches, args.seed)
    expected = [expected_result(specs, q) for q in queries]
    # An untimed small run first (3 runs of 20 steps, 2 searches), so that lazy imports and
    # first-use set-up in either library are not charged to the timed run.
    with tempfile.TemporaryDirectory(prefix="stoa-bench-warm-") as tmp:
        run_once(make(), workload(3, args.seed), 20, queries[-2:], Path(tmp))
    results = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="stoa-bench-") as tmp:
            result = run_once(make(), specs, args.points // 2, queries, Path(tmp))
        for query, got, want in zip(queries, result["results"], expected, strict=True):
            if got != want:
                raise RuntimeError(
                    f"{make().name}: search {mlflow_filter(query)!r} returned runs {got}; "
                    f"the workload says {want}"
                )
        results.append(result)
    return results


# -- the MLflow side, in its own virtualenv -------------------------------------------


def run_mlflow_peer(
    python: Path, args: argparse.Namespace, way: str, *, wal: bool
) -> dict[str, Any]:
    """One repeat of one MLflow way (after its own warm-up) in a fresh process."""
    command = [str(python), str(Path(__file__).resolve()), "--peer", "mlflow", "--json"]
    command += ["--way", way, "--repeats", "1", "--runs", str(args.runs)]
    command += ["--points", str(args.points), "--searches", str(args.searches)]
    command += ["--param-searches", str(args.param_searches), "--seed", str(args.seed)]
    if wal:
        command.append("--sqlite-wal")
    # No phoning home from inside a timed loop; this machine may have no route out.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_ASYNC_LOGGING"):
        env.pop(name, None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the MLflow run ({way}) failed with exit status {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


# -- reporting -----------------------------------------------------------------------


def median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def table(
    title: str, stoa: list[dict[str, Any]], mlflow: dict[str, list[dict[str, Any]]]
) -> dict[str, float]:
    """Print one comparison; return each phase's speed-up over MLflow's fastest way."""
    some = next(iter(mlflow.values()))[0]
    print(title)
    print(
        f"  {'phase':<8}{'mlflow way':<13}{'stoa s':>9}{'mlflow s':>10}{'stoa rate':>12}"
        f"{'mlflow rate':>13}  {'unit':<12}{'speed-up':>9}"
    )
    phases = [
        ("log", "log_s", some["points"], "points/s"),
        ("search", "search_s", some["searches"], "searches/s"),
        ("open*", "open_s", 1, "stores/s"),
    ]
    best = {}
    for label, key, ops, unit in phases:
        s = median(stoa, key) if stoa else None
        for way, results in mlflow.items():
            m = median(results, key)
            ours = f"{s:>9.3f}" if s is not None else f"{'-':>9}"
            rate = f"{ops / s:>12,.0f}" if s is not None else f"{'-':>12}"
            ratio = f"{m / s:>8.2f}x" if s is not None else f"{'-':>9}"
            print(
                f"  {label:<8}{way:<13}{ours}{m:>10.3f}{rate}{ops / m:>13,.0f}  {unit:<12}{ratio}"
            )
        if s is not None:
            fastest = min(mlflow, key=lambda w: median(mlflow[w], key))
            best[label] = median(mlflow[fastest], key) / s
            print(f"  {'':<8}{'against MLflow fastest, ' + fastest:<69}{best[label]:>8.2f}x")
    for key in ("log_s", "search_s"):
        each = [f"stoa {', '.join(f'{r[key]:.3f}' for r in stoa)}"] if stoa else []
        each += [f"{w} {', '.join(f'{r[key]:.3f}' for r in rs)}" for w, rs in mlflow.items()]
        print(f"  each repeat, {key:<9} " + "; ".join(each))
    print()
    return best


def report(
    stoa: list[dict[str, Any]],
    mlflow: dict[str, list[dict[str, Any]]],
    mlflow_wal: dict[str, list[dict[str, Any]]],
    peer: dict[str, Any],
) -> None:
    import sqlalchemy

    some = next(iter(mlflow.values()))[0]
    print()
    print("Run tracking benchmark: Stoa vs MLflow (SQLite back-end), same machine, same run")
    print(f"  machine   {os.cpu_count()} CPUs, {registry_bench.cpu_model()}, {platform.platform()}")
    print(f"  python    {platform.python_version()} (both sides)")
    if stoa:
        import stoa as stoa_pkg

        print(f"  stoa      {stoa_pkg.__version__} (SQLAlchemy {sqlalchemy.__version__})")
    print(f"  mlflow    {peer['mlflow']} (mlflow-skinny, SQLAlchemy {peer['sqlalchemy']})")
    steps = some["points"] // some["runs"] // 2
    print(
        f"  workload  {some['runs']} runs x {steps} steps x 2 metrics = {some['points']:,} "
        f"points, 5 params and 2 tags a run; {some['searches'] - some['with_param']} searches "
        f"on acc and {some['with_param']} on model and acc, ordered by acc, limit {LIMIT}"
    )
    print(f"  repeats   {len(next(iter(mlflow.values())))}; figures are medians; ", end="")
    print("speed-up = mlflow s / stoa s")
    print()
    best = table(
        "As shipped (MLflow with SQLite's default journal, as its store opens it):", stoa, mlflow
    )
    if mlflow_wal:
        table(
            "Informational: MLflow's SQLite connections also set journal_mode=WAL, "
            "synchronous=NORMAL, as Stoa's do:",
            stoa,
            mlflow_wal,
        )
    print("  * open: create the store and its schema in a fresh folder; not part of the target.")
    if stoa:
        met = best["log"] >= 10 and best["search"] >= 10
        print(
            f"  target, Stoa >= 10x faster than MLflow's fastest way in both phases: "
            f"{'met' if met else 'NOT met'} "
            f"(log {best['log']:.2f}x, search {best['search']:.2f}x)"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="full runs per side (median)")
    parser.add_argument("--runs", type=int, help="runs logged (default 100; --quick 10)")
    parser.add_argument(
        "--points", type=int, help="metric points a run, two a step (default 1000; --quick 100)"
    )
    parser.add_argument("--searches", type=int, help="searches on acc (default 200; --quick 20)")
    parser.add_argument(
        "--param-searches", type=int, help="searches on model and acc (default 50; --quick 5)"
    )
    parser.add_argument("--quick", action="store_true", help="a small workload, for a smoke test")
    parser.add_argument("--seed", type=int, default=7, help="seed of accuracies and thresholds")
    parser.add_argument(
        "--ways",
        default=",".join(WAYS),
        help=f"MLflow ways to run, comma-separated (default {','.join(WAYS)})",
    )
    parser.add_argument(
        "--wal-variant",
        action="store_true",
        help="also run MLflow with Stoa's SQLite journal settings (informational)",
    )
    parser.add_argument("--mlflow-only", action="store_true", help="skip Stoa's side")
    parser.add_argument(
        "--mlflow-requirement",
        default=registry_bench.MLFLOW_REQUIREMENTS[0],
        help="pip spec for MLflow in benchmarks/.venv-mlflow "
        f"(default {registry_bench.MLFLOW_REQUIREMENTS[0]})",
    )
    internal = parser.add_argument_group("internal, used for the MLflow subprocess")
    internal.add_argument("--peer", choices=["mlflow"], help="run only that side, in this venv")
    internal.add_argument("--way", choices=WAYS, help="the MLflow way the peer runs")
    internal.add_argument("--json", action="store_true", help="print the results as JSON")
    internal.add_argument("--sqlite-wal", action="store_true", help="see --wal-variant")
    args = parser.parse_args(argv)
    sizes = {"runs": (100, 10), "points": (1000, 100), "searches": (200, 20)}
    sizes["param_searches"] = (50, 5)
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if unknown := set(args.ways) - set(WAYS):
        parser.error(f"unknown --ways {sorted(unknown)}; choose from {', '.join(WAYS)}")
    if min(args.repeats, args.runs, args.searches, len(args.ways)) < 1 or args.param_searches < 0:
        parser.error("--repeats, --runs, --searches and --ways need at least one")
    if args.points < 2 or args.points % 2:
        parser.error("--points must be even (two metrics a step) and at least 2")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peer == "mlflow":
        import mlflow
        import sqlalchemy

        if args.sqlite_wal:
            registry_bench.use_stoa_sqlite_settings()
        results = run_side(MLFLOW_SIDES[args.way or WAYS[0]], args)
        out = {"mlflow": mlflow.__version__, "sqlalchemy": sqlalchemy.__version__}
        print(json.dumps({**out, "results": results}))
        return

    python = registry_bench.mlflow_python(
        (args.mlflow_requirement, *registry_bench.MLFLOW_REQUIREMENTS[1:])
    )
    repeats, args.repeats = args.repeats, 1
    # The sides take turns, one repeat at a time, so that a slow patch on a shared machine
    # hits all of them; each MLflow repeat is a new process with its own warm-up run.
    stoa: list[dict[str, Any]] = []
    mlflow: dict[str, list[dict[str, Any]]] = {way: [] for way in args.ways}
    mlflow_wal: dict[str, list[dict[str, Any]]] = {}
    peer: dict[str, Any] = {}
    for r in range(repeats):
        step = f"repeat {r + 1}/{repeats}:"
        if not args.mlflow_only:
            print(f"{step} stoa", file=sys.stderr, flush=True)
            stoa += run_side(StoaSide, args)
        for way in args.ways:
            print(f"{step} mlflow {way}", file=sys.stderr, flush=True)
            peer = run_mlflow_peer(python, args, way, wal=False)
            mlflow[way] += peer["results"]
            if args.wal_variant:
                print(f"{step} mlflow {way}, Stoa's SQLite settings", file=sys.stderr, flush=True)
                wal = run_mlflow_peer(python, args, way, wal=True)["results"]
                mlflow_wal.setdefault(way, []).extend(wal)
    # Each side already matched every result against the workload; check them pairwise too.
    for results in (stoa, *mlflow.values(), *mlflow_wal.values()):
        for result in results:
            if result["results"] != next(iter(mlflow.values()))[0]["results"]:
                raise SystemExit("Stoa and MLflow returned different runs for a search")
    report(stoa, mlflow, mlflow_wal, peer)


if __name__ == "__main__":
    main()
