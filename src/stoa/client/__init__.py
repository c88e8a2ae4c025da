"""``stoa.Client``: one attribute per resource, over the local stores or a server.

``Client()`` reads settings; when ``url`` (or ``STOA_URL``) is set it talks to a server,
otherwise it opens the local stores. Each resource (``client.models``, ``client.runs``,
``client.kbs``, …) lives in its own module and declares each operation once: the same
declaration is its in-process body, its HTTP call and the server's route. The CLI is
built on this class, so the Python API, the REST route and the CLI share one
implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stoa.client._operation import Resource
from stoa.client._transport import Http, Local, Transport, default_actor
from stoa.client.activity import Activity
from stoa.client.admin import Admin
from stoa.client.alerts import Alerts
from stoa.client.batch import Batch
from stoa.client.datasets import Datasets
from stoa.client.endpoints import Endpoints
from stoa.client.experiments import Experiments
from stoa.client.feedback import Feedback
from stoa.client.judges import Judges
from stoa.client.kbs import KnowledgeBases
from stoa.client.metrics import Metrics
from stoa.client.models import Models
from stoa.client.monitor import Monitor
from stoa.client.predictions import Predictions
from stoa.client.prompts import Prompts
from stoa.client.registry import Versions
from stoa.client.reviews import Reviews
from stoa.client.runs import Runs
from stoa.client.scans import Scans
from stoa.client.selections import Selections
from stoa.client.solutions import Solutions
from stoa.client.tokens import Tokens
from stoa.core.errors import InvalidInputError
from stoa.core.settings import Settings
from stoa.develop.active_run import RunContext

#: Every resource, in the order the server mounts their routes.
RESOURCES: tuple[type[Resource], ...] = (
    Models, Prompts, Datasets, Solutions, Runs, KnowledgeBases, Scans, Tokens, Selections, Admin,
    Activity, Endpoints, Predictions, Reviews, Alerts, Metrics, Judges, Feedback,
    Monitor, Experiments, Batch,
)  # fmt: skip
KINDS: dict[str, type[Versions]] = {r.kind: r for r in RESOURCES if issubclass(r, Versions)}


class Client:
    """Create with ``Client()``; returns a ``LocalClient`` or an ``HttpClient``."""

    models: Models
    prompts: Prompts
    datasets: Datasets
    runs: Runs
    kbs: KnowledgeBases
    scans: Scans
    tokens: Tokens
    selections: Selections
    solutions: Solutions
    endpoints: Endpoints
    predictions: Predictions
    reviews: Reviews
    admin: Admin
    activity: Activity
    alerts: Alerts
    metrics: Metrics
    judges: Judges
    feedback: Feedback
    monitor: Monitor
    experiments: Experiments
    batch: Batch
    _transport: Transport

    def __new__(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        if cls is not Client:
            return super().__new__(cls)
        settings: Settings = kwargs.get("settings") or Settings()
        target = HttpClient if url or settings.url else LocalClient
        return super().__new__(target)

    def _bind(self, transport: Transport) -> None:
        self._transport = transport
        for resource in RESOURCES:
            setattr(self, resource.name, resource(self))

    def of_kind(self, kind: str) -> Versions:
        """``client.models``, ``client.prompts`` or ``client.datasets`` by registry kind."""
        if kind not in KINDS:
            raise InvalidInputError(
                f"unknown kind {kind!r}", field="kind", fix=f"use one of {', '.join(KINDS)}"
            )
        return getattr(self, KINDS[kind].name)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        """The flat methods of Stoa 0.1 (``client.log_model``, ``client.show("model", …)``),
        each a thin alias of one resource method; new code uses the resources."""
        if name in _ALIASES:
            resource, method = _ALIASES[name]
            return getattr(getattr(self, resource), method)
        if name in _BY_KIND:
            return lambda kind, *args, **kwargs: _by_kind(self, name, kind, *args, **kwargs)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class LocalClient(Client):
    """Works directly on the stores named by ``Settings``; no server involved."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        home: str | Path | None = None,
        gate: Any = None,
        actor: str | None = None,
    ):
        if settings is None:
            # An explicit home holds everything: STOA_DATABASE_URL and STOA_BLOB_URL from
            # the environment must not send part of the state elsewhere.
            settings = (
                Settings(home=Path(home), database_url=None, blob_url=None)
                if home is not None
                else Settings()
            )
        self._bind(Local(settings, gate=gate, actor=actor))

    @property
    def stores(self) -> Local:
        """The database, blob store, registry, tokens and knowledge bases themselves."""
        assert isinstance(self._transport, Local)
        return self._transport

    @property
    def actor(self) -> str:
        return self.stores.actor

    def acting_as(self, actor: str) -> LocalClient:
        """The same stores, with changes recorded under ``actor`` (the server's callers)."""
        view = object.__new__(LocalClient)
        view._bind(self.stores.acting_as(actor))
        return view


