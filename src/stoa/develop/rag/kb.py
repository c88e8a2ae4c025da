"""Knowledge bases: definitions and versions in the metadata database, data under
``STOA_HOME/kbs/ID`` (see ``kb_store``), vectors in the configured backend.

Ingest is incremental: a document is identified by its URI and redone only when its
content hash (or the chunking and PII settings it was processed with) changed; chunk
texts already embedded are never embedded again, whichever document they came from.
Every ingest that changes content makes a new version holding its document diff. The
Python API, the REST routes and the CLI all call the functions here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from stoa.core.db import Database
from stoa.core.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from stoa.core.names import validate_name
from stoa.core.schema import AuditEvent, KbVersion, KnowledgeBase
from stoa.develop import tracking
from stoa.develop.rag.chunk import DEFAULT_WINDOW, ChunkConfig, chunk_text, contextual_text
from stoa.develop.rag.embed import (
    DEFAULT_MODEL,
    Embedder,
    EmbedderSpec,
    describe,
    load_embedder,
    parse_embedder,
)
from stoa.develop.rag.kb_eval import evaluate, parse_qa
from stoa.develop.rag.kb_store import KbStore, NewChunk, StoredDocument
from stoa.develop.rag.load import Document, LoadError, LoadFailure, Source
from stoa.develop.rag.pii import apply_policy
from stoa.develop.rag.retrieve import (
    MODES,
    PER_DOCUMENT,
    Result,
    check_query_options,
    fusion_label,
    parse_fusion,
    retrieve,
)
from stoa.develop.rag.vectors import VectorBackend, check_where
from stoa.govern.models import ensure_loadable
from stoa.govern.registry import Registry

PII_POLICIES = ("allow", "redact", "block")
#: ``model:NAME@REF`` names a registered sentence-transformers model as the embedder.
MODEL_PREFIX = "model:"
BACKENDS = ("local", "milvus")
EMBED_BATCH_CHUNKS = 256  # chunks embedded together, across documents
#: With ``--ray`` the batch is shared by a pool of actors: larger, so each gets shards.
RAY_BATCH_CHUNKS = 2048
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class KbInfo:
    id: int
    name: str
    description: str
    embedder: dict[str, Any]
    chunking: dict[str, Any]
    backend: dict[str, Any]
    pii_policy: str
    latest_version: int
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass
class IngestSummary:
    version: int
    documents: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _info(row: KnowledgeBase) -> KbInfo:
    return KbInfo(
        row.id, row.name, row.description, dict(row.embedder), dict(row.chunking),
        dict(row.backend), row.pii_policy, row.latest_version, row.created_at, row.created_by,
    )  # fmt: skip


def check_backend(backend: str | Mapping[str, Any] | None, uri: str | None) -> dict[str, Any]:
    kind = backend.get("kind") if isinstance(backend, Mapping) else (backend or "local")
    if kind not in BACKENDS:
        raise InvalidInputError(
            f"unknown backend {kind!r}", field="backend", fix="use local or milvus"
        )
    if isinstance(backend, Mapping):
        uri = backend.get("uri", uri)
    if kind == "local":
        if uri:
            raise InvalidInputError("the local backend takes no URI", field="backend_uri")
        return {"kind": "local"}
    return {"kind": "milvus", "uri": uri or ""}  # empty: Milvus Lite in the kb folder


def check_chunking(chunking: ChunkConfig | Mapping[str, Any] | None) -> ChunkConfig:
    if chunking is None:
        return ChunkConfig()
    if isinstance(chunking, ChunkConfig):
        return ChunkConfig(chunking.target_tokens, chunking.overlap_tokens, chunking.context)
    unknown = set(chunking) - {"target_tokens", "overlap_tokens", "context"}
    if unknown:
        raise InvalidInputError(
            f"unknown chunking setting(s) {', '.join(sorted(unknown))}",
            field="chunking",
            fix="use target_tokens, overlap_tokens and context",
        )
    if not isinstance(chunking.get("context", True), bool):
        raise InvalidInputError("context must be true or false", field="chunking")
    return ChunkConfig(**chunking)


def stored_chunking(kb: KbInfo) -> ChunkConfig:
    """A knowledge base created before contextual chunks keeps embedding bodies alone,
    so that its old and new chunks stay comparable."""
    return check_chunking({"context": False, **kb.chunking})


def embedder_window(embedder: Mapping[str, Any]) -> int | None:
    """Word pieces the embedder reads, less its two special tokens; None when unbounded
    or unknown (an API embedder)."""
    if embedder.get("kind", "sentence-transformers") != "sentence-transformers":
        return None
    model = str(embedder.get("model", DEFAULT_MODEL))
    if model == DEFAULT_MODEL:
        return DEFAULT_WINDOW
    try:
        settings = json.loads((Path(model) / "sentence_bert_config.json").read_text())
        return int(settings["max_seq_length"]) - 2
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_WINDOW


def check_pii_policy(policy: str) -> str:
    if policy not in PII_POLICIES:
        raise InvalidInputError(
            f"unknown PII policy {policy!r}", field="pii", fix="use allow, redact or block"
        )
    return policy


class KnowledgeBases:
    """One instance per client; opened stores are kept so a server answers fast."""

    def __init__(
        self,
        db: Database,
        home: Path,
        *,
        registry: Registry | None = None,
        embedders: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.db = db
        self.home = home
        self.registry = registry  # resolves ``model:NAME@REF`` embedders
        self.embedders = dict(embedders or {})  # the configured ones, by name
        self._open: dict[int, tuple[KbStore, VectorBackend, Embedder]] = {}
        self._lock = threading.Lock()  # a server's threads open each knowledge base once

    def close(self) -> None:
        for store, backend, _ in self._open.values():
            backend.close()
            store.close()
        self._open.clear()

    def _registered_embedder(self, ref: str) -> EmbedderSpec:
        """A sentence-transformers model version the gate allowed, exported once by its
        content hash under ``HOME/embedders``; never a path a caller names."""
        if self.registry is None:
            raise ConfigurationError("registered embedders need the registry", field="embedder")
        info = self.registry.get("model", ref)
        ensure_loadable(info)
        if info.flavor != "sentence-transformers":
            raise InvalidInputError(
                f"{info.ref} is a {info.flavor} model, not a sentence-transformers one",
                field="embedder",
            )
        folder = self.home / "embedders" / info.sha256
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = folder.with_name(f".{info.sha256}.{uuid.uuid4().hex}")
            self.registry.blobs.export(info.sha256, info.artifact, staging)
            try:
                staging.rename(folder)
            except OSError:  # another process exported the same bytes first
                shutil.rmtree(staging, ignore_errors=True)
        return parse_embedder(str(folder))

    # -- definitions ---------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        embedder: str | Mapping[str, Any] | EmbedderSpec | None = None,
        embedder_url: str | None = None,
        chunking: ChunkConfig | Mapping[str, Any] | None = None,
        backend: str | Mapping[str, Any] | None = None,
        backend_uri: str | None = None,
        pii: str = "allow",
        description: str = "",
        actor: str = "",
    ) -> KbInfo:
        """Checked in full, and the embedder loaded, before anything is written."""
        validate_name(name)
        if isinstance(embedder, str) and embedder.startswith(MODEL_PREFIX):
            embedder = self._registered_embedder(embedder.removeprefix(MODEL_PREFIX))
        spec = embedder if isinstance(embedder, EmbedderSpec) else parse_embedder(
            embedder, url=embedder_url, configured=self.embedders
        )  # fmt: skip
        config = check_chunking(chunking)
        window = embedder_window(spec.to_dict())
        if window is not None and config.target_tokens > window:
            raise InvalidInputError(
                f"target_tokens {config.target_tokens} is more than the embedder reads "
                f"({window} word pieces): the rest of each chunk would never be embedded",
                field="chunking",
                fix=f"use target_tokens of at most {window}",
            )
        backend_config = check_backend(backend, backend_uri)
        check_pii_policy(pii)
        if backend_config["kind"] == "milvus":
            try:
                import pymilvus  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "the milvus backend needs pymilvus", fix="pip install 'stoa[milvus]'"
                ) from None
        if not isinstance(description, str) or "\x00" in description:
            raise InvalidInputError("must be text without NUL bytes", field="description")
        with self.db.read() as session:
            if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == name)):
                raise ConflictError(f"knowledge base {name!r} already exists", field="name")
        loaded = load_embedder(spec)
        row = KnowledgeBase(
            name=name,
            description=description,
            embedder={**spec.to_dict(), **describe(loaded)},
            chunking={"target_tokens": config.target_tokens,
                      "overlap_tokens": config.overlap_tokens, "context": config.context},
            backend=backend_config,
            pii_policy=pii,
            latest_version=0,
            created_by=actor,
        )  # fmt: skip
        with self.db.write() as session:
            if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == name)):
                raise ConflictError(f"knowledge base {name!r} already exists", field="name")
            session.add(row)
            session.flush()
            session.add(AuditEvent(actor=actor, action="kb.create", subject=f"kb:{name}",
                                   detail={"embedder": row.embedder["name"]}))  # fmt: skip
            info = _info(row)
        return info

    def list(self) -> list[KbInfo]:
        with self.db.read() as session:
            rows = session.scalars(select(KnowledgeBase).order_by(KnowledgeBase.name)).all()
            return [_info(r) for r in rows]

    def get(self, name: str) -> KbInfo:
        if not isinstance(name, str) or not name:
            raise InvalidInputError("must be a knowledge base name", field="name")
        with self.db.read() as session:
            row = session.scalar(select(KnowledgeBase).where(KnowledgeBase.name == name))
            if row is None:
                raise NotFoundError(
                    f"no knowledge base named {name!r}", field="name", fix="see `stoa kb list`"
                )
            return _info(row)

    def totals(self) -> dict[str, dict[str, Any]]:
        """Each knowledge base's documents and chunks as of its latest version, by name:
        read from the version records, so no store or embedder is opened to count."""
        with self.db.read() as session:
            rows = session.execute(
                select(KnowledgeBase.name, KbVersion.stats).join(
                    KbVersion,
                    (KbVersion.kb_id == KnowledgeBase.id)
                    & (KbVersion.version == KnowledgeBase.latest_version),
                )
            ).all()
        return {name: dict(stats) for name, stats in rows}

    def versions(
        self, name: str, *, limit: int | None = None, offset: int = 0, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """Every version with its document diff and totals; ``limit`` and ``offset`` page."""
        kb = self.get(name)
        _check_page(limit, offset)
        order = KbVersion.version.desc() if newest_first else KbVersion.version
        with self.db.read() as session:
            rows = session.scalars(
                select(KbVersion).where(KbVersion.kb_id == kb.id).order_by(order)
                .offset(offset).limit(limit)
            ).all()  # fmt: skip
            return [
                {"version": r.version, "diff": dict(r.diff), "stats": dict(r.stats),
                 "created_at": r.created_at.isoformat(), "created_by": r.created_by}
                for r in rows
            ]  # fmt: skip

    def show(self, name: str) -> dict[str, Any]:
        """The definition, the totals, the versions, and personal data found per document.

        Totals are the latest version's: what an interrupted ingest committed but no
        version holds yet is reported apart, as ``uncommitted``, until the next ingest
        finishes it."""
        kb = self.get(name)
        store, _, _ = self.open(kb)
        versions = self.versions(name)
        stats = versions[-1]["stats"] if versions else {}
        uncommitted = store.unversioned()
        fresh = set(uncommitted["added"])
        documents = [d for d in store.documents() if d.uri not in fresh]
        return {
            **kb.to_dict(),
            "documents": int(stats.get("documents", 0)),
            "chunks": int(stats.get("chunks", 0)),
            "uncommitted": {change: len(uris) for change, uris in uncommitted.items()},
            "versions": versions,
            "pii": dict(stats.get("pii", {})),
            "documents_with_pii": [
                {"uri": d.uri, "findings": d.pii} for d in documents if any(d.pii.values())
            ],
        }

    def documents(self, name: str, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """One page of documents by URI: chunk counts, personal data found, and the
        versions that added and last changed each; ``total`` counts them all."""
        kb = self.get(name)
        _check_page(limit, offset)
        store, _, _ = self.open(kb)
        return {"name": kb.name, "version": kb.latest_version, **store.counts(),
                "limit": limit, "offset": offset,
                "items": store.document_page(limit, offset)}  # fmt: skip

    # -- the data plane -------------------------------------------------------------

    def folder(self, kb: KbInfo) -> Path:
        return self.home / "kbs" / str(kb.id)

    def open(self, kb: KbInfo) -> tuple[KbStore, VectorBackend, Embedder]:
        with self._lock:
            return self._open_locked(kb)

    def _open_locked(self, kb: KbInfo) -> tuple[KbStore, VectorBackend, Embedder]:
        if kb.id not in self._open:
            folder = self.folder(kb)
            embedder = load_embedder(embedder_spec(kb))
            if embedder.version != kb.embedder.get("version"):
                raise ConflictError(
                    f"knowledge base {kb.name!r} was embedded by {kb.embedder.get('version')}, "
                    f"but {embedder.version} is loaded: its vectors would not compare",
                    field="embedder",
                    fix="create a new knowledge base for the new embedder and ingest again",
                )
            store = KbStore(folder)
            # The recorded dimension: asking an API embedder would call its endpoint.
            backend = open_backend(kb.backend, folder, int(kb.embedder["dimension"]))
            self._open[kb.id] = (store, backend, embedder)
        return self._open[kb.id]

    def ingest(
        self,
        name: str,
        documents: Iterable[Source | LoadFailure],
        failures: Sequence[LoadFailure] = (),
        *,
        sync_roots: Sequence[str] | None = None,
        progress: Progress | None = None,
        total: int | None = None,
        actor: str = "",
        embed: Callable[[list[str]], np.ndarray] | None = None,
        batch_chunks: int = EMBED_BATCH_CHUNKS,
    ) -> IngestSummary:
        """Add, replace and (with ``sync_roots``) remove documents; version what changed.

        ``documents`` may be read lazily: a source whose raw bytes hash as before is
        counted unchanged before it is parsed, and the embedder is not touched unless a
        chunk needs a vector. The counts describe the version this ingest makes, so a
        run that finishes what an interrupted one committed counts those documents too,
        and ``resumed`` says how many there were. ``embed`` computes the new vectors
        elsewhere (a Ray actor pool, ``--ray``) with the knowledge base's own embedder;
        what is embedded, and what is reused, is decided here either way.
        """
        kb = self.get(name)
        store, backend, embedder = self.open(kb)
        config = stored_chunking(kb)
        window = embedder_window(kb.embedder)
        summary = IngestSummary(version=kb.latest_version)
        carried = {uri for uris in store.unversioned().values() for uri in uris}
        _finish_interrupted(store, backend)
        unchanged = 0
        chunk_counts = Counter({"embedded": 0, "reused": 0})
        fingerprint = _fingerprint(kb)
        pending: list[tuple[StoredDocument, list[NewChunk], str]] = []
        pending_chunks = 0
        seen: set[str] = set()
        failed: set[str] = set()
        items = [*failures, *documents] if total is None else chain(failures, documents)
        total = len(items) if isinstance(items, list) else total + len(failures)
        for position, item in enumerate(items, 1):
            if item.uri in seen or item.uri in failed:
                continue
            if isinstance(item, LoadFailure):
                failed.add(item.uri)
                summary.failures.append({"uri": item.uri, "reason": item.reason})
                continue
            seen.add(item.uri)
            stored = store.document(item.uri)
            if (
                stored is not None
                and stored.sha256 == item.sha256
                and stored.config == fingerprint
                and stored.status == "indexed"
            ):
                unchanged += item.uri not in carried
            else:
                prepared = _prepare_source(item, kb.pii_policy, config, fingerprint, window)
                if isinstance(prepared, str):
                    failed.add(item.uri)
                    summary.failures.append({"uri": item.uri, "reason": prepared})
                else:
                    change = "added" if stored is None else "changed"
                    if stored is not None and stored.sha256 == item.sha256:
                        change = "changed" if stored.config != fingerprint else ""
                    pending.append((*prepared, change))
                    pending_chunks += len(prepared[1])
            if pending_chunks >= batch_chunks:
                _write_batch(store, backend, embedder, pending, chunk_counts, embed)
                pending, pending_chunks = [], 0
            if progress:
                progress(position, total, item.uri)
        _write_batch(store, backend, embedder, pending, chunk_counts, embed)
        if sync_roots is not None:
            keep = seen | failed
            for stored in store.documents():
                if stored.uri not in keep and _under(stored.uri, sync_roots):
                    _remove(store, backend, stored)
        backend_flush(backend)
        diff = store.unversioned()
        summary.documents = {"added": len(diff["added"]), "changed": len(diff["changed"]),
                             "unchanged": unchanged, "removed": len(diff["removed"]),
                             "failed": len(failed)}  # fmt: skip
        summary.resumed = len(carried)
        summary.chunks = dict(chunk_counts)
        summary.pii = dict(sum((Counter(d.pii) for d in store.documents()), Counter()))
        summary.version = self._version(kb, store, actor)
        return summary

    def delete(self, name: str, *, actor: str = "") -> dict[str, Any]:
        """Remove a knowledge base for good: its definition and versions (one
        transaction), then its vectors (a Milvus collection is dropped) and its folder.

        The evaluation runs it logged stay: they are records of what was measured.
        """
        kb = self.get(name)
        with self._lock:
            opened = self._open.pop(kb.id, None)
        if opened is not None:
            store, backend, _ = opened
        else:
            folder = self.folder(kb)
            dimension = int(kb.embedder["dimension"])  # recorded at create: no model to load
            store, backend = KbStore(folder), open_backend(kb.backend, folder, dimension)
        with self.db.write() as session:
            session.execute(delete(KbVersion).where(KbVersion.kb_id == kb.id))
            session.execute(delete(KnowledgeBase).where(KnowledgeBase.id == kb.id))
            event = AuditEvent(actor=actor, action="kb.delete", subject=f"kb:{name}",
                               detail={"embedder": kb.embedder.get("name")})  # fmt: skip
            session.add(event)
        backend.drop()
        store.close()
        shutil.rmtree(self.folder(kb), ignore_errors=True)
        return {"name": name, "deleted": True}

    def delete_documents(self, name: str, uris: Iterable[str], *, actor: str = "") -> dict:
        """Remove documents by URI; a URI naming no document but a folder
        (``file:///docs`` for ``file:///docs/a.md``) removes every document under it."""
        kb = self.get(name)
        store, backend, _ = self.open(kb)
        wanted = [uris] if isinstance(uris, str) else list(dict.fromkeys(uris))
        if not wanted or not all(isinstance(u, str) and u for u in wanted):
            raise InvalidInputError("name at least one document URI", field="uris")
        doomed: dict[str, None] = {}
        missing: list[str] = []
        stored_uris: list[str] = []
        for uri in wanted:
            if store.document(uri) is not None:
                doomed[uri] = None
                continue
            stored_uris = stored_uris or [d.uri for d in store.documents()]
            under = [u for u in stored_uris if _under(u, [uri])]
            doomed.update(dict.fromkeys(under))
            if not under:
                missing.append(uri)
        if missing:
            raise NotFoundError(
                f"not in knowledge base {name!r}: {', '.join(missing[:5])}",
                field="uris",
                fix="see the URIs in `stoa kb show --json`; nothing was deleted",
            )
        _finish_interrupted(store, backend)
        for uri in doomed:
            stored = store.document(uri)
            assert stored is not None
            _remove(store, backend, stored)
        backend_flush(backend)
        return {"version": self._version(kb, store, actor), "removed": list(doomed)}

    def query(
        self,
        name: str,
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        where: Mapping[str, Any] | None = None,
        mmr: float | None = None,
        reranker: str | None = None,
        per_document: int = PER_DOCUMENT,
        fusion: str | None = None,
    ) -> list[Result]:
        kb = self.get(name)
        check_query_options(query, k, mode, mmr, per_document)
        where = check_where(where)
        how = parse_fusion(fusion)
        store, backend, embedder = self.open(kb)
        return retrieve(store, backend, embedder, query, k=k, mode=mode, where=where, mmr=mmr,
                        reranker=reranker, per_document=per_document, fusion=how)  # fmt: skip

    def evaluate(
        self,
        name: str,
        qa: str,
        *,
        k: int = 5,
        modes: Sequence[str] = MODES,
        fusion: str | None = None,
        per_document: int = PER_DOCUMENT,
        registry: Registry | None = None,
        actor: str = "",
    ) -> dict[str, Any]:
        """All modes side by side on one QA file, logged as a run when a registry is given;
        ``fusion`` and ``per_document`` are what ``query`` takes, to compare settings."""
        kb = self.get(name)
        questions = parse_qa(qa)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
            raise InvalidInputError("k must be 1..100", field="k")
        modes = list(dict.fromkeys(modes))
        for mode in modes:
            check_query_options("q", k, mode, None, per_document)
        how = parse_fusion(fusion)
        store, backend, embedder = self.open(kb)
        if store.counts()["chunks"] == 0:
            raise InvalidInputError(
                f"knowledge base {name!r} is empty", field="name", fix="run `stoa kb ingest` first"
            )

        def search(text: str, mode: str) -> list[Result]:
            return retrieve(store, backend, embedder, text, k=k, mode=mode, fusion=how,
                            per_document=per_document)  # fmt: skip

        report: dict[str, Any] = {
            "k": k,
            "questions": len(questions),
            "version": kb.latest_version,
            "modes": evaluate(questions, search, k=k, modes=modes),
        }
        report["run_id"] = None
        if registry is not None:
            metrics = [
                (f"{mode}.{metric}", value)
                for mode, values in report["modes"].items()
                for metric, value in values.items()
                if metric != "latency_ms"
            ]
            metrics += [
                (f"{mode}.latency_{p}_ms", values["latency_ms"][p])
                for mode, values in report["modes"].items()
                for p in ("p50", "p95")
            ]
            run = tracking.create_run(
                registry, f"kb-eval-{name}", actor=actor, status="running",
                params={"kb": name, "kb_version": kb.latest_version, "k": k,
                        "modes": ",".join(modes), "questions": len(questions),
                        "fusion": fusion_label(how), "per_document": per_document,
                        "embedder": kb.embedder.get("version", "")},
                tags={"kind": "kb-eval"},
            )  # fmt: skip
            now = int(time.time() * 1000)
            tracking.log_batch(self.db, run.id, metrics=[(key, v, 0, now) for key, v in metrics])
            tracking.finish(self.db, run.id)
            report["run_id"] = run.id
        return report

    def _version(self, kb: KbInfo, store: KbStore, actor: str) -> int:
        """A new version when the journal holds changes no version has recorded yet."""
        diff = store.unversioned()
        if not any(diff.values()):
            return self.get(kb.name).latest_version
        stats = {
            **store.counts(),
            "pii": dict(sum((Counter(d.pii) for d in store.documents()), Counter())),
        }
        with self.db.write() as session:
            row = session.get(KnowledgeBase, kb.id, with_for_update=True)
            assert row is not None
            row.latest_version += 1
            number = row.latest_version
            session.add(
                KbVersion(kb_id=kb.id, version=number, diff=diff, stats=stats, created_by=actor)
            )
            session.add(
                AuditEvent(
                    actor=actor,
                    action="kb.version",
                    subject=f"kb:{kb.name}",
                    detail={"version": number, **{k: len(v) for k, v in diff.items()}},
                )
            )
        store.mark_versioned(number)  # fmt: skip
        return number

    def drop_data(self, kb: KbInfo) -> None:
        """For tests and the demo's fresh start: the data folder, not the definition."""
        if kb.id in self._open:
            store, backend, _ = self._open.pop(kb.id)
            backend.close()
            store.close()
        shutil.rmtree(self.folder(kb), ignore_errors=True)


#: The most rows one page of documents or versions holds.
MAX_PAGE = 1000


def _check_page(limit: int | None, offset: int) -> None:
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE
    ):
        raise InvalidInputError(f"limit must be 1..{MAX_PAGE}", field="limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError("offset must be 0 or more", field="offset")


def open_backend(config: Mapping[str, Any], folder: Path, dimension: int) -> VectorBackend:
    if config.get("kind") == "milvus":
        try:
            from stoa.develop.rag.vector_milvus import MilvusVectorBackend
        except ImportError as exc:
            raise ConfigurationError(
                f"the milvus backend needs pymilvus: {exc}", fix="pip install 'stoa[milvus]'"
            ) from None

        return MilvusVectorBackend(config.get("uri") or str(folder / "milvus.db"), "chunks",
                                   dimension)  # fmt: skip
    from stoa.develop.rag.vector_local import LocalVectorBackend

    return LocalVectorBackend(folder / "vectors", dimension)


def backend_flush(backend: VectorBackend) -> None:
    flush = getattr(backend, "flush", None)
    if flush is not None:
        flush()


def embedder_spec(kb: KbInfo) -> EmbedderSpec:
    """How to load the embedder a knowledge base was created with."""
    fields = EmbedderSpec.__dataclass_fields__
    return EmbedderSpec(**{k: v for k, v in kb.embedder.items() if k in fields})


def _fingerprint(kb: KbInfo) -> str:
    """What a document's chunks depend on besides its bytes."""
    return json.dumps({"chunking": kb.chunking, "pii": kb.pii_policy}, sort_keys=True)


def _under(uri: str, roots: Sequence[str]) -> bool:
    return any(uri == r or uri.startswith(r.rstrip("/") + "/") for r in roots)


def _prepare_source(
    source: Source, policy: str, config: ChunkConfig, fingerprint: str, window: int | None
) -> tuple[StoredDocument, list[NewChunk]] | str:
    """Parse a source that needs it; a string is the reason it is refused."""
    try:
        doc = source.load()
    except LoadError as exc:
        return str(exc)
    return _prepare(doc, policy, config, fingerprint, window)


def _prepare(
    doc: Document, policy: str, config: ChunkConfig, fingerprint: str, window: int | None
) -> tuple[StoredDocument, list[NewChunk]] | str:
    """PII policy, then chunks; a string is the reason the document is refused."""
    result = apply_policy(doc.text, policy)  # type: ignore[arg-type]
    pii = dict(result.counts)
    if result.blocked or result.text is None:
        return f"blocked by the PII policy: {result.reason}"
    text = result.text
    pieces = chunk_text(text, config, title=doc.title, window=window)
    if not pieces:
        return "no text to index"
    base = {**doc.metadata, "uri": doc.uri, "title": doc.title}
    if doc.modified is not None:
        base.setdefault("modified", doc.modified.isoformat())
    chunks = [
        NewChunk(p.text, hashlib.sha256(p.embedded_text.encode()).hexdigest(),
                 result.original_offset(p.start), result.original_offset(p.end, end=True),
                 tuple(p.heading_path), base, p.header)
        for p in pieces
    ]  # fmt: skip
    stored = StoredDocument(
        doc.uri, doc.sha256, doc.title, doc.format, dict(doc.metadata), [], pii, "pending",
        fingerprint,
    )  # fmt: skip
    return stored, chunks


def _write_batch(
    store: KbStore,
    backend: VectorBackend,
    embedder: Embedder,
    pending: list[tuple[StoredDocument, list[NewChunk], str]],
    counts: Counter,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> None:
    """Embed what no document has embedded before, then commit and index each document."""
    if not pending:
        return
    shas = {c.text_sha: contextual_text(c.header, c.text) for _, chunks, _ in pending
            for c in chunks}  # fmt: skip
    cached = store.cached_vectors(shas, embedder.dimension)
    missing = [sha for sha in shas if sha not in cached]
    fresh: dict[str, np.ndarray] = {}
    if missing:
        vectors = (embed or embedder.embed)([shas[s] for s in missing])
        fresh = dict(zip(missing, vectors, strict=True))
    counts["embedded"] += len(missing)
    counts["reused"] += sum(len(chunks) for _, chunks, _ in pending) - len(missing)
    for doc, chunks, change in pending:
        vectors_for_doc = {c.text_sha: fresh[c.text_sha] for c in chunks if c.text_sha in fresh}
        ids = store.replace_document(doc, chunks, vectors_for_doc, change)
        lookup = {**cached, **fresh}
        matrix = np.array([lookup[c.text_sha] for c in chunks], dtype=np.float32)
        backend.upsert(ids, matrix, [c.metadata for c in chunks])
        doomed = store.tombstones()
        backend.delete(doomed)
        store.mark_indexed(doc.uri, doomed)


def _remove(store: KbStore, backend: VectorBackend, stored: StoredDocument) -> None:
    store.remove_document(stored.uri)
    doomed = store.tombstones()
    backend.delete(doomed)
    store.clear_tombstones(doomed)


def _finish_interrupted(store: KbStore, backend: VectorBackend) -> int:
    """Complete what an interrupted ingest committed but did not index; returns documents."""
    doomed = store.tombstones()
    if doomed:
        backend.delete(doomed)
        store.clear_tombstones(doomed)
    resumed = 0
    for doc in store.documents():
        if doc.status != "pending":
            continue
        chunks = store.chunks(doc.chunk_ids)
        ordered = [chunks[i] for i in doc.chunk_ids if i in chunks]
        vectors = store.cached_vectors((c.text_sha for c in ordered), backend.dimension)
        if ordered:
            matrix = np.array([vectors[c.text_sha] for c in ordered], dtype=np.float32)
            backend.upsert([c.id for c in ordered], matrix, [c.metadata for c in ordered])
        store.mark_indexed(doc.uri, [])
        resumed += 1
    return resumed
