"""Garbage: blobs nothing references, and temporaries a crash left behind.

A registration stores its bytes before the transaction that records the version, so a
blob younger than ``min_age`` may belong to a registration still in flight: only older
ones are candidates, and a blob any version or run artifact references (directly, or
as a file of a folder's manifest) is never one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from stoa.core.blobs import BlobStore
from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import RunArtifact, Version

#: Long enough for any registration or upload in flight to have finished.
DEFAULT_MIN_AGE_S = 3600
#: Folders Stoa creates under the system temporary directory.
_TEMP_PREFIXES = ("stoa-upload-", "stoa-scan-", "stoa-artifact-", "stoa-pull-", "stoa-save-")


def referenced(db: Database, blobs: BlobStore) -> set[str]:
    """Every blob a version or a run artifact needs, manifests' files included."""
    with db.read() as session:
        rows = list(session.execute(select(Version.sha256, Version.artifact)))
        rows += session.execute(select(RunArtifact.sha256, RunArtifact.artifact))
    keep: set[str] = set()
    for sha256, artifact in rows:
        keep.add(sha256)
        if artifact == "folder" and blobs.exists(sha256):
            keep.update(str(entry["sha256"]) for entry in blobs.read_manifest(sha256).values())
    return keep


def sweep_temporaries(blobs: BlobStore, min_age_s: float = DEFAULT_MIN_AGE_S) -> dict[str, int]:
    """Remove the store's and the system's Stoa temporaries older than ``min_age_s``."""
    cutoff = time.time() - min_age_s
    removed = freed = 0
    for path, size in blobs.temporaries(older_than=cutoff):
        blobs.fs.rm(path)
        removed, freed = removed + 1, freed + size
    for folder in Path(tempfile.gettempdir()).glob("stoa-*"):
        try:
            if not folder.name.startswith(_TEMP_PREFIXES) or folder.stat().st_mtime > cutoff:
                continue
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
        except OSError:  # gone already, or not ours to remove
            continue
        removed, freed = removed + 1, freed + size
    return {"temporaries": removed, "temporary_bytes": freed}


def collect(
    db: Database, blobs: BlobStore, *, min_age_s: float = DEFAULT_MIN_AGE_S, dry_run: bool = False
) -> dict[str, Any]:
    """Delete unreferenced blobs older than ``min_age_s``, and stale temporaries."""
    if isinstance(min_age_s, bool) or not isinstance(min_age_s, int | float) or min_age_s < 60:
        raise InvalidInputError(
            "min_age_s must be at least 60 seconds",
            field="min_age_s",
            fix="a younger blob may belong to a registration still in flight",
        )
    cutoff = time.time() - min_age_s
    keep = referenced(db, blobs)
    unreferenced = [(sha, size) for sha, size, mtime in blobs.iter_blobs()
                    if sha not in keep and mtime < cutoff]  # fmt: skip
    if not dry_run:
        keep = referenced(db, blobs)  # read again: a version may have landed meanwhile
        for sha256, _ in unreferenced:
            if sha256 not in keep:
                blobs.delete(sha256)
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "blobs": len(unreferenced),
        "blob_bytes": sum(size for _, size in unreferenced),
        "kept": len(keep),
    }
    if not dry_run:
        report.update(sweep_temporaries(blobs, min_age_s))
    return report
