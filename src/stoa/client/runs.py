"""``client.runs``: tracked training and evaluation runs, their metrics and artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from stoa.client._operation import Resource, Upload, Wire, operation
from stoa.client._transport import Http
from stoa.core.errors import InvalidInputError
from stoa.core.names import safe_relpath
from stoa.develop import tracking
from stoa.develop.active_run import RunContext
from stoa.govern.types import LineageInfo, MetricPoint, RunDetail, RunInfo

MAX_COMPARE = 100


class Runs(Resource):
    """Also the ``RunSink`` that ``start`` logs into, in process or over HTTP."""

    name = "runs"

    @property
    def store(self) -> str:
        """Where these runs are kept: a run nests under the active one only in the same
        store, so a server's run never names a local parent it cannot see."""
        transport = self._transport
        return f"http:{transport.url}" if isinstance(transport, Http) else f"db:{transport.db.url}"

    def start(self, name: str = "run", **options: Any) -> RunContext:
        """A tracked run: ``with client.runs.start("train", params={...}) as run:``.

        Also a decorator. Options: ``inputs``, ``params``, ``tags``, ``parent``,
        ``capture_environment``, ``flush_every``, ``flush_seconds``.
        """
        return RunContext(self, name, **options)

    @operation("POST", "/runs", scope="write", status=201)
    def create(
        self,
        name: str,
        inputs: list[str] | None = None,
        *,
        status: str = "finished",
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        parent_id: str | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Record a run and the dataset versions it read (``inputs``: lineage).

        ``status="running"`` opens it to log into until ``finish``.
        """
        local = self._local
        return tracking.create_run(
            local.registry, name, actor=local.actor, inputs=inputs or (), status=status,
            params=params, tags=tags, parent_id=parent_id, environment=environment,
        )  # fmt: skip

    @operation("POST", "/runs/{run_id}/batch", scope="write")
    def log_batch(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        metrics: list[Any] | None = None,
    ) -> None:
        """Params, tags and metric points in one transaction: all of them land, or none.

        A point is ``{key, value, step, timestamp}`` (ms) or the same as a list; at most
        10,000 in one call.
        """
        tracking.log_batch(self._local.db, run_id, params=params, tags=tags, metrics=metrics or ())

    @operation("POST", "/runs/{run_id}/finish", scope="write")
    def finish(self, run_id: str, status: str = "finished") -> RunInfo:
        return tracking.finish(self._local.db, run_id, status)

    @operation("GET", "/runs/{run_id}", scope="read")
    def get(self, run_id: str) -> RunDetail:
        return tracking.get(self._local.db, run_id)

    @operation("GET", "/runs", scope="read")
    def search(
        self,
        *,
        params: Annotated[dict[str, str] | None, Wire("param", pairs=True)] = None,
        tags: Annotated[dict[str, str] | None, Wire("tag", pairs=True)] = None,
        metrics: Annotated[list[str] | None, Wire("metric")] = None,
        name: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
    ) -> list[RunDetail]:
        """Runs whose params and tags match and whose latest metric values meet each
        condition (``acc>0.9``); ``order_by`` such as ``-metrics.acc`` or ``created_at``."""
        return tracking.search(
            self._local.db, params=params, tags=tags, metrics=metrics or (), name=name,
            status=status, parent_id=parent_id, order_by=order_by, limit=limit,
        )  # fmt: skip

    @operation("GET", "/runs/-/compare", scope="read")
    def compare(self, run_ids: Annotated[list[str], Wire("ids")]) -> list[RunDetail]:
        """The runs side by side, in the order given."""
        ids = list(run_ids)
        if not 1 <= len(ids) <= MAX_COMPARE:
            raise InvalidInputError(f"compare 1 to {MAX_COMPARE} runs", field="run_ids")
        return [self.get(run_id) for run_id in ids]

    @operation("GET", "/runs/{run_id}/metrics/{key}", scope="read")
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of one metric, by step."""
        return tracking.history(self._local.db, run_id, key)

    def log_artifact(self, run_id: str, path: Path | str, name: str | None = None) -> None:
        """Store a file or folder with the run, under ``name`` (default: its file name)."""
        self._store_artifact(run_id, path, name or Path(path).name)

    @operation("POST", "/runs/{run_id}/artifacts", scope="write")
    def _store_artifact(
        self, run_id: str, path: Annotated[Path | str, Upload()], name: str
    ) -> None:
        """A file, or a folder as files plus relative paths, stored with the run as NAME."""
        path = Path(path)
        if not path.exists():
            raise InvalidInputError(f"{path} does not exist", field="path")
        rel = safe_relpath(name, "name")
        local = self._local
        tracking.get(local.db, run_id)  # a missing run fails before any bytes are stored
        tracking.log_artifact(local.db, run_id, rel, local.blobs.put_path(path))

    @operation("GET", "/runs/{run_id}/lineage", scope="read")
    def lineage(self, run_id: str, depth: int = 16) -> LineageInfo:
        """The datasets the run read and the models it produced."""
        return self._local.registry.lineage("run", run_id, depth=depth)
