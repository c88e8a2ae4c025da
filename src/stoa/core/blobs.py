"""Content-addressed blob store over fsspec.

A blob lives at ``<root>/sha256/<2 hex>/<62 hex>``. Writes go to a temporary name
first and are renamed into place, so a reader never sees half a blob; on S3, which
has no atomic rename, they are hashed first and uploaded straight to their final key,
which shows only when the upload completes (``blobs_s3.py``). Reads verify the hash.
A folder is stored as its files' blobs plus a JSON manifest blob whose hash stands for
the whole folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from stoa.core import blobs_s3
from stoa.core.errors import IntegrityError, InvalidInputError, NotFoundError
from stoa.core.names import safe_relpath

CHUNK = 1 << 20
#: Called with the number of bytes just stored, so callers can draw a progress bar.
Progress = Callable[[int], None]
MANIFEST_FORMAT = "stoa.manifest/1"
_HEX = frozenset("0123456789abcdef")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise InvalidInputError(
            f"{sha256!r} is not a SHA-256 hex digest", field="sha256", fix="give 64 lowercase hex"
        )
    return sha256


@dataclass(frozen=True)
class StoredArtifact:
    """What ``put_path`` stored: the hash that names it, its kind and total size."""

    sha256: str
    artifact: str  # "file" or "folder"
    size: int


def build_manifest(folder: Path) -> tuple[dict[str, dict[str, object]], int]:
    """Hash every regular file under ``folder``.

    A symlink to a regular file counts as that file's content under the link's name:
    Hugging Face's cache is folders of such links into its ``blobs/``. The scanner has
    judged the same content (and, by policy, where the link points). A link to a folder,
    to nothing or to a special file, and special files themselves, are refused.
    """
    files: dict[str, dict[str, object]] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for entry in dirnames:
            full = Path(dirpath) / entry
            if full.is_symlink():
                raise InvalidInputError(
                    f"{full.relative_to(folder)} is a symlink to a folder",
                    field="path",
                    fix="replace the link with the folder it points to",
                )
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            if not full.is_file():  # follows a link: False for dangling links and devices
                what = (
                    "a symlink to nothing readable" if full.is_symlink() else "not a regular file"
                )
                raise InvalidInputError(f"{full.relative_to(folder)} is {what}", field="path")
            rel = safe_relpath(full.relative_to(folder).as_posix(), "path")
            size = full.stat().st_size
            files[rel] = {"sha256": sha256_file(full), "size": size}
            total += size
    if not files:
        raise InvalidInputError(
            f"folder {folder} is empty", field="path", fix="give a non-empty folder"
        )
    return files, total


class BlobStore:
    """Stores bytes once per distinct content; identical files cost nothing extra."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None):
        """``storage_options`` go to the fsspec file system (``stoa doctor`` shortens
        timeouts with them); credentials are best left to the environment."""
        self.url = url
        options = {**blobs_s3.storage_options(url), **(storage_options or {})}
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        #: No atomic rename: blobs are uploaded straight to their final key.
        self.object_store = blobs_s3.is_object_store(self.fs)
        if not self.object_store:  # a bucket is never created behind the user's back
            self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)

    def _path(self, sha256: str) -> str:
        _check_digest(sha256)
        return f"{self.root}/sha256/{sha256[:2]}/{sha256[2:]}"

    def _marker(self, sha256: str) -> str:
        return f"{self.root}/fresh/{sha256}"

    def exists(self, sha256: str) -> bool:
        return self.fs.exists(self._path(sha256))

    def _refresh(self, final: str, sha256: str) -> None:
        """Young again: garbage collection spares blobs younger than its minimum age,
        and a version is about to reference this one."""
        if self.object_store:
            blobs_s3.refresh_marker(self.fs, self._marker(sha256))
        else:
            self.fs.touch(final, truncate=False)

    def _put_object(
        self, source: BinaryIO, sha256: str, size: int, progress: Progress | None
    ) -> None:
        """Upload ``source`` (already hashed to ``sha256``) unless the blob is stored."""
        final = self._path(sha256)
        if self.fs.exists(final):
            self._refresh(final, sha256)
            if progress is not None:
                progress(size)
            return
        blobs_s3.upload_verified(self.fs, source, final, sha256, progress)

    def put_stream(self, stream: BinaryIO, progress: Progress | None = None) -> tuple[str, int]:
        """Copy a stream in while hashing it, then move it into place atomically."""
        if self.object_store:
            # Spooled to an anonymous local file: the hash names the key before upload.
            with tempfile.TemporaryFile(prefix="stoa-upload-") as spool:
                digest, size = hashlib.sha256(), 0
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    spool.write(chunk)
                spool.seek(0)
                sha = digest.hexdigest()
                self._put_object(spool, sha, size, progress)
            return sha, size
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            sha = digest.hexdigest()
            final = self._path(sha)
            if self.fs.exists(final):
                self.fs.rm(tmp)
                self._refresh(final, sha)
            else:
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return sha, size

    def put_bytes(self, data: bytes) -> str:
        return self.put_stream(io.BytesIO(data))[0]

    def put_file(self, path: Path, progress: Progress | None = None) -> tuple[str, int]:
        if self.object_store:  # hashed where it lies, then uploaded once, hashed again
            sha, size = sha256_file(path), Path(path).stat().st_size
            with open(path, "rb") as handle:
                self._put_object(handle, sha, size, progress)
            return sha, size
        with open(path, "rb") as handle:
            return self.put_stream(handle, progress)

    def put_path(self, path: Path, progress: Progress | None = None) -> StoredArtifact:
        """Store a file, or a folder as its files plus a manifest."""
        path = Path(path)
        if path.is_symlink() and path.is_dir():
            raise InvalidInputError(
                f"{path} is a symlink", field="path", fix="give the real folder"
            )
        if path.is_file():
            sha, size = self.put_file(path, progress)
            return StoredArtifact(sha, "file", size)
        if path.is_dir():
            files, total = build_manifest(path)
            for rel, entry in files.items():
                sha, _ = self.put_file(path / rel, progress)
                if sha != entry["sha256"]:
                    raise IntegrityError(f"{rel} changed while it was being stored", field="path")
            return StoredArtifact(self.put_bytes(manifest_bytes(files)), "folder", total)
        raise InvalidInputError(f"{path} does not exist", field="path", fix="check the path")

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """Every stored blob: its hash, size and modification time (for ``stoa gc``);
        on S3 the time is the later of the object's and its freshness marker's."""
        fresh: dict[str, float] = {}
        if self.object_store:
            for info in self.fs.find(f"{self.root}/fresh", detail=True).values():
                fresh[info["name"].rstrip("/").rsplit("/", 1)[-1]] = _mtime(info)
        for info in self.fs.find(f"{self.root}/sha256", detail=True).values():
            parts = info["name"].rstrip("/").rsplit("/", 2)
            if len(parts) == 3 and len(parts[1]) == 2 and len(parts[2]) == 62:
                sha = parts[1] + parts[2]
                yield sha, int(info["size"]), max(_mtime(info), fresh.get(sha, 0.0))

    def temporaries(self, *, older_than: float) -> Iterator[tuple[str, int]]:
        """Half-written blobs a crash left in ``tmp/``, last written before ``older_than``."""
        for info in self.fs.find(f"{self.root}/tmp", detail=True).values():
            if _mtime(info) < older_than:
                yield info["name"], int(info["size"])

    def delete(self, sha256: str) -> None:
        """Remove one blob; only ``stoa gc`` calls this, for blobs nothing references."""
        path = self._path(sha256)
        if self.fs.exists(path):
            self.fs.rm(path)
        if self.object_store and self.fs.exists(self._marker(sha256)):
            self.fs.rm(self._marker(sha256))

    @staticmethod
    def describe_path(path: Path) -> StoredArtifact:
        """What ``put_path`` would record, without storing a byte: for an artifact the
        gate blocked, whose report is kept but whose bytes are not."""
        path = Path(path)
        if path.is_file():
            return StoredArtifact(sha256_file(path), "file", path.stat().st_size)
        if path.is_dir():
            files, total = build_manifest(path)
            digest = hashlib.sha256(manifest_bytes(files)).hexdigest()
            return StoredArtifact(digest, "folder", total)
        raise InvalidInputError(f"{path} does not exist", field="path", fix="check the path")

    def open_verified(self, sha256: str) -> Iterator[bytes]:
        """Yield the blob's chunks; raise IntegrityError at the end if the hash differs."""
        path = self._path(sha256)
        if not self.fs.exists(path):
            raise NotFoundError(f"blob {sha256} is not in the store", field="sha256")
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                yield chunk
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"blob {sha256} does not match its hash",
                field="sha256",
                fix="restore the blob store from a backup; the stored file was altered",
            )

    def read_bytes(self, sha256: str) -> bytes:
        return b"".join(self.open_verified(sha256))

    def export_file(self, sha256: str, dest: Path) -> Path:
        """Write a verified copy of a blob to ``dest``; nothing is left behind on mismatch."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".stoa-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.open_verified(sha256):
                    out.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def read_manifest(self, sha256: str) -> dict[str, dict[str, object]]:
        return parse_manifest(self.read_bytes(sha256))

    def export_folder(self, manifest_sha256: str, dest: Path) -> Path:
        """Rebuild a folder from its manifest, verifying every file; all or nothing."""
        with staged_folder(dest) as tmp:
            for rel, entry in self.read_manifest(manifest_sha256).items():
                self.export_file(str(entry["sha256"]), tmp / rel)
        return dest

    def export(self, sha256: str, artifact: str, dest: Path) -> Path:
        if artifact == "folder":
            return self.export_folder(sha256, dest)
        return self.export_file(sha256, dest)


def _mtime(info: dict[str, object]) -> float:
    """A listing entry's modification time as a timestamp, whatever the file system."""
    value = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)  # type: ignore[arg-type]


def ensure_absent(dest: Path) -> Path:
    """Downloads never overwrite: a user's file at ``dest`` is not ours to replace."""
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise InvalidInputError(
            f"{dest} already exists", field="dest", fix="give a path that does not exist yet"
        )
    return dest


@contextlib.contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """A temporary folder beside ``dest``, renamed to it only if the block succeeds.

    A failed or tampered download then leaves nothing behind at ``dest``.
    """
    dest = ensure_absent(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".stoa-"))
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def manifest_bytes(files: dict[str, dict[str, object]]) -> bytes:
    body = {"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_manifest(data: bytes) -> dict[str, dict[str, object]]:
    """Parse and re-validate a manifest, so a tampered one cannot write outside its folder."""
    try:
        body = json.loads(data)
        files = body["files"]
        if body.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError("not a Stoa manifest")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"manifest is unreadable: {exc}", field="manifest") from exc
    for rel, entry in files.items():
        if safe_relpath(rel, "manifest") != rel:
            raise IntegrityError(f"manifest path {rel!r} is not canonical", field="manifest")
        _check_digest(str(entry.get("sha256", "")))
    return files
