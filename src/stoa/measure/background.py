"""Periodic work inside the server: alert evaluation, online judges.

Each job runs on its own daemon thread every ``every_s`` seconds. An error is logged
and the next pass runs as usual, so a database hiccup never stops a schedule; stopping
waits for the pass in progress (bounded), so shutdown never cuts a write in half.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from stoa.core.errors import ConfigurationError

log = logging.getLogger("stoa.background")


class Periodic:
    def __init__(self, name: str, every_s: float, job: Callable[[threading.Event], Any]):
        self.name = name
        self.every_s = every_s
        self.job = job
        self.passes = 0
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Any:
        try:
            return self.job(self.stopping)
        finally:
            self.passes += 1

    def start(self) -> None:
        def loop() -> None:
            while not self.stopping.wait(self.every_s):
                try:
                    self.run_once()
                except Exception:
                    log.exception("%s: a background pass failed", self.name)

        self._thread = threading.Thread(target=loop, name=f"stoa-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def interval_from_env(
    variable: str, default: float, environ: Mapping[str, str] = os.environ
) -> float | None:
    """Seconds between passes from ``variable`` (0 turns the schedule off: the work then
    runs only on demand)."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigurationError(
            f"{variable}={raw!r} is not a number of seconds",
            field=variable.removeprefix("STOA_").lower(),
            fix=f"set it to e.g. {default:g}, or 0 to run only on demand",
        )
    return seconds or None
