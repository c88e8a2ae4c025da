"""Adaptive batching of concurrent requests to one model, as Ray Serve's ``@serve.batch``
and Triton's dynamic batcher do, for request threads that block (the solution runner
runs in FastAPI's threadpool).

A model answers 32 rows in one call far faster than in 32 calls, so requests that
arrive together are gathered into one call. The first waiting request opens a batch;
the batch runs when it holds ``max_batch_size`` items or when ``max_wait_ms`` has passed
since that first request arrived, whichever comes first. The window is counted from
arrival, not from when the worker got to it, so a request that queued behind a running
batch does not wait a second window.

The batcher never runs a lone request early, even when it looks idle: in a threadpool
a burst of requests arrives microseconds apart, and the worker cannot tell the first
of a burst from a request that will stay alone. Set ``max_wait_ms=0`` for Triton's
default behaviour instead: run at once with whatever has queued (requests still batch
while the model is busy with the previous batch).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from stoa.core.errors import InvalidInputError, OverloadedError, StoaError, TimedOutError

_STOP = object()
_NOT_ONE_ROW = object()
_BATCHED_METHODS = ("predict", "predict_proba")


class BatchResultError(StoaError):
    """A batched function answered with a different number of results than it was given:
    a fault of the model, not of any one request, so every caller in the batch gets it."""

    code = "batch_result"
    http_status = 500
    exit_code = 1


@dataclass
class BatchStats:
    """Counters for /metrics; written only by the batcher's worker thread."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    #: Batches that failed as a whole and were retried one item at a time.
    retried: int = 0


@dataclass
class _Entry:
    item: Any
    future: Future
    arrived: float


