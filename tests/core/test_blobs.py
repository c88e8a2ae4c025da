import hashlib
import json
import os

import pytest

from stoa.core.blobs import BlobStore, manifest_bytes, sha256_file
from stoa.core.errors import IntegrityError, InvalidInputError, NotFoundError


@pytest.fixture
def store(tmp_path):
    return BlobStore(str(tmp_path / "blobs"))


def test_put_file_is_content_addressed_and_deduplicated(store, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    first, second = store.put_path(a), store.put_path(b)
    assert first == second
    assert first.sha256 == hashlib.sha256(b"same bytes").hexdigest()
    assert first.artifact == "file" and first.size == 10
    blobs = [p for p in (tmp_path / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert store.read_bytes(first.sha256) == b"same bytes"
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # no temp files left


def test_read_verifies_hash_and_detects_tampering(store, tmp_path):
    sha = store.put_bytes(b"original")
    blob = tmp_path / "blobs" / "sha256" / sha[:2] / sha[2:]
    blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.read_bytes(sha)
    dest = tmp_path / "out" / "f"
    with pytest.raises(IntegrityError):
        store.export_file(sha, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the partial copy was removed


def test_unknown_and_malformed_digests(store):
    with pytest.raises(NotFoundError):
        store.read_bytes("0" * 64)
    with pytest.raises(InvalidInputError, match="not a SHA-256"):
        store.read_bytes("../../etc/passwd")


def test_folder_is_a_manifest_of_file_hashes(store, tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 100)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    (folder / "copy.bin").write_bytes(b"w" * 100)
    stored = store.put_path(folder)
    assert stored.artifact == "folder" and stored.size == 208
    manifest = json.loads(store.read_bytes(stored.sha256))
    assert sorted(manifest["files"]) == ["copy.bin", "sub/config.json", "weights.bin"]
    assert manifest["files"]["weights.bin"]["sha256"] == sha256_file(folder / "weights.bin")
    again = store.put_path(folder)
    assert again.sha256 == stored.sha256  # idempotent by content
    out = store.export_folder(stored.sha256, tmp_path / "restored")
    assert (out / "sub" / "config.json").read_text() == '{"a": 1}'
    assert (out / "weights.bin").read_bytes() == b"w" * 100


def test_a_symlink_to_a_file_is_stored_as_its_content(store, tmp_path):
    """Hugging Face's cache: snapshot files are links into blobs/ (issue 12)."""
    blobs = tmp_path / "cache" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc").write_bytes(b"weights")
    folder = tmp_path / "cache" / "snapshot"
    folder.mkdir()
    (folder / "real.bin").write_bytes(b"x")
    os.symlink("../blobs/abc", folder / "model.bin")
    stored = store.put_path(folder)
    out = store.export(stored.sha256, stored.artifact, tmp_path / "out")
    assert (out / "model.bin").read_bytes() == b"weights"
    assert not (out / "model.bin").is_symlink()


@pytest.mark.parametrize(
    ("target", "message"),
    [("folder", "symlink to a folder"), ("nowhere", "symlink to nothing readable")],
)
def test_a_symlink_to_a_folder_or_to_nothing_is_refused(store, tmp_path, target, message):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.bin").write_bytes(b"x")
    os.symlink(folder / "sub" if target == "folder" else tmp_path / "gone", folder / "link")
    with pytest.raises(InvalidInputError, match=message):
        store.put_path(folder)


def test_empty_folder_and_missing_path(store, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="is empty"):
        store.put_path(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="does not exist"):
        store.put_path(tmp_path / "nope")


def test_tampered_manifest_cannot_escape_on_export(store, tmp_path):
    payload = store.put_bytes(b"evil")
    bad = manifest_bytes({"../../escape": {"sha256": payload, "size": 4}})
    sha = store.put_bytes(bad)
    with pytest.raises(InvalidInputError, match="leaves the artifact folder"):
        store.export_folder(sha, tmp_path / "restore")
    assert not (tmp_path / "escape").exists()


def test_progress_reports_every_stored_byte(store, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 3_000_000)
    (folder / "b.bin").write_bytes(b"b" * 10)
    seen: list[int] = []
    store.put_path(folder, progress=seen.append)
    assert sum(seen) == 3_000_010 and len(seen) >= 3  # chunked, not one call per file


def test_export_never_overwrites(store, tmp_path):
    from stoa.core.blobs import ensure_absent

    existing = tmp_path / "mine.txt"
    existing.write_text("keep me")
    with pytest.raises(InvalidInputError, match="already exists") as info:
        ensure_absent(existing)
    assert info.value.field == "dest" and existing.read_text() == "keep me"
