"""What models, prompts and datasets share: versions, search, aliases, review, lineage,
archiving and verified downloads, written once for the three kinds.

Their routes sit under ``/{kinds}/…``: the server mounts these operations once and the
path names the kind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, ClassVar

from stoa.client._operation import Resource, Wire, operation, remote_variant
from stoa.client._transport import seg
from stoa.core.blobs import BlobStore, ensure_absent, parse_manifest, staged_folder
from stoa.core.errors import IntegrityError, InvalidInputError, NotFoundError
from stoa.core.names import safe_relpath
from stoa.govern.types import AliasInfo, AuditInfo, Kind, LineageInfo, SeriesInfo, VersionInfo

#: Blobs up to this size are verified before the first byte is sent, so a bad blob is a
#: clean JSON error; larger ones stream, and a hash mismatch aborts the stream.
VERIFY_BEFORE_SENDING = 16 * 1024 * 1024


def _download_over_http(resource: Versions, ref: str, dest: str | Path) -> Path:
    """Fetch an artifact and verify every byte against the hashes the server recorded."""
    info = resource.show(ref)
    dest = ensure_absent(Path(dest))
    http = resource._http
    base = f"/{resource.name}/{seg(info.ref)}"
    if info.artifact == "file":
        return http.fetch(f"{base}/artifact", info.sha256, dest)
    manifest = http.call("GET", f"{base}/artifact").content
    if hashlib.sha256(manifest).hexdigest() != info.sha256:
        raise IntegrityError("the manifest does not match its hash", field="manifest")
    with staged_folder(dest) as tmp:
        for rel, entry in parse_manifest(manifest).items():
            segments = "/".join(map(seg, rel.split("/")))
            http.fetch(f"{base}/files/{segments}", str(entry["sha256"]), tmp / rel)
    return dest


class Versions(Resource):
    """One kind of registered, versioned artifact; ``kind`` names it in the registry."""

    kind: ClassVar[Kind]

    def _check_download(self, info: VersionInfo) -> None:
        """What must hold before an artifact's bytes leave the store (models: allowed)."""

    @operation("GET", "/{kinds}", scope="read")
    def list(self) -> list[SeriesInfo]:
        """Every named series with its latest version and aliases."""
        return self._local.registry.list_series(self.kind)

    @operation("GET", "/{kinds}/-/search", scope="read")
    def search(
        self,
        tags: Annotated[dict[str, str] | None, Wire("tag", pairs=True)] = None,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[VersionInfo]:
        """Versions carrying every tag given (KEY=VALUE), newest first."""
        return self._local.registry.search(
            self.kind, tags=tags, name=name, status=status, limit=limit
        )

    @operation("GET", "/{kinds}/{name}/versions", scope="read")
    def versions(
        self,
        name: str,
        status: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[VersionInfo]:
        """Every version of ``name`` in order; with ``limit``, only the newest ``limit``
        (numbered below ``before`` when given), still in order: a page of a long series."""
        return self._local.registry.list_versions(
            self.kind, name, status=status, before=before, limit=limit
        )

    @operation("GET", "/{kinds}/{ref}", scope="read")
    def show(self, ref: str) -> VersionInfo:
        """One version (NAME, NAME@3 or NAME@ALIAS), with the report of the scan that judged it."""
        return self._local.registry.get(self.kind, ref)

    @operation("PUT", "/{kinds}/{name}/aliases/{alias}", scope="write")
    def set_alias(self, name: str, version: int, alias: str) -> AliasInfo:
        """Point ``alias`` at a version; every move is audited."""
        local = self._local
        return local.registry.set_alias(self.kind, name, version, alias, actor=local.actor)

    @operation("DELETE", "/{kinds}/{name}/aliases/{alias}", scope="write")
    def delete_alias(self, name: str, alias: str) -> None:
        local = self._local
        local.registry.delete_alias(self.kind, name, alias, actor=local.actor)

    @operation("GET", "/{kinds}/{name}/aliases", scope="read")
    def alias_history(self, name: str) -> list[AuditInfo]:
        """Every alias move of ``name``: who, when, from which version to which."""
        return self._local.registry.alias_history(self.kind, name)

    @operation("POST", "/{kinds}/{ref}/approve", scope="admin")
    def approve(self, ref: str, note: str = "") -> VersionInfo:
        """Release a version held for review (pending); admins only, and audited."""
        return self._review(ref, approve=True, note=note)

    @operation("POST", "/{kinds}/{ref}/reject", scope="admin")
    def reject(self, ref: str, note: str = "") -> VersionInfo:
        """Block a version held for review for good; admins only, and audited."""
        return self._review(ref, approve=False, note=note)

    def _review(self, ref: str, *, approve: bool, note: str) -> VersionInfo:
        local = self._local
        return local.registry.review(self.kind, ref, approve=approve, actor=local.actor, note=note)

    @operation("POST", "/{kinds}/{ref}/archive", scope="write")
    def archive(self, ref: str) -> VersionInfo:
        local = self._local
        return local.registry.archive(self.kind, ref, actor=local.actor)

    @operation("DELETE", "/{kinds}/{ref}", scope="admin")
    def delete(self, ref: str) -> VersionInfo:
        """Remove a version for good (admins), refused while an alias points at it; its
        bytes go at the next ``stoa gc`` unless another version shares them."""
        local = self._local
        return local.registry.delete(self.kind, ref, actor=local.actor)

    @operation("GET", "/{kinds}/{ref}/lineage", scope="read")
    def lineage(self, ref: str, depth: int = 16, limit: int = 1000) -> LineageInfo:
        """What this version came from and what was made from it, ``depth`` steps out and
        at most ``limit`` nodes each way."""
        return self._local.registry.lineage(self.kind, ref, depth=depth, limit=limit)

    @remote_variant(_download_over_http)
    def download(self, ref: str, dest: str | Path) -> Path:
        """Write a verified copy of a version's artifact to ``dest``, which must not exist."""
        info = self.show(ref)
        self._check_download(info)
        return self._local.blobs.export(info.sha256, info.artifact, ensure_absent(Path(dest)))

    @operation("GET", "/{kinds}/{ref}/artifact", scope="read", raw=True)
    def _artifact(self, ref: str) -> Any:
        """The artifact's bytes, or a folder's manifest; models only when the gate allowed
        them. Headers carry its kind (``X-Stoa-Artifact``) and hash (``X-Stoa-Sha256``)."""
        from starlette.responses import Response

        info = self.show(ref)
        self._check_download(info)
        headers = {"X-Stoa-Artifact": info.artifact, "X-Stoa-Sha256": info.sha256}
        if info.artifact == "folder":
            data = self._local.blobs.read_bytes(info.sha256)
            return Response(data, media_type="application/json", headers=headers)
        return blob_response(self._local.blobs, info.sha256, info.size, headers)

    @operation("GET", "/{kinds}/{ref}/files/{path:path}", scope="read", raw=True)
    def _artifact_file(self, ref: str, path: str) -> Any:
        """One file of a folder artifact, named by its canonical relative path."""
        rel = safe_relpath(path, "path")
        info = self.show(ref)
        self._check_download(info)
        if info.artifact != "folder":
            raise InvalidInputError(
                f"{info.ref} is a single file", field="path", fix="download it from /artifact"
            )
        entry = self._local.blobs.read_manifest(info.sha256).get(rel)
        if entry is None:
            raise NotFoundError(f"{info.ref} has no file {rel!r}", field="path")
        return blob_response(self._local.blobs, str(entry["sha256"]), int(entry["size"]))


def blob_response(
    blobs: BlobStore, sha256: str, size: int, headers: dict[str, str] | None = None
) -> Any:
    """A stored blob as an HTTP answer, verified before the first byte up to
    ``VERIFY_BEFORE_SENDING``, and while it streams above that."""
    from starlette.responses import Response, StreamingResponse

    if size <= VERIFY_BEFORE_SENDING:
        return Response(
            blobs.read_bytes(sha256), media_type="application/octet-stream", headers=headers
        )
    if not blobs.exists(sha256):
        raise NotFoundError(f"blob {sha256} is missing from the store", field="sha256")
    return StreamingResponse(
        blobs.open_verified(sha256), media_type="application/octet-stream", headers=headers
    )
