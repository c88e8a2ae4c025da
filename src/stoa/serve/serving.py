"""One process's data plane, as the server, the Python client and the CLI share it:
the logbook, the feedback writer, the endpoints' runtime and the rate limiter, started
together and closed together (closing flushes every logged prediction)."""

from __future__ import annotations

import threading
from typing import Any

from stoa.core.errors import OverloadedError
from stoa.serve import metrics
from stoa.serve.feedback import FeedbackWriter, parse_events
from stoa.serve.logbook import Logbook
from stoa.serve.ratelimit import RateLimiter
from stoa.serve.runtime import DataPlane, Outcome, PredictionFailed


class Serving:
    def __init__(self, local: Any):
        settings = local.settings
        # every worker reports its own depth; /metrics adds them up (livesum)
        self.logbook = Logbook.from_settings(local.db, settings, on_depth=metrics.QUEUE_DEPTH.set)
        self.logbook.start()
        self.plane = DataPlane(local, self.logbook)
        self.feedback = FeedbackWriter(local.db, pending=self.logbook.pending)
        self.feedback.start()
        self.limiter = (
            RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
            if settings.rate_limit_per_s
            else None
        )
        self._closed = False
        self._lock = threading.Lock()
        self.warming = False
        self.warm_problems: list[str] = []

    def warm_in_background(self) -> None:
        """Load every endpoint's models and plans on a thread; /readyz says "warming up"
        until it is done, so a load balancer sends traffic only to a warm process."""
        self.warming = True

        def run() -> None:
            try:
                self.warm_problems = self.plane.warm()
            except Exception as exc:  # the database is down: readiness says so itself
                self.warm_problems = [f"{type(exc).__name__}: {exc}"]
            finally:
                self.warming = False

        threading.Thread(target=run, name="stoa-warm", daemon=True).start()

    def predict(
        self, name: str, value: Any, *, unit_id: str | None = None, variant: str | None = None
    ) -> Outcome:
        self._check_open()
        outcome = self.plane.predict(name, value, unit_id=unit_id, variant=variant)
        if outcome.status == "error":
            raise PredictionFailed(outcome)
        return outcome

    def add_feedback(self, payload: Any) -> dict[str, Any]:
        """Validate, write durably, then answer: every acknowledged event is committed."""
        self._check_open()
        events = parse_events(payload)
        results = self.feedback.add(events)
        accepted = 0
        for event, result in zip(events, results, strict=True):
            if result["status"] == "accepted":
                accepted += 1
                metrics.FEEDBACK.labels(event.kind).inc()
        return {"accepted": accepted, "duplicates": len(results) - accepted, "events": results}

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise OverloadedError(
                "the server is shutting down", fix="retry against another worker or later"
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.plane.close()
        self.feedback.close()
        self.logbook.close()
