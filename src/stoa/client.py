"""``stoa.Client``: one set of methods, in-process against a home or over HTTP.

``Client()`` reads settings; when ``url`` (or ``STOA_URL``) is set it talks to a
server, otherwise it opens the local stores. The CLI is built on this class and the
server's routes call ``LocalClient``, so all three share one implementation.
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stoa.core import errors
from stoa.core.blobs import (
    BlobStore,
    build_manifest,
    ensure_absent,
    parse_manifest,
    staged_folder,
)
from stoa.core.db import Database
from stoa.core.errors import IntegrityError, StoaError
from stoa.core.names import safe_relpath, validate_name
from stoa.core.settings import Settings
from stoa.core.tokens import NewToken, TokenInfo, TokenStore
from stoa.govern import datasets, models, prompts, tracking
from stoa.govern.active_run import RunContext
from stoa.govern.gate import Gate
from stoa.govern.registry import Registry, check_kind
from stoa.govern.scan.policy import load_policy
from stoa.govern.scan.scan_gate import ScanGate
from stoa.govern.types import (
    AliasInfo,
    AuditInfo,
    Kind,
    LineageInfo,
    MetricPoint,
    RunDetail,
    RunInfo,
    SeriesInfo,
    VersionInfo,
)


def default_actor() -> str:
    try:
        return os.environ.get("STOA_USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class Client:
    """Create with ``Client()``; returns a ``LocalClient`` or an ``HttpClient``."""

    def __new__(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        if cls is not Client:
            return super().__new__(cls)
        settings: Settings = kwargs.get("settings") or Settings()
        url = url or settings.url
        target = HttpClient if url else LocalClient
        return super().__new__(target)

    def start_run(self, name: str = "run", **options: Any) -> RunContext:
        """A tracked run: ``with client.start_run("train", params={...}) as run:``.

        Also a decorator. Options: ``inputs``, ``params``, ``tags``, ``parent``,
        ``capture_environment``, ``flush_every``, ``flush_seconds``.
        """
        return RunContext(self, name, **options)

    def compare_runs(self, run_ids: Iterable[str]) -> list[RunDetail]:
        """The runs side by side, in the order given."""
        ids = list(run_ids)
        if not 1 <= len(ids) <= 100:
            raise errors.InvalidInputError("compare 1 to 100 runs", field="run_ids")
        return [self.get_run(run_id) for run_id in ids]


class LocalClient(Client):
    """Works directly on the stores named by ``Settings``; no server involved."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        home: str | Path | None = None,
        gate: Gate | None = None,
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
        self.settings = settings
        settings.resolved_home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.resolved_database_url)
        self.blobs = BlobStore(settings.resolved_blob_url)
        self.registry = Registry(self.db, self.blobs)
        self.tokens = TokenStore(self.db)
        self.gate: Gate = gate or ScanGate(load_policy(settings.scan_policy))
        self.actor = actor or default_actor()
        self._kbs_box: list[Any] = []  # shared by every acting_as view of this client

    def close(self) -> None:
        for kbs in self._kbs_box:
            kbs.close()
        self.db.dispose()

    def acting_as(self, actor: str) -> LocalClient:
        """The same stores, with changes recorded under ``actor`` (the server's callers)."""
        view = copy.copy(self)
        view.actor = actor
        return view

    # models
    def register_model(self, name: str, path: str | Path, **kwargs: Any) -> VersionInfo:
        kwargs.setdefault("actor", self.actor)
        return models.register_model(self.registry, self.gate, name, Path(path), **kwargs)

    def log_model(self, name: str, model: Any, **kwargs: Any) -> VersionInfo:
        kwargs.setdefault("actor", self.actor)
        return models.log_model(self.registry, self.gate, name, model, **kwargs)

    def pull_model(self, source: str, name: str, **kwargs: Any) -> VersionInfo:
        """Policy, then download, then scan, then register: see ``stoa.govern.pull``."""
        from stoa.govern.pull import pull_model

        kwargs.setdefault("actor", self.actor)
        policy = self.gate.policy if isinstance(self.gate, ScanGate) else ScanGate().policy
        return pull_model(self.registry, policy, source, name, **kwargs)

    def scan(
        self, path: str | Path, *, license: str | None = None, require_license: bool = False
    ) -> dict[str, Any]:
        """Scan without storing anything, under the policy this client's gate applies."""
        gate = self.gate if isinstance(self.gate, ScanGate) else ScanGate()
        path = Path(path)
        if not path.exists():
            raise errors.InvalidInputError(f"{path} does not exist", field="path")
        report = gate.report(
            path, license=models.check_license(license), require_license=require_license
        )
        return report.to_dict()

    def load_model(self, ref: str) -> Any:
        return models.load_model(self.registry, ref)

    # prompts
    def register_prompt(self, name: str, template: str, **kwargs: Any) -> VersionInfo:
        kwargs.setdefault("actor", self.actor)
        return prompts.register_prompt(self.registry, name, template, **kwargs)

    def render_prompt(self, ref: str, values: Mapping[str, Any]) -> str:
        return prompts.render_prompt(self.registry, ref, values)

    # datasets
    def register_dataset(self, name: str, path: str | Path, **kwargs: Any) -> VersionInfo:
        kwargs.setdefault("actor", self.actor)
        return datasets.register_dataset(self.registry, name, Path(path), **kwargs)

    # any kind
    def list(self, kind: Kind) -> list[SeriesInfo]:
        return self.registry.list_series(check_kind(kind))

    def show(self, kind: Kind, ref: str) -> VersionInfo:
        return self.registry.get(check_kind(kind), ref)

    def versions(self, kind: Kind, name: str, status: str | None = None) -> list[VersionInfo]:
        return self.registry.list_versions(check_kind(kind), name, status=status)

    def search(
        self,
        kind: Kind,
        tags: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[VersionInfo]:
        return self.registry.search(
            check_kind(kind), tags=tags, name=name, status=status, limit=limit
        )

    def archive(self, kind: Kind, ref: str) -> VersionInfo:
        return self.registry.archive(check_kind(kind), ref, actor=self.actor)

    def review(self, kind: Kind, ref: str, *, approve: bool, note: str = "") -> VersionInfo:
        return self.registry.review(
            check_kind(kind), ref, approve=approve, actor=self.actor, note=note
        )

    def set_alias(self, kind: Kind, name: str, version: int, alias: str) -> AliasInfo:
        return self.registry.set_alias(check_kind(kind), name, version, alias, actor=self.actor)

    def delete_alias(self, kind: Kind, name: str, alias: str) -> None:
        self.registry.delete_alias(check_kind(kind), name, alias, actor=self.actor)

    def alias_history(self, kind: Kind, name: str) -> list[AuditInfo]:
        return self.registry.alias_history(check_kind(kind), name)

    def lineage(self, kind: str, ref: str, depth: int = 16) -> LineageInfo:
        kind = kind if kind == "run" else check_kind(kind)
        return self.registry.lineage(kind, ref, depth=depth)  # type: ignore[arg-type]

    def create_run(self, name: str, inputs: Iterable[str] = (), **options: Any) -> RunInfo:
        """``options``: status ("finished" or "running"), params, tags, parent_id, environment."""
        return self.registry.create_run(name, actor=self.actor, inputs=inputs, **options)

    def log_batch(self, run_id: str, **values: Any) -> None:
        tracking.log_batch(self.db, run_id, **values)

    def finish_run(self, run_id: str, status: str = "finished") -> RunInfo:
        return tracking.finish(self.db, run_id, status)

    def get_run(self, run_id: str) -> RunDetail:
        return tracking.get(self.db, run_id)

    def search_runs(self, **filters: Any) -> list[RunDetail]:
        """``name``, ``status``, ``params``, ``tags``, ``metrics`` (["acc>0.9"]),
        ``order_by`` ("-metrics.acc"), ``limit``, ``parent_id``."""
        return tracking.search(self.db, **filters)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return tracking.history(self.db, run_id, key)

    def log_run_artifact(self, run_id: str, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise errors.InvalidInputError(f"{path} does not exist", field="path")
        rel = safe_relpath(name or path.name, "name")
        tracking.get(self.db, run_id)  # a missing run fails before any bytes are stored
        tracking.log_artifact(self.db, run_id, rel, self.blobs.put_path(path))

    def download(self, kind: Kind, ref: str, dest: str | Path) -> Path:
        """Write a verified copy of a version's artifact to ``dest``."""
        info = self.show(kind, ref)
        if kind == "model":
            models.ensure_allowed(info)
        return self.blobs.export(info.sha256, info.artifact, ensure_absent(Path(dest)))

    # knowledge bases
    @property
    def kbs(self) -> Any:
        """Imported on first use: the CLI's other commands do not pay for NumPy and models."""
        if not self._kbs_box:
            from stoa.build.rag.kb import KnowledgeBases

            self._kbs_box.append(KnowledgeBases(self.db, self.settings.resolved_home))
        return self._kbs_box[0]

    def create_kb(self, name: str, **options: Any) -> dict[str, Any]:
        return self.kbs.create(name, actor=self.actor, **options).to_dict()

    def list_kbs(self) -> list[dict[str, Any]]:
        return [kb.to_dict() for kb in self.kbs.list()]

    def show_kb(self, name: str) -> dict[str, Any]:
        return self.kbs.show(name)

    def ingest_kb(
        self,
        name: str,
        paths: Iterable[str | Path],
        *,
        sync: bool = False,
        patterns: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Load files, folders or URLs here, then ingest; ``sync`` removes what is gone."""
        from stoa.build.rag.load import DEFAULT_PATTERNS, load_paths

        self.kbs.get(name)  # an unknown name fails before any file is read
        paths = [str(p) for p in paths]
        if not paths:
            raise errors.InvalidInputError("name at least one file, folder or URL", field="paths")
        documents, failures = load_paths(
            paths, patterns=tuple(patterns or DEFAULT_PATTERNS), metadata=dict(metadata or {})
        )
        roots = [_root_uri(p) for p in paths] if sync else None
        return self.kbs.ingest(
            name, documents, failures, sync_roots=roots, progress=progress, actor=self.actor
        ).to_dict()

    def ingest_kb_documents(
        self, name: str, documents: Iterable[Mapping[str, Any]], *, sync_prefixes: Any = None
    ) -> dict[str, Any]:
        """Documents a client sent as bytes (the server never reads paths it is given)."""
        from stoa.build.rag.load import inline_documents

        self.kbs.get(name)
        loaded, failures = inline_documents(documents)
        return self.kbs.ingest(
            name, loaded, failures, sync_roots=sync_prefixes, actor=self.actor
        ).to_dict()

    def query_kb(self, name: str, query: str, **options: Any) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.kbs.query(name, query, **options)]

    def delete_kb_documents(self, name: str, uris: Iterable[str]) -> dict[str, Any]:
        return self.kbs.delete_documents(name, list(uris), actor=self.actor)

    def eval_kb(self, name: str, qa: str, **options: Any) -> dict[str, Any]:
        """``qa`` is the JSONL text itself, so the same call works over HTTP."""
        return self.kbs.evaluate(name, qa, registry=self.registry, actor=self.actor, **options)

    # tokens
    def create_token(self, name: str, scopes: Iterable[str]) -> NewToken:
        return self.tokens.create(name, scopes, actor=self.actor)

    def list_tokens(self) -> list[TokenInfo]:
        return self.tokens.list()

    def revoke_token(self, token_id: str) -> TokenInfo:
        return self.tokens.revoke(token_id, actor=self.actor)


def _root_uri(path: str) -> str:
    """The URI prefix a sync compares stored documents against."""
    if "://" in path and not path.startswith("file://"):
        return path.rstrip("/")
    return Path(path.removeprefix("file://")).resolve().as_uri()


_ERRORS = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, StoaError)
}


class HttpClient(Client):
    """The same methods as ``LocalClient``, over the REST API."""

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
        self.url = (url or settings.url or "").rstrip("/")
        token = token or settings.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204:
            return None
        return response.json()

    # models
    def register_model(self, name: str, path: str | Path, **kwargs: Any) -> VersionInfo:
        kwargs.pop("progress", None)  # the server stores the upload; nothing to report here
        return VersionInfo(**self._upload("/models", Path(path), _form(name, kwargs)))

    def pull_model(self, source: str, name: str, **kwargs: Any) -> VersionInfo:
        """Fetch here under the default policy's pre-checks; the server's gate scans the upload."""
        from stoa.govern.pull import fetch
        from stoa.govern.scan.policy import default_policy

        license = models.check_license(kwargs.get("license"))
        with tempfile.TemporaryDirectory(prefix="stoa-pull-") as tmp:
            fetched = fetch(default_policy(), source, license, Path(tmp) / "artifact")
            kwargs.setdefault("metadata", {"source": source})
            return self.register_model(name, fetched, **kwargs)

    def scan(
        self, path: str | Path, *, license: str | None = None, require_license: bool = False
    ) -> dict[str, Any]:
        form: dict[str, Any] = {"require_license": str(require_license).lower()}
        if license:
            form["license"] = license
        return self._upload("/scans", Path(path), form)

    def _upload(self, route: str, path: Path, form: dict[str, Any]) -> Any:
        """POST a file, or a folder as files plus their relative paths, with ``form``."""
        if path.is_dir():
            rels = sorted(build_manifest(path)[0])
            handles = [open(path / rel, "rb") for rel in rels]  # noqa: SIM115 - closed below
            form["paths"] = rels
            files = [("files", (Path(rel).name, h)) for rel, h in zip(rels, handles, strict=True)]
        elif path.is_file():
            handles = [open(path, "rb")]  # noqa: SIM115
            files = [("files", (path.name, handles[0]))]
        else:
            raise errors.InvalidInputError(f"{path} does not exist", field="path")
        try:
            return self._call("POST", route, data=form, files=files)
        finally:
            for handle in handles:
                handle.close()

    def log_model(self, name: str, model: Any, **kwargs: Any) -> VersionInfo:
        with models.saved(model) as (path, described):
            return self.register_model(name, path, **described, **kwargs)

    def load_model(self, ref: str) -> Any:
        info = self.show("model", ref)
        models.ensure_loadable(info)
        with tempfile.TemporaryDirectory(prefix="stoa-") as tmp:
            path = self.download("model", info.ref, Path(tmp) / "artifact")
            return models.load_artifact(info, path)

    def download(self, kind: Kind, ref: str, dest: str | Path) -> Path:
        """Fetch an artifact and verify every byte against the hashes the server recorded."""
        info = self.show(kind, ref)
        dest = ensure_absent(Path(dest))
        base = f"/{check_kind(kind)}s/{_seg(info.ref)}/artifact"
        if info.artifact == "file":
            return self._fetch(base, info.sha256, dest)
        manifest = self.http.get(base)
        if manifest.status_code >= 400:
            raise _error_from(manifest)
        if hashlib.sha256(manifest.content).hexdigest() != info.sha256:
            raise IntegrityError("the manifest does not match its hash", field="manifest")
        with staged_folder(dest) as tmp:
            for rel, entry in parse_manifest(manifest.content).items():
                url = f"/{kind}s/{_seg(info.ref)}/files/{'/'.join(map(_seg, rel.split('/')))}"
                self._fetch(url, str(entry["sha256"]), tmp / rel)
        return dest

    def _fetch(self, path: str, sha256: str, dest: Path) -> Path:
        """Stream one file through a temporary name; ``dest`` only ever holds verified bytes."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".stoa-")
        try:
            with os.fdopen(fd, "wb") as out, self.http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise IntegrityError(f"download of {path} does not match its hash", field="sha256")
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, httpx.RemoteProtocolError):
                # The server checks a large blob's hash while streaming it and breaks off
                # on a mismatch.
                raise IntegrityError(
                    f"the server broke off the download of {path}",
                    field="sha256",
                    fix="the stored copy may fail its hash check; see the server log",
                ) from None
            raise
        os.replace(tmp, dest)
        return dest

    # prompts
    def register_prompt(self, name: str, template: str, **kwargs: Any) -> VersionInfo:
        body = {"name": name, "template": template, **kwargs}
        return VersionInfo(**self._call("POST", "/prompts", json=body))

    def render_prompt(self, ref: str, values: Mapping[str, Any]) -> str:
        body = {"values": dict(values)}
        return self._call("POST", f"/prompts/{_seg(ref)}/render", json=body)["text"]

    # datasets
    def register_dataset(self, name: str, path: str | Path, **kwargs: Any) -> VersionInfo:
        path = Path(path)
        kwargs.pop("progress", None)
        if not path.is_file():
            raise errors.InvalidInputError(f"{path} is not a file", field="path")
        with open(path, "rb") as handle:
            return VersionInfo(
                **self._call(
                    "POST",
                    "/datasets",
                    data=_form(name, kwargs),
                    files=[("file", (path.name, handle))],
                )
            )

    # any kind
    def list(self, kind: Kind) -> list[SeriesInfo]:
        return [SeriesInfo(**s) for s in self._call("GET", f"/{check_kind(kind)}s")]

    def show(self, kind: Kind, ref: str) -> VersionInfo:
        return VersionInfo(**self._call("GET", f"/{check_kind(kind)}s/{_seg(ref)}"))

    def versions(self, kind: Kind, name: str, status: str | None = None) -> list[VersionInfo]:
        params = {"status": status} if status else {}
        rows = self._call(
            "GET", f"/{check_kind(kind)}s/{validate_name(name)}/versions", params=params
        )
        return [VersionInfo(**v) for v in rows]

    def search(
        self,
        kind: Kind,
        tags: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[VersionInfo]:
        params: dict[str, Any] = {
            "limit": limit,
            "tag": [f"{k}={v}" for k, v in (tags or {}).items()],
        }
        if name:
            params["name"] = name
        if status:
            params["status"] = status
        rows = self._call("GET", f"/{check_kind(kind)}s/-/search", params=params)
        return [VersionInfo(**v) for v in rows]

    def archive(self, kind: Kind, ref: str) -> VersionInfo:
        return VersionInfo(**self._call("POST", f"/{check_kind(kind)}s/{_seg(ref)}/archive"))

    def review(self, kind: Kind, ref: str, *, approve: bool, note: str = "") -> VersionInfo:
        route = f"/{check_kind(kind)}s/{_seg(ref)}/{'approve' if approve else 'reject'}"
        return VersionInfo(**self._call("POST", route, json={"note": note}))

    def set_alias(self, kind: Kind, name: str, version: int, alias: str) -> AliasInfo:
        path = f"/{check_kind(kind)}s/{validate_name(name)}/aliases/{_seg(alias)}"
        return AliasInfo(**self._call("PUT", path, json={"version": version}))

    def delete_alias(self, kind: Kind, name: str, alias: str) -> None:
        self._call("DELETE", f"/{check_kind(kind)}s/{validate_name(name)}/aliases/{_seg(alias)}")

    def alias_history(self, kind: Kind, name: str) -> list[AuditInfo]:
        rows = self._call("GET", f"/{check_kind(kind)}s/{validate_name(name)}/aliases")
        return [AuditInfo(**r) for r in rows]

    def lineage(self, kind: str, ref: str, depth: int = 16) -> LineageInfo:
        prefix = "runs" if kind == "run" else f"{check_kind(kind)}s"
        return LineageInfo(
            **self._call("GET", f"/{prefix}/{_seg(ref)}/lineage", params={"depth": depth})
        )

    def create_run(self, name: str, inputs: Iterable[str] = (), **options: Any) -> RunInfo:
        body = {"name": name, "inputs": list(inputs)}
        body.update({k: v for k, v in options.items() if v is not None})
        return RunInfo(**self._call("POST", "/runs", json=body))

    def log_batch(self, run_id: str, **values: Any) -> None:
        body = {k: v for k, v in values.items() if v is not None and k != "metrics"}
        body["metrics"] = [
            dict(zip(("key", "value", "step", "timestamp"), p, strict=False))
            if isinstance(p, tuple | list)
            else p
            for p in values.get("metrics") or ()
        ]
        self._call("POST", f"/runs/{_seg(run_id)}/batch", json=body)

    def finish_run(self, run_id: str, status: str = "finished") -> RunInfo:
        route = f"/runs/{_seg(run_id)}/finish"
        return RunInfo(**self._call("POST", route, json={"status": status}))

    def get_run(self, run_id: str) -> RunDetail:
        return RunDetail(**self._call("GET", f"/runs/{_seg(run_id)}"))

    def search_runs(self, **filters: Any) -> list[RunDetail]:
        params: list[tuple[str, Any]] = []
        for key, value in filters.items():
            if key in ("params", "tags"):
                params += [(key[:-1], f"{k}={v}") for k, v in (value or {}).items()]
            elif key == "metrics":
                params += [("metric", condition) for condition in value or ()]
            elif value is not None:
                params.append((key, value))
        return [RunDetail(**r) for r in self._call("GET", "/runs", params=params)]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        rows = self._call("GET", f"/runs/{_seg(run_id)}/metrics/{_seg(key)}")
        return [MetricPoint(**r) for r in rows]

    def log_run_artifact(self, run_id: str, path: str | Path, name: str | None = None) -> None:
        path = Path(path)
        self._upload(f"/runs/{_seg(run_id)}/artifacts", path, {"name": name or path.name})

    # tokens
    def create_token(self, name: str, scopes: Iterable[str]) -> NewToken:
        return NewToken(
            **self._call("POST", "/tokens", json={"name": name, "scopes": list(scopes)})
        )

    def list_tokens(self) -> list[TokenInfo]:
        return [TokenInfo(**t) for t in self._call("GET", "/tokens")]

    def revoke_token(self, token_id: str) -> TokenInfo:
        return TokenInfo(**self._call("DELETE", f"/tokens/{_seg(token_id)}"))

    # knowledge bases
    def create_kb(self, name: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/kbs", json={"name": name, **options})

    def list_kbs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/kbs")

    def show_kb(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/kbs/{_seg(name)}")

    def ingest_kb(
        self,
        name: str,
        paths: Iterable[str | Path],
        *,
        sync: bool = False,
        patterns: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Files are read here and sent as bytes: the server never reads a caller's paths."""
        import base64

        from stoa.build.rag.load import (
            DEFAULT_PATTERNS,
            LoadError,
            expand_sources,
            read_source,
        )

        paths = [str(p) for p in paths]
        sources = expand_sources(paths, tuple(patterns or DEFAULT_PATTERNS))
        documents = []
        for done, (uri, opener) in enumerate(sources, 1):
            try:
                raw, _ = read_source(opener)
            except (OSError, LoadError) as exc:  # counted as failed by the server, not fatal
                documents.append({"uri": uri, "error": f"unreadable: {exc}"})
                continue
            documents.append({"uri": uri, "content_base64": base64.b64encode(raw).decode(),
                              "metadata": dict(metadata or {})})  # fmt: skip
            if progress:
                progress(done, len(sources), uri)
        roots = [_root_uri(p) for p in paths] if sync else None
        body = {"documents": documents, "sync_prefixes": roots}
        return self._call("POST", f"/kbs/{_seg(name)}/ingest", json=body)

    def query_kb(self, name: str, query: str, **options: Any) -> list[dict[str, Any]]:
        if options.get("reranker"):
            raise errors.InvalidInputError(
                "a reranker runs only in-process: the server does not load a caller's path",
                field="reranker",
            )
        options.pop("reranker", None)
        return self._call("POST", f"/kbs/{_seg(name)}/query", json={"query": query, **options})

    def delete_kb_documents(self, name: str, uris: Iterable[str]) -> dict[str, Any]:
        return self._call("POST", f"/kbs/{_seg(name)}/delete-docs", json={"uris": list(uris)})

    def eval_kb(self, name: str, qa: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", f"/kbs/{_seg(name)}/eval", json={"qa": qa, **options})


def _seg(value: str) -> str:
    """One URL path segment, quoted so that a reference can never add or remove levels."""
    text = quote(str(value), safe="@")
    return text.replace(".", "%2E") if text in (".", "..") else text


def _form(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Multipart fields: scalars as text, mappings and lists as JSON."""
    form: dict[str, Any] = {"name": name}
    for key, value in kwargs.items():
        if value is None:
            continue
        form[key] = json.dumps(value) if isinstance(value, Mapping | list | tuple) else str(value)
    return form


def _error_from(response: httpx.Response) -> StoaError:
    try:
        body = response.json()["error"]
        cls = _ERRORS.get(body.get("code"), StoaError)
        return cls(body["message"], field=body.get("field"), fix=body.get("fix"))
    except (ValueError, KeyError, TypeError):
        return StoaError(f"server answered {response.status_code}: {response.text[:200]}")


__all__ = [
    "Client",
    "HttpClient",
    "LocalClient",
    "default_actor",
]