class HttpClient(Client):
    """The same resources over the REST API of a Stoa server."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 60.0,
        **_: Any,
    ):
        settings = settings or Settings()
        self._bind(Http(url or settings.url or "", token or settings.token, timeout=timeout))

    @property
    def url(self) -> str:
        assert isinstance(self._transport, Http)
        return self._transport.url


def start_run(
    name: str = "run",
    *,
    client: Client | None = None,
    inputs: Iterable[str] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: Any = None,
    capture_environment: bool = True,
    flush_every: int = 1000,
    flush_seconds: float = 1.0,
) -> RunContext:
    """Open a run: ``with stoa.start_run("train") as run:`` or ``@stoa.start_run("train")``.

    ``inputs`` are dataset refs the run reads (lineage); ``parent`` nests it (Optuna
    trials under a study run); a run started inside another becomes its child. Without
    ``client`` it logs through ``Client()``, which reads ``STOA_*``.
    """
    return (client or Client()).runs.start(
        name, inputs=inputs, params=params, tags=tags, parent=parent,
        capture_environment=capture_environment, flush_every=flush_every,
        flush_seconds=flush_seconds,
    )  # fmt: skip


# Stoa 0.1's flat client methods and the resource method each one now calls.
_ALIASES = {
    "register_model": ("models", "register"), "log_model": ("models", "log"),
    "load_model": ("models", "load"), "pull_model": ("models", "pull"),
    "register_prompt": ("prompts", "register"), "render_prompt": ("prompts", "render"),
    "register_dataset": ("datasets", "register"), "scan": ("scans", "create"),
    "start_run": ("runs", "start"), "create_run": ("runs", "create"),
    "log_batch": ("runs", "log_batch"), "finish_run": ("runs", "finish"),
    "get_run": ("runs", "get"), "search_runs": ("runs", "search"),
    "compare_runs": ("runs", "compare"), "metric_history": ("runs", "metric_history"),
    "log_run_artifact": ("runs", "log_artifact"),
    "create_kb": ("kbs", "create"), "list_kbs": ("kbs", "list"), "show_kb": ("kbs", "show"),
    "ingest_kb": ("kbs", "ingest"), "ingest_kb_documents": ("kbs", "ingest_documents"),
    "query_kb": ("kbs", "query"), "delete_kb_documents": ("kbs", "delete_documents"),
    "eval_kb": ("kbs", "eval"), "create_token": ("tokens", "create"),
    "list_tokens": ("tokens", "list"), "revoke_token": ("tokens", "revoke"),
}  # fmt: skip
# Flat methods that took the kind first: ``client.show("model", ref)``.
_BY_KIND = frozenset(
    {"list", "show", "versions", "search", "archive", "review", "set_alias", "delete_alias",
     "alias_history", "lineage", "download"}
)  # fmt: skip


def _by_kind(client: Client, method: str, kind: str, *args: Any, **kwargs: Any) -> Any:
    if kind == "run" and method == "lineage":
        return client.runs.lineage(*args, **kwargs)
    resource = client.of_kind(kind)
    if method == "review":
        approve = kwargs.pop("approve")
        return (resource.approve if approve else resource.reject)(*args, **kwargs)
    return getattr(resource, method)(*args, **kwargs)


__all__ = [
    "RESOURCES",
    "Client",
    "HttpClient",
    "LocalClient",
    "default_actor",
    "start_run",
]