class Batcher:
    """Gathers items submitted from many threads into calls of ``fn(list_of_items)``.

    ``fn`` must return one result per item, in order. One worker thread per batcher runs
    ``fn``; callers block on a future until their own result is ready.
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        name: str = "",
    ):
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise InvalidInputError(
                f"{max_batch_size!r} is not a whole number",
                field="max_batch_size",
                fix="give a batch size such as 32",
            )
        if max_batch_size < 1:
            raise InvalidInputError(
                f"the batch size {max_batch_size} is below 1",
                field="max_batch_size",
                fix="give 1 to turn batching off, or a size such as 32",
            )
        if not isinstance(max_wait_ms, int | float) or not (
            math.isfinite(max_wait_ms) and max_wait_ms >= 0
        ):
            raise InvalidInputError(
                f"the wait {max_wait_ms!r} ms is not a number >= 0",
                field="max_wait_ms",
                fix="give a window in milliseconds such as 2, or 0 to never wait",
            )
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_ms = float(max_wait_ms)
        self.name = name or getattr(fn, "__name__", "batcher")
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(
            target=self._work, name=f"stoa-batcher-{self.name}", daemon=True
        )
        self._worker.start()

    def submit(self, item: Any, timeout_s: float | None = None) -> Any:
        """Wait for ``fn``'s result for ``item``; ``fn``'s own exception if it failed on it."""
        entry = _Entry(item, Future(), time.monotonic())
        with self._lock:
            if self._closed:
                raise OverloadedError(
                    f"the batcher {self.name!r} is closed; the server is shutting down",
                    fix="retry against a running server",
                )
            self._queue.put(entry)
        try:
            return entry.future.result(timeout=timeout_s)
        except TimeoutError:
            if entry.future.done():  # fn itself raised a TimeoutError
                raise
            entry.future.cancel()  # skipped by the worker if it has not started it
            raise TimedOutError(
                f"no result from {self.name!r} within {timeout_s} s",
                field="timeout_s",
                fix="raise the step's timeout or lower the load",
            ) from None

    def close(self) -> None:
        """Run what is queued, then stop the worker; later submits are refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = first.arrived + self.max_wait_ms / 1000
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    entry = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True
                    break
                batch.append(entry)
            # A caller that timed out cancelled its future; leave it out of the batch.
            self._run([e for e in batch if e.future.set_running_or_notify_cancel()])

    def _run(self, batch: list[_Entry]) -> None:
        if not batch:
            return
        stats = self.stats
        stats.batches += 1
        stats.items += len(batch)
        stats.largest = max(stats.largest, len(batch))
        try:
            results = self._call([e.item for e in batch])
        except BatchResultError as exc:
            for entry in batch:
                entry.future.set_exception(exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # Find the bad rows: alone, each item fails only its own caller.
            stats.retried += 1
            for entry in batch:
                try:
                    entry.future.set_result(self._call([entry.item])[0])
                except Exception as alone:
                    entry.future.set_exception(alone)
            return
        for entry, result in zip(batch, results, strict=True):
            entry.future.set_result(result)

    def _call(self, items: list[Any]) -> Sequence[Any]:
        results = self.fn(items)
        try:
            got = f"{len(results)} results"
        except TypeError:
            got = f"a {type(results).__name__!r}, not a sequence,"
        if got != f"{len(items)} results":
            raise BatchResultError(
                f"{self.name!r} returned {got} for a batch of {len(items)}",
                fix="make the batched function return one result per input, in order",
            )
        return results


def _one_row(rows: Any) -> Any:
    """The single row in ``rows``, or _NOT_ONE_ROW when it holds more (or is no table)."""
    if isinstance(rows, pd.DataFrame):
        return rows if len(rows) == 1 else _NOT_ONE_ROW
    if isinstance(rows, np.ndarray):
        return rows[0] if rows.ndim >= 1 and rows.shape[0] == 1 else _NOT_ONE_ROW
    if isinstance(rows, list | tuple) and len(rows) == 1:
        return rows[0]
    return _NOT_ONE_ROW


def _stack(rows: list[Any]) -> Any:
    """One model input from single rows of the same kind as a caller would have sent."""
    if all(isinstance(r, pd.DataFrame) for r in rows):
        return pd.concat(rows, ignore_index=True)
    if all(isinstance(r, Mapping) for r in rows):
        return pd.DataFrame(list(rows))
    if all(isinstance(r, str) for r in rows):
        return list(rows)
    # Rows of numbers; rows of mixed kinds fail here and are retried one at a time.
    return np.asarray(rows)


class BatchingModel:
    """Wraps a loaded model; predict/predict_proba on ONE row go through a Batcher; more
    rows, or any other attribute, go straight to the model.

    One-row calls are what concurrent requests make, and what batching pays for; a
    caller that already sends many rows has batched them itself.
    """

    def __init__(self, model: Any, *, max_batch_size: int, max_wait_ms: float):
        #: The wrapped model, as loaded.
        self.model = model
        self._batchers = {
            method: Batcher(
                partial(self._run_rows, method),
                max_batch_size=max_batch_size,
                max_wait_ms=max_wait_ms,
                name=f"{type(model).__name__}.{method}",
            )
            for method in _BATCHED_METHODS
            if callable(getattr(model, method, None))
        }

    def _run_rows(self, method: str, rows: list[Any]) -> np.ndarray:
        return np.asarray(getattr(self.model, method)(_stack(rows)))

    def _batched(self, method: str, rows: Any, timeout_s: float | None = None) -> Any:
        row = _one_row(rows)
        if row is _NOT_ONE_ROW:
            return getattr(self.model, method)(rows)
        # Back to the shape the model gives for one row: (1,) or (1, n_classes).
        return np.expand_dims(np.asarray(self._batchers[method].submit(row, timeout_s)), 0)

    @property
    def batch_stats(self) -> dict[str, BatchStats]:
        return {method: batcher.stats for method, batcher in self._batchers.items()}

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found normally; __dict__ guards against recursion
        # before __init__ has run (copy, pickle).
        batchers = self.__dict__.get("_batchers")
        if batchers is None:
            raise AttributeError(name)
        if name in batchers:
            return partial(self._batched, name)
        return getattr(self.__dict__["model"], name)
