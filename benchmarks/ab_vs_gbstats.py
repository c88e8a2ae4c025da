"""Stoa's A/B statistics against GrowthBook's gbstats on the same inputs, in one run.

Run from the repository root with Stoa's virtualenv::

    .venv/bin/python benchmarks/ab_vs_gbstats.py --cases 400 --repeats 3

``--simulations`` prints instead the A/A peeking, power and tuning figures that
docs/experiments.md quotes (Stoa alone, fixed seeds).

It draws random two-arm experiments (proportions and means; 100 to 1,000,000 units per
arm; lifts from -20% to +20%), reduces each to sufficient statistics, and analyses
every one with both engines: the frequentist two-sided test of the relative lift, the
sequential (always-valid) test with tuning 5,000, and the Bayesian chance to win and
risk. It prints the largest absolute difference of each figure (target: at most 1e-3
for chance to win and p-values) and the time per analysis of each engine.

Like with like: gbstats 0.8 uses a normal approximation for proportions' chance to
win, so Stoa runs with ``beta_exact=False`` for the agreement table; a second table
shows how far Stoa's default exact beta-binomial answer lies from that approximation.

gbstats is never a Stoa dependency. gbstats 0.8.0 needs pandas < 2, so it lives in its
own virtualenv, ``benchmarks/.venv-gbstats``, created on first use (``python3 -m venv``
and ``pip install gbstats==0.8.0``). The gbstats side runs as a subprocess of this same
file in that virtualenv (``--peer gbstats``), reading the cases as JSON and printing its
results and timings as JSON; the Stoa side runs in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GBSTATS_VENV = HERE / ".venv-gbstats"
GBSTATS_REQUIREMENT = "gbstats==0.8.0"
STAMP = ".stoa-bench-requirements"
TUNING = 5000.0
ALPHA = 0.05
SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)


# -- the cases ------------------------------------------------------------------------


def make_cases(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` experiments per kind, spread over SIZES, as sufficient statistics."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cases: list[dict[str, Any]] = []
    for kind in ("proportion", "mean"):
        for i in range(count):
            n_a = int(SIZES[i % len(SIZES)] * rng.uniform(0.9, 1.1))
            n_b = int(n_a * rng.uniform(0.8, 1.2))
            lift = rng.uniform(-0.2, 0.2) * (rng.random() < 0.7)  # 30% are A/A
            if kind == "proportion":
                p = rng.uniform(0.02, 0.6)
                s_a = int(rng.binomial(n_a, p))
                s_b = int(rng.binomial(n_b, min(p * (1 + lift), 0.99)))
                if min(s_a, n_a - s_a, s_b, n_b - s_b) < 10:
                    continue  # Stoa does not test a proportion below 10 events per arm
                cases.append({"kind": kind, "a": [n_a, s_a], "b": [n_b, s_b]})
            else:
                mu, sd = rng.uniform(1, 100), rng.uniform(0.5, 3.0)
                arms = []
                for n, m in ((n_a, mu), (n_b, mu * (1 + lift))):
                    # exact sums of a lognormal sample without drawing n values
                    x = rng.lognormal(np.log(m) - sd**2 / 8, sd / 2, min(n, 200_000))
                    scale = n / len(x)
                    arms.append([n, float(x.sum() * scale), float((x * x).sum() * scale)])
                cases.append({"kind": kind, "a": arms[0], "b": arms[1]})
    return cases


# -- the gbstats side (runs in .venv-gbstats) -------------------------------------------


def run_gbstats(cases: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic

    def stat(kind: str, v: list[float]) -> Any:
        if kind == "proportion":
            return ProportionStatistic(n=int(v[0]), sum=v[1])
        return SampleMeanStatistic(n=int(v[0]), sum=v[1], sum_squares=v[2])

    freq_cfg = FrequentistConfig(alpha=ALPHA)
    seq_cfg = SequentialConfig(alpha=ALPHA, sequential_tuning_parameter=TUNING)
    bayes_cfg = EffectBayesianConfig(alpha=ALPHA)

    def one(case: dict[str, Any]) -> dict[str, Any]:
        a, b = stat(case["kind"], case["a"]), stat(case["kind"], case["b"])
        f = TwoSidedTTest(a, b, freq_cfg).compute_result()
        s = SequentialTwoSidedTTest(a, b, seq_cfg).compute_result()
        y = EffectBayesianABTest(a, b, bayes_cfg).compute_result()
        return {
            "p": f.p_value, "ci": list(f.ci), "seq_p": s.p_value, "seq_ci": list(s.ci),
            "ctw": y.chance_to_win, "risk": list(y.risk),
        }  # fmt: skip

    results = [one(c) for c in cases]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for c in cases:
            one(c)
        times.append((time.perf_counter() - start) / len(cases))
    from importlib.metadata import version

    return {"results": results, "seconds_per_analysis": times, "version": version("gbstats")}


# -- the Stoa side --------------------------------------------------------------------


def stoa_stats(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from stoa.measure.ab import MeanStats, ProportionStats

    def stat(v: list[float]) -> Any:
        if case["kind"] == "proportion":
            return ProportionStats(int(v[0]), v[1])
        return MeanStats(int(v[0]), v[1], v[2])

    return {"a": {"m": stat(case["a"])}, "b": {"m": stat(case["b"])}}


def run_stoa(cases: list[dict[str, Any]], repeats: int, *, beta_exact: bool) -> dict[str, Any]:
    from stoa.measure.ab import MetricSpec, analyze
    from stoa.measure.ab.compare import compare

    specs = {k: MetricSpec("m", k) for k in ("proportion", "mean")}
    inputs = [(specs[c["kind"]], stoa_stats(c)) for c in cases]

    def one(spec: MetricSpec, stats: dict[str, dict[str, Any]]) -> Any:
        return compare(
            spec, "a", stats["a"]["m"], "b", stats["b"]["m"], rule="sequential",
            alpha=ALPHA, alpha_used=ALPHA, tuning=TUNING, beta_exact=beta_exact,
        )  # fmt: skip

    results = []
    for spec, stats in inputs:
        c = one(spec, stats)
        f, q, y = c.frequentist, c.sequential, c.bayesian
        results.append(
            {
                "p": f.p_value,
                "ci": [f.relative.ci_low, f.relative.ci_high],
                "seq_p": q.p_value,
                "seq_ci": [q.relative.ci_low, q.relative.ci_high],
                "ctw": y.chance_to_win,
                "risk": [y.risk_control, y.risk_treatment],
            }
        )
    compare_times, analyze_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for spec, stats in inputs:
            one(spec, stats)
        compare_times.append((time.perf_counter() - start) / len(inputs))
        start = time.perf_counter()
        for spec, stats in inputs:
            analyze(stats, metrics=[spec], control="a", weights={"a": 1, "b": 1},
                    tuning=TUNING, beta_exact=beta_exact)  # fmt: skip
        analyze_times.append((time.perf_counter() - start) / len(inputs))
    return {"results": results, "compare": compare_times, "analyze": analyze_times}


# -- the gbstats virtualenv -------------------------------------------------------------


def gbstats_python(requirement: str) -> Path:
    """The interpreter of benchmarks/.venv-gbstats, created and installed when needed."""
    python = GBSTATS_VENV / "bin" / "python"
    stamp = GBSTATS_VENV / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == requirement:
        return python
    print(f"setting up {GBSTATS_VENV} (one-off): {requirement}", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GBSTATS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    # gbstats 0.8.0 declares pandas < 2 and numpy; pip resolves pandas 1.5.x and numpy 1.26
    subprocess.run([*pip, "install", "--quiet", requirement], check=True)
    stamp.write_text(requirement)
    return python


def call_gbstats(python: Path, cases_file: Path, repeats: int) -> dict[str, Any]:
    command = [str(python), str(Path(__file__).resolve()), "--peer", "gbstats"]
    command += ["--cases-file", str(cases_file), "--repeats", str(repeats)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the gbstats run failed with exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- reporting ------------------------------------------------------------------------


def sci(x: float) -> str:
    return f"{x:.1e}"


def max_diffs(
    cases: list[dict[str, Any]], ours: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> list[list[object]]:
    rows: list[list[object]] = []
    for kind in ("proportion", "mean"):
        idx = [i for i, c in enumerate(cases) if c["kind"] == kind]
        for key, label in (
            ("p", "frequentist p"),
            ("ci", "frequentist CI"),
            ("seq_p", "sequential p"),
            ("seq_ci", "sequential CI"),
            ("ctw", "chance to win"),
            ("risk", "risk"),
        ):
            diffs = []
            for i in idx:
                a, b = ours[i][key], theirs[i][key]
                pairs = zip(a, b, strict=True) if isinstance(a, list) else [(a, b)]
                diffs += [abs(x - y) for x, y in pairs]
            rows.append(
                [f"{kind}: {label}", len(idx), sci(max(diffs)), sci(statistics.median(diffs))]
            )
    return rows


def beta_vs_normal(
    cases: list[dict[str, Any]], exact: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> list[list[object]]:
    rows: list[list[object]] = []
    for size in SIZES:
        idx = [
            i for i, c in enumerate(cases)
            if c["kind"] == "proportion" and 0.85 * size <= c["a"][0] <= 1.15 * size
        ]  # fmt: skip
        if not idx:
            continue
        d = [abs(exact[i]["ctw"] - theirs[i]["ctw"]) for i in idx]
        rows.append([f"~{size:,} per arm", len(idx), sci(max(d)), sci(statistics.median(d))])
    return rows


def simulations(table: Any) -> None:
    """The figures docs/experiments.md quotes about peeking, power and tuning (Stoa
    alone; gbstats has no simulator). Seeds are fixed, so the figures repeat exactly."""
    from stoa.measure.ab import simulate_peeking, simulate_power
    from stoa.measure.ab.power import relative_unit_variance, required_units

    rows: list[list[object]] = []
    for metric, shape, per_day in (
        ("proportion", 0.02, 100), ("proportion", 0.02, 1000), ("proportion", 0.10, 100),
        ("proportion", 0.10, 1000), ("proportion", 0.10, 10_000), ("proportion", 0.50, 1000),
        ("lognormal", 0.5, 100), ("lognormal", 1.0, 100), ("lognormal", 1.0, 1000),
        ("lognormal", 2.0, 100), ("lognormal", 2.0, 1000),
    ):  # fmt: skip
        kw = {"rate": shape} if metric == "proportion" else {"sigma": shape}
        r = simulate_peeking(metric=metric, units_per_day=per_day, seed=0, **kw)
        name = f"rate {shape:.2f}" if metric == "proportion" else f"lognormal sd {shape}"
        rows.append([f"{name}, {per_day:,}/day", pc(r.sequential), pc(r.fixed_peeking),
                     pc(r.fixed_final), pc(r.bayesian_peeking)])  # fmt: skip
    table(
        "A/A: share of 1,000 experiments flagged at some daily peek (14 days, alpha 0.05)",
        ["arm size", "sequential", "naive", "fixed, 1 look", "Bayes 95%"],
        rows,
    )
    c = relative_unit_variance(0.1, 0.09, 0.5, 0.11 * 0.89, 0.5, 0.10)
    rows = []
    for rule in ("frequentist", "sequential", "bayesian"):
        per_arm = required_units(0.10, c, rule=rule) / 2
        rows.append([f"{rule}: power.py size", f"{per_arm:,.0f}", ""])
    for per_day in (1000, 1160, 2520, 5000):
        r = simulate_power(units_per_day=per_day, seed=1)
        rows.append([f"{14 * per_day:,} per arm (14 days)", pc(r.sequential), pc(r.fixed_final)])
    table(
        "Power: 10% relative lift on a 10% rate, 500 experiments, daily peeks",
        ["units per arm", "sequential", "fixed, 1 look"],
        rows,
    )
    rows = []
    for per_day, lift in ((250, 0.2), (1000, 0.1), (4000, 0.05), (20_000, 0.02)):
        row: list[object] = [f"{14 * per_day:,}/arm, lift {lift:.0%}"]
        for tuning in (1000, 5000, 20_000, 100_000):
            row.append(
                pc(simulate_power(units_per_day=per_day, lift=lift, tuning=tuning).sequential)
            )
        rows.append(row)
    table(
        "Sequential power by tuning (the total units where the sequence is tightest)",
        ["experiment", "1,000", "5,000", "20,000", "100,000"],
        rows,
    )


def pc(x: float) -> str:
    return f"{100 * x:.1f}%"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=400, help="experiments per metric kind")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--gbstats-requirement", default=GBSTATS_REQUIREMENT)
    parser.add_argument(
        "--simulations",
        action="store_true",
        help="print only the A/A, power and tuning simulations (Stoa alone, ~30 s)",
    )
    internal = parser.add_argument_group("internal, used for the gbstats subprocess")
    internal.add_argument("--peer", choices=["gbstats"])
    internal.add_argument("--cases-file", type=Path)
    args = parser.parse_args(argv)

    if args.peer == "gbstats":
        cases = json.loads(args.cases_file.read_text())
        print(json.dumps(run_gbstats(cases, args.repeats)))
        return

    sys.path.insert(0, str(HERE))
    from bench_common import package_versions, table

    if args.simulations:
        simulations(table)
        return
    python = gbstats_python(args.gbstats_requirement)
    cases = make_cases(args.cases, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        cases_file = Path(tmp) / "cases.json"
        cases_file.write_text(json.dumps(cases))
        print(f"{len(cases)} cases: gbstats", file=sys.stderr, flush=True)
        peer = call_gbstats(python, cases_file, args.repeats)
    print("stoa (normal model, like gbstats)", file=sys.stderr, flush=True)
    normal = run_stoa(cases, args.repeats, beta_exact=False)
    print("stoa (exact beta-binomial, the default)", file=sys.stderr, flush=True)
    exact = run_stoa(cases, args.repeats, beta_exact=True)

    print(f"gbstats {peer['version']}; " + "; ".join(package_versions(["numpy", "scipy"])))
    table(
        "Agreement, Stoa (beta_exact=False) vs gbstats: absolute differences",
        ["figure", "cases", "max", "median"],
        max_diffs(cases, normal["results"], peer["results"]),
    )
    table(
        "Stoa's exact beta-binomial chance to win vs gbstats' normal approximation",
        ["proportions", "cases", "max diff", "median"],
        beta_vs_normal(cases, exact["results"], peer["results"]),
    )
    g = statistics.median(peer["seconds_per_analysis"]) * 1e6
    rows: list[list[object]] = [["gbstats: freq + seq + Bayes", g, "1.00"]]
    for label, res in (("normal", normal), ("beta", exact)):
        c = statistics.median(res["compare"]) * 1e6
        a = statistics.median(res["analyze"]) * 1e6
        rows.append([f"stoa compare, {label}", c, f"{g / c:.2f}"])
        rows.append([f"stoa analyze+decide, {label}", a, f"{g / a:.2f}"])
    table(
        f"Time per analysis, median of {args.repeats} passes over {len(cases)} cases",
        ["engine", "us/analysis", "speed-up vs gbstats"],
        rows,
    )


if __name__ == "__main__":
    main()
