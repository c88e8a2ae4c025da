"""``client.kbs``: knowledge bases: incremental ingest, retrieval and evaluation.

Over HTTP the client reads files and sends their bytes, so the server never opens a
path or URL that a caller names.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stoa.client._operation import Resource, operation, remote_variant
from stoa.core.errors import InvalidInputError


def _root_uri(path: str) -> str:
    """The URI prefix a sync compares stored documents against."""
    if "://" in path and not path.startswith("file://"):
        return path.rstrip("/")
    return Path(path.removeprefix("file://")).resolve().as_uri()


def document_uri(item: Any) -> Any:
    """The URI ingest stored a document or folder under: a local path resolved as
    ``expand_sources`` does, whether or not it still exists; a URI (or anything but a
    path, for the server to refuse) unchanged."""
    if not isinstance(item, str | Path) or not str(item) or "://" in str(item):
        return item
    return Path(item).resolve().as_uri()


def _offered_embedders_only(resource: KnowledgeBases, values: dict[str, Any]) -> None:
    """A remote caller picks an embedder the server offers; it never names a URL (the
    server would call it, key and all) or a path (the server would load it unscanned)."""
    offered = resource._local.settings.embedders
    fix = (
        f"use 'minilm', model:NAME@VERSION (a registered sentence-transformers model)"
        f"{' or one of ' + ', '.join(sorted(offered)) if offered else ''}; the server's "
        "STOA_EMBEDDERS names the endpoints it may call"
    )
    if values.get("embedder_url") is not None:
        raise InvalidInputError(
            "the server calls only the embedding endpoints it is configured with",
            field="embedder_url",
            fix=fix,
        )
    embedder = values.get("embedder")
    if embedder is None or (
        isinstance(embedder, str)
        and (embedder == "minilm" or embedder in offered or embedder.startswith("model:"))
    ):
        return
    shown = embedder if isinstance(embedder, str) else "an embedder given as settings"
    raise InvalidInputError(f"{shown!r} is not an embedder this server offers",
                            field="embedder", fix=fix)  # fmt: skip


def _ingest_over_http(
    resource: KnowledgeBases,
    name: str,
    paths: Iterable[str | Path],
    *,
    sync: bool = False,
    patterns: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: Any = None,
    ray: bool | str = False,
) -> dict[str, Any]:
    """Files are read here and sent as bytes: the server never reads a caller's paths."""
    from stoa.develop.rag.load import DEFAULT_PATTERNS, LoadError, expand_sources, read_source
    from stoa.serve.ray.cluster import local_only

    if ray:
        local_only(resource._transport)

    paths = [str(p) for p in paths]
    sources = expand_sources(paths, tuple(patterns or DEFAULT_PATTERNS))
    documents: list[dict[str, Any]] = []
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
    return resource.ingest_documents(name, documents, sync_prefixes=roots)


