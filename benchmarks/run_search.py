"""Searching 10,000 runs by params, metrics and tags on SQLite (issue target: < 200 ms).

Run from the repository root::

    .venv/bin/python benchmarks/run_search.py --runs 10000 --repeats 5

It creates the runs with Stoa's own batch path (each run: 5 params, 2 tags, 3 metrics
with 10 steps each), then times a mix of searches and prints the median and the
slowest of each. The MLflow comparison lives in ``tracking_vs_mlflow.py``; this script
checks the absolute target on a store ten times larger than that benchmark's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

QUERIES: list[tuple[str, dict]] = [
    ("metric > t, top 10 by metric",
     {"metrics": ["acc>0.95"], "order_by": "-metrics.acc", "limit": 10}),
    ("param = v and metric > t",
     {"params": {"model": "xgb"}, "metrics": ["acc>0.9"], "limit": 100}),
    ("tag = v and param = v", {"tags": {"team": "t3"}, "params": {"depth": "4"}, "limit": 100}),
    ("two metric conditions", {"metrics": ["acc>0.5", "loss<0.3"], "limit": 100}),
    ("newest 100 (no filter)", {"limit": 100}),
    ("param + tag + metric, by param",
     {"params": {"model": "lr"}, "tags": {"team": "t1"}, "metrics": ["acc>0.2"],
      "order_by": "params.lr", "limit": 50}),
]  # fmt: skip


def populate(client, runs: int) -> None:
    models = ["xgb", "lr", "rf", "mlp"]
    for i in range(runs):
        info = client.runs.create(
            f"run-{i}",
            status="running",
            params={"lr": f"{(i % 17) / 100:.2f}", "depth": str(i % 9), "model": models[i % 4],
                    "seed": str(i), "batch": str(32 * (1 + i % 4))},
            tags={"team": f"t{i % 7}", "idx": str(i)},
        )  # fmt: skip
        acc = (i * 7919 % runs) / runs
        points = [
            {"key": key, "value": value * (step + 1) / 10, "step": step}
            for step in range(10)
            for key, value in (("acc", acc), ("loss", 1 - acc), ("f1", acc * 0.9))
        ]
        client.runs.log_batch(info.id, metrics=points)
        client.runs.finish(info.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from stoa.client import LocalClient

    with tempfile.TemporaryDirectory() as tmp:
        client = LocalClient(home=Path(tmp), actor="bench")
        started = time.perf_counter()
        populate(client, args.runs)
        print(f"created {args.runs:,} runs (30 metric points each) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        client.runs.search(limit=1)  # warm the connection and statement caches
        print(f"{'query':40} {'median ms':>10} {'max ms':>8} {'rows':>5}")
        worst = 0.0
        for label, query in QUERIES:
            times, rows = [], 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                rows = len(client.runs.search(**query))
                times.append((time.perf_counter() - t) * 1000)
            worst = max(worst, statistics.median(times))
            print(f"{label:40} {statistics.median(times):10.1f} {max(times):8.1f} {rows:5d}")
        verdict = "PASS" if worst < 200 else "FAIL"
        print(f"target: every median under 200 ms on {args.runs:,} runs: {worst:.1f} ms {verdict}")
        client.close()


if __name__ == "__main__":
    main()
