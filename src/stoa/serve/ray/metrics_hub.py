"""``/metrics`` across Ray Serve replicas: one hub actor holds each replica's latest counts.

Serve's proxy sends a scrape to one replica, and that replica alone counted only its own
requests. So every replica sends its exposition to the hub each ``PUSH_S`` seconds, and
its ``/metrics`` adds its own fresh counts to the others' latest (``serve/metrics.py``):
the same families and labels ``stoa server`` gives, counted over the whole deployment.

The hub holds a cache, not the truth: each replica sends its whole counts every time, so
a hub that is lost is rebuilt by the next pushes; only the counts of replicas that had
already stopped go with it. A replica silent for ``STALE_S`` has stopped: its counters
are folded into one retired snapshot (a total never goes back) and its gauges dropped,
so the hub's size follows the live replicas, not every replica an autoscaler ever ran.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from stoa.serve import metrics

log = logging.getLogger("stoa.ray")

HUB_NAME = "stoa-metrics"
NAMESPACE = "stoa"
#: How often a replica sends its counts: about how old the others are in a scrape.
PUSH_S = 1.0
#: Silence after which a replica counts as stopped (Serve checks replicas every 10 s).
STALE_S = 15.0
#: How long a scrape waits for the hub before it answers with this replica's counts.
ASK_S = 5.0


class MetricsHub:
    """The latest exposition of each live replica, and the retired replicas' sum."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[str, float]] = {}
        self._retired = ""

    def put(self, replica: str, text: str) -> None:
        self._latest[replica] = (text, time.monotonic())

    def snapshots(self, asking: str) -> list[tuple[str, bool]]:
        """Every replica's counts but the asker's, as (text, live)."""
        now = time.monotonic()
        for replica, (text, seen) in list(self._latest.items()):
            if now - seen > STALE_S:
                del self._latest[replica]
                old = [metrics.Snapshot(self._retired, False), metrics.Snapshot(text, False)]
                self._retired = metrics.add_up(old).decode()
        found = [(text, True) for replica, (text, _) in self._latest.items() if replica != asking]
        return [*found, (self._retired, False)] if self._retired else found


def _hub() -> Any:
    """The hub, started by whichever replica asks first."""
    import ray

    actor = ray.remote(num_cpus=0, max_restarts=-1)(MetricsHub)
    return actor.options(
        name=HUB_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()


class ReplicaMetrics:
    """Sends this replica's counts to the hub, and reads the others' for a scrape."""

    def __init__(self) -> None:
        import ray

        self._id = str(ray.get_runtime_context().get_actor_id())
        self._hub = _hub()
        threading.Thread(target=self._push, name="stoa-metrics", daemon=True).start()
        metrics.share_with_peers(self.peers)

    def _push(self) -> None:
        from prometheus_client import generate_latest

        warned = False
        while True:
            time.sleep(PUSH_S)
            try:  # fire and forget: a lost push is replaced by the next, a second later
                self._hub.put.remote(self._id, generate_latest().decode())
            except Exception as exc:  # never let the thread end: the counts would freeze
                if not warned:
                    log.warning("cannot send metrics to the hub: %s", exc)
                warned = True

    def peers(self) -> list[metrics.Snapshot]:
        import ray

        try:
            found = ray.get(self._hub.snapshots.remote(self._id), timeout=ASK_S)
        except Exception as exc:  # answer with this replica's counts; the gauge shows it
            log.warning("cannot read the other replicas' metrics: %s", exc)
            self._hub = _hub()  # a hub that was killed: start another for the next pushes
            return []
        return [metrics.Snapshot(text, live) for text, live in found]


def drop_hub() -> None:
    """End the hub with the app, so a new deployment counts from zero like a new server."""
    import ray

    with contextlib.suppress(ValueError):  # never started
        ray.kill(ray.get_actor(HUB_NAME, namespace=NAMESPACE))
