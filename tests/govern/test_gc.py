"""Issue 12, item 5: what a crash leaves is cleaned up, and nothing referenced ever is."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from stoa.core.errors import InvalidInputError
from stoa.govern.gc import sweep_temporaries
from tests.artifacts import folder_model, write_safetensors
from tests.cli.test_cli import stoa  # noqa: F401 - fixture

OLD = time.time() - 2 * 3600


def _age(path: Path) -> None:
    os.utime(path, (OLD, OLD))


def test_gc_removes_only_unreferenced_old_blobs(client, tmp_path: Path) -> None:
    blobs = client.stores.blobs
    kept_file = client.models.register("w", write_safetensors(tmp_path / "w.safetensors"))
    kept_folder = client.models.register("f", folder_model(tmp_path / "f"))
    run = client.runs.create("r", status="running")
    artifact = tmp_path / "a.txt"
    artifact.write_text("logged")
    client.runs.log_artifact(run.id, artifact)
    orphan_old = blobs.put_bytes(b"left by a crash before its version was written")
    orphan_new = blobs.put_bytes(b"a registration still in flight")
    root = Path(blobs.root)
    for path in (root / "sha256").rglob("*"):
        if path.is_file() and path.name != orphan_new[2:]:
            _age(path)
    counted = client.admin.gc(dry_run=True)
    assert counted["blobs"] == 1 and counted["dry_run"]
    assert blobs.exists(orphan_old)  # a dry run deletes nothing
    report = client.admin.gc()
    assert report["blobs"] == 1 and not blobs.exists(orphan_old)
    assert blobs.exists(orphan_new)  # too young: it may belong to a registration in flight
    for info in (kept_file, kept_folder):
        assert blobs.exists(info.sha256)
    out = client.models.download("f@1", tmp_path / "out")  # every manifest file survived
    assert sorted(p.name for p in out.rglob("*") if p.is_file())
    assert client.runs.get(run.id).artifacts


def test_a_reused_old_blob_is_young_again(client, tmp_path: Path) -> None:
    blobs = client.stores.blobs
    sha = blobs.put_bytes(b"same bytes")
    path = Path(blobs._path(sha))
    _age(path)
    assert blobs.put_bytes(b"same bytes") == sha
    assert path.stat().st_mtime > OLD + 3600


def test_stale_temporaries_are_swept_and_fresh_ones_kept(sqlite_client) -> None:
    blobs = sqlite_client.stores.blobs
    tmp = Path(blobs.root) / "tmp"
    stale, fresh = tmp / "stale", tmp / "fresh"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y")
    _age(stale)
    upload = Path(tempfile.mkdtemp(prefix="stoa-upload-"))
    (upload / "part").write_bytes(b"z" * 10)
    _age(upload)
    mine = Path(tempfile.mkdtemp(prefix="not-stoa-"))
    _age(mine)
    try:
        report = sweep_temporaries(blobs)
        assert not stale.exists() and fresh.exists()
        assert not upload.exists() and mine.exists()
        assert report["temporaries"] >= 2 and report["temporary_bytes"] >= 110
    finally:
        mine.rmdir()


def test_gc_refuses_a_minimum_age_that_could_race_a_registration(sqlite_client) -> None:
    with pytest.raises(InvalidInputError, match="at least 60 seconds") as refused:
        sqlite_client.admin.gc(min_age_s=1)
    assert refused.value.field == "min_age_s"


def test_stoa_gc_command(stoa, tmp_path: Path) -> None:  # noqa: F811
    done = stoa("gc", "--dry-run")
    assert done.returncode == 0 and "would delete 0 unreferenced blobs" in done.stdout
    bad = stoa("gc", "--min-age", "5")
    assert bad.returncode == 2 and "min_age_s" in bad.stderr
