"""Per-caller request rates on the data plane: a token bucket per caller.

A caller is its API token, or its address on an open loopback server. Buckets live in
each server process, so with several workers a caller's limit applies per worker; the
rate a caller sees is at most ``workers * rate`` (docs/serving.md).
"""

from __future__ import annotations

import threading
import time

from stoa.core.errors import RateLimitedError

#: Buckets kept at most; the least recently used go first.
MAX_CALLERS = 100_000


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int):
        self.rate = rate_per_s
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # caller: (tokens, at)
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        """Spend one request of ``caller``'s allowance, or raise ``RateLimitedError``."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                wait = (1 - tokens) / self.rate
                raise RateLimitedError(
                    f"{caller} is over its limit of {self.rate:g} requests/s "
                    f"(burst {self.burst:g})",
                    field="Authorization",
                    fix=f"retry after {wait:.2f} s, or ask for a higher STOA_RATE_LIMIT_PER_S",
                    retry_after_s=wait,
                )
            self._buckets[caller] = (tokens - 1, now)
            if len(self._buckets) > MAX_CALLERS:
                self._buckets.pop(next(iter(self._buckets)))
