"""Stoa's model registry against MLflow's (SQLite back-end), on the same machine in one run.

Run from the repository root with Stoa's virtualenv (``make bench`` does this)::

    .venv/bin/python benchmarks/registry_vs_mlflow.py --repeats 3

Each repeat registers the same 1,000 model versions (50 names x 20 versions, three tags
each, and a ``champion`` alias set on every 10th version of each name) into a fresh
store, then runs the same 200 tag-equality searches, with Stoa and with MLflow.
Medians over the repeats are printed with the Stoa/MLflow speed ratio per phase.

MLflow's SQLite store keeps SQLite's default rollback journal with ``synchronous=FULL``;
Stoa's uses WAL with ``synchronous=NORMAL``. The headline table compares both as they
ship; a second, informational table reruns MLflow with Stoa's journal settings so that
the difference in code can be told apart from the difference in durability settings
(``--no-wal-variant`` skips it).

MLflow is never a Stoa dependency: it lives in its own virtualenv,
``benchmarks/.venv-mlflow``, created on first use. The MLflow side runs as a
subprocess of this same file in that virtualenv (``--peer mlflow --json``) and
reports its timings as JSON; the Stoa side runs in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow"
# mlflow-skinny has the registry client but not the SQL store's libraries; these two
# ranges are the ones the full ``mlflow`` package declares. The full package would add
# Flask, pandas, scipy, scikit-learn, matplotlib, pyarrow and docker, none of them used.
MLFLOW_REQUIREMENTS = ("mlflow-skinny==3.17.2", "sqlalchemy>=1.4.0,<3", "alembic!=1.10.0,<2")
STAMP = ".stoa-bench-requirements"

TEAMS = 5
STAGES = 4
ALIAS = "champion"
ALIAS_EVERY = 10  # versions 10, 20, ... of each name get the alias: a set, then moves


@dataclass(frozen=True)
class Entry:
    """One version to register, in registration order."""

    index: int
    name: str
    version: int
    tags: dict[str, str]
    alias: bool


def workload(models: int, per_model: int) -> list[Entry]:
    """Names interleaved round-robin, as several teams registering at once would."""
    entries = []
    for version in range(1, per_model + 1):
        for m in range(models):
            index = len(entries)
            tags = {
                "team": f"t{m % TEAMS}",
                "stage": f"s{(index // TEAMS) % STAGES}",
                "idx": str(index),
            }
            entries.append(
                Entry(index, f"model-{m:03d}", version, tags, version % ALIAS_EVERY == 0)
            )
    return entries


def search_queries(count: int, seed: int) -> list[dict[str, str]]:
    """A deterministic mix of team, stage and team+stage equality filters."""
    rng = random.Random(seed)
    queries = []
    for i in range(count):
        team, stage = f"t{rng.randrange(TEAMS)}", f"s{rng.randrange(STAGES)}"
        queries.append([{"team": team}, {"stage": stage}, {"team": team, "stage": stage}][i % 3])
    return queries


def expected_count(entries: list[Entry], query: dict[str, str]) -> int:
    return sum(all(e.tags.get(k) == v for k, v in query.items()) for e in entries)


def safetensors_bytes(index: int) -> bytes:
    """A valid one-tensor safetensors file whose bytes differ for every index."""
    header = {
        "__metadata__": {"idx": str(index)},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to an 8-byte boundary
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<f", float(index))


def write_artifacts(folder: Path, entries: list[Entry]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for entry in entries:
        path = folder / f"{entry.name}-v{entry.version}.safetensors"
        path.write_bytes(safetensors_bytes(entry.index))
        paths.append(path)
    return paths


# -- one side of the comparison --------------------------------------------------------


class Side:
    """The four calls the workload needs, implemented by each registry."""

    name = ""

    def open(self, folder: Path) -> None: ...
    def register(self, entry: Entry, artifact: Path) -> None: ...
    def set_alias(self, entry: Entry) -> None: ...
    def search(self, query: dict[str, str]) -> int: ...
    def close(self) -> None: ...


class StoaSide(Side):
    name = "stoa"

    def open(self, folder: Path) -> None:
        from stoa.client import LocalClient
        from stoa.core.settings import Settings

        # Every store location explicit, so STOA_* variables cannot redirect the run.
        settings = Settings(
            home=folder,
            database_url=f"sqlite:///{folder / 'stoa.db'}",
            blob_url=str(folder / "blobs"),
        )
        self.client = LocalClient(settings=settings, actor="bench")

    def register(self, entry: Entry, artifact: Path) -> None:
        info = self.client.models.register(entry.name, artifact, tags=entry.tags)
        if info.version != entry.version or info.status != "allowed":
            raise RuntimeError(f"stoa registered {info.ref} as {info.status}; expected allowed")

    def set_alias(self, entry: Entry) -> None:
        self.client.models.set_alias(entry.name, entry.version, ALIAS)

    def search(self, query: dict[str, str]) -> int:
        return len(self.client.models.search(query, limit=1000))

    def close(self) -> None:
        self.client.close()


class MlflowSide(Side):
    name = "mlflow"

    def open(self, folder: Path) -> None:
        from mlflow import MlflowClient

        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.names: set[str] = set()
        # MLflow builds its store (and creates the tables) on the first call, not in the
        # constructor; make that happen here so that it counts as opening, like Stoa's.
        self.client.search_registered_models(max_results=1)

    def register(self, entry: Entry, artifact: Path) -> None:
        if entry.name not in self.names:
            self.client.create_registered_model(entry.name)
            self.names.add(entry.name)
        mv = self.client.create_model_version(entry.name, source=artifact.as_uri(), tags=entry.tags)
        if int(mv.version) != entry.version:
            raise RuntimeError(f"mlflow registered {entry.name} v{mv.version}, not {entry.version}")

    def set_alias(self, entry: Entry) -> None:
        self.client.set_registered_model_alias(entry.name, ALIAS, entry.version)

    def search(self, query: dict[str, str]) -> int:
        where = " AND ".join(f"tags.{k} = '{v}'" for k, v in query.items())
        return len(self.client.search_model_versions(where, max_results=1000))

    def close(self) -> None:
        # The SQL store keeps one engine per URI for the life of the process; drop this one.
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(self.uri, None)
        if engine is not None:
            engine.dispose()


def use_stoa_sqlite_settings() -> None:
    """Give every SQLite connection in this process the journal settings Stoa uses.

    Stoa opens SQLite in WAL mode with ``synchronous=NORMAL`` (src/stoa/core/db.py);
    MLflow keeps SQLite's defaults (rollback journal, ``synchronous=FULL``), which sync
    to disk on every commit. This variant isolates the code paths from that choice.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _journal(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def run_once(
    side: Side,
    entries: list[Entry],
    queries: list[dict[str, str]],
    workdir: Path,
) -> dict[str, Any]:
    """One full repeat in a fresh folder: open, register phase, search phase."""
    artifacts = write_artifacts(workdir / "artifacts", entries)
    store = workdir / "store"
    store.mkdir()
    # Flush what the set-up (and the other side's previous run) left in the page cache,
    # so that neither side's timed phase pays for the other's disk writes.
    os.sync()
    clock = time.perf_counter
    t0 = clock()
    side.open(store)
    t1 = clock()
    aliases = 0
    for entry, artifact in zip(entries, artifacts, strict=True):
        side.register(entry, artifact)
        if entry.alias:
            side.set_alias(entry)
            aliases += 1
    t2 = clock()
    counts = [side.search(q) for q in queries]
    t3 = clock()
    side.close()
    return {
        "open_s": t1 - t0,
        "register_s": t2 - t1,
        "search_s": t3 - t2,
        "versions": len(entries),
        "names": len({e.name for e in entries}),
        "alias_ops": aliases,
        "searches": len(queries),
        "counts": counts,
    }


def run_side(make: type[Side], args: argparse.Namespace, repeats: int) -> list[dict[str, Any]]:
    entries = workload(args.models, args.versions_per_model)
    queries = search_queries(args.searches, args.seed)
    expected = [expected_count(entries, q) for q in queries]
    # An untimed small run first (30 versions, 3 alias sets, 3 searches), so that lazy
    # imports and first-use set-up in either library are not charged to the timed run.
    with tempfile.TemporaryDirectory(prefix="stoa-bench-warm-") as tmp:
        run_once(make(), workload(3, ALIAS_EVERY), queries[:3], Path(tmp))
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="stoa-bench-") as tmp:
            result = run_once(make(), entries, queries, Path(tmp))
        if result["counts"] != expected:
            raise RuntimeError(f"{make.name} search results differ from the workload's")
        results.append(result)
    return results


