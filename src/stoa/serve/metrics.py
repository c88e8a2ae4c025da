"""Prometheus metrics of the data plane, with prometheus-client.

With several uvicorn workers each process counts on its own; ``configure_workers`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and ``/metrics`` then adds up every
worker's files (prometheus-client's multiprocess mode), so a scrape sees the server,
not whichever worker answered it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "stoa_requests", "Data-plane requests answered, by endpoint, variant and status.",
    ["endpoint", "variant", "status"],
)  # fmt: skip
LATENCY = Histogram(
    "stoa_request_latency_seconds", "Time to answer a prediction, by endpoint and variant.",
    ["endpoint", "variant"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
TOKENS = Counter("stoa_tokens", "Tokens generated and read.", ["endpoint", "variant"])
COST = Counter("stoa_cost_usd", "Cost of answering, in US dollars.", ["endpoint", "variant"])
SHADOWS = Counter(
    "stoa_shadow_runs", "Shadow runs, by outcome (ok, error, skipped when the shadow queue "
    "was full).", ["endpoint", "variant", "outcome"],
)  # fmt: skip
FEEDBACK = Counter("stoa_feedback_events", "Feedback events written, by kind.", ["kind"])
QUEUE_DEPTH = Gauge(
    "stoa_logbook_queue_depth", "Predictions waiting to be written.", multiprocess_mode="livesum"
)
LOGBOOK_REFUSED = Counter(
    "stoa_logbook_refused", "Requests refused with 503 because the logbook queue was full."
)
RATE_LIMITED = Counter("stoa_rate_limited", "Requests refused with 429.", ["endpoint"])
BATCH_SIZE = Histogram(
    "stoa_batch_size", "Rows per adaptive batch of a model step.", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)  # fmt: skip


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def prepare_multiprocess(home: Path) -> Path:
    """An empty folder for the workers' metric files (stale files would add old counts)."""
    import shutil

    folder = home / "prometheus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder
