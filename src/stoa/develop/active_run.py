"""``start_run``: a run that buffers what a training loop logs and flushes it in batches.

The run talks to a ``RunSink``: four calls that ``client.runs`` answers over either
transport, so this module needs no client. Points are flushed every ``flush_every``
points or ``flush_seconds``, and when the run ends, so a loop can log thousands of
points per second without one round trip each.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from stoa.develop.tracking import MAX_BATCH, check_key, check_point, clean_params
from stoa.govern.types import RunInfo

F = TypeVar("F", bound=Callable[..., Any])


class RunSink(Protocol):
    """Where a run's records go: ``client.runs``, in process or over HTTP."""

    def create(
        self,
        name: str,
        inputs: list[str] | None = None,
        *,
        status: str = "finished",
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        parent_id: str | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunInfo: ...

    def log_batch(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        metrics: list[Any] | None = None,
    ) -> None: ...

    def log_artifact(self, run_id: str, path: Path | str, name: str | None = None) -> None: ...

    def finish(self, run_id: str, status: str = "finished") -> RunInfo: ...


_current: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "stoa_active_run", default=None
)


def active_run() -> ActiveRun | None:
    """The innermost run started with ``start_run`` in this context, if any."""
    return _current.get()


_GIT_TTL_S = 60.0
_git_cache: dict[str, tuple[float, dict[str, Any]]] = {}


@functools.cache
def _installed() -> tuple[tuple[str, str], ...]:
    """Installed packages, read once per process: reading 300 metadata files takes ~50 ms,
    and what a process imported does not change when pip runs beside it."""
    found = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    return tuple(sorted((name, version) for name, version in found.items() if name))


def capture_environment(cwd: Path | None = None) -> dict[str, Any]:
    """What a run needs to be reproduced: git commit and dirty flag, Python, packages.

    The git state is read at most once a minute per folder, so a loop that starts many
    short runs does not fork git twice per run.
    """
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(_installed()),
    }
    where = str(cwd or Path.cwd())
    cached = _git_cache.get(where)
    if cached is None or time.monotonic() - cached[0] > _GIT_TTL_S:
        cached = (time.monotonic(), _git_state(where))
        _git_cache[where] = cached
    env.update(cached[1])
    return env


def _git_state(where: str) -> dict[str, Any]:
    env: dict[str, Any] = {}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where, capture_output=True, text=True, timeout=5,
            )  # fmt: skip
            env["git_commit"] = commit.stdout.strip()
            env["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not a repository: the run simply has no code version
    return env


def _same_store(one: RunSink, other: RunSink) -> bool:
    """Whether two sinks keep runs in one store (``client.runs.store``); an unknown
    sink is taken to be the same, as before stores could differ."""
    mine, theirs = getattr(one, "store", None), getattr(other, "store", None)
    return mine is None or theirs is None or mine == theirs


class ActiveRun:
    """A running run; use it from ``with client.runs.start(...) as run``."""

    def __init__(self, sink: RunSink, info: RunInfo, *, flush_every: int, flush_seconds: float):
        self.sink = sink
        self.info = info
        self.flush_every = min(flush_every, MAX_BATCH)
        self.flush_seconds = flush_seconds
        self._points: list[dict[str, Any]] = []
        self._params: dict[str, Any] = {}
        self._tags: dict[str, Any] = {}
        self._steps: dict[str, int] = {}
        self._written: dict[str, str] = {}  # params already stored
        self._last_flush = time.monotonic()
        self.outer: ActiveRun | None = None  # the run that was active when this one began

    @property
    def id(self) -> str:
        return self.info.id

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are written once: a second, different value is refused here, at once."""
        from stoa.core.errors import ConflictError

        for key, value in clean_params(params).items():
            known = self._params.get(key, self._written.get(key))
            if known is not None and str(known) != value:
                raise ConflictError(
                    f"param {key!r} is already {str(known)!r}, not {value!r}",
                    field=f"params.{key}",
                    fix="params are written once; log a metric or a tag for values that change",
                )
            self._params[key] = value

    def set_tag(self, key: str, value: Any) -> None:
        self._tags[key] = value

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update(tags)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """``step`` defaults to one more than this metric's last step, from 0."""
        if step is None:
            step = self._steps.get(key, -1) + 1
        # Refused here, where the caller can see the line, not at the next flush.
        point = check_point(key, value, step, timestamp)
        self._steps[key] = step
        self._points.append(point)
        if len(self._points) >= self.flush_every or (
            time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_artifact(self, path: str | Path, name: str | None = None) -> None:
        """Store a file or folder with the run, under ``name`` (default: its file name)."""
        path = Path(path)
        self.flush()
        self.sink.log_artifact(self.id, path, name or path.name)

    def flush(self) -> None:
        if not (self._points or self._params or self._tags):
            return
        points, params, tags = self._points, self._params, self._tags
        self._last_flush = time.monotonic()
        # The buffers are emptied only once the store has them: a failed call loses nothing.
        self.sink.log_batch(self.id, params=params, metrics=points, tags=tags)
        self._written.update(params)
        self._points, self._params, self._tags = [], {}, {}

    def finish(self, status: str = "finished") -> RunInfo:
        self.flush()
        self.info = self.sink.finish(self.id, status)
        return self.info


class RunContext:
    """What ``start_run`` returns: a context manager, and a decorator that opens a fresh
    run around every call of the function."""

    def __init__(self, sink: RunSink, name: str, **options: Any):
        check_key(name, "name")
        self.sink = sink
        self.name = name
        self.options = options
        self.run: ActiveRun | None = None
        self._token: contextvars.Token[ActiveRun | None] | None = None

    def __enter__(self) -> ActiveRun:
        options = dict(self.options)
        flush_every = options.pop("flush_every", 1000)
        flush_seconds = options.pop("flush_seconds", 1.0)
        capture = options.pop("capture_environment", True)
        parent = options.pop("parent", None)
        active = active_run()
        if parent is None:
            # The nearest enclosing run kept in the same store: a run on a server never
            # names a local parent the server cannot see, and vice versa.
            enclosing = active
            while enclosing is not None and not _same_store(enclosing.sink, self.sink):
                enclosing = enclosing.outer
            parent = enclosing
        if isinstance(parent, ActiveRun):
            parent = parent.id
        params = options.pop("params", None)
        info = self.sink.create(
            self.name,
            inputs=list(options.pop("inputs", ())),
            status="running",
            params=params,
            tags=options.pop("tags", None),
            parent_id=parent,
            environment=capture_environment() if capture else {},
        )
        self.run = ActiveRun(self.sink, info, flush_every=flush_every, flush_seconds=flush_seconds)
        self.run.outer = active
        self.run._written.update(clean_params(params))
        self._token = _current.set(self.run)
        return self.run

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.run is not None
        status = (
            "finished"
            if exc_type is None
            else ("killed" if exc_type is KeyboardInterrupt else "failed")
        )
        try:
            try:
                self.run.flush()  # what was logged before a failure is kept
            except Exception:
                status = "failed"
                if exc_type is None:
                    raise
            finally:
                # The run always ends, even when its last flush was refused.
                self.run.info = self.sink.finish(self.run.id, status)
        finally:
            if self._token is not None:
                _current.reset(self._token)

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with RunContext(self.sink, self.name, **self.options):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
