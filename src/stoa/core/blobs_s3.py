"""Blobs on S3 and S3-compatible stores: the writes that replace a rename.

An object store has no atomic rename: a "move" is a copy and a delete, and the
temporary key is visible in the bucket meanwhile. An S3 PUT, or a multipart upload,
becomes visible only when it completes, though. So a blob is hashed first (a stream is
spooled to an anonymous local file for that) and then uploaded straight to its final
key, hashed again on the way; any failure, or a source that changed since the first
hash, aborts the upload before it completes, and nothing appears under ``sha256/``.

Credentials and the endpoint come from where s3fs and botocore read them (the
``AWS_*`` variables, ``~/.aws``, an instance role; ``AWS_ENDPOINT_URL`` or
``FSSPEC_S3_ENDPOINT_URL`` for a non-AWS server): see docs/storage.md.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, BinaryIO

from stoa.core.errors import IntegrityError

#: Bytes per part of a multipart upload (S3 wants at least 5 MiB for all but the last).
PART_BYTES = 50 << 20
_CHUNK = 1 << 20
_PROTOCOLS = frozenset({"s3", "s3a"})


def is_s3_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in _PROTOCOLS if "://" in url else False


def is_object_store(fs: Any) -> bool:
    """Whether ``fs`` is S3-like: no atomic rename, so blobs go straight to their key."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return bool(_PROTOCOLS & set(protocols))


def storage_options(url: str) -> dict[str, Any]:
    """What the file system is built with for ``url``.

    Listings are never cached: another process (another node) may have written or
    deleted a blob since, and a stale listing would make ``exists`` answer wrongly.
    """
    return {"use_listings_cache": False} if is_s3_url(url) else {}


def upload_verified(
    fs: Any,
    source: BinaryIO,
    key: str,
    sha256: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Upload ``source`` to ``key``, completing the upload only if its bytes hash to
    ``sha256``; on any failure the upload is aborted and nothing becomes visible."""
    handle = fs.open(key, "wb", block_size=PART_BYTES)
    digest = hashlib.sha256()
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            handle.write(chunk)
            if progress is not None:
                progress(len(chunk))
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                "the content changed while it was being stored",
                field="path",
                fix="store it again once nothing is writing to it",
            )
    except BaseException:
        abort(handle)
        raise
    try:
        handle.close()  # completes the PUT or the multipart upload: now it is visible
    except BaseException:
        abort(handle)
        raise


def abort(handle: Any) -> None:
    """Abort a write that has not completed, and make sure nothing completes it later:
    fsspec files complete their upload when closed, even by the garbage collector."""
    with contextlib.suppress(Exception):
        handle.discard()  # aborts a started multipart upload; a single PUT never started
    handle.closed = True


def refresh_marker(fs: Any, marker: str) -> None:
    """Make a stored blob count as new for ``stoa gc`` without rewriting it.

    A local blob is touched; an S3 object's LastModified changes only when it is
    rewritten (a copy onto itself, costly for big models), so an empty marker object
    beside it carries the new time instead, and ``iter_blobs`` reads the later of both.
    """
    fs.pipe_file(marker, b"")