class KnowledgeBases(Resource):
    name = "kbs"

    @operation("POST", "/kbs", scope="write", status=201, guard=_offered_embedders_only)
    def create(
        self,
        name: str,
        *,
        embedder: str | dict[str, Any] | None = None,
        embedder_url: str | None = None,
        backend: str = "local",
        backend_uri: str | None = None,
        chunking: dict[str, Any] | None = None,
        pii: str = "allow",
        description: str = "",
    ) -> dict[str, Any]:
        """A new, empty knowledge base: its embedder, vector backend, chunking and PII policy.

        ``embedder``: ``minilm`` (the default), a configured name, ``model:NAME@REF`` (a
        registered sentence-transformers model the gate allowed), or, in process only, a
        local folder or ``openai:MODEL`` with ``embedder_url``.
        """
        local = self._local
        return local.kbs.create(
            name, actor=local.actor, embedder=embedder, embedder_url=embedder_url,
            backend=backend, backend_uri=backend_uri, chunking=chunking, pii=pii,
            description=description,
        ).to_dict()  # fmt: skip

    @operation("GET", "/kbs", scope="read")
    def list(self) -> list[dict[str, Any]]:
        """Every knowledge base, with its documents and chunks as of its latest version."""
        kbs = self._local.kbs
        totals = kbs.totals()
        return [
            {**kb.to_dict(), "documents": totals.get(kb.name, {}).get("documents", 0),
             "chunks": totals.get(kb.name, {}).get("chunks", 0)}
            for kb in kbs.list()
        ]  # fmt: skip

    @operation("GET", "/kbs/{name}", scope="read")
    def show(self, name: str) -> dict[str, Any]:
        """Its settings, counts and versions."""
        return self._local.kbs.show(name)

    @operation("GET", "/kbs/{name}/documents", scope="read")
    def documents(self, name: str, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of documents by URI (``items``), each with its chunk count, the personal
        data found in it, and the versions that added and last changed it; ``documents``
        and ``chunks`` are the totals."""
        return self._local.kbs.documents(name, limit=limit, offset=offset)

    @operation("GET", "/kbs/{name}/versions", scope="read")
    def versions(self, name: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """The ingest history, newest first: each version's added, changed and removed
        document URIs and the totals after it."""
        return self._local.kbs.versions(name, limit=limit, offset=offset, newest_first=True)

    @remote_variant(_ingest_over_http)
    def ingest(
        self,
        name: str,
        paths: Iterable[str | Path],
        *,
        sync: bool = False,
        patterns: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: Any = None,
        ray: bool | str = False,
    ) -> dict[str, Any]:
        """Load files, folders or URLs, then ingest what changed; ``sync`` removes what is
        gone. ``ray`` embeds the new chunks on a pool of Ray actors (``True``:
        ``RAY_ADDRESS`` or a local Ray; a string: its address); what is new, changed or
        reused is decided here as without it, so the counts and vectors are the same."""
        from stoa.develop.rag.load import DEFAULT_PATTERNS, expand_sources, read_sources

        local = self._local
        info = local.kbs.get(name)  # an unknown name fails before any file is read
        paths = [str(p) for p in paths]
        if not paths:
            raise InvalidInputError("name at least one file, folder or URL", field="paths")
        sources = expand_sources(paths, tuple(patterns or DEFAULT_PATTERNS))
        roots = [_root_uri(p) for p in paths] if sync else None
        documents = read_sources(sources, dict(metadata or {}))
        if not ray:
            return local.kbs.ingest(
                name, documents, sync_roots=roots, progress=progress, total=len(sources),
                actor=local.actor,
            ).to_dict()  # fmt: skip
        from stoa.develop.rag.kb import RAY_BATCH_CHUNKS, embedder_spec
        from stoa.serve.ray.cluster import address_of, connect, worker_env
        from stoa.serve.ray.data import RayEmbedder

        connect(local.settings, address_of(ray))
        pool = RayEmbedder(worker_env(local.settings), embedder_spec(info),
                           str(info.embedder.get("version")))  # fmt: skip
        try:
            return local.kbs.ingest(
                name, documents, sync_roots=roots, progress=progress, total=len(sources),
                actor=local.actor, embed=pool.embed, batch_chunks=RAY_BATCH_CHUNKS,
            ).to_dict()  # fmt: skip
        finally:
            pool.close()

    @operation("POST", "/kbs/{name}/ingest", scope="write")
    def ingest_documents(
        self,
        name: str,
        documents: list[dict[str, Any]],
        *,
        sync_prefixes: list[str] | None = None,
    ) -> dict[str, Any]:
        """Documents sent as ``{"uri", "text" or "content_base64", "metadata"}``, at most
        10,000; ``sync_prefixes`` removes stored documents under them that were not sent."""
        from stoa.develop.rag.load import inline_documents

        local = self._local
        local.kbs.get(name)
        loaded, failures = inline_documents(documents)
        return local.kbs.ingest(
            name, loaded, failures, sync_roots=sync_prefixes, actor=local.actor
        ).to_dict()

    @operation(
        "POST",
        "/kbs/{name}/query",
        scope="read",
        local_only={
            "reranker": "a reranker runs only in-process: the server does not load a caller's path"
        },
    )
    def query(
        self,
        name: str,
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        where: dict[str, Any] | None = None,
        mmr: float | None = None,
        reranker: str | None = None,
        per_document: int = 2,
        fusion: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` best passages: ``vector``, ``lexical`` or ``hybrid``, filtered by
        ``where``, at most ``per_document`` from one document (0: no limit); ``fusion``
        says how hybrid merges its two lists (``rrf:10``, ``rrf:60:0.3``, ``convex:0.5``)."""
        kbs = self._local.kbs
        found = kbs.query(name, query, k=k, mode=mode, where=where, mmr=mmr, reranker=reranker,
                          per_document=per_document, fusion=fusion)  # fmt: skip
        return [r.to_dict() for r in found]

    @operation("DELETE", "/kbs/{name}", scope="admin")
    def delete(self, name: str) -> dict[str, Any]:
        """Remove a knowledge base for good, vectors and files included (admins)."""
        local = self._local
        return local.kbs.delete(name, actor=local.actor)

    def delete_documents(
        self, name: str, uris: str | Path | Iterable[str | Path]
    ) -> dict[str, Any]:
        """Remove documents, each named as ingest took it: a file path, a folder path (every
        document stored under it) or a URI; a path need not exist any more."""
        items = [uris] if isinstance(uris, str | Path) else list(uris)
        return self._delete_documents(name, [document_uri(item) for item in items])

    @operation("POST", "/kbs/{name}/delete-docs", scope="write")
    def _delete_documents(self, name: str, uris: list[str]) -> dict[str, Any]:
        """Documents by URI; the URI of a folder removes every document stored under it.
        A caller's paths become URIs on the caller's side: the server reads no path."""
        local = self._local
        return local.kbs.delete_documents(name, list(uris), actor=local.actor)

    @operation("POST", "/kbs/{name}/eval", scope="write")
    def eval(
        self,
        name: str,
        qa: str,
        *,
        k: int = 5,
        modes: list[str] | None = None,
        fusion: str | None = None,
        per_document: int = 2,
    ) -> dict[str, Any]:
        """hit@k, recall@k, MRR and nDCG@k per mode on ``qa`` (the JSONL text), logged as a
        run; ``fusion`` and ``per_document`` as ``query`` takes them."""
        local = self._local
        chosen = {"modes": modes} if modes else {}  # else the evaluator's own default
        return local.kbs.evaluate(
            name, qa, registry=local.registry, actor=local.actor, k=k, fusion=fusion,
            per_document=per_document, **chosen,
        )  # fmt: skip
