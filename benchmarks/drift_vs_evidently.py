"""Stoa's drift engine against Evidently's DataDriftPreset, on the same tables in one run.

Run from the repository root with Stoa's virtualenv::

    .venv/bin/python benchmarks/drift_vs_evidently.py --repeats 3

Two pairs of tables (reference, current) of 20 columns are generated with a fixed
seed and written to Parquet once: numbers (normal, skewed, uniform, wide integers,
with missing values), categories with few and many levels, integer levels, booleans
and 0/1 flags, and floats with three values; about half the columns are shifted in the
current table. The large pair has 1,000,000 rows a side (``--rows``), so Evidently
picks its large-sample tests (Wasserstein, Jensen-Shannon); the small pair has 800
(``--small-rows``), so it picks KS, chi-squared and the z-test.

Both sides read the same Parquet files before timing. Stoa runs ``compare`` in this
process; Evidently runs ``Report([DataDriftPreset()], include_tests=True)`` in a
subprocess of this same file inside ``benchmarks/.venv-evidently`` (created on first
use; Evidently 0.7.23 needs pandas < 3, Stoa uses pandas 3) and reports its timings,
scores and per-column decisions as JSON. Each side runs ``--repeats`` times after one
warm-up run; medians are printed. The script exits non-zero if any column's test or
decision differs, or the dataset-level decision does.

Evidently is never a Stoa dependency: it lives only in its own virtualenv.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas>=2.2,<3", "pyarrow")
STAMP = ".stoa-bench-requirements"

#: Evidently's display names of its tests, as Stoa names them.
EVIDENTLY_TESTS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
}


# -- the data ------------------------------------------------------------------------


def _labels(prefix: str, count: int) -> np.ndarray:
    return np.array([f"{prefix}{i:02d}" for i in range(count)], dtype=object)


def _zipf(levels: int, skew: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, levels + 1) ** skew
    return weights / weights.sum()


def make_table(rows: int, rng: np.random.Generator, *, shifted: bool) -> pd.DataFrame:
    """20 columns; with ``shifted`` about half of them move (the ``_shift`` ones)."""
    s = 1.0 if shifted else 0.0
    few, many = _labels("f", 4), _labels("m", 50)
    few_p = np.array([0.4, 0.3, 0.2, 0.1])
    few_shift_p = np.array([0.25, 0.3, 0.25, 0.2]) if shifted else few_p
    many_p = _zipf(50, 1.1)
    many_shift_p = _zipf(50, 1.1)[::-1] * 0.3 + many_p * 0.7 if shifted else many_p
    level_p = _zipf(8, 0.8)
    level_shift_p = _zipf(8, 0.3) if shifted else level_p
    with_nan = rng.normal(10, 2, rows)
    with_nan[rng.random(rows) < 0.05] = np.nan
    cat_nan = few[rng.choice(4, rows, p=few_p)]
    cat_nan[rng.random(rows) < 0.1] = None
    return pd.DataFrame(
        {
            "num_normal": rng.normal(0, 1, rows),
            "num_normal_shift": rng.normal(0.25 * s, 1, rows),
            "num_normal_scale": rng.normal(0, 1 + 0.05 * s, rows),
            "num_lognormal": rng.lognormal(0, 0.8, rows),
            "num_lognormal_shift": rng.lognormal(0.3 * s, 0.8, rows),
            "num_exponential": rng.exponential(3.0, rows),
            "num_uniform_shift": rng.uniform(0.05 * s, 1 + 0.05 * s, rows),
            "int_wide": rng.integers(0, 1000, rows),
            "int_wide_shift": rng.poisson(50 + 3 * s, rows),
            "num_with_nan": with_nan,
            "cat_few": few[rng.choice(4, rows, p=few_p)],
            "cat_few_shift": few[rng.choice(4, rows, p=few_shift_p)],
            "cat_many": many[rng.choice(50, rows, p=many_p)],
            "cat_many_shift": many[rng.choice(50, rows, p=many_shift_p / many_shift_p.sum())],
            "int_levels": rng.choice(8, rows, p=level_p),
            "int_levels_shift": rng.choice(8, rows, p=level_shift_p),
            "bool_flag": rng.random(rows) < 0.2,
            "binary_shift": (rng.random(rows) < 0.3 + 0.1 * s).astype(np.int64),
            "float_three_shift": rng.choice(
                [0.5, 1.5, 2.5], rows, p=[0.5, 0.3, 0.2] if not shifted else [0.35, 0.35, 0.3]
            ),
            "cat_with_nan": cat_nan,
        }
    )


def write_pair(folder: Path, rows: int, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    ref, cur = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    make_table(rows, rng, shifted=False).to_parquet(ref, index=False)
    make_table(rows, rng, shifted=True).to_parquet(cur, index=False)
    return ref, cur


# -- the two sides -------------------------------------------------------------------


def timed_runs(run: Any, repeats: int) -> tuple[list[float], Any]:
    run()  # warm-up: imports, caches
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def run_stoa(ref_path: Path, cur_path: Path, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "src"))
    from stoa.measure.drift import compare

    reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    seconds, report = timed_runs(lambda: compare(reference, current), repeats)
    out = report.to_dict()
    return {
        "seconds": seconds,
        "columns": {
            c["column"]: {"test": c["test"], "score": c["score"], "drifted": c["drifted"]}
            for c in out["columns"]
        },
        "dataset_drifted": out["dataset"]["drifted"],
        "share": out["dataset"]["share"],
    }


def run_evidently(ref_path: Path, cur_path: Path, repeats: int) -> dict[str, Any]:
    """Runs inside .venv-evidently: DataDriftPreset with its per-column tests."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    seconds, snapshot = timed_runs(
        lambda: Report([DataDriftPreset()], include_tests=True).run(current, reference), repeats
    )
    body = snapshot.dict()
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for metric in body["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "test": EVIDENTLY_TESTS.get(config["method"], config["method"]),
                "score": float(metric["value"]),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in body["tests"]:
        name = test["name"]
        if name.startswith("Value Drift for column "):
            column = name.removeprefix("Value Drift for column ")
            columns[column]["drifted"] = test["status"] == "FAIL"
    return {
        "seconds": seconds,
        "columns": columns,
        "dataset_drifted": share is not None and share >= 0.5,
        "share": share,
    }


def evidently_python() -> Path:
    """The interpreter of benchmarks/.venv-evidently, created and installed when needed."""
    python = EVIDENTLY_VENV / "bin" / "python"
    stamp = EVIDENTLY_VENV / STAMP
    wanted = "\n".join(EVIDENTLY_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"setting up {EVIDENTLY_VENV} (one-off): {' '.join(EVIDENTLY_REQUIREMENTS)}",
          file=sys.stderr)  # fmt: skip
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def evidently_side(python: Path, ref: Path, cur: Path, repeats: int) -> dict[str, Any]:
    command = [str(python), str(Path(__file__).resolve()), "--peer", "evidently"]
    command += ["--reference", str(ref), "--current", str(cur), "--repeats", str(repeats)]
    env = {"PATH": "/usr/bin:/bin", "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the Evidently run failed with exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- reporting -----------------------------------------------------------------------


def agreement(stoa: dict[str, Any], evidently: dict[str, Any]) -> tuple[int, float, list[str]]:
    """(columns compared, max |score difference|, the differences in test or decision)."""
    problems, worst = [], 0.0
    if set(stoa["columns"]) != set(evidently["columns"]):
        problems.append(
            f"columns differ: {sorted(set(stoa['columns']) ^ set(evidently['columns']))}"
        )
    for name, mine in stoa["columns"].items():
        theirs = evidently["columns"].get(name)
        if theirs is None:
            continue
        if mine["test"] != theirs["test"]:
            problems.append(f"{name}: test {mine['test']} vs {theirs['test']}")
        if mine["drifted"] != theirs.get("drifted"):
            problems.append(f"{name}: drifted {mine['drifted']} vs {theirs.get('drifted')}")
        worst = max(worst, abs(mine["score"] - theirs["score"]))
    if stoa["dataset_drifted"] != evidently["dataset_drifted"]:
        problems.append("dataset-level decision differs")
    return len(stoa["columns"]), worst, problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows a side, large pair")
    parser.add_argument("--small-rows", type=int, default=800, help="rows a side, small pair")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--per-column", action="store_true", help="print every column")
    internal = parser.add_argument_group("internal, used for the Evidently subprocess")
    internal.add_argument("--peer", choices=["evidently"])
    internal.add_argument("--reference", type=Path)
    internal.add_argument("--current", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peer:
        print(json.dumps(run_evidently(args.reference, args.current, args.repeats)))
        return
    from bench_common import package_versions, table

    python = evidently_python()
    versions = subprocess.run(
        [str(python), "-c", "import evidently, pandas; print(evidently.__version__, "
         "pandas.__version__)"], capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print("stoa side: " + ", ".join(package_versions(["numpy", "pandas", "scipy"])))
    print(f"evidently side: evidently {versions[0]}, pandas {versions[1]}")
    failed = False
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="stoa-drift-bench-") as folder:
        for rows in (args.small_rows, args.rows):
            ref, cur = write_pair(Path(folder), rows, args.seed)
            stoa = run_stoa(ref, cur, args.repeats)
            evidently = evidently_side(python, ref, cur, args.repeats)
            count, worst, problems = agreement(stoa, evidently)
            s_med = statistics.median(stoa["seconds"])
            e_med = statistics.median(evidently["seconds"])
            drifted = sum(c["drifted"] for c in stoa["columns"].values())
            rows_out.append([f"{rows:,} x {count}", s_med, e_med, e_med / s_med,
                             f"{drifted}/{count}", f"{worst:.1e}",
                             "same" if not problems else "DIFFER"])  # fmt: skip
            if args.per_column:
                table(
                    f"{rows:,} rows: per column (Stoa | Evidently)",
                    ["column", "test", "score", "drift", "ev score", "ev drift"],
                    [[n, c["test"], c["score"], str(c["drifted"]),
                      evidently["columns"][n]["score"], str(evidently["columns"][n]["drifted"])]
                     for n, c in stoa["columns"].items()],
                )  # fmt: skip
            for problem in problems:
                print(f"  DISAGREE ({rows:,} rows): {problem}")
            failed |= bool(problems)
    table(
        f"drift: Stoa vs Evidently, median of {args.repeats} runs (seconds)",
        ["rows x cols", "stoa s", "evidently s", "ratio", "drifted", "max|dscore|", "decisions"],
        rows_out,
    )
    if failed:
        raise SystemExit("decisions differ from Evidently's")


if __name__ == "__main__":
    main()
