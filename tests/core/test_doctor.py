"""`stoa doctor`'s checks: what they find, what they say to fix, and what they never
show (credentials) or do (create a home, a schema or a bucket)."""

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from stoa.core import doctor
from stoa.core.blobs import BlobStore
from stoa.core.db import HEAD_REVISION, Database
from stoa.core.settings import Settings
from tests.core.test_blobs_s3 import BUCKET, s3_endpoint  # noqa: F401 - the fixture

SECRET = "do-not-print-me-42"


def by_check(rows: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {row.check: row for row in rows}


def shown(rows: list[doctor.Check]) -> str:
    return json.dumps([row.to_dict() for row in rows])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_a_new_home_gets_warnings_and_is_not_created(tmp_path, no_ray):
    home = tmp_path / "home"
    rows = doctor.run_checks(Settings(home=home))
    checks = by_check(rows)
    assert [checks[n].status for n in ("home", "database", "blobs")] == ["warn"] * 3
    assert "stoa init" in checks["home"].fix and not doctor.failed(rows)
    assert not home.exists()  # a check never creates what it checks


def test_an_initialised_home_is_ok_and_the_probe_blob_is_gone(tmp_path, no_ray):
    settings = Settings(home=tmp_path / "home")
    (tmp_path / "home").mkdir()
    Database(settings.resolved_database_url).engine.dispose()  # migrated to head
    BlobStore(settings.resolved_blob_url)
    rows = doctor.run_checks(settings)
    checks = by_check(rows)
    assert checks["database"].status == "ok", checks["database"]
    assert "SQLite" in checks["database"].detail and HEAD_REVISION in checks["database"].detail
    assert checks["blobs"].status == "ok" and "read back and deleted" in checks["blobs"].detail
    assert not list((tmp_path / "home" / "blobs").rglob("sha256/*/*"))
    assert not doctor.failed(rows) and "ray cluster" not in checks


def test_postgresql_at_head_is_ok(postgres_url, tmp_path):
    Database(postgres_url).engine.dispose()
    [row] = doctor.check_database(Settings(home=tmp_path, database_url=postgres_url))
    assert row.status == "ok" and row.detail.startswith("PostgreSQL at postgresql+psycopg://")
    assert row.detail.endswith(f"schema at head ({HEAD_REVISION})")


def test_an_unreachable_database_fails_with_a_fix_and_no_password(tmp_path, no_ray):
    url = f"postgresql://stoa:{SECRET}@127.0.0.1:{free_port()}/stoa"
    rows = doctor.run_checks(Settings(home=tmp_path, database_url=url))
    row = by_check(rows)["database"]
    assert row.status == "fail" and "cannot connect" in row.detail
    assert "server is running" in row.fix and doctor.failed(rows)
    assert SECRET not in shown(rows) and "stoa:***@127.0.0.1" in row.detail


def test_a_schema_behind_head_is_a_warning_to_migrate():
    row = doctor._schema_row("SQLite", "sqlite:///x", "0003", "0011")
    assert (row.status, row.fix) == ("warn", "run `stoa init` to migrate (any command would, "
                                              "on first use)")  # fmt: skip
    assert doctor._schema_row("SQLite", "x", "0012", "0011").status == "fail"


def s3_settings(tmp_path, bucket: str = BUCKET) -> Settings:
    return Settings(home=tmp_path, blob_url=f"s3://{bucket}/doctor")


def test_s3_is_probed_end_to_end_and_credentials_are_named_not_shown(
    s3_endpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
    no_ray,
):
    import boto3

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    rows = doctor.check_blobs(s3_settings(tmp_path), dict(os.environ))
    checks = by_check(rows)
    assert checks["s3 endpoint"].detail == f"{s3_endpoint} (from AWS_ENDPOINT_URL)"
    assert "AWS_SECRET_ACCESS_KEY" in checks["s3 credentials"].detail
    assert checks["blobs"].status == "ok", checks["blobs"]
    listing = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
        Bucket=BUCKET, Prefix="doctor/"
    )
    assert listing.get("KeyCount", 0) == 0  # the probe was deleted
    assert SECRET not in shown(doctor.run_checks(s3_settings(tmp_path)))


