"""Endpoints on Ray Serve: the app ``stoa server`` runs, replicated.

Each replica is one Ray actor that builds the very app of ``stoa server``
(``create_app``): the same routes and wire formats (predict, OpenAI chat completions
with streaming, MLflow's /invocations, feedback), the same gatekeeper, the same
assignment by unit id, shadows and logbook. So there is no second route layer to
drift from the first. A replica loads its endpoints' models and knowledge bases once,
before Serve routes a request to it, and shares nothing mutable: predictions reach the
logbook in the shared database from each replica's own writer.

``build_app`` is the import path a RayService (KubeRay) or ``serve run`` names; ``stoa
serve --ray`` calls :func:`deploy`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stoa.core.errors import ConfigurationError, InvalidInputError

log = logging.getLogger("stoa.ray")

APP_NAME = "stoa"
DEPLOYMENT = "StoaEndpoint"
#: Requests one replica takes at once. The app is asynchronous and batches model calls
#: (serve/batching.py), so it gains from many in flight; Serve's default of 5 would
#: queue them at the proxy instead.
MAX_ONGOING = 64
#: Requests in flight per replica that the autoscaler aims at.
TARGET_ONGOING = 16
#: What a replica may take to stop: running predictions end and the logbook is written.
GRACEFUL_S = 30


@dataclass(frozen=True)
class Scale:
    """A fixed number of replicas, or an autoscaling range."""

    replicas: int | None = 1
    autoscale: tuple[int, int] | None = None

    def options(self, cpus: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": cpus},
            "max_ongoing_requests": MAX_ONGOING,
            "graceful_shutdown_timeout_s": GRACEFUL_S,
        }
        if self.autoscale is not None:
            low, high = self.autoscale
            options["autoscaling_config"] = {
                "min_replicas": low,
                "initial_replicas": max(low, 1),
                "max_replicas": high,
                "target_ongoing_requests": TARGET_ONGOING,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def parse_scale(replicas: int | None, autoscale: str | None) -> Scale:
    """``--replicas N`` or ``--autoscale MIN:MAX``; never both."""
    if replicas is not None and autoscale is not None:
        raise InvalidInputError(
            "give --replicas or --autoscale, not both",
            field="autoscale",
            fix="--replicas 2 for a fixed count, --autoscale 1:4 for a range",
        )
    if autoscale is not None:
        found = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", autoscale)
        if found is None:
            raise InvalidInputError(
                f"autoscale {autoscale!r} is not MIN:MAX", field="autoscale", fix="e.g. 1:4"
            )
        low, high = int(found.group(1)), int(found.group(2))
        if high < 1 or low > high:
            raise InvalidInputError(
                f"autoscale {autoscale!r}: MIN must be at most MAX, and MAX at least 1",
                field="autoscale",
                fix="e.g. 1:4 (MIN may be 0 to scale to zero)",
            )
        return Scale(replicas=None, autoscale=(low, high))
    count = 1 if replicas is None else replicas
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"replicas is {replicas!r}", field="replicas", fix="use 1 or more")
    return Scale(replicas=count)


class StoaEndpoint:
    """One replica: sets the driver's settings, builds the app and warms it."""

    def __init__(self, environment: Mapping[str, str] | None = None):
        os.environ.update(environment or {})
        from stoa.serve.server.app import app_for_worker

        started = time.perf_counter()
        self._stoa_app = app_for_worker()
        # Load every variant's models and plans now: Serve routes to a replica once its
        # constructor returns, so no request meets a cold one.
        problems = self._stoa_app.state.client.stores.serving.plane.warm()
        for problem in problems:
            log.warning("replica cannot load %s", problem)
        from .metrics_hub import ReplicaMetrics

        self._metrics = ReplicaMetrics()  # /metrics counts every replica, not just this one
        log.info("replica ready in %.1f s", time.perf_counter() - started)

    def __serve_build_asgi_app__(self) -> Any:
        return self._stoa_app


def application(environment: Mapping[str, str] | None, scale: Scale, *, cpus: float = 1.0) -> Any:
    """The Serve application: one deployment of ``StoaEndpoint``, sized by ``scale``."""
    from ray import serve

    ingress = serve.ingress()(StoaEndpoint)
    deployment = serve.deployment(name=DEPLOYMENT, **scale.options(cpus))(ingress)
    return deployment.bind(dict(environment or {}))


