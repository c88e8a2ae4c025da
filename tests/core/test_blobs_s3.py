"""The blob store on S3, over the real wire protocol: moto's standalone server on loopback.

Every guarantee of the local store must hold: content-addressed keys, hashes verified on
read, one copy per content, and no visible object from an upload that failed.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from stoa.core import blobs_s3  # noqa: E402
from stoa.core.blobs import BlobStore  # noqa: E402
from stoa.core.errors import IntegrityError  # noqa: E402

BUCKET = "stoa-blobs"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _clear_s3fs_instances() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto server on 127.0.0.1 with a free port, its bucket, and the AWS_* variables
    s3fs reads pointing at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(key, value)
        _clear_s3fs_instances()
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
        _clear_s3fs_instances()
    server.stop()


@pytest.fixture
def s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def prefix(request):
    """A fresh prefix per test, so tests share the server but not their blobs."""
    return f"t{abs(hash(request.node.name)) % 10**8}-{time.time_ns()}"


@pytest.fixture
def store(s3_endpoint, prefix):
    return BlobStore(f"s3://{BUCKET}/{prefix}")


def keys(s3, prefix: str, under: str = "") -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{under}")
    return sorted(item["Key"][len(prefix) + 1 :] for item in listing.get("Contents", []))


def pending_uploads(s3, prefix: str) -> list[str]:
    listing = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


def test_files_are_content_addressed_deduplicated_and_verified(store, s3, prefix, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    first, second = store.put_path(a), store.put_path(b)
    sha = hashlib.sha256(b"same bytes").hexdigest()
    assert first == second and first.sha256 == sha and first.size == 10
    assert store.object_store and store.exists(sha)
    # One object, at the content's address; nothing in tmp/, nothing half-uploaded.
    assert keys(s3, prefix, "sha256/") == [f"sha256/{sha[:2]}/{sha[2:]}"]
    assert keys(s3, prefix, "tmp/") == [] and pending_uploads(s3, prefix) == []
    assert store.read_bytes(sha) == b"same bytes"
    assert store.export_file(sha, tmp_path / "out" / "a.bin").read_bytes() == b"same bytes"
    assert store.put_bytes(b"same bytes") == sha  # a stream of the same bytes too


def test_a_folder_is_a_manifest_and_comes_back_whole(store, tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w" * 100)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "__init__.py").write_bytes(b"")  # an empty object is a blob too
    stored = store.put_path(folder)
    assert stored.artifact == "folder" and stored.size == 108
    manifest = json.loads(store.read_bytes(stored.sha256))
    assert manifest["files"]["weights.bin"]["sha256"] == hashlib.sha256(b"w" * 100).hexdigest()
    out = store.export(stored.sha256, "folder", tmp_path / "restored")
    assert (out / "sub" / "config.json").read_text() == '{"a": 1}'
    assert (out / "weights.bin").read_bytes() == b"w" * 100
    assert (out / "sub" / "__init__.py").read_bytes() == b""
    listed = {sha: size for sha, size, _ in store.iter_blobs()}
    assert listed[hashlib.sha256(b"w" * 100).hexdigest()] == 100 and len(listed) == 4


def test_an_object_altered_behind_stoas_back_is_refused(store, s3, prefix, tmp_path):
    sha = store.put_bytes(b"original")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/sha256/{sha[:2]}/{sha[2:]}", Body=b"tampered")
    with pytest.raises(IntegrityError, match="does not match its hash"):
        store.read_bytes(sha)
    dest = tmp_path / "out" / "f"
    with pytest.raises(IntegrityError):
        store.export_file(sha, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


class _Breaks:
    """A stream that fails after ``good`` bytes, like a client that went away."""

    def __init__(self, good: int):
        self.left = good

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("the client went away")
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"x" * n


def test_a_stream_that_fails_midway_leaves_no_visible_object(store, s3, prefix):
    store.put_bytes(b"already here")
    before = keys(s3, prefix)
    with pytest.raises(ConnectionResetError):
        store.put_stream(_Breaks(3 << 20))
    assert keys(s3, prefix) == before
    assert keys(s3, prefix, "tmp/") == [] and pending_uploads(s3, prefix) == []


def test_an_upload_failing_after_parts_were_sent_is_aborted(store, s3, prefix, tmp_path,
                                                            monkeypatch):  # fmt: skip
    """A multipart upload interrupted after its first part: the parts are discarded and
    no object appears, not even a short one."""
    monkeypatch.setattr(blobs_s3, "PART_BYTES", 5 << 20)  # S3's smallest part
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 << 20))
    aborted_with_parts: list[bool] = []
    real_abort = blobs_s3.abort

    def spy(handle):
        aborted_with_parts.append(handle.mpu is not None)
        real_abort(handle)

    monkeypatch.setattr(blobs_s3, "abort", spy)
    sent: list[int] = []

    def interrupt(n: int) -> None:
        sent.append(n)
        if sum(sent) >= 7 << 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_file(big, progress=interrupt)
    assert aborted_with_parts == [True]  # a part had gone out: the upload was multipart
    assert keys(s3, prefix) == [] and pending_uploads(s3, prefix) == []
    # The same file then goes in whole, as parts, and reads back verified.
    sha, size = store.put_file(big)
    assert size == 11 << 20 and store.read_bytes(sha) == big.read_bytes()


def test_a_file_that_changed_after_hashing_is_not_stored(store, s3, prefix, tmp_path,
                                                         monkeypatch):  # fmt: skip
    path = tmp_path / "f.bin"
    path.write_bytes(b"new content")
    import stoa.core.blobs as blobs_module

    stale = hashlib.sha256(b"old content").hexdigest()
    monkeypatch.setattr(blobs_module, "sha256_file", lambda _: stale)
    with pytest.raises(IntegrityError, match="changed while it was being stored"):
        store.put_file(path)
    assert keys(s3, prefix) == [] and pending_uploads(s3, prefix) == []


CHILD = textwrap.dedent(
    """
    import sys
    from stoa.core.blobs import BlobStore
    store = BlobStore(sys.argv[1])
    assert store.read_bytes(sys.argv[2]) == b"from the parent"
    print(store.put_bytes(b"from the child"))
    """
)


def test_blobs_written_by_one_process_are_read_by_another(store, s3_endpoint):
    theirs = hashlib.sha256(b"from the child").hexdigest()
    assert not store.exists(theirs)
    mine = store.put_bytes(b"from the parent")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, store.url, mine],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == theirs
    # No listing cached in this process hides what the other one wrote.
    assert store.exists(theirs) and store.read_bytes(theirs) == b"from the child"


def test_gc_on_s3_spares_referenced_and_refreshed_blobs(s3_endpoint, s3, prefix, tmp_path,
                                                        monkeypatch):  # fmt: skip
    """A full LocalClient round trip with STOA_BLOB_URL=s3://…: register (the gate scans),
    download verified, then gc deletes only what nothing references."""
    from sklearn.linear_model import LogisticRegression

    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.govern import gc

    client = LocalClient(settings=Settings(home=tmp_path / "home",
                                           blob_url=f"s3://{BUCKET}/{prefix}"))  # fmt: skip
    try:
        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        info = client.models.log("churn", model)
        assert info.status == "allowed"
        out = client.models.download("churn@1", tmp_path / "out")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == info.sha256
        blobs = client.stores.blobs
        orphan = blobs.put_bytes(b"nothing references me")
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/tmp/left-by-a-crash", Body=b"half")
        refreshed = blobs.put_bytes(b"stored again later")
        first = {sha: mtime for sha, _, mtime in blobs.iter_blobs()}[refreshed]
        time.sleep(1.1)  # S3 times have whole seconds
        assert blobs.put_bytes(b"stored again later") == refreshed  # deduplicated: a marker
        later = {sha: mtime for sha, _, mtime in blobs.iter_blobs()}[refreshed]
        assert later > first
        # gc an hour from the first writes' point of view, but just before the marker.
        now = later - 0.5 + 60
        with monkeypatch.context() as patch:
            patch.setattr(gc.time, "time", lambda: now)
            # The system's temporaries gc also sweeps: this test's own, not its neighbours'.
            patch.setattr(gc.tempfile, "gettempdir", lambda: str(tmp_path))
            report = client.admin.gc(min_age_s=60)
        assert report["blobs"] == 1 and report["kept"] == 1 and report["temporaries"] == 1
        assert keys(s3, prefix, "tmp/") == []
        assert not blobs.exists(orphan)
        assert blobs.exists(refreshed) and blobs.exists(info.sha256)
        assert client.models.load("churn@1").predict([[3.0]]).tolist() == [1]
    finally:
        client.close()