# -- the MLflow virtualenv -----------------------------------------------------------


def mlflow_python(requirements: tuple[str, ...]) -> Path:
    """The interpreter of benchmarks/.venv-mlflow, created and installed when needed."""
    python = MLFLOW_VENV / "bin" / "python"
    stamp = MLFLOW_VENV / STAMP
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"setting up {MLFLOW_VENV} (one-off): {' '.join(requirements)}", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", *requirements], check=True)
    stamp.write_text(wanted)
    return python


def run_mlflow_peer(python: Path, args: argparse.Namespace, *, wal: bool) -> dict[str, Any]:
    """One MLflow repeat (after its own warm-up run) in a fresh process of the MLflow venv."""
    command = [str(python), str(Path(__file__).resolve()), "--peer", "mlflow", "--json"]
    command += ["--repeats", "1", "--models", str(args.models)]
    command += ["--versions-per-model", str(args.versions_per_model)]
    command += ["--searches", str(args.searches), "--seed", str(args.seed)]
    if wal:
        command.append("--sqlite-wal")
    # No phoning home from inside a timed loop; this machine may have no route out.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONPATH"):
        env.pop(name, None)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the MLflow run failed with exit status {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


# -- reporting -----------------------------------------------------------------------


def median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(title: str, stoa: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[float]:
    """Print one comparison; return the speed-ups of the register and search phases."""
    first = stoa[0]
    print(title)
    print(
        f"  {'phase':<10}{'stoa s':>9}{'mlflow s':>10}{'stoa ops/s':>12}{'mlflow ops/s':>14}"
        f"  {'unit':<11}{'speed-up':>9}"
    )
    rows = [
        ("register", "register_s", first["versions"], "versions/s"),
        ("search", "search_s", first["searches"], "searches/s"),
        ("open*", "open_s", 1, "stores/s"),
    ]
    ratios = []
    for label, key, ops, unit in rows:
        s, m = median(stoa, key), median(other, key)
        ratios.append(m / s)
        print(
            f"  {label:<10}{s:>9.3f}{m:>10.3f}{ops / s:>12.1f}{ops / m:>14.1f}"
            f"  {unit:<11}{m / s:>8.2f}x"
        )
    for key in ("register_s", "search_s"):
        print(
            f"  each run, {key:<10}  stoa: {', '.join(f'{r[key]:.3f}' for r in stoa)}"
            f"  mlflow: {', '.join(f'{r[key]:.3f}' for r in other)}"
        )
    print()
    return ratios[:2]


def report(
    stoa: list[dict[str, Any]],
    mlflow: list[dict[str, Any]],
    mlflow_wal: list[dict[str, Any]],
    peer: dict[str, Any],
) -> None:
    import sqlalchemy

    import stoa as stoa_pkg

    first = stoa[0]
    print()
    print("Model registry benchmark: Stoa vs MLflow (SQLite back-end), same machine, same run")
    print(f"  machine   {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"  python    {platform.python_version()} (both sides)")
    print(f"  stoa      {stoa_pkg.__version__} (SQLAlchemy {sqlalchemy.__version__})")
    print(f"  mlflow    {peer['mlflow']} (mlflow-skinny, SQLAlchemy {peer['sqlalchemy']})")
    print(
        f"  workload  {first['versions']} versions in {first['names']} names with "
        f"{first['alias_ops']} alias sets/moves; {first['searches']} tag searches returning "
        f"{sum(first['counts'])} versions in all"
    )
    print(f"  repeats   {len(stoa)}; figures are medians; speed-up = mlflow s / stoa s")
    print()
    ratios = table(
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
    met = all(r >= 5 for r in ratios)
    print(
        f"  target, Stoa >= 5x faster in both phases (as shipped): {'met' if met else 'NOT met'} "
        f"(register {ratios[0]:.2f}x, search {ratios[1]:.2f}x)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="full runs per side (median)")
    parser.add_argument("--models", type=int, default=50, help="registered model names")
    parser.add_argument("--versions-per-model", type=int, default=20)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7, help="seed of the search mix")
    parser.add_argument(
        "--no-wal-variant",
        action="store_true",
        help="skip the informational MLflow run with Stoa's SQLite journal settings",
    )
    parser.add_argument(
        "--mlflow-requirement",
        default=MLFLOW_REQUIREMENTS[0],
        help=f"pip spec for MLflow in benchmarks/.venv-mlflow (default {MLFLOW_REQUIREMENTS[0]})",
    )
    internal = parser.add_argument_group("internal, used for the MLflow subprocess")
    internal.add_argument("--peer", choices=["mlflow"], help="run only that side, in this venv")
    internal.add_argument("--json", action="store_true", help="print the results as JSON")
    internal.add_argument("--sqlite-wal", action="store_true", help="see --no-wal-variant")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.models < 1 or args.versions_per_model < 1 or args.searches < 1:
        parser.error("--repeats, --models, --versions-per-model and --searches must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peer == "mlflow":
        import mlflow
        import sqlalchemy

        if args.sqlite_wal:
            use_stoa_sqlite_settings()
        results = run_side(MlflowSide, args, args.repeats)
        out = {"mlflow": mlflow.__version__, "sqlalchemy": sqlalchemy.__version__}
        print(json.dumps({**out, "results": results}))
        return

    python = mlflow_python((args.mlflow_requirement, *MLFLOW_REQUIREMENTS[1:]))
    # The sides take turns, one repeat at a time, so that a slow patch on a shared machine
    # hits all of them; each MLflow repeat is a new process with its own warm-up run.
    stoa: list[dict[str, Any]] = []
    mlflow: list[dict[str, Any]] = []
    mlflow_wal: list[dict[str, Any]] = []
    peer: dict[str, Any] = {}
    for r in range(args.repeats):
        step = f"repeat {r + 1}/{args.repeats}:"
        print(f"{step} stoa", file=sys.stderr, flush=True)
        stoa += run_side(StoaSide, args, 1)
        print(f"{step} mlflow", file=sys.stderr, flush=True)
        peer = run_mlflow_peer(python, args, wal=False)
        mlflow += peer["results"]
        if not args.no_wal_variant:
            print(f"{step} mlflow, Stoa's SQLite settings", file=sys.stderr, flush=True)
            mlflow_wal += run_mlflow_peer(python, args, wal=True)["results"]
    # Each side already matched every count against the workload; check them pairwise too.
    for other in (*mlflow, *mlflow_wal):
        if other["counts"] != stoa[0]["counts"]:
            raise SystemExit("Stoa and MLflow returned different result counts for a search")
    report(stoa, mlflow, mlflow_wal, peer)


if __name__ == "__main__":
    main()
