"""Issue 12, item 3: sizes are bounded, counted while streaming, and nobody's body is
read before their token and scope are checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stoa.core.settings import Settings
from stoa.serve.server import create_app
from tests.serve.test_api import API, bearer, check_error, pickle_file

MIB = 1024 * 1024


@pytest.fixture
def small(tmp_path: Path):
    """A server that takes at most 1 MiB of upload and 1 MiB of JSON."""
    app = create_app(Settings(home=tmp_path / "home", max_upload_mb=1, max_json_mb=1))
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as api:
        yield app, api
    app.state.client.close()


def test_an_upload_over_the_limit_is_a_413_and_stores_nothing(small, tmp_path: Path) -> None:
    app, api = small
    files = [("files", ("big.safetensors", b"\0" * (MIB + 1)))]
    response = api.post(f"{API}/models", data={"name": "big"}, files=files)
    check_error(response, 413, "body", code="too_large", message="limit of 1 MiB")
    assert api.get(f"{API}/models").json() == []
    blobs = Path(app.state.client.stores.blobs.url)
    assert not any(p.is_file() for p in blobs.rglob("*")) if blobs.exists() else True


def test_a_json_body_over_the_limit_is_a_413(small) -> None:
    _, api = small
    response = api.post(f"{API}/prompts", json={"name": "p", "template": "x" * (MIB + 10)})
    check_error(response, 413, "body", code="too_large", message="body is over")
    assert api.get(f"{API}/prompts").json() == []


def test_a_chunked_body_is_counted_while_it_streams(small) -> None:
    _, api = small
    chunks = (b'{"name": "p", "template": "' + b"x" * 256 * 1024 for _ in range(5))
    response = api.post(
        f"{API}/prompts", content=chunks, headers={"content-type": "application/json"}
    )
    check_error(response, 413, "body", code="too_large")


def test_bodies_under_the_limit_still_pass(small) -> None:
    _, api = small
    response = api.post(f"{API}/prompts", json={"name": "p", "template": "x" * 1000})
    assert response.status_code == 201, response.text


def _drive(app, method: str, path: str, headers: dict[str, str], chunks: int) -> tuple[int, int]:
    """Run one request through the ASGI app; return its status and the chunks it read."""
    read = 0
    status = 0

    async def receive() -> dict:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": read < chunks}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return status, read


def test_no_body_is_read_before_the_token_and_scope_are_checked(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path / "home"))
    client = app.state.client
    reader = client.tokens.create("ro", ["read"]).token
    form = {"host": "127.0.0.1", "content-type": "multipart/form-data; boundary=x"}
    assert _drive(app, "POST", f"{API}/models", form, chunks=100) == (401, 0)
    as_reader = {**form, **bearer(reader)}
    assert _drive(app, "POST", f"{API}/models", as_reader, chunks=100) == (403, 0)
    assert _drive(app, "POST", f"{API}/scans", as_reader, chunks=100) == (403, 0)
    client.close()


def test_scanning_an_upload_needs_write(api, tmp_path: Path) -> None:
    admin = api.post(f"{API}/tokens", json={"name": "root", "scopes": ["admin"]}).json()
    reader = api.post(
        f"{API}/tokens", json={"name": "ro", "scopes": ["read"]}, headers=bearer(admin["token"])
    ).json()
    files = [("files", ("m.safetensors", b"\0" * 64))]
    refused = api.post(f"{API}/scans", files=files, headers=bearer(reader["token"]))
    check_error(refused, 403, "scope", code="forbidden", message="'write'")
    allowed = api.post(f"{API}/scans", files=files, headers=bearer(admin["token"]))
    assert allowed.status_code == 200, allowed.text


def test_a_blocked_upload_keeps_its_report_not_its_bytes(sqlite_client, tmp_path: Path) -> None:
    info = sqlite_client.models.register("evil", pickle_file(tmp_path))
    assert info.status == "blocked"
    assert not sqlite_client.stores.blobs.exists(info.sha256)
    shown = sqlite_client.models.show("evil@1")
    assert shown.findings and shown.scan and shown.scan["files"]
