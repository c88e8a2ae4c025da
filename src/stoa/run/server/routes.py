"""REST routes: each one parses its input, checks a scope and calls ``LocalClient``."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from stoa.client import LocalClient
from stoa.core.errors import AuthenticationError, InvalidInputError, NotFoundError
from stoa.core.names import safe_relpath, validate_name
from stoa.core.tokens import NewToken, TokenInfo, require_scope
from stoa.govern.models import ensure_allowed
from stoa.govern.types import (
    AliasInfo,
    AuditInfo,
    LineageInfo,
    MetricPoint,
    RunDetail,
    RunInfo,
    SeriesInfo,
    VersionInfo,
)

router = APIRouter()


class Kinds(StrEnum):
    models = "models"
    prompts = "prompts"
    datasets = "datasets"

    @property
    def kind(self) -> Any:
        return self.value[:-1]


def client_of(request: Request) -> LocalClient:
    return request.app.state.client


def scope(needed: str) -> Callable[..., LocalClient]:
    """Dependency: the server's client acting as the caller, once the token has ``needed``.

    Everything a request changes is recorded under the token's name; with no tokens on
    loopback the caller is "anonymous".
    """

    def check(request: Request) -> LocalClient:
        client = client_of(request)
        header = request.headers.get("authorization", "")
        if not header:
            if request.app.state.loopback and not client.tokens.auth_enabled():
                return client.acting_as("anonymous")
            raise AuthenticationError(
                "a bearer token is required",
                field="Authorization",
                fix="send 'Authorization: Bearer <token>'",
            )
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "expected a Bearer token",
                field="Authorization",
                fix="send 'Authorization: Bearer <token>'",
            )
        token = client.tokens.authenticate(value.strip())
        require_scope(token, needed)
        return client.acting_as(f"token:{token.name}")

    return check


ReadClient = Annotated[LocalClient, Depends(scope("read"))]
WriteClient = Annotated[LocalClient, Depends(scope("write"))]
AdminClient = Annotated[LocalClient, Depends(scope("admin"))]


def _json_field(raw: str | None, field: str, expected: type) -> Any:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInputError("is not valid JSON", field=field, fix="send a JSON value") from None
    if not isinstance(value, expected):
        raise InvalidInputError(f"must be a JSON {expected.__name__}", field=field)
    return value


def _upload_name(filename: str | None) -> str:
    """The uploaded file's own base name, so messages name the user's file; never a path."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return validate_name(base)
    except InvalidInputError:
        return "artifact"


def _save_uploads(files: list[UploadFile], paths: list[str] | None, dest: Path) -> Path:
    """Write uploads under ``dest``; relative paths are canonicalised before any write."""
    if not files:
        raise InvalidInputError("no file uploaded", field="files", fix="attach the artifact")
    if not paths:
        if len(files) != 1:
            raise InvalidInputError("several files need a 'paths' entry each", field="paths")
        target = dest / _upload_name(files[0].filename)
        with open(target, "wb") as out:
            shutil.copyfileobj(files[0].file, out)
        return target
    if len(paths) != len(files):
        raise InvalidInputError(
            f"{len(paths)} paths for {len(files)} files",
            field="paths",
            fix="send one path per file, in the same order",
        )
    folder = dest / "folder"
    rels = [safe_relpath(p, "paths") for p in paths]
    if len(set(rels)) != len(rels):
        raise InvalidInputError("the same path appears twice", field="paths")
    folders = {rel.rsplit("/", depth)[0] for rel in rels for depth in range(1, rel.count("/") + 1)}
    clash = sorted(folders & set(rels))
    if clash:
        raise InvalidInputError(
            f"{clash[0]!r} is both a file and a folder", field="paths", fix="rename one of them"
        )
    for rel, upload in zip(rels, files, strict=True):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(upload.file, out)
    return folder


