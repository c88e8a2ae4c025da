"""Where one REST read spends its CPU: the breakdown behind ``api_vs_mlflow.py``.

Run from the repository root::

    .venv/bin/python benchmarks/api_request_cost.py [--requests 2000] [--profile get]

It fills a home like ``api_vs_mlflow.py`` does (50 names x 5 versions), builds the app
in this process and calls it as an ASGI application, with no socket and no HTTP parser,
so what it times is Stoa's own work. For each read it prints microseconds per request:

- ``operation``: the client method alone (``client.models.show`` …), the queries;
- ``app``: the whole ASGI call: middlewares, routing, the scope dependency, the
  operation and the JSON encoding of its answer;
- ``around``: ``app - operation``, what serving costs on top of the read. ``--profile
READ`` prints the top functions of a cProfile of that read's ASGI calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_vs_mlflow import fill_stoa

READS = {
    "health": ("/healthz", ""),
    "get": ("/api/v1/models/model-007@4", ""),
    "search": ("/api/v1/models/-/search", "tag=team%3Dt1&limit=1000"),
    "list": ("/api/v1/models", ""),
}


def asgi_caller(app: Any, path: str, query: str, ok: tuple[int, ...] = (200,)) -> Callable[[], Any]:
    """One GET through the whole app, as uvicorn would hand it over; it fails unless the
    status is one of ``ok``."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000), "headers": [(b"host", b"127.0.0.1:8000")],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call() -> int:
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope, state={}), receive, send)
        if status not in ok:
            raise RuntimeError(f"{path}?{query} answered {status}")
        return status

    return call


def per_request_us(fn: Callable[[], Any], n: int, loop: asyncio.AbstractEventLoop) -> float:
    """Median over 5 batches of the microseconds one call takes. A batch of ASGI calls
    runs inside one task, as a server's would: anyio keeps its worker threads only
    while the task that started them lives."""
    is_async = asyncio.iscoroutinefunction(fn)

    async def batch(size: int) -> None:
        for _ in range(size):
            await fn()

    batches = []
    size = max(1, n // 5)
    for _ in range(5):
        start = time.perf_counter()
        if is_async:
            loop.run_until_complete(batch(size))
        else:
            for _ in range(size):
                fn()
        batches.append((time.perf_counter() - start) / size * 1e6)
    return statistics.median(batches)


async def _repeat(call: Callable[[], Any], times: int) -> None:
    for _ in range(times):
        await call()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", choices=sorted(READS), default=None)
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime or cumtime")
    args = parser.parse_args()

    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    with tempfile.TemporaryDirectory(prefix="stoa-cost-") as tmp:
        work = Path(tmp)
        home = work / "home"
        fill_stoa(home, work)
        client = LocalClient(settings=Settings(home=home))
        app = create_app(client=client)
        loop = asyncio.new_event_loop()

        operations: dict[str, Callable[[], Any]] = {
            "health": lambda: {"status": "ok"},
            "get": lambda: client.models.show("model-007@4"),
            "search": lambda: client.models.search(tags={"team": "t1"}, limit=1000),
            "list": lambda: client.models.list(),
        }
        print(f"{'read':8} {'operation':>10} {'app':>10} {'around':>10}")
        for read, (path, query) in READS.items():
            call = asgi_caller(app, path, query)
            t_op = per_request_us(operations[read], args.requests, loop)
            t_app = per_request_us(call, args.requests, loop)
            print(f"{read:8} {t_op:10.0f} {t_app:10.0f} {t_app - t_op:10.0f}")
            if read == args.profile:
                profile = cProfile.Profile()
                profile.enable()
                loop.run_until_complete(_repeat(call, args.requests // 4))
                profile.disable()
                pstats.Stats(profile).sort_stats(args.sort).print_stats(30)
        print("(microseconds per request, one caller at a time; median of 5 batches)")
        client.close()


if __name__ == "__main__":
    main()
