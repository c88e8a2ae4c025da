"""`stoa serve` against `mlflow models serve` on the same scikit-learn model, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/serve_vs_mlflow.py --seconds 10 --concurrency 1 16 64

The model: a ``GradientBoostingClassifier`` (100 trees of depth 3) trained on the demo's
churn customers (``stoa.demo.synthetic_data.churn``, 3,000 rows) reduced to 11 numeric
features, as an online churn score would be. Stoa gets it with ``client.models.log``
and the alias ``prod``; MLflow gets the same fitted object with
``mlflow.sklearn.log_model`` (with the signature MLflow asks for) in its own venv,
``benchmarks/.venv-mlflow-server``, so Stoa never depends on MLflow.

Both servers answer MLflow's ``POST /invocations``; wrk (Debian's package) sends both the
same ``dataframe_split`` bodies (512 distinct customers, one row per request, as online
scoring does; ``--rows 1 16`` adds 16-row requests) at each concurrency. Stoa runs with
its defaults, prediction logging on. Each ``--workers`` count runs both servers with
that many uvicorn workers (MLflow's default is 1).

After each Stoa cell the logbook is counted: every request wrk saw answered 2xx must be
in it (zero loss); requests still in flight when wrk stopped may be logged too, so the
logbook may hold up to ``sent - completed`` more. Targets of issue 16 at 16 clients: at
least 2x MLflow's requests/s and a p99 at or below MLflow's.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow-server"
MLFLOW_SPEC = "mlflow==3.17.2"
BODIES = 512  # distinct customers the load cycles through
WAIT_S = 180

_MLFLOW_LOG = """
import pickle, sys
import mlflow, pandas as pd
from mlflow.models import infer_signature
model = pickle.load(open(sys.argv[1], "rb"))
sample = pd.read_csv(sys.argv[2])
mlflow.set_tracking_uri(sys.argv[3])
with mlflow.start_run():
    # MLflow 3 saves with skops and asks the logger to vouch for the tree type
    info = mlflow.sklearn.log_model(model, name="churn",
                                    signature=infer_signature(sample, model.predict(sample)),
                                    skops_trusted_types=["sklearn.tree._tree.Tree"])
print(info.model_uri)
"""

# wrk: POST the bodies in turn (each thread from its own offset); count what was sent.
_LUA = """
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 97)
  table.insert(threads, thread)
end
sent = 0
local i = nil
local headers = {["Content-Type"] = "application/json"}
local bodies = {%s}
function request()
  if i == nil then i = offset or 0 end
  i = i %% #bodies + 1
  sent = sent + 1
  return wrk.format("POST", nil, headers, bodies[i])
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("sent") end
  io.write(string.format("SENT %%d\\n", total))
end
"""


# -- the model --------------------------------------------------------------------------


def churn_data() -> tuple[Any, Any]:
    """(features, target): the demo's churn customers as 11 numeric columns."""
    from stoa.demo.synthetic_data import churn

    raw = churn(n=3000, seed=11)
    contract = raw["contract"].map({"month-to-month": 0, "one-year": 1, "two-year": 2})
    frame = raw[["tenure_months", "monthly_charges", "total_charges", "support_tickets_90d",
                 "num_products", "last_login_days"]].astype(float)  # fmt: skip
    frame["total_charges"] = frame["total_charges"].fillna(0.0)
    frame["contract"] = contract.astype(float)
    frame["electronic_check"] = (raw["payment_method"] == "electronic_check").astype(float)
    frame["has_discount"] = raw["has_discount"].astype(float)
    frame["paperless_billing"] = raw["paperless_billing"].astype(float)
    frame["region_west"] = (raw["region"] == "west").astype(float)
    return frame, raw["churned"]


def train(frame: Any, target: Any = None) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    if target is None:
        frame, target = churn_data()
    return GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(
        frame, target
    )


def bodies(frame: Any, rows: int) -> list[str]:
    """BODIES JSON bodies of ``rows`` customers each, as MLflow's dataframe_split."""
    columns = list(frame.columns)
    data = frame.to_numpy().tolist()
    out = []
    for i in range(BODIES):
        chunk = [data[(i * rows + j) % len(data)] for j in range(rows)]
        out.append(json.dumps({"dataframe_split": {"columns": columns, "data": chunk}}))
    return out


