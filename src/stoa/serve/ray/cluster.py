"""Reach a Ray cluster, and give every worker the settings this process resolved."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import Any

from stoa.core.errors import ConfigurationError, InvalidInputError
from stoa.core.settings import Settings

#: Variables a worker must share with the driver beyond the resolved stores: the models
#: are offline, and nothing may reach for a hub.
_PASSED = (
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "FSSPEC_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION",
)  # fmt: skip
#: A client's settings: a worker works on the stores themselves, never through a server.
_NOT_PASSED = ("STOA_URL", "STOA_TOKEN")


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error that says how to get it."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigurationError("Ray is not installed", field="ray", fix="pip install 'stoa[ray]'")
    import ray

    return ray


def worker_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``STOA_*`` setting of this process, with the stores resolved to absolute
    places, so a worker on this node opens the same home (a relative ``.stoa`` would
    name the worker's own folder) and one on another node the same services."""
    values = {k: v for k, v in os.environ.items() if k.startswith("STOA_") or k in _PASSED}
    for name in _NOT_PASSED:
        values.pop(name, None)
    values.update({"STOA_HOME": str(settings.resolved_home),
                   "STOA_DATABASE_URL": settings.resolved_database_url,
                   "STOA_BLOB_URL": settings.resolved_blob_url})  # fmt: skip
    if settings.scan_policy is not None:
        values["STOA_SCAN_POLICY"] = str(settings.scan_policy.expanduser().resolve())
    values.update(extra or {})
    return values


def connect(
    settings: Settings,
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    quiet: bool = False,
) -> Any:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``),
    or ``RAY_ADDRESS``, or start a local one on this machine (also what ``local`` asks
    for); every worker of this job gets ``worker_env``. ``quiet`` keeps the workers'
    and Serve's routine logs off this process's terminal. Returns the ``ray`` module."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target not in (None, "local") and num_cpus is not None:
        raise InvalidInputError(
            "--cpus sizes a local Ray only", field="cpus", fix="drop --cpus or --address"
        )
    try:
        ray.init(
            address=target,
            num_cpus=num_cpus,
            runtime_env={"env_vars": worker_env(settings)},
            include_dashboard=False if target in (None, "local") else None,
            logging_level="WARNING",
            log_to_driver=not quiet,
            ignore_reinit_error=True,
        )
        if quiet:
            logging.getLogger("ray.serve").setLevel(logging.WARNING)
    except ConnectionError as exc:
        raise ConfigurationError(
            f"no Ray cluster at {target}: {str(exc).splitlines()[0]}",
            field="address",
            fix="start one with `ray start --head`, or leave --address out to start "
            "a local Ray on this machine",
        ) from None
    return ray


def alive_nodes(ray: Any) -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def sharing_warnings(settings: Settings, ray: Any) -> list[str]:
    """What ``stoa doctor --ray`` warns about this cluster: a SQLite file or a blob folder
    lives on one node, and replicas on the others would open other, empty stores."""
    from stoa.core.doctor import WARN, check_ray_sharing

    nodes = alive_nodes(ray)
    rows = check_ray_sharing(settings, None, lambda _: (nodes, ""))
    return [f"{row.detail} ({row.fix})" for row in rows if row.status == WARN]


def local_only(transport: Any) -> None:
    """``--ray`` work runs beside the stores, never through a Stoa server."""
    from stoa.client._transport import Local

    if not isinstance(transport, Local):
        raise InvalidInputError(
            "--ray runs on the stores, not through a Stoa server",
            field="ray",
            fix="run it where STOA_DATABASE_URL and STOA_BLOB_URL are set (no --url / STOA_URL)",
        )


def address_of(ray: bool | str) -> str | None:
    """``True``: ``RAY_ADDRESS`` or a local Ray; a string: that cluster's address."""
    if isinstance(ray, str):
        if not ray.strip():
            raise InvalidInputError("the Ray address is empty", field="address",
                                    fix="auto, ray://HOST:10001 or HOST:6379")  # fmt: skip
        return ray
    return None
