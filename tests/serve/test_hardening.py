"""Issue 12's smaller gaps, each named: bad input is a 4xx naming its field, never a 500."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from stoa.core.errors import InvalidInputError
from stoa.serve.server.app import host_of, is_loopback
from tests.govern.test_license_review import _model
from tests.serve.test_api import API, check_error, upload_folder


@pytest.mark.parametrize(
    ("limit", "message"),
    [("0", "limit must be 1..10000"), ("10001", "limit must be 1..10000"),
     ("-1", "limit must be 1..10000"), ("x", "valid integer")],
)  # fmt: skip
def test_search_limit_out_of_range_is_a_422(api, limit: str, message: str) -> None:
    response = api.get(f"{API}/models/-/search", params={"limit": limit})
    check_error(response, 422, "limit", message=message)


def test_search_limit_in_range_still_answers(api) -> None:
    assert api.get(f"{API}/models/-/search", params={"limit": "10000"}).json() == []


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("weights/a\x01b.json", "control character"),
        ("a\tb.json", "control character"),
        ("x" * 256 + ".json", "over 255 bytes"),
        ("/".join(["d"] * 65) + "/f.json", "more than 64 folders deep"),
    ],
)
def test_upload_paths_with_control_characters_or_overlong_names_are_refused(
    api, tmp_path: Path, rel: str, message: str
) -> None:
    files = [("files", ("f.json", b"{}")), ("files", ("model.safetensors", b"x"))]
    data = {"name": "m", "paths": [rel, "model.safetensors"]}
    response = api.post(f"{API}/models", data=data, files=files)
    check_error(response, 422, "paths", message=message)
    assert api.get(f"{API}/models").json() == []  # nothing stored


def test_a_long_but_legal_folder_upload_still_works(api, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / ("n" * 200)).mkdir(parents=True)
    (folder / ("n" * 200) / "config.json").write_text(json.dumps({"a": 1}))
    response = upload_folder(api, "m", folder)
    assert response.status_code in (201, 409), response.text  # judged, not crashed


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("localhost", "localhost"),
        ("::1", "::1"),
        ("127.0.0.1:80@evil.example", ""),
        ("127.0.0.1@evil.example", ""),
        ("evil.example#127.0.0.1", ""),
        ("127.0.0.1:80:80", ""),
        ("", ""),
    ],
)
def test_host_header_is_parsed_strictly(header: str, host: str) -> None:
    assert host_of(header) == host


def test_a_host_header_with_userinfo_is_not_loopback(api) -> None:
    response = api.get(f"{API}/models", headers={"host": "127.0.0.1:80@evil.example"})
    check_error(response, 400, "Host", message="is not this loopback server")
    assert not is_loopback(host_of("127.0.0.1:80@evil.example"))


def test_docs_are_served_without_a_cdn(api) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    scripts = [s for s in page.text.split('"') if s.endswith(".js")]
    assert scripts, page.text
    for script in scripts:
        asset = api.get(script)
        assert asset.status_code == 200 and len(asset.content) > 100_000, script


def test_an_embedder_folder_naming_a_foreign_class_is_refused_before_loading(
    sqlite_client, tmp_path: Path
) -> None:
    folder = tmp_path / "evil-embedder"
    folder.mkdir()
    modules = [{"idx": 0, "name": "0", "path": "", "type": "os.system"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InvalidInputError, match="outside sentence_transformers") as refused:
        sqlite_client.kbs.create("k", embedder=str(folder))
    assert refused.value.field == "embedder"
    assert sqlite_client.kbs.list() == []


def test_reuploading_with_a_declared_licence_does_not_skip_review(api, tmp_path):
    nc = _model(tmp_path / "nc", "cc-by-nc-4.0")
    first = upload_folder(api, "nc", nc)
    assert first.json()["status"] == "pending"
    second = upload_folder(api, "nc", nc, license="MIT")
    assert second.status_code == 201 and second.json()["status"] == "pending", second.text
    ref = f"nc@{second.json()['version']}"
    assert api.get(f"{API}/models/{ref}/artifact").status_code == 409


def test_a_dead_server_is_one_clear_error() -> None:
    from stoa.client import HttpClient
    from stoa.core.errors import UnreachableError

    client = HttpClient("http://127.0.0.1:9")
    with pytest.raises(UnreachableError, match="cannot reach the Stoa server") as failed:
        client.models.list()
    assert failed.value.field == "url" and "STOA_URL" in failed.value.fix
    with pytest.raises(UnreachableError):
        client.models.download("m@1", Path(tempfile.mkdtemp()) / "out")
    client.close()


def test_the_cli_against_a_dead_server_says_so_in_one_line(tmp_path: Path) -> None:
    from tests.cli.test_cli import STOA, clean_env

    done = subprocess.run(
        [STOA, "--url", "http://127.0.0.1:9", "models", "list"],
        env=clean_env(STOA_HOME=str(tmp_path)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot reach the Stoa server" in done.stderr


def test_a_local_run_does_not_become_the_parent_of_a_servers_run(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from stoa.client import HttpClient, LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server import create_app

    app = create_app(Settings(home=tmp_path / "server"))
    local = LocalClient(home=tmp_path / "local")
    with TestClient(app, base_url="http://127.0.0.1/api/v1") as http:
        remote = HttpClient("http://127.0.0.1")
        remote._transport.http = http
        with local.runs.start("outer") as outer, remote.runs.start("inner") as inner:
            inner.log_metric("acc", 0.9)
            with local.runs.start("nested") as nested:
                pass
        assert remote.runs.get(inner.id).info.parent_id is None
        assert local.runs.get(nested.id).info.parent_id == outer.id  # same store: nested
    local.close()
    app.state.client.close()


def test_a_wrong_method_is_a_405_with_its_own_code(api) -> None:
    response = api.put(f"{API}/tokens", json={})
    check_error(response, 405, "method", code="method_not_allowed", message="PUT is not allowed")
