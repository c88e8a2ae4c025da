"""Latency, throughput, size, memory and cost, measured the same way for every candidate.

Single-row latency: ``single`` predictions of one row each (default 200), after 10
warm-up calls, timed with ``perf_counter``; p50/p95/p99 in ms. Throughput: rows per
second predicting batches of ``batch`` rows (default 256). CPU seconds per row come
from ``process_time`` over those batches, and cost per 1,000 predictions is that times
1,000 times the configured price per CPU-hour / 3,600. Peak memory is the highest
resident-set size sampled every 5 ms while predicting, above what the process held
before. Size is the saved artifact on disk (plus a referenced encoder's files).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from stoa.develop.ml.candidates.base import Inputs

_WARMUP = 10


def latency(
    candidate: Any, x: Inputs, *, single: int = 200, warmup: int = _WARMUP
) -> dict[str, float]:
    """``warmup`` calls are made first and not timed: fewer for a candidate whose every
    call costs a second (a prompted LLM), whose caches are warm after one."""
    n = len(x)
    rows = [x.take(np.array([i % n])) for i in range(single + warmup)]
    for row in rows[:warmup]:
        candidate.predict(row)
    times = []
    for row in rows[warmup:]:
        started = time.perf_counter()
        candidate.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "samples": single}


def throughput(candidate: Any, x: Inputs, *, batch: int = 256, min_seconds: float = 0.5,
               max_batches: int = 50, warm: bool = True) -> dict[str, float]:  # fmt: skip
    """Rows/s and CPU-seconds per row over repeated batches, with peak extra memory;
    ``warm=False`` skips the untimed first batch when the caller has just warmed it."""
    n = len(x)
    index = np.arange(batch) % n
    chunk = x.take(index)
    if warm:
        candidate.predict(chunk)
    base = _rss()
    sampler = _PeakSampler(base)
    sampler.start()
    wall = cpu = 0.0
    batches = 0
    try:
        while batches < max_batches and (wall < min_seconds or batches < 3):
            t0, c0 = time.perf_counter(), time.process_time()
            candidate.predict(chunk)
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            batches += 1
    finally:
        sampler.stop()
    rows = batches * batch
    return {
        "rows_per_s": rows / wall if wall else float("inf"),
        "cpu_s_per_row": cpu / rows,
        "peak_mem_mb": max(sampler.peak - base, 0) / 2**20,
        "batch": batch,
    }


def size_mb(candidate: Any) -> float:
    with tempfile.TemporaryDirectory(prefix="stoa-size-") as tmp:
        path = candidate.save(Path(tmp))
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
    extra = getattr(candidate, "referenced_bytes", lambda: 0)()
    return (total + extra) / 2**20


def cost_per_1k(cpu_s_per_row: float, price_per_cpu_hour: float) -> float:
    return cpu_s_per_row * 1000 * price_per_cpu_hour / 3600


def _rss() -> int:
    """Resident bytes of this process: /proc on Linux, ru_maxrss as a fallback."""
    try:
        with open("/proc/self/statm") as handle:
            import os

            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakSampler(threading.Thread):
    def __init__(self, start: int):
        super().__init__(daemon=True)
        self.peak = start
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.005):
            self.peak = max(self.peak, _rss())

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, _rss())
