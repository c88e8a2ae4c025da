"""Stoa's REST API against ``mlflow server`` under load, in one run on one machine.

Run from the repository root::

    .venv/bin/python benchmarks/api_vs_mlflow.py --seconds 10 --concurrency 1 16 64

Both servers hold the same registry: 50 model names with 5 versions each, every
version tagged ``team=t0..t4``. Three reads are driven by ``wrk`` (Debian's package:
``apt-get install wrk``) at each concurrency, first on Stoa, then on MLflow:

- get: one version by name and number (Stoa ``/api/v1/models/NAME@4``, MLflow
  ``/api/2.0/mlflow/model-versions/get``);
- search: the versions carrying one tag (about 50 of 250);
- list: the registered names.

Stoa runs ``stoa server --workers N``; MLflow runs ``mlflow server --workers M`` (4 by
default, its own default) on SQLite, installed only into ``benchmarks/.venv-mlflow-server``.
A ``health`` row at one client shows each server's floor: a route that reads nothing.
The target of issue 12: Stoa serves at least 5x MLflow's requests per second on reads,
with a p99 at or below MLflow's, and no error at 64 clients.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow-server"
MLFLOW_SPEC = "mlflow==3.17.2"
NAMES, VERSIONS, TEAMS = 50, 5, 5
READS = ("get", "search", "list")

_MLFLOW_FILL = """
import sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
for m in range(int(sys.argv[2])):
    name = f"model-{m:03d}"
    client.create_registered_model(name)
    for v in range(int(sys.argv[3])):
        client.create_model_version(name, source=f"file:///tmp/{name}/{v}",
                                    tags={"team": f"t{(m + v) % int(sys.argv[4])}"})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not up after {timeout} s:\n{log.read_text()[-3000:]}")


def fill_stoa(home: Path, work: Path) -> None:
    """The registry both servers hold, in a Stoa home: NAMES x VERSIONS tagged versions."""
    from registry_vs_mlflow import safetensors_bytes

    from stoa.client import LocalClient

    client = LocalClient(home=home, actor="bench")
    for m in range(NAMES):
        for v in range(VERSIONS):
            path = work / "artifact.safetensors"
            path.write_bytes(safetensors_bytes(m * VERSIONS + v))
            client.models.register(f"model-{m:03d}", path, license="MIT",
                                   tags={"team": f"t{(m + v) % TEAMS}"})  # fmt: skip
    client.close()


def stoa_server(work: Path, workers: int) -> tuple[str, subprocess.Popen]:
    """Fill a Stoa home in process, then serve it."""
    home = work / "stoa-home"
    fill_stoa(home, work)
    port = free_port()
    log = work / "stoa.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOA_")}
    env["STOA_HOME"] = str(home)
    stoa = Path(sys.executable).parent / "stoa"
    command = [str(stoa), "server", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", proc, log)
    return url, proc


def mlflow_python() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, MLFLOW_SPEC], check=True)
    return python


def mlflow_server(work: Path, workers: int) -> tuple[str, subprocess.Popen]:
    python = mlflow_python()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    fill = [str(python), "-c", _MLFLOW_FILL, uri, str(NAMES), str(VERSIONS), str(TEAMS)]
    subprocess.run(fill, check=True, capture_output=True)
    port = free_port()
    log = work / "mlflow.log"
    command = [str(python), "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/health", proc, log)
    return url, proc


def routes(side: str) -> dict[str, str]:
    if side == "stoa":
        return {"health": "/healthz", "get": "/api/v1/models/model-007@4",
                "search": "/api/v1/models/-/search?tag=team%3Dt1&limit=1000",
                "list": "/api/v1/models"}  # fmt: skip
    return {"health": "/health",
            "get": "/api/2.0/mlflow/model-versions/get?name=model-007&version=4",
            "search": "/api/2.0/mlflow/model-versions/search?filter=tags.team%3D%27t1%27"
                      "&max_results=1000",
            "list": "/api/2.0/mlflow/registered-models/search?max_results=100"}  # fmt: skip


