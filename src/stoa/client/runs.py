"""``client.runs``: tracked training and evaluation runs, their metrics and artifacts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from stoa.client._operation import Resource, Upload, Wire, operation, remote_variant
from stoa.client._transport import Http, seg
from stoa.client.registry import blob_response
from stoa.core.blobs import ensure_absent, parse_manifest, staged_folder
from stoa.core.errors import IntegrityError, InvalidInputError, NotFoundError
from stoa.core.names import safe_relpath
from stoa.develop import tracking
from stoa.develop.active_run import RunContext
from stoa.govern.types import LineageInfo, MetricPoint, RunDetail, RunInfo

MAX_COMPARE = 100


def _artifact_entry(run: RunDetail, name: str) -> dict[str, Any]:
    """The artifact a run stored under ``name``."""
    rel = safe_relpath(name, "name")
    for entry in run.artifacts:
        if entry["path"] == rel:
            return entry
    stored = ", ".join(a["path"] for a in run.artifacts) or "none"
    raise NotFoundError(
        f"run {run.info.id} has no artifact {rel!r}", field="name", fix=f"it stored: {stored}"
    )


def _download_artifact_over_http(resource: Runs, run_id: str, name: str, dest: str | Path) -> Path:
    """Fetch a run artifact and verify every byte against the hashes the server recorded."""
    run = resource.get(run_id)
    entry = _artifact_entry(run, name)
    dest = ensure_absent(Path(dest))
    http = resource._http
    route = f"/runs/{seg(run.info.id)}/artifacts/" + "/".join(map(seg, entry["path"].split("/")))
    if entry["artifact"] == "file":
        return http.fetch(route, entry["sha256"], dest)
    manifest = http.call("GET", route).content
    if hashlib.sha256(manifest).hexdigest() != entry["sha256"]:
        raise IntegrityError("the manifest does not match its hash", field="manifest")
    with staged_folder(dest) as tmp:
        for rel, item in parse_manifest(manifest).items():
            http.fetch(f"{route}?file={quote(rel)}", str(item["sha256"]), tmp / rel)
    return dest


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
        offset: int = 0,
    ) -> list[RunDetail]:
        """Runs whose params and tags match and whose latest metric values meet each
        condition (``acc>0.9``); ``order_by`` such as ``-metrics.acc`` or ``created_at``;
        ``offset`` skips that many matches (the next page starts at ``offset + limit``)."""
        return tracking.search(
            self._local.db, params=params, tags=tags, metrics=metrics or (), name=name,
            status=status, parent_id=parent_id, order_by=order_by, limit=limit, offset=offset,
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

    @operation("GET", "/runs/{run_id}/curves/{key}", scope="read")
    def metric_curve(
        self, run_id: str, key: str, max_points: int = tracking.CURVE_POINTS
    ) -> tracking.MetricCurve:
        """One metric by step for a chart: the last value at each step, thinned to at most
        ``max_points`` points that keep the first, the last and each stretch's extremes."""
        return tracking.curve(self._local.db, run_id, key, max_points)

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

    @remote_variant(_download_artifact_over_http)
    def download_artifact(self, run_id: str, name: str, dest: str | Path) -> Path:
        """Write a verified copy of the artifact the run stored as ``name`` to ``dest``,
        which must not exist; a folder is rebuilt whole or not at all."""
        entry = _artifact_entry(self.get(run_id), name)
        blobs = self._local.blobs
        return blobs.export(entry["sha256"], entry["artifact"], ensure_absent(Path(dest)))

    # ``path`` (the artifact's name), as the registry's ``files/{path:path}`` route names it.
    @operation("GET", "/runs/{run_id}/artifacts/{path:path}", scope="read", raw=True)
    def _artifact(self, run_id: str, path: str, file: str | None = None) -> Any:
        """A run artifact's bytes, or a folder's manifest; with ``file``, one file of that
        folder. Headers carry its kind (``X-Stoa-Artifact``) and hash (``X-Stoa-Sha256``)."""
        from starlette.responses import Response

        entry = _artifact_entry(self.get(run_id), path)
        blobs = self._local.blobs
        if file is not None:
            rel = safe_relpath(file, "file")
            if entry["artifact"] != "folder":
                raise InvalidInputError(
                    f"{entry['path']} is a single file", field="file", fix="leave file out"
                )
            item = blobs.read_manifest(entry["sha256"]).get(rel)
            if item is None:
                raise NotFoundError(f"{entry['path']} has no file {rel!r}", field="file")
            return blob_response(self._local.blobs, str(item["sha256"]), int(item["size"]))
        headers = {"X-Stoa-Artifact": entry["artifact"], "X-Stoa-Sha256": entry["sha256"]}
        if entry["artifact"] == "folder":
            manifest = blobs.read_bytes(entry["sha256"])
            return Response(manifest, media_type="application/json", headers=headers)
        # The registry's downloads and these share one way of sending a blob: verified
        # before the first byte up to a size, streamed and checked on the way above it.
        return blob_response(self._local.blobs, entry["sha256"], int(entry["size"]), headers)

    @operation("DELETE", "/runs/{run_id}", scope="admin")
    def delete(self, run_id: str) -> RunInfo:
        """Remove a run for good (admins), refused while a child run or a registered
        version names it; its artifact bytes go at the next ``stoa gc`` unless shared."""
        local = self._local
        return tracking.delete_run(local.db, run_id, actor=local.actor)

    @operation("GET", "/runs/{run_id}/lineage", scope="read")
    def lineage(self, run_id: str, depth: int = 16) -> LineageInfo:
        """The datasets the run read and the models it produced."""
        local = self._local
        full_id = tracking.resolve_run_id(local.db, run_id)
        return local.registry.lineage("run", full_id, depth=depth)