# -- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {WAIT_S} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Side:
    """One server under test: its URL, its process, and wrk against it."""

    name = ""
    url = ""
    proc: subprocess.Popen

    def drive(self, bodies: list[str], concurrency: int, seconds: int, warmup: int) -> dict:
        script = self.work / f"post-{len(bodies[0])}.lua"
        if not script.exists():
            quoted = ",\n".join(f"[==[{b}]==]" for b in bodies)
            script.write_text(_LUA % quoted)
        if warmup:
            wrk(self.url + "/invocations", script, concurrency, warmup)
        return wrk(self.url + "/invocations", script, concurrency, seconds)

    def predict(self, body: str) -> list[Any]:
        response = httpx.post(self.url + "/invocations", content=body, timeout=30,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        response.raise_for_status()
        return response.json()["predictions"]

    def stop(self) -> None:
        stop(self.proc)


class StoaSide(Side):
    """``stoa serve churn@prod`` over a home of its own, with its default settings."""

    name = "stoa"

    def __init__(self, work: Path, model: Any, workers: int, home: Path | None = None):
        self.work = work
        self.home = home or work / "stoa-home"
        if not (self.home / "stoa.db").exists():
            from stoa.client import LocalClient

            client = LocalClient(home=self.home, actor="bench")
            info = client.models.log("churn", model, license="MIT")
            client.models.set_alias("churn", info.version, "prod")
            client.close()
        port = free_port()
        log = work / f"stoa-{workers}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STOA_")}
        env["STOA_HOME"] = str(self.home)
        stoa = Path(sys.executable).parent / "stoa"
        command = [str(stoa), "serve", "churn@prod", "--port", str(port),
                   "--workers", str(workers)]  # fmt: skip
        self.proc = subprocess.Popen(command, env=env, stdout=open(log, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(f"{self.url}/readyz", self.proc, log)

    def logged(self) -> int:
        """Predictions in the logbook once it has settled (flushed every 200 ms)."""
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(self.home / "stoa.db", timeout=30) as conn:
                now = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since > 1.0:
                return now
            time.sleep(0.1)
        return last

    def drive(self, bodies: list[str], concurrency: int, seconds: int, warmup: int) -> dict:
        if warmup:
            super().drive(bodies, concurrency, warmup, 0)
        before = self.logged()
        cell = super().drive(bodies, concurrency, seconds, 0)
        cell["logged"] = self.logged() - before
        acknowledged = cell["completed"] - cell["non2xx"]
        cell["lost"] = max(0, acknowledged - cell["logged"])  # answered, yet not logged
        cell["over"] = cell["logged"] - acknowledged  # in flight at wrk's stop, then logged
        if cell["logged"] > cell["sent"]:
            raise SystemExit(f"the logbook holds more than was sent: {cell}")
        return cell


class MlflowSide(Side):
    """``mlflow models serve --env-manager local`` on the model logged in its venv."""

    name = "mlflow"

    def __init__(self, work: Path, model: Any, sample: Any, workers: int):
        self.work = work
        python = mlflow_python()
        uri = f"sqlite:///{work / 'mlflow.db'}"
        pickled, csv, known = work / "model.pkl", work / "sample.csv", work / "mlflow-uri"
        if not known.exists():  # log once; later worker counts serve the same model
            pickled.write_bytes(pickle.dumps(model))
            sample.to_csv(csv, index=False)
            logged = subprocess.run([str(python), "-c", _MLFLOW_LOG, str(pickled), str(csv),
                                     uri], capture_output=True, text=True, cwd=work)  # fmt: skip
            if logged.returncode:
                raise SystemExit(f"mlflow could not log the model:\n{logged.stderr[-3000:]}")
            known.write_text(logged.stdout.strip().splitlines()[-1])
        model_uri = known.read_text()
        port = free_port()
        log = work / f"mlflow-{workers}.log"
        # as in an activated venv: MLflow execs the venv's `uvicorn` by name
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
               "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
        command = [str(python), "-m", "mlflow", "models", "serve", "-m", model_uri,
                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers)]  # fmt: skip
        self.proc = subprocess.Popen(command, env=env, cwd=work, stdout=open(log, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(f"{self.url}/ping", self.proc, log)


def mlflow_python() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        import sklearn

        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, MLFLOW_SPEC, f"scikit-learn=={sklearn.__version__}"], check=True)
    return python


# -- wrk --------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, script: Path, concurrency: int, seconds: int) -> dict[str, Any]:
    threads = min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
               "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def find(pattern: str) -> str:
        return re.search(pattern, out).group(1)  # type: ignore[union-attr]

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)  # fmt: skip
    completed, took = re.search(r"(\d+) requests in ([\d.]+\w+),", out).groups()  # type: ignore[union-attr]
    return {
        "rps": float(find(r"Requests/sec:\s+([\d.]+)")),
        "p50_ms": _ms(find(r"\s50%\s+(\S+)")),
        "p99_ms": _ms(find(r"\s99%\s+(\S+)")),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
        "completed": int(completed),
        "seconds": _ms(took) / 1000,
        "sent": int(find(r"SENT (\d+)")),
    }


# -- the run ----------------------------------------------------------------------------


def check_same_answers(stoa: Side, mlflow: Side, sample: list[str]) -> None:
    """Both servers run the same model: the same bodies get the same predictions."""
    for body in sample:
        a, b = stoa.predict(body), mlflow.predict(body)
        if a != b:
            raise SystemExit(f"the two servers disagree on {body[:200]}: {a} != {b}")


def run_once(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    frame, target = churn_data()
    model = train(frame, target)
    payloads = {rows: bodies(frame, rows) for rows in args.rows}
    results = []
    for workers in args.workers:
        stoa = StoaSide(work, model, workers)
        try:
            mlflow = MlflowSide(work, model, frame.head(50), workers)
        except BaseException:
            stoa.stop()
            raise
        try:
            check_same_answers(stoa, mlflow, payloads[args.rows[0]][:20])
            for rows in args.rows:
                for concurrency in args.concurrency:
                    row = {"workers": workers, "rows": rows, "c": concurrency}
                    for side in (stoa, mlflow):
                        row[side.name] = side.drive(payloads[rows], concurrency, args.seconds,
                                                    warmup=2)  # fmt: skip
                    results.append(row)
                    print_row(row)
        finally:
            stoa.stop()
            mlflow.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="uvicorn workers, the same on both sides")  # fmt: skip
    parser.add_argument("--rows", type=int, nargs="+", default=[1], help="rows per request")
    parser.add_argument("--repeats", type=int, default=1, help="whole runs; medians shown")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    import tempfile

    runs = []
    for repeat in range(args.repeats):
        print(f"run {repeat + 1} of {args.repeats}", flush=True)
        with tempfile.TemporaryDirectory(prefix="stoa-serve-bench-") as tmp:
            runs.append(run_once(args, Path(tmp)))
    report(args, runs)


HEADER = "  w rows   c  stoa r/s mlflow r/s  ratio  stoa p50   p99  mlflow p50   p99  err  lost"


def print_row(row: dict[str, Any]) -> None:
    s, m = row["stoa"], row["mlflow"]
    ratio = s["rps"] / m["rps"] if m["rps"] else float("inf")
    errors = s["non2xx"] + s["socket_errors"]
    print(f"  {row['workers']:>1} {row['rows']:>4} {row['c']:>3}  {s['rps']:>8.0f} "
          f"{m['rps']:>10.0f} {ratio:>5.2f}x  {s['p50_ms']:>8.1f} {s['p99_ms']:>5.1f}"
          f"  {m['p50_ms']:>10.1f} {m['p99_ms']:>5.1f}  {errors:>3} {s['lost']:>5}",
          flush=True)  # fmt: skip


def median_row(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-metric median over runs of one cell; errors and losses summed."""
    row = {k: cells[0][k] for k in ("workers", "rows", "c")}
    for side in ("stoa", "mlflow"):
        row[side] = {key: statistics.median(c[side][key] for c in cells)
                     for key in ("rps", "p50_ms", "p99_ms")}  # fmt: skip
        for key in ("non2xx", "socket_errors", "lost", "completed"):
            row[side][key] = sum(c[side].get(key, 0) for c in cells)
    return row


def report(args: argparse.Namespace, runs: list[list[dict[str, Any]]]) -> None:
    import sklearn

    rows = [median_row(list(cells)) for cells in zip(*runs, strict=True)]
    print()
    print(f"Serving one scikit-learn model: stoa serve vs mlflow models serve "
          f"(medians of {len(runs)} run(s))")  # fmt: skip
    print(f"  machine  {os.cpu_count()} CPUs, {platform.platform()}, wrk on the same machine")
    print(f"  model    GradientBoostingClassifier, 100 trees, 11 features (scikit-learn "
          f"{sklearn.__version__}); {MLFLOW_SPEC}")  # fmt: skip
    print(f"  load     wrk {args.seconds} s per cell after 2 s of warm-up, "
          "POST /invocations dataframe_split")  # fmt: skip
    print("  w = uvicorn workers on each side; err = Stoa non-2xx and socket errors;")
    print("  lost = requests answered 2xx that are not in Stoa's logbook")
    print(HEADER)
    for row in rows:
        print_row(row)
    print(f"  logbook: {sum(r['stoa']['completed'] for r in rows):,} requests completed "
          f"in the measured cells, {sum(r['stoa']['lost'] for r in rows)} lost")  # fmt: skip
    for row in rows:
        if row["c"] != 16 or row["rows"] != args.rows[0]:
            continue
        s, m = row["stoa"], row["mlflow"]
        ratio = s["rps"] / m["rps"]
        met = ratio >= 2 and s["p99_ms"] <= m["p99_ms"]
        print(f"  target at c=16, {row['workers']} worker(s): >= 2x MLflow's r/s and p99 <= "
              f"MLflow's: {'met' if met else 'NOT met'} ({ratio:.2f}x, p99 "
              f"{s['p99_ms']:.1f} vs {m['p99_ms']:.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