def check_answers(url: str, side: str) -> dict[str, int]:
    """Each read answers 200 with the expected rows, so both sides do the same work."""
    counts = {}
    for name, path in routes(side).items():
        if name == "health":
            continue
        response = httpx.get(url + path, timeout=30)
        response.raise_for_status()
        body = response.json()
        if name == "search":
            counts[name] = len(body if side == "stoa" else body.get("model_versions", []))
        elif name == "list":
            counts[name] = len(body if side == "stoa" else body.get("registered_models", []))
        else:
            counts[name] = 1
    return counts


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, concurrency: int, seconds: int) -> dict[str, Any]:
    threads = min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
               "--timeout", "10s", url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=2, help="stoa server --workers")
    parser.add_argument("--mlflow-workers", type=int, default=4, help="mlflow server --workers")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory(prefix="stoa-api-bench-") as tmp:
        work = Path(tmp)
        (work / "s").mkdir()
        (work / "m").mkdir()
        stoa_url, stoa_proc = stoa_server(work / "s", args.workers)
        mlflow_url, mlflow_proc = mlflow_server(work / "m", args.mlflow_workers)
        try:
            counts = check_answers(stoa_url, "stoa"), check_answers(mlflow_url, "mlflow")
            if counts[0] != counts[1]:
                raise SystemExit(f"the two registries differ: {counts}")
            results = []
            # The servers' own floor: one client, a route that reads nothing.
            for read, levels in (("health", [1]), *((r, args.concurrency) for r in READS)):
                for concurrency in levels:
                    row: dict[str, Any] = {"read": read, "c": concurrency}
                    for side, url in (("stoa", stoa_url), ("mlflow", mlflow_url)):
                        target = url + routes(side)[read]
                        wrk(target, concurrency, 2)  # warm-up
                        row[side] = wrk(target, concurrency, args.seconds)
                    results.append(row)
                    print_row(row)
        finally:
            for proc in (stoa_proc, mlflow_proc):
                proc.terminate()
                proc.wait(30)
    report(results, args, counts[0])


def print_row(row: dict[str, Any]) -> None:
    s, m = row["stoa"], row["mlflow"]
    ratio = s["rps"] / m["rps"] if m["rps"] else float("inf")
    print(f"  {row['read']:<7}{row['c']:>4}  {s['rps']:>8.0f} {m['rps']:>8.0f} {ratio:>6.2f}x"
          f"  {s['p50_ms']:>6.1f} {s['p99_ms']:>7.1f}  {m['p50_ms']:>6.1f} {m['p99_ms']:>7.1f}"
          f"  {s['errors']:>4} {m['errors']:>4}", flush=True)  # fmt: skip


def report(results: list[dict[str, Any]], args: argparse.Namespace, counts: dict) -> None:
    import platform

    print()
    print("REST API under load: Stoa vs MLflow (SQLite), same machine, same run")
    print(f"  machine   {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"  servers   stoa server --workers {args.workers}; "
          f"mlflow server --workers {args.mlflow_workers} ({MLFLOW_SPEC})")  # fmt: skip
    print(f"  registry  {NAMES} names x {VERSIONS} versions; search returns {counts['search']}"
          f" versions, list {counts['list']} names; wrk {args.seconds} s per cell")  # fmt: skip
    print("  read     c  stoa r/s mlflow r/s  ratio  stoa p50   p99  mlflow p50   p99  errors")
    for row in results:
        print_row(row)
    reads = [r for r in results if r["read"] in READS]
    ratios = [r["stoa"]["rps"] / r["mlflow"]["rps"] for r in reads if r["mlflow"]["rps"]]
    p99_ok = all(r["stoa"]["p99_ms"] <= r["mlflow"]["p99_ms"] for r in reads)
    errors = sum(r["stoa"]["errors"] for r in reads)
    met = min(ratios) >= 5 and p99_ok and errors == 0
    print(
        f"  target, >= 5x MLflow's r/s on every read, p99 <= MLflow's, no errors: "
        f"{'met' if met else 'NOT met'} (lowest ratio {min(ratios):.2f}x, "
        f"p99 {'ok' if p99_ok else 'above MLflow somewhere'}, {errors} Stoa errors)"
    )


if __name__ == "__main__":
    main()
