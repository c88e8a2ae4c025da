"""Prometheus metrics of the data plane, with prometheus-client.

With several uvicorn workers each process counts on its own; ``configure_workers`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and ``/metrics`` then adds up every
worker's files (prometheus-client's multiprocess mode), so a scrape sees the server,
not whichever worker answered it.

On Ray Serve the replicas are processes on several nodes, so no folder is shared: each
replica sends its counts to a hub actor (``serve/ray/metrics_hub.py``) and installs
:func:`share_with_peers`, and ``/metrics`` on any replica then adds up every replica's
counts with :func:`add_up`, so a scrape through Serve's proxy sees the endpoint too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

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


@dataclass(frozen=True)
class Snapshot:
    """One process's exposition text, and whether the process still runs: a stopped
    one's counters stay in the sum, so a total never goes back (which Prometheus would
    read as a reset), while its gauges, which say how things are now, leave it."""

    text: str
    live: bool = True


#: Set on a Ray Serve replica: the other replicas' latest snapshots.
_peers: Callable[[], list[Snapshot]] | None = None


def share_with_peers(peers: Callable[[], list[Snapshot]] | None) -> None:
    """Make ``/metrics`` add this process's counts to what ``peers`` returns."""
    global _peers
    _peers = peers


def add_up(snapshots: Sequence[Snapshot], extra: Iterable[Metric] = ()) -> bytes:
    """Stoa's metric families of several processes as one exposition, each sample the
    sum of the same sample (name and labels) in every process.

    Sums are right for every Stoa family: counters, histograms' buckets, sums and
    counts, and the livesum gauges. Other families (process_*, python_*) describe one
    process and ``_created`` one process's start; summing them means nothing, so they
    are left out, as prometheus-client's multiprocess mode leaves them out."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for snapshot in snapshots:
        for family in text_string_to_metric_families(snapshot.text):
            if not family.name.startswith("stoa_"):
                continue
            if family.type == "gauge" and not snapshot.live:
                continue
            families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            sums = values.setdefault(family.name, {})
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sample.labels.items()))
                sums[key] = sums.get(key, 0.0) + sample.value
    for name, family in families.items():
        for (sample, labels), value in values[name].items():
            family.add_sample(sample, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([*families.values(), *extra]))
    return generate_latest(registry)


class _Fixed:
    """A collector of metrics already counted."""

    def __init__(self, metrics: list[Metric]):
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    if _peers is not None:
        peers = _peers()
        reporting = Metric(
            "stoa_replicas_reporting",
            "Replicas whose counts this scrape adds up (Ray Serve); fewer than the "
            "deployment runs means some could not be reached.",
            "gauge",
        )
        reporting.add_sample("stoa_replicas_reporting", {}, 1 + sum(p.live for p in peers))
        own = Snapshot(generate_latest().decode())
        return add_up([own, *peers], [reporting]), CONTENT_TYPE_LATEST
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
