"""Adding up the metrics of several processes, as ``/metrics`` on a Ray Serve replica does:
each Stoa sample summed over the processes, a stopped process's counters kept and its
gauges dropped, per-process families left out; and the hub that holds the replicas'
latest counts folds a silent replica into the retired sum."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stoa.serve import metrics
from stoa.serve.metrics import Snapshot, add_up
from stoa.serve.ray import metrics_hub


def _process(requests: dict[str, int], latencies: list[float], depth: float) -> str:
    """One process's exposition, with the families and labels Stoa's own have."""
    registry = CollectorRegistry()
    counter = Counter("stoa_requests", "Requests.", ["variant", "status"], registry=registry)
    for variant, n in requests.items():
        counter.labels(variant, "ok").inc(n)
    latency = Histogram(
        "stoa_request_latency_seconds", "Latency.", ["variant"], buckets=(0.1, 1),
        registry=registry,
    )  # fmt: skip
    for value in latencies:
        latency.labels("a").observe(value)
    Gauge("stoa_logbook_queue_depth", "Waiting.", registry=registry).set(depth)
    Gauge("process_open_fds", "One process's files.", registry=registry).set(7)
    return generate_latest(registry).decode()


def _samples(text: bytes | str) -> dict[tuple[str, tuple], float]:
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }


def test_every_stoa_sample_is_the_sum_over_the_processes() -> None:
    one = _process({"a": 3, "b": 1}, [0.05, 0.5], depth=2)
    two = _process({"a": 4}, [2.0], depth=5)
    got = _samples(add_up([Snapshot(one), Snapshot(two)]))
    assert got[("stoa_requests_total", (("status", "ok"), ("variant", "a")))] == 7
    assert got[("stoa_requests_total", (("status", "ok"), ("variant", "b")))] == 1
    bucket = "stoa_request_latency_seconds_bucket"
    assert got[(bucket, (("le", "0.1"), ("variant", "a")))] == 1
    assert got[(bucket, (("le", "1.0"), ("variant", "a")))] == 2
    assert got[(bucket, (("le", "+Inf"), ("variant", "a")))] == 3
    assert got[("stoa_request_latency_seconds_count", (("variant", "a"),))] == 3
    assert got[("stoa_request_latency_seconds_sum", (("variant", "a"),))] == 2.55
    assert got[("stoa_logbook_queue_depth", ())] == 7
    names = {name for name, _ in got}
    assert not any(n.startswith("process_") or n.endswith("_created") for n in names), names


def test_a_stopped_process_keeps_its_counters_and_loses_its_gauges() -> None:
    live = _process({"a": 2}, [], depth=1)
    stopped = _process({"a": 5}, [], depth=9)
    got = _samples(add_up([Snapshot(live), Snapshot(stopped, live=False)]))
    assert got[("stoa_requests_total", (("status", "ok"), ("variant", "a")))] == 7
    assert got[("stoa_logbook_queue_depth", ())] == 1


def test_the_sum_is_a_valid_exposition_with_help_and_type() -> None:
    text = add_up([Snapshot(_process({"a": 1}, [0.2], depth=0))]).decode()
    assert "# TYPE stoa_requests_total counter" in text
    assert "# TYPE stoa_request_latency_seconds histogram" in text
    assert "# HELP stoa_logbook_queue_depth Waiting." in text
    assert add_up([]) == b""


def test_the_hub_folds_a_silent_replica_into_the_retired_sum(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(metrics_hub.time, "monotonic", lambda: clock[0])
    hub = metrics_hub.MetricsHub()
    hub.put("r1", _process({"a": 2}, [], depth=3))
    hub.put("r2", _process({"a": 5}, [], depth=4))
    assert [live for _, live in hub.snapshots("r1")] == [True], "the asker is left out"
    clock[0] += metrics_hub.STALE_S + 1
    hub.put("r1", _process({"a": 3}, [], depth=1))
    found = hub.snapshots("r3")
    assert [live for _, live in found] == [True, False]
    got = _samples(add_up([Snapshot(t, live) for t, live in found]))
    assert got[("stoa_requests_total", (("status", "ok"), ("variant", "a")))] == 8
    assert got[("stoa_logbook_queue_depth", ())] == 1, "r2's gauge left with it"
    clock[0] += metrics_hub.STALE_S + 1
    retired = hub.snapshots("r3")
    assert len(retired) == 1 and not retired[0][1]
    summed = _samples(retired[0][0])
    assert summed[("stoa_requests_total", (("status", "ok"), ("variant", "a")))] == 8


def test_a_replica_scrape_adds_its_own_counts_to_its_peers_and_says_how_many() -> None:
    metrics.REQUESTS.labels("sum-test", "a", "ok").inc(2)
    registry = CollectorRegistry()
    Counter("stoa_requests", "Requests.", ["endpoint", "variant", "status"], registry=registry
            ).labels("sum-test", "a", "ok").inc(5)  # fmt: skip
    peer = generate_latest(registry).decode()
    metrics.share_with_peers(lambda: [Snapshot(peer), Snapshot("", live=False)])
    try:
        body, content_type = metrics.exposition()
    finally:
        metrics.share_with_peers(None)
    got = _samples(body)
    key = ("stoa_requests_total", (("endpoint", "sum-test"), ("status", "ok"), ("variant", "a")))
    assert got[key] == 7
    assert got[("stoa_replicas_reporting", ())] == 2
    assert content_type.startswith("text/plain")
    assert "stoa_replicas_reporting" not in metrics.exposition()[0].decode()