def test_s3_failures_are_rows_with_fixes(s3_endpoint, tmp_path, monkeypatch, no_ray):  # noqa: F811
    missing = by_check(doctor.run_checks(s3_settings(tmp_path, "no-such-bucket")))["blobs"]
    assert missing.status == "fail" and "create the bucket" in missing.fix

    from moto import settings as moto_settings

    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # check keys
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    rows = doctor.run_checks(s3_settings(tmp_path))
    denied = by_check(rows)["blobs"]
    assert denied.status == "fail" and "access denied" in denied.detail
    assert "AWS_SECRET_ACCESS_KEY" in denied.fix and SECRET not in shown(rows)

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    away = by_check(doctor.run_checks(s3_settings(tmp_path)))["blobs"]
    assert away.status == "fail" and "cannot reach" in away.detail
    assert "AWS_ENDPOINT_URL" in away.fix

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    half = by_check(doctor.run_checks(s3_settings(tmp_path)))
    assert half["s3 credentials"].status == "fail" and "blobs" not in half
    assert half["s3 credentials"].fix.startswith("set AWS_SECRET_ACCESS_KEY")


@pytest.mark.parametrize(
    ("nodes", "status", "words"),
    [(3, "warn", "cannot be shared by 3 nodes"), (1, "ok", "works on this one node"),
     (None, "warn", "multi-node cluster (cannot tell)")],
)  # fmt: skip
def test_ray_warns_about_local_state_on_a_cluster(tmp_path, monkeypatch, nodes, status, words):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # implies --ray
    asked: list[str | None] = []

    def fake_nodes(address):
        asked.append(address)
        return nodes, "" if nodes else "no cluster reachable at ray://head:10001: refused"

    rows = by_check(doctor.run_checks(Settings(home=tmp_path), ray_nodes=fake_nodes))
    assert asked == ["ray://head:10001"]
    for name, fix in (("ray database", "PostgreSQL"), ("ray blobs", "s3://")):
        assert rows[name].status == status and words in rows[name].detail, rows[name]
        assert fix in rows[name].fix or status == "ok"
    assert rows["ray cluster"].status == ("warn" if nodes is None else "ok")


def test_ray_is_content_with_shared_state(tmp_path, no_ray):
    settings = Settings(home=tmp_path, database_url="postgresql://u@db/stoa",
                        blob_url="s3://bucket/stoa")  # fmt: skip
    rows = doctor.check_ray_sharing(settings, None, lambda _: (4, ""))
    assert [r.status for r in rows] == ["ok"] * 3
    assert rows[0].detail == "4 alive node(s)"


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = json.dumps({"ready": self.status == 200, "problems": ["endpoint e: warming"]})
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(("status", "expected"), [(200, "ok"), (503, "fail")])
def test_the_server_is_asked_readyz(tmp_path, no_ray, status, expected):
    handler = type("Handler", (_Ready,), {"status": status})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rows = by_check(doctor.run_checks(Settings(home=tmp_path, url=url, token=SECRET)))
    finally:
        server.shutdown()
    assert rows["server"].status == expected
    assert "database" not in rows and rows["stores"].status == "ok"  # the server's, not ours
    if expected == "fail":
        assert rows["server"].detail.endswith("/readyz answered 503 with 1 problem(s)")
        assert "warming" not in rows["server"].detail  # the other side's words stay there


def test_an_unreachable_server_fails_with_a_fix(tmp_path, no_ray):
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}"
    rows = doctor.run_checks(Settings(home=tmp_path, url=url))
    row = by_check(rows)["server"]
    assert row.status == "fail" and "stoa server" in row.fix and SECRET not in shown(rows)
    assert "user:***@127.0.0.1" in row.detail


def test_masking_and_scrubbing():
    assert doctor.mask_url("s3://bucket/x") == "s3://bucket/x"
    assert doctor.mask_url("https://a:b@host:1/p") == "https://a:***@host:1/p"
    row = doctor.scrub(doctor.Check("x", "fail", f"said {SECRET}", f"not {SECRET}"), [SECRET])
    assert SECRET not in row.detail + row.fix and row.to_dict()["ok"] is False