def build_app(args: dict[str, Any]) -> Any:
    """For ``serve run stoa.serve.ray.endpoints:build_app endpoint=NAME`` and a
    RayService's ``import_path``: the replicas read their settings from their own
    environment (the pod's), and ``endpoint`` answers MLflow's /invocations."""
    known = {"endpoint", "replicas", "autoscale", "cpus", "host"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown argument(s) {', '.join(unknown)}",
            field="args",
            fix=f"use {', '.join(sorted(known))}",
        )
    replicas = args.get("replicas")
    scale = parse_scale(int(replicas) if replicas is not None else None, args.get("autoscale"))
    environment = {"STOA_SERVER_HOST": str(args.get("host", "0.0.0.0"))}
    if args.get("endpoint"):
        environment["STOA_DEFAULT_ENDPOINT"] = str(args["endpoint"])
    return application(environment, scale, cpus=float(args.get("cpus", 1)))


def deploy(
    settings: Any,
    endpoint: str | None,
    scale: Scale,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    cpus: float = 1.0,
) -> str:
    """Run the app on the connected cluster behind Serve's proxy at ``host:port``;
    returns the base URL once every replica is up."""
    from ray import serve

    from stoa.serve.server.app import worker_environment

    from .cluster import worker_env

    environment = worker_env(settings, worker_environment(settings, host, endpoint))
    serve.start(http_options={"host": host, "port": port})
    # Serve keeps the proxy it has on a cluster where it already runs: say where that is.
    from ray.serve.context import _get_global_client  # pinned Ray: no public reader

    proxy = _get_global_client().http_config
    if (proxy.host, proxy.port) != (host, port):
        log.warning("Serve already runs on this cluster; its proxy is at %s:%s, not %s:%s",
                    proxy.host, proxy.port, host, port)  # fmt: skip
    serve.run(
        application(environment, scale, cpus=cpus),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
    )
    shown = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"http://{'127.0.0.1' if proxy.host in ('0.0.0.0', '::') else shown}:{proxy.port}"


def undeploy() -> None:
    """Take the app down; each replica ends its running predictions and writes its
    logbook before it stops (``GRACEFUL_S``)."""
    from ray import serve

    from .metrics_hub import drop_hub

    serve.delete(APP_NAME)
    drop_hub()


def check_detach(detach: bool, address: str | None) -> None:
    """A local Ray ends with the command that started it: nothing to detach from."""
    if detach and not (address or os.environ.get("RAY_ADDRESS")):
        raise InvalidInputError(
            "--detach needs a cluster that outlives this command",
            field="detach",
            fix="give --address (or RAY_ADDRESS) of a running cluster",
        )


def serve_on_ray(
    settings: Any,
    endpoint: str,
    scale: Scale,
    *,
    address: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    cpus: float = 1.0,
    detach: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """``stoa serve --ray``: deploy, then (unless ``detach``) hold the app until
    SIGINT or SIGTERM and take it down, every replica's logbook written."""
    from stoa.client import LocalClient
    from stoa.serve.server.app import check_bind

    from .cluster import connect, sharing_warnings

    check_detach(detach, address)
    with LocalClient(settings=settings) as client:  # a public bind needs tokens: say so here
        check_bind(host, client)
    ray = connect(settings, address)  # sets Ray's own SIGTERM handler: exit at once
    stop = threading.Event()
    if not detach:  # ours, before the deploy: a SIGTERM while it runs still drains
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
    for warning in sharing_warnings(settings, ray):
        say(f"warning: {warning}")
    from ray.exceptions import RayError

    try:
        url = deploy(settings, endpoint, scale, host=host, port=port, cpus=cpus)
    except (RuntimeError, RayError) as exc:  # a replica's constructor failed, or the
        # proxy did not start (a node too busy to pass its health checks); Serve logged why
        with contextlib.suppress(Exception):  # Serve itself may never have started
            undeploy()  # leave no failed application on a cluster that outlives this command
        raise ConfigurationError(
            f"Ray Serve could not start the application: {str(exc).splitlines()[0]}",
            field="ray",
            fix="read Serve's log above (a replica's model that does not load, a store "
            "its node cannot reach, a node too busy for the proxy's health checks), or "
            "run `stoa doctor --ray`",
        ) from None
    count = (f"{scale.replicas} replica(s)" if scale.autoscale is None
             else f"{scale.autoscale[0]}-{scale.autoscale[1]} replicas")  # fmt: skip
    say(f"serving endpoint {endpoint} on Ray Serve ({count}): POST {url}/invocations")
    if detach:
        return
    stop.wait()
    say("stopping: replicas finish their requests and write their logbooks")
    undeploy()
    ray.shutdown()