@router.post("/models", status_code=201, response_model=VersionInfo)
def register_model(
    client: WriteClient,
    name: Annotated[str, Form()],
    files: Annotated[list[UploadFile], File()],
    paths: Annotated[list[str] | None, Form()] = None,
    flavor: Annotated[str | None, Form()] = None,
    license: Annotated[str | None, Form()] = None,
    description: Annotated[str, Form()] = "",
    tags: Annotated[str | None, Form()] = None,
    metadata: Annotated[str | None, Form()] = None,
    spec: Annotated[str | None, Form()] = None,
    run_id: Annotated[str | None, Form()] = None,
    datasets: Annotated[str | None, Form()] = None,
) -> VersionInfo:
    """Upload a model file, or a folder as files plus their relative paths."""
    with tempfile.TemporaryDirectory(prefix="stoa-upload-") as tmp:
        path = _save_uploads(files, paths, Path(tmp))
        return client.register_model(
            name,
            path,
            flavor=flavor,
            license=license,
            description=description,
            tags=_json_field(tags, "tags", dict),
            metadata=_json_field(metadata, "metadata", dict),
            spec=_json_field(spec, "spec", dict),
            run_id=run_id,
            datasets=_json_field(datasets, "datasets", list) or (),
        )


@router.post("/scans")
def scan(
    client: ReadClient,
    files: Annotated[list[UploadFile], File()],
    paths: Annotated[list[str] | None, Form()] = None,
    license: Annotated[str | None, Form()] = None,
    require_license: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Scan an uploaded file, or a folder as files plus their relative paths, with the
    server's policy; nothing is stored. The body is the JSON scan report."""
    with tempfile.TemporaryDirectory(prefix="stoa-scan-") as tmp:
        path = _save_uploads(files, paths, Path(tmp))
        return client.scan(path, license=license, require_license=require_license)


@router.post("/datasets", status_code=201, response_model=VersionInfo)
def register_dataset(
    client: WriteClient,
    name: Annotated[str, Form()],
    file: Annotated[UploadFile, File()],
    description: Annotated[str, Form()] = "",
    tags: Annotated[str | None, Form()] = None,
    metadata: Annotated[str | None, Form()] = None,
) -> VersionInfo:
    with tempfile.TemporaryDirectory(prefix="stoa-upload-") as tmp:
        path = _save_uploads([file], None, Path(tmp))
        return client.register_dataset(
            name,
            path,
            description=description,
            tags=_json_field(tags, "tags", dict),
            metadata=_json_field(metadata, "metadata", dict),
        )


class PromptIn(BaseModel):
    name: str
    template: str
    variables: list[str] | None = None
    description: str = ""
    tags: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None


class RenderIn(BaseModel):
    values: dict[str, Any] = Field(default_factory=dict)


class RenderOut(BaseModel):
    text: str


@router.post("/prompts", status_code=201, response_model=VersionInfo)
def register_prompt(client: WriteClient, body: PromptIn) -> VersionInfo:
    return client.register_prompt(
        body.name,
        body.template,
        variables=body.variables,
        description=body.description,
        tags=body.tags,
        metadata=body.metadata,
    )


@router.post("/prompts/{ref}/render", response_model=RenderOut)
def render_prompt(client: ReadClient, ref: str, body: RenderIn) -> RenderOut:
    return RenderOut(text=client.render_prompt(ref, body.values))


class RunIn(BaseModel):
    name: str
    inputs: list[str] = Field(default_factory=list, description="dataset references")
    status: str = Field("finished", description="'running' to log into it, then finish it")
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    environment: dict[str, Any] = Field(default_factory=dict)


class BatchIn(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    metrics: list[dict[str, Any]] = Field(
        default_factory=list, description="{key, value, step, timestamp (ms)}; at most 10,000"
    )


class FinishIn(BaseModel):
    status: str = "finished"


@router.post("/runs", status_code=201, response_model=RunInfo)
def create_run(client: WriteClient, body: RunIn) -> RunInfo:
    return client.create_run(
        body.name,
        body.inputs,
        status=body.status,
        params=body.params,
        tags=body.tags,
        parent_id=body.parent_id,
        environment=body.environment,
    )


@router.get("/runs", response_model=list[RunDetail])
def search_runs(
    client: ReadClient,
    param: Annotated[list[str], Query(description="KEY=VALUE, repeatable")] = [],  # noqa: B006
    tag: Annotated[list[str], Query(description="KEY=VALUE, repeatable")] = [],  # noqa: B006
    metric: Annotated[list[str], Query(description="KEY OP NUMBER, e.g. acc>0.9")] = [],  # noqa: B006
    name: str | None = None,
    status: str | None = None,
    parent_id: str | None = None,
    order_by: str | None = Query(None, description="e.g. -metrics.acc, params.lr, created_at"),
    limit: int = 100,
) -> list[RunDetail]:
    """Runs whose params and tags match and whose latest metric values meet each condition."""
    return client.search_runs(
        params=parse_tag_filters(param, "param"),
        tags=parse_tag_filters(tag),
        metrics=metric,
        name=name,
        status=status,
        parent_id=parent_id,
        order_by=order_by,
        limit=limit,
    )


@router.get("/runs/-/compare", response_model=list[RunDetail])
def compare_runs(
    client: ReadClient,
    ids: Annotated[list[str], Query(description="run ids, repeatable")] = [],  # noqa: B006
) -> list[RunDetail]:
    return client.compare_runs(ids)


@router.get("/runs/{run_id}", response_model=RunDetail)
def get_run(client: ReadClient, run_id: str) -> RunDetail:
    return client.get_run(run_id)


@router.post("/runs/{run_id}/batch", status_code=204)
def log_batch(client: WriteClient, run_id: str, body: BatchIn) -> None:
    """Params, tags and metric points in one transaction: all of them land, or none."""
    client.log_batch(run_id, params=body.params, tags=body.tags, metrics=body.metrics)


@router.post("/runs/{run_id}/finish", response_model=RunInfo)
def finish_run(client: WriteClient, run_id: str, body: FinishIn) -> RunInfo:
    return client.finish_run(run_id, body.status)


@router.get("/runs/{run_id}/metrics/{key}", response_model=list[MetricPoint])
def metric_history(client: ReadClient, run_id: str, key: str) -> list[MetricPoint]:
    return client.metric_history(run_id, key)


@router.post("/runs/{run_id}/artifacts", status_code=204)
def log_run_artifact(
    client: WriteClient,
    run_id: str,
    files: Annotated[list[UploadFile], File()],
    name: Annotated[str, Form()],
    paths: Annotated[list[str] | None, Form()] = None,
) -> None:
    """A file, or a folder as files plus relative paths, stored with the run as NAME."""
    with tempfile.TemporaryDirectory(prefix="stoa-artifact-") as tmp:
        client.log_run_artifact(run_id, _save_uploads(files, paths, Path(tmp)), name)


@router.get("/runs/{run_id}/lineage", response_model=LineageInfo)
def run_lineage(client: ReadClient, run_id: str, depth: int = 16) -> LineageInfo:
    return client.lineage("run", run_id, depth)


class SelectionIn(BaseModel):
    config: dict[str, Any] = Field(description="the stoa select config; data.dataset, not path")
    register_as: str | None = Field(
        None, alias="register", description="register the recommendation under this name"
    )


@router.post("/selections")
def run_selection(client: WriteClient, body: SelectionIn) -> dict[str, Any]:
    """Train, measure and rank the candidates on a registered dataset version.

    The server reads only registered datasets: a path would let a caller read any file
    the server can.
    """
    from stoa.build.ml.select import numpy_safe, parse_config
    from stoa.build.ml.select import run_selection as select

    data = body.config.get("data")
    if isinstance(data, dict) and data.get("path"):
        raise InvalidInputError(
            "the server selects on registered datasets only",
            field="config.data.path",
            fix="register the file (POST /api/v1/datasets) and pass data.dataset: NAME@VERSION",
        )
    parsed = parse_config(body.config)
    return numpy_safe(select(client, parsed, register=body.register_as))


class KbIn(BaseModel):
    name: str
    embedder: str | dict[str, Any] | None = None
    embedder_url: str | None = None
    backend: str = "local"
    backend_uri: str | None = None
    chunking: dict[str, Any] | None = None
    pii: str = "allow"
    description: str = ""


class KbIngestIn(BaseModel):
    documents: list[dict[str, Any]] = Field(
        description='[{"uri", "text" or "content_base64", "metadata"}]; at most 10,000'
    )
    sync_prefixes: list[str] | None = Field(
        None, description="Remove stored documents under these URI prefixes that were not sent"
    )


class KbQueryIn(BaseModel):
    query: Any = None
    k: Any = 5
    mode: Any = "hybrid"
    where: Any = None
    mmr: Any = None


class KbDeleteIn(BaseModel):
    uris: list[str]


class KbEvalIn(BaseModel):
    qa: str = Field(description="The QA file's JSONL text")
    k: Any = 5
    modes: list[str] = Field(default_factory=lambda: ["vector", "lexical", "hybrid"])


@router.post("/kbs", status_code=201)
def create_kb(client: WriteClient, body: KbIn) -> dict[str, Any]:
    return client.create_kb(body.name, **body.model_dump(exclude={"name"}))


@router.get("/kbs")
def list_kbs(client: ReadClient) -> list[dict[str, Any]]:
    return client.list_kbs()


@router.get("/kbs/{name}")
def show_kb(client: ReadClient, name: str) -> dict[str, Any]:
    return client.show_kb(name)


@router.post("/kbs/{name}/ingest")
def ingest_kb(client: WriteClient, name: str, body: KbIngestIn) -> dict[str, Any]:
    """Documents come in the body: the server never reads a path or URL a caller names."""
    return client.ingest_kb_documents(name, body.documents, sync_prefixes=body.sync_prefixes)


@router.post("/kbs/{name}/query")
def query_kb(client: ReadClient, name: str, body: KbQueryIn) -> list[dict[str, Any]]:
    """A cross-encoder path is not accepted here: it would load a model from a caller's path."""
    return client.query_kb(
        name, body.query, k=body.k, mode=body.mode, where=body.where, mmr=body.mmr
    )


@router.post("/kbs/{name}/delete-docs")
def delete_kb_docs(client: WriteClient, name: str, body: KbDeleteIn) -> dict[str, Any]:
    return client.delete_kb_documents(name, body.uris)


@router.post("/kbs/{name}/eval")
def eval_kb(client: WriteClient, name: str, body: KbEvalIn) -> dict[str, Any]:
    return client.eval_kb(name, body.qa, k=body.k, modes=body.modes)


class TokenIn(BaseModel):
    name: str
    scopes: list[str] = Field(default_factory=lambda: ["read"])


@router.post("/tokens", status_code=201, response_model=NewToken)
def create_token(client: AdminClient, body: TokenIn) -> NewToken:
    return client.create_token(body.name, body.scopes)


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(client: AdminClient) -> list[TokenInfo]:
    return client.list_tokens()


@router.delete("/tokens/{token_id}", response_model=TokenInfo)
def revoke_token(client: AdminClient, token_id: str) -> TokenInfo:
    return client.revoke_token(token_id)


@router.get("/{kinds}", response_model=list[SeriesInfo])
def list_series(client: ReadClient, kinds: Kinds) -> list[SeriesInfo]:
    return client.list(kinds.kind)


@router.get("/{kinds}/-/search", response_model=list[VersionInfo])
def search(
    client: ReadClient,
    kinds: Kinds,
    tag: Annotated[list[str], Query(description="KEY=VALUE, repeatable")] = [],  # noqa: B006
    name: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[VersionInfo]:
    return client.search(kinds.kind, parse_tag_filters(tag), name=name, status=status, limit=limit)


def parse_tag_filters(items: list[str], field: str = "tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"{item!r} is not KEY=VALUE", field=field, fix="write the filter as key=value"
            )
        out[key] = value
    return out


@router.get("/{kinds}/{name}/versions", response_model=list[VersionInfo])
def versions(
    client: ReadClient, kinds: Kinds, name: str, status: str | None = None
) -> list[VersionInfo]:
    return client.versions(kinds.kind, name, status)


class AliasIn(BaseModel):
    version: int


@router.put("/{kinds}/{name}/aliases/{alias}", response_model=AliasInfo)
def set_alias(client: WriteClient, kinds: Kinds, name: str, alias: str, body: AliasIn) -> AliasInfo:
    return client.set_alias(kinds.kind, name, body.version, alias)


@router.delete("/{kinds}/{name}/aliases/{alias}", status_code=204)
def delete_alias(client: WriteClient, kinds: Kinds, name: str, alias: str) -> Response:
    client.delete_alias(kinds.kind, name, alias)
    return Response(status_code=204)


@router.get("/{kinds}/{name}/aliases", response_model=list[AuditInfo])
def alias_history(client: ReadClient, kinds: Kinds, name: str) -> list[AuditInfo]:
    return client.alias_history(kinds.kind, name)


@router.get("/{kinds}/{ref}", response_model=VersionInfo)
def show(client: ReadClient, kinds: Kinds, ref: str) -> VersionInfo:
    return client.show(kinds.kind, ref)


class ReviewIn(BaseModel):
    note: str = ""


@router.post("/{kinds}/{ref}/approve", response_model=VersionInfo)
def approve(client: AdminClient, kinds: Kinds, ref: str, body: ReviewIn) -> VersionInfo:
    """Release a version held for licence review; admins only, and audited."""
    return client.review(kinds.kind, ref, approve=True, note=body.note)


@router.post("/{kinds}/{ref}/reject", response_model=VersionInfo)
def reject(client: AdminClient, kinds: Kinds, ref: str, body: ReviewIn) -> VersionInfo:
    """Block a version held for licence review for good; admins only, and audited."""
    return client.review(kinds.kind, ref, approve=False, note=body.note)


@router.post("/{kinds}/{ref}/archive", response_model=VersionInfo)
def archive(client: WriteClient, kinds: Kinds, ref: str) -> VersionInfo:
    return client.archive(kinds.kind, ref)


@router.get("/{kinds}/{ref}/lineage", response_model=LineageInfo)
def lineage(client: ReadClient, kinds: Kinds, ref: str, depth: int = 16) -> LineageInfo:
    return client.lineage(kinds.kind, ref, depth)


def _downloadable(client: LocalClient, kinds: Kinds, ref: str) -> VersionInfo:
    info = client.show(kinds.kind, ref)
    if kinds is Kinds.models:
        ensure_allowed(info)
    return info


#: Blobs up to this size are verified before the first byte is sent, so a bad blob is a
#: clean JSON error; larger ones stream, and a hash mismatch aborts the stream.
VERIFY_BEFORE_SENDING = 16 * 1024 * 1024


def _blob_response(
    client: LocalClient, sha256: str, size: int, headers: dict[str, str] | None = None
) -> Response:
    if size <= VERIFY_BEFORE_SENDING:
        data = client.blobs.read_bytes(sha256)
        return Response(data, media_type="application/octet-stream", headers=headers)
    if not client.blobs.exists(sha256):
        raise NotFoundError(f"blob {sha256} is missing from the store", field="sha256")
    return StreamingResponse(
        client.blobs.open_verified(sha256), media_type="application/octet-stream", headers=headers
    )


@router.get(
    "/{kinds}/{ref}/artifact",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def artifact(client: ReadClient, kinds: Kinds, ref: str) -> Response:
    """The artifact's bytes, or a folder's manifest; models only when the gate allowed them."""
    info = _downloadable(client, kinds, ref)
    headers = {"X-Stoa-Artifact": info.artifact, "X-Stoa-Sha256": info.sha256}
    if info.artifact == "folder":
        return Response(
            client.blobs.read_bytes(info.sha256), media_type="application/json", headers=headers
        )
    return _blob_response(client, info.sha256, info.size, headers)


@router.get(
    "/{kinds}/{ref}/files/{path:path}",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def artifact_file(client: ReadClient, kinds: Kinds, ref: str, path: str) -> Response:
    """One file of a folder artifact, named by its canonical relative path."""
    rel = safe_relpath(path, "path")
    info = _downloadable(client, kinds, ref)
    if info.artifact != "folder":
        raise InvalidInputError(
            f"{info.ref} is a single file", field="path", fix="download it from /artifact"
        )
    entry = client.blobs.read_manifest(info.sha256).get(rel)
    if entry is None:
        raise NotFoundError(f"{info.ref} has no file {rel!r}", field="path")
    return _blob_response(client, str(entry["sha256"]), int(entry["size"]))
