"""The REST API through FastAPI's TestClient, on SQLite and PostgreSQL.

Every bad input must come back as a 4xx with ``{"error": {code, message, field, fix}}``
naming the field; none may produce a 500 or carry a traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.artifacts import folder_model, malicious_pickle, write_safetensors

API = "/api/v1"


def check_error(response, status: int, field: str | None, *, code=None, message=None) -> dict:
    """The one error shape, naming ``field``; never a 500, never a traceback."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"code", "message", "field", "fix"}, error
    assert error["field"] == field, error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if message is not None:
        assert message in error["message"], error
    return error


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_file(api, name: str, path: Path, **form):
    files = [("files", (path.name, path.read_bytes()))]
    return api.post(f"{API}/models", data={"name": name, **form}, files=files)


def upload_folder(api, name: str, folder: Path, **form):
    rels = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = [("files", (Path(rel).name, (folder / rel).read_bytes())) for rel in rels]
    return api.post(f"{API}/models", data={"name": name, "paths": rels, **form}, files=files)


def pickle_file(root: Path) -> Path:
    path = root / "model.pkl"
    path.write_bytes(malicious_pickle())
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- models: register, show, list, versions, search ------------------------------------


def test_register_show_list_versions_and_search(api, skops_file, tmp_path):
    first = ok(
        upload_file(
            api,
            "churn",
            skops_file,
            tags=json.dumps({"team": "risk", "stage": "dev"}),
            license="MIT",
            description="baseline",
        ),
        201,
    )
    assert first["name"] == "churn" and first["version"] == 1 and first["ref"] == "churn@1"
    assert (first["status"], first["flavor"], first["format"]) == ("allowed", "sklearn", "skops")
    assert first["sha256"] == sha256(skops_file.read_bytes())
    assert first["license"] == "MIT" and first["description"] == "baseline"
    assert first["tags"] == {"team": "risk", "stage": "dev"}

    weights = write_safetensors(tmp_path / "w.safetensors", 3.0)
    second = ok(upload_file(api, "churn", weights, tags='{"team": "growth"}'), 201)
    assert (second["version"], second["format"], second["flavor"]) == (2, "safetensors", None)

    ok(api.put(f"{API}/models/churn/aliases/champion", json={"version": 1}))
    assert ok(api.get(f"{API}/models/churn"))["version"] == 2  # a bare name is the latest
    assert ok(api.get(f"{API}/models/churn@latest"))["version"] == 2
    shown = ok(api.get(f"{API}/models/churn@1"))
    assert (shown["version"], shown["aliases"], shown["sha256"]) == (
        1,
        ["champion"],
        first["sha256"],
    )
    assert ok(api.get(f"{API}/models/churn@champion"))["ref"] == "churn@1"

    [series] = ok(api.get(f"{API}/models"))
    assert (series["name"], series["latest_version"], series["aliases"]) == (
        "churn",
        2,
        {"champion": 1},
    )
    assert ok(api.get(f"{API}/prompts")) == []  # kinds do not share names

    assert [v["version"] for v in ok(api.get(f"{API}/models/churn/versions"))] == [1, 2]
    allowed = ok(api.get(f"{API}/models/churn/versions", params={"status": "allowed"}))
    assert len(allowed) == 2
    assert ok(api.get(f"{API}/models/churn/versions", params={"status": "blocked"})) == []

    def search(**params):
        return [v["ref"] for v in ok(api.get(f"{API}/models/-/search", params=params))]

    assert search(tag="team=risk") == ["churn@1"]
    assert search(tag=["team=risk", "stage=dev"]) == ["churn@1"]
    assert search(tag=["team=risk", "stage=prod"]) == []
    assert search(tag="team=growth", name="churn") == ["churn@2"]
    assert search(name="churn", limit=1) == ["churn@1"]
    assert search(tag="team=nobody") == []


def test_register_folder_and_download_its_files(api, skops_file, tmp_path):
    folder = folder_model(tmp_path)
    info = ok(upload_folder(api, "encoder", folder, license="Apache-2.0"), 201)
    rels = ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    assert (info["artifact"], info["status"], info["format"]) == ("folder", "allowed", "folder")
    assert info["size"] == sum((folder / r).stat().st_size for r in rels)

    manifest = api.get(f"{API}/models/encoder@1/artifact")
    assert manifest.status_code == 200
    assert manifest.headers["x-stoa-artifact"] == "folder"
    assert manifest.headers["x-stoa-sha256"] == info["sha256"] == sha256(manifest.content)
    files = manifest.json()["files"]
    assert sorted(files) == rels
    for rel in rels:
        got = api.get(f"{API}/models/encoder/files/{rel}")
        assert got.status_code == 200, got.text
        assert got.content == (folder / rel).read_bytes()
        assert sha256(got.content) == files[rel]["sha256"]
    # The same path in a non-canonical spelling names the same file.
    assert (
        api.get(f"{API}/models/encoder/files/./tokenizer//vocab.txt").content == b"hello\nworld\n"
    )
    check_error(
        api.get(f"{API}/models/encoder@1/files/missing.txt"),
        404,
        "path",
        code="not_found",
        message="missing.txt",
    )

    single = ok(upload_file(api, "churn", skops_file), 201)
    got = api.get(f"{API}/models/churn@1/artifact")
    assert got.status_code == 200 and got.headers["x-stoa-artifact"] == "file"
    assert got.content == skops_file.read_bytes() and sha256(got.content) == single["sha256"]
    check_error(
        api.get(f"{API}/models/churn@1/files/model.skops"),
        422,
        "path",
        message="is a single file",
    )


def test_aliases_move_with_history_and_archive_respects_them(api, skops_file, tmp_path):
    ok(upload_file(api, "churn", skops_file), 201)
    ok(upload_file(api, "churn", write_safetensors(tmp_path / "w.safetensors")), 201)

    moved = ok(api.put(f"{API}/models/churn/aliases/champion", json={"version": 1}))
    assert (moved["name"], moved["alias"], moved["version"]) == ("churn", "champion", 1)
    assert ok(api.put(f"{API}/models/churn/aliases/champion", json={"version": 2}))["version"] == 2
    assert ok(api.get(f"{API}/models/churn@champion"))["version"] == 2

    error = check_error(
        api.post(f"{API}/models/churn@2/archive"), 409, "ref", code="conflict", message="champion"
    )
    assert error["fix"]
    assert ok(api.get(f"{API}/models/churn@2"))["status"] == "allowed"  # nothing changed

    gone = api.delete(f"{API}/models/churn/aliases/champion")
    assert gone.status_code == 204 and gone.content == b""
    history = ok(api.get(f"{API}/models/churn/aliases"))
    assert [(h["detail"]["from"], h["detail"]["to"]) for h in history] == [
        (None, 1),
        (1, 2),
        (2, None),
    ]
    assert {h["detail"]["alias"] for h in history} == {"champion"}
    assert all(h["action"] == "alias" and h["actor"] for h in history)

    archived = ok(api.post(f"{API}/models/churn@2/archive"))
    assert archived["status"] == "archived"
    assert ok(api.get(f"{API}/models/churn@2"))["status"] == "archived"
    check_error(
        api.put(f"{API}/models/churn/aliases/champion", json={"version": 2}),
        409,
        "version",
        code="refused",
        message="archived",
    )
    check_error(api.get(f"{API}/models/churn@2/artifact"), 409, "ref", code="refused")
    check_error(
        api.delete(f"{API}/models/churn/aliases/champion"),
        404,
        "alias",
        code="not_found",
        message="no alias 'champion'",
    )


def test_prompts_register_and_render(api):
    body = {
        "name": "greet",
        "template": "Hello {{ name }}, welcome to {{ place }}!",
        "variables": ["name", "place"],
        "tags": {"lang": "en"},
    }
    info = ok(api.post(f"{API}/prompts", json=body), 201)
    assert (info["kind"], info["version"], info["format"]) == ("prompt", 1, "jinja2")
    assert info["tags"] == {"lang": "en"}

    values = {"values": {"name": "Ada", "place": "Stoa"}}
    for ref in ("greet", "greet@1"):
        assert ok(api.post(f"{API}/prompts/{ref}/render", json=values)) == {
            "text": "Hello Ada, welcome to Stoa!"
        }
    assert api.get(f"{API}/prompts/greet/artifact").text == body["template"]
    assert [s["name"] for s in ok(api.get(f"{API}/prompts"))] == ["greet"]

    check_error(
        api.post(f"{API}/prompts/greet/render", json={"values": {"name": "Ada"}}),
        422,
        "variables",
        message="place",
    )
    check_error(
        api.post(f"{API}/prompts", json={**body, "variables": ["name"]}),
        422,
        "variables",
        message="used but not declared: place",
    )
    check_error(
        api.post(f"{API}/prompts", json={"name": "broken", "template": "Hi {{ name"}),
        422,
        "template",
        message="syntax error",
    )
    check_error(api.post(f"{API}/prompts/nope/render", json=values), 404, "name", code="not_found")


def test_datasets_runs_and_lineage_both_ways(api, skops_file, tmp_path):
    csv = tmp_path / "sales.csv"
    csv.write_text("region,amount\nnorth,10\nsouth,20\neast,5\n")
    files = [("file", ("sales.csv", csv.read_bytes()))]
    data = ok(api.post(f"{API}/datasets", data={"name": "sales"}, files=files), 201)
    assert (data["kind"], data["format"], data["status"]) == ("dataset", "csv", "allowed")
    assert data["sha256"] == sha256(csv.read_bytes())
    assert data["spec"]["rows"] == 3
    assert [c["name"] for c in data["spec"]["columns"]] == ["region", "amount"]
    assert api.get(f"{API}/datasets/sales@1/artifact").content == csv.read_bytes()

    run = ok(api.post(f"{API}/runs", json={"name": "train", "inputs": ["sales@1"]}), 201)
    assert run["name"] == "train" and run["id"]
    model = ok(upload_file(api, "churn", skops_file, run_id=run["id"], datasets='["sales@1"]'), 201)
    assert model["ref"] == "churn@1"

    def nodes(tree, way):
        return {(n["type"], n["ref"], n["depth"]) for n in tree[way]}

    up = ok(api.get(f"{API}/models/churn@1/lineage"))
    assert up["start"]["ref"] == "churn@1"
    assert nodes(up, "upstream") == {("run", run["id"], 1), ("dataset", "sales@1", 1)}
    assert up["downstream"] == []

    down = ok(api.get(f"{API}/datasets/sales/lineage"))
    assert nodes(down, "downstream") == {("run", run["id"], 1), ("model", "churn@1", 1)}
    assert down["upstream"] == []

    from_run = ok(api.get(f"{API}/runs/{run['id']}/lineage"))
    assert nodes(from_run, "upstream") == {("dataset", "sales@1", 1)}
    assert nodes(from_run, "downstream") == {("model", "churn@1", 1)}

    check_error(api.get(f"{API}/runs/nope/lineage"), 404, "ref", code="not_found")
    check_error(
        api.post(f"{API}/runs", json={"name": "train", "inputs": ["ghost@1"]}),
        404,
        "name",
        message="no dataset named 'ghost'",
    )
    check_error(
        upload_file(api, "churn", skops_file, run_id="nope"), 404, "run_id", message="no run"
    )
    bad = [("file", ("bad.csv", b"a,b\n1,2,3\n"))]
    check_error(api.post(f"{API}/datasets", data={"name": "bad"}, files=bad), 422, "path")
    empty = [("file", ("empty.csv", b""))]
    check_error(api.post(f"{API}/datasets", data={"name": "bad"}, files=empty), 422, "path")
    assert [s["name"] for s in ok(api.get(f"{API}/datasets"))] == ["sales"]  # nothing half-written


def test_blocked_model_is_recorded_but_never_served(api, tmp_path):
    info = ok(upload_file(api, "risky", pickle_file(tmp_path)), 201)
    assert (info["status"], info["format"]) == ("blocked", "pickle")
    assert info["findings"] and info["findings"][0]["code"] == "pickle-global"

    error = check_error(
        api.get(f"{API}/models/risky@1/artifact"), 409, "ref", code="refused", message="blocked"
    )
    assert "os.system" in error["message"] and error["fix"]
    check_error(
        api.put(f"{API}/models/risky/aliases/champion", json={"version": 1}),
        409,
        "version",
        code="refused",
    )

    folder = folder_model(tmp_path)
    (folder / "extra.bin").write_bytes(malicious_pickle())
    blocked = ok(upload_folder(api, "mixed", folder), 201)
    assert blocked["status"] == "blocked"
    assert {f["path"] for f in blocked["findings"]} == {"extra.bin"}
    check_error(api.get(f"{API}/models/mixed@1/files/config.json"), 409, "ref", code="refused")
    check_error(api.get(f"{API}/models/mixed@1/artifact"), 409, "ref", code="refused")


def test_openapi_docs_and_health(api):
    spec = ok(api.get("/openapi.json"))
    assert spec["info"]["title"] == "Stoa"
    for path in (
        f"{API}/models",
        f"{API}/datasets",
        f"{API}/prompts",
        f"{API}/{{kinds}}/{{ref}}",
        f"{API}/{{kinds}}/{{ref}}/files/{{path}}",
        f"{API}/tokens",
    ):
        assert path in spec["paths"], path
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert ok(api.get("/healthz"))["status"] == "ok"


# -- bad input ---------------------------------------------------------------------------


def test_bad_names_and_references(api, skops_file):
    ok(upload_file(api, "churn", skops_file), 201)
    for name, message in [
        ("bad name!", "is not a valid name"),
        ("../etc", "looks like a path"),
        ("a/b", "looks like a path"),
        ("C:x", "drive"),
        ("-leading", "is not a valid name"),
        ("x" * 129, "is not a valid name"),
    ]:
        check_error(
            upload_file(api, name, skops_file), 422, "name", code="invalid_input", message=message
        )
        check_error(
            api.post(f"{API}/prompts", json={"name": name, "template": "hi"}),
            422,
            "name",
            message=message,
        )
    check_error(
        api.get(f"{API}/models/-/search", params={"name": "../etc"}),
        422,
        "name",
        message="looks like a path",
    )
    check_error(api.get(f"{API}/models/bad%20name!"), 422, "ref", message="is not a valid name")
    check_error(api.get(f"{API}/models/bad%20name!/versions"), 422, "name")
    check_error(api.get(f"{API}/models/..%2Fetc"), 404, "url", code="not_found")
    check_error(api.get(f"{API}/models/..%2Fetc/versions"), 404, "url", code="not_found")
    check_error(api.get(f"{API}/models/%2E%2E"), 422, "ref", message="looks like a path")

    # Unknown names, versions and aliases are 404s naming the part that was wrong.
    check_error(
        api.get(f"{API}/models/nope"), 404, "name", code="not_found", message="no model named"
    )
    check_error(api.get(f"{API}/models/nope/versions"), 404, "name", code="not_found")
    check_error(api.get(f"{API}/models/nope/aliases"), 404, "name", code="not_found")
    check_error(
        api.get(f"{API}/models/churn@prod"), 404, "ref", code="not_found", message="no alias"
    )
    error = check_error(api.get(f"{API}/models/churn@9"), 404, "ref", message="has no version 9")
    assert error["fix"] == "its versions run from 1 to 1; deleted versions are gone for good"
    check_error(api.get(f"{API}/models/churn@0"), 422, "ref", message="versions run from 1")
    check_error(api.get(f"{API}/models/churn@-1"), 422, "ref")
    check_error(api.get(f"{API}/models/churn@"), 422, "ref")
    check_error(api.get(f"{API}/widgets"), 422, "kinds", message="'models'")
    check_error(api.get(f"{API}/models/churn/lineage", params={"depth": "x"}), 422, "depth")
    check_error(api.patch(f"{API}/models/churn"), 405, "method")


def test_huge_version_number_is_a_clean_error(api, skops_file):
    ok(upload_file(api, "churn", skops_file), 201)
    for version in ("2147483648", "9" * 30):
        response = api.get(f"{API}/models/churn@{version}")
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "ref"
        assert "versions run from 1 to at most 2147483647" in response.json()["error"]["message"]
    response = api.put(f"{API}/models/churn/aliases/top", json={"version": 2**40})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "version"


@pytest.mark.parametrize(
    "path, message",
    [
        ("../x", "leaves the artifact folder"),
        ("/etc/passwd", "absolute path"),
        ("a/../../b", "leaves the artifact folder"),
        ("C:/x", "absolute path"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL byte"),
        ("", "is empty"),
        ("./..", "leaves the artifact folder"),
    ],
)
def test_upload_paths_cannot_leave_the_folder(api, settings, path, message):
    files = [("files", ("x.json", b"{}")), ("files", ("w", b"x"))]
    response = api.post(
        f"{API}/models", data={"name": "m", "paths": [path, "ok.json"]}, files=files
    )
    check_error(response, 422, "paths", code="invalid_input", message=message)
    assert ok(api.get(f"{API}/models")) == []  # nothing was registered
    blobs = settings.resolved_home / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())  # and nothing was stored


def test_upload_form_errors(api, skops_file):
    one = [("files", ("a.json", b"{}"))]
    two = [("files", ("a.json", b"{}")), ("files", ("b.json", b"[]"))]
    cases = [
        ({"name": "m", "paths": ["a.json"]}, two, "paths", "1 paths for 2 files"),
        ({"name": "m"}, two, "paths", "several files"),
        ({"name": "m", "paths": ["a.json", "./a.json"]}, two, "paths", "appears twice"),
        ({"name": "m", "tags": "{bad"}, one, "tags", "not valid JSON"),
        ({"name": "m", "tags": '["a"]'}, one, "tags", "must be a JSON dict"),
        ({"name": "m", "tags": '{"k": 1}'}, one, "tags", None),
        ({"name": "m", "metadata": "[1]"}, one, "metadata", "must be a JSON dict"),
        ({"name": "m", "spec": "nope"}, one, "spec", "not valid JSON"),
        ({"name": "m", "datasets": "{}"}, one, "datasets", "must be a JSON list"),
        ({"name": "m", "flavor": "pytorch"}, one, "flavor", "unknown flavor"),
        ({"name": "m", "license": "no way!"}, one, "license", "not an SPDX"),
    ]
    for data, files, field, message in cases:
        check_error(api.post(f"{API}/models", data=data, files=files), 422, field, message=message)
    check_error(
        api.post(f"{API}/models", data={"name": "m"}), 422, "files", message="Field required"
    )
    check_error(api.post(f"{API}/models", files=one), 422, "name", message="Field required")
    check_error(
        upload_file(api, "m", skops_file, flavor="xgboost"),
        422,
        "flavor",
        message="is a sklearn save",
    )
    check_error(
        api.post(
            f"{API}/prompts", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "body",
        message="not valid JSON",
    )
    check_error(api.post(f"{API}/prompts", json={"template": "x"}), 422, "name")
    check_error(api.get(f"{API}/models/-/search", params={"tag": "nokv"}), 422, "tag")
    check_error(api.get(f"{API}/models/-/search", params={"tag": "=v"}), 422, "tag")
    assert ok(api.get(f"{API}/models")) == []


def test_files_route_refuses_traversal(api, tmp_path):
    ok(upload_folder(api, "m", folder_model(tmp_path)), 201)
    for raw, message in [
        ("..%2F..%2Fetc%2Fpasswd", "leaves the artifact folder"),
        ("../../etc/passwd", None),
        ("%2Fetc%2Fpasswd", "absolute path"),
        ("tokenizer%2F..%2F..%2Fconfig.json", "leaves the artifact folder"),
        ("a%5Cb", "backslash"),
        ("a%00b", "NUL byte"),
        ("C:%2Fx", "absolute path"),
    ]:
        response = api.get(f"{API}/models/m@1/files/{raw}")
        if message is None:  # the client normalised the dots away: an ordinary unknown route
            assert response.status_code in (404, 422), response.text
            assert response.json()["error"]["field"] in ("path", "url")
            continue
        check_error(response, 422, "path", code="invalid_input", message=message)


def test_aliases_must_not_look_like_versions(api, skops_file):
    ok(upload_file(api, "churn", skops_file), 201)
    for alias, message in [
        ("123", "is a number"),
        ("latest", "reserved"),
        ("bad alias", "is not a valid name"),
        ("%2E%2E", "looks like a path"),  # "..", spelled so the client keeps it
    ]:
        check_error(
            api.put(f"{API}/models/churn/aliases/{alias}", json={"version": 1}),
            422,
            "alias",
            code="invalid_input",
            message=message,
        )
    check_error(api.put(f"{API}/models/churn/aliases/top", json={"version": "one"}), 422, "version")
    check_error(api.put(f"{API}/models/churn/aliases/top", json={}), 422, "version")
    check_error(
        api.put(f"{API}/models/churn/aliases/top", json={"version": 0}),
        422,
        "version",
        message="versions run from 1",
    )
    check_error(
        api.put(f"{API}/models/churn/aliases/top", json={"version": 5}),
        404,
        "ref",
        message="has no version 5",
    )
    check_error(
        api.put(f"{API}/models/ghost/aliases/top", json={"version": 1}),
        404,
        "name",
        code="not_found",
    )
    assert ok(api.get(f"{API}/models/churn@1"))["aliases"] == []


# -- auth --------------------------------------------------------------------------------


def test_tokens_and_scopes(api):
    # Loopback with no token: open, so the first admin token can be created over HTTP.
    assert ok(api.get(f"{API}/models")) == []
    ok(api.post(f"{API}/prompts", json={"name": "p", "template": "hi {{ x }}"}), 201)
    admin = ok(api.post(f"{API}/tokens", json={"name": "root", "scopes": ["admin"]}), 201)
    assert admin["token"].startswith(f"stoa_{admin['id']}_") and admin["scopes"] == ["admin"]

    # From now on every request needs a token.
    for response in (
        api.get(f"{API}/models"),
        api.post(f"{API}/prompts", json={"name": "q", "template": "x"}),
        api.get(f"{API}/tokens"),
    ):
        check_error(
            response, 401, "Authorization", code="unauthenticated", message="token is required"
        )
        assert response.headers["www-authenticate"] == "Bearer"
    stranger = f"stoa_{'0' * 12}_{'x' * 43}"
    wrong_secret = f"stoa_{admin['id']}_{'x' * 43}"
    for header, message in [
        ("Basic dXNlcjpwYXNz", "expected a Bearer token"),
        ("Bearer", "expected a Bearer token"),
        ("Bearer ", "expected a Bearer token"),
        ("Bearer not-a-stoa-token", "malformed"),
        ("Bearer stoa_", "malformed"),
        (f"Bearer {stranger}", "unknown token"),
        (f"Bearer {wrong_secret}", "unknown token"),
    ]:
        check_error(
            api.get(f"{API}/models", headers={"Authorization": header}),
            401,
            "Authorization",
            code="unauthenticated",
            message=message,
        )

    as_admin = bearer(admin["token"])
    reader = ok(
        api.post(f"{API}/tokens", json={"name": "ro", "scopes": ["read"]}, headers=as_admin), 201
    )
    writer = ok(
        api.post(f"{API}/tokens", json={"name": "rw", "scopes": ["write"]}, headers=as_admin), 201
    )
    as_reader, as_writer = bearer(reader["token"]), bearer(writer["token"])

    # read: every GET, and rendering, but no writes and no token routes.
    assert ok(api.get(f"{API}/prompts", headers=as_reader))[0]["name"] == "p"
    assert ok(api.get(f"{API}/prompts/p@1", headers=as_reader))["ref"] == "p@1"
    values = {"values": {"x": "there"}}
    assert ok(api.post(f"{API}/prompts/p/render", json=values, headers=as_reader))["text"] == (
        "hi there"
    )
    for response in (
        api.post(f"{API}/prompts", json={"name": "q", "template": "x"}, headers=as_reader),
        api.post(f"{API}/prompts/p@1/archive", headers=as_reader),
        api.put(f"{API}/prompts/p/aliases/prod", json={"version": 1}, headers=as_reader),
    ):
        check_error(response, 403, "scope", code="forbidden", message="lacks the 'write' scope")
    check_error(
        api.get(f"{API}/tokens", headers=as_reader), 403, "scope", message="lacks the 'admin'"
    )

    # write: registers and moves aliases; still no token routes.
    created = api.post(f"{API}/prompts", json={"name": "q", "template": "x"}, headers=as_writer)
    assert ok(created, 201)["ref"] == "q@1"
    ok(api.put(f"{API}/prompts/p/aliases/prod", json={"version": 1}, headers=as_writer))
    check_error(api.get(f"{API}/tokens", headers=as_writer), 403, "scope", code="forbidden")
    check_error(
        api.post(f"{API}/tokens", json={"name": "x", "scopes": ["admin"]}, headers=as_writer),
        403,
        "scope",
    )

    # admin: lists tokens without their secrets, revokes them.
    listed = ok(api.get(f"{API}/tokens", headers=as_admin))
    assert [t["name"] for t in listed] == ["root", "ro", "rw"]
    assert all("token" not in t and "secret" not in json.dumps(t) for t in listed)
    assert reader["token"] not in json.dumps(listed)
    check_error(
        api.post(f"{API}/tokens", json={"name": "x", "scopes": ["root"]}, headers=as_admin),
        422,
        "scopes",
        message="root",
    )
    check_error(
        api.post(f"{API}/tokens", json={"name": "../x", "scopes": ["read"]}, headers=as_admin),
        422,
        "name",
    )
    revoked = ok(api.delete(f"{API}/tokens/{reader['id']}", headers=as_admin))
    assert revoked["revoked_at"] is not None
    check_error(
        api.get(f"{API}/models", headers=as_reader), 401, "Authorization", message="revoked"
    )
    check_error(api.delete(f"{API}/tokens/nope", headers=as_admin), 404, "id", code="not_found")
    assert ok(api.get(f"{API}/models", headers=as_writer)) == []


def test_a_public_address_needs_tokens(settings):
    from fastapi.testclient import TestClient

    from stoa.client import LocalClient
    from stoa.core.errors import ConfigurationError
    from stoa.serve.server import create_app

    local = LocalClient(settings=settings, actor="tester")
    try:
        with pytest.raises(ConfigurationError, match=r"refusing to bind to 0\.0\.0\.0") as info:
            create_app(settings, host="0.0.0.0", client=local)
        assert info.value.field == "host" and "stoa tokens create" in info.value.fix
        create_app(settings, host="::1", client=local)  # loopback in any spelling is fine
        create_app(settings, host="localhost", client=local)

        token = local.tokens.create("root", ["admin"])
        app = create_app(settings, host="0.0.0.0", client=local)
        with TestClient(app, raise_server_exceptions=False) as http:
            check_error(http.get(f"{API}/models"), 401, "Authorization")
            assert ok(http.get(f"{API}/models", headers=bearer(token.token))) == []
            assert ok(http.get("/healthz"))["status"] == "ok"  # health needs no token
            local.tokens.revoke(token.id)
            # Off loopback there is no open mode, even once every token is revoked.
            check_error(http.get(f"{API}/models"), 401, "Authorization")
    finally:
        local.close()


def test_loopback_stays_closed_once_every_token_is_revoked(api):
    assert ok(api.get(f"{API}/models")) == []  # open: no token was ever created
    admin = ok(api.post(f"{API}/tokens", json={"name": "ops", "scopes": ["admin"]}), 201)
    check_error(api.get(f"{API}/models"), 401, "Authorization", message="bearer token")
    ok(api.delete(f"{API}/tokens/{admin['id']}", headers=bearer(admin["token"])))
    check_error(api.get(f"{API}/models"), 401, "Authorization", message="bearer token")


def test_changes_over_http_are_recorded_under_the_caller(api, skops_file):
    ok(upload_file(api, "churn", skops_file), 201)
    ok(api.put(f"{API}/models/churn/aliases/champion", json={"version": 1}))
    admin = ok(api.post(f"{API}/tokens", json={"name": "ci-bot", "scopes": ["write"]}), 201)
    headers = bearer(admin["token"])
    assert api.delete(f"{API}/models/churn/aliases/champion", headers=headers).status_code == 204
    history = ok(api.get(f"{API}/models/churn/aliases", headers=headers))
    assert [h["actor"] for h in history] == ["anonymous", "token:ci-bot"]
    assert ok(api.get(f"{API}/models/churn@1", headers=headers))["created_by"] == "anonymous"


def test_missing_or_altered_blobs_are_clean_errors(api, app, skops_file):
    info = ok(upload_file(api, "churn", skops_file), 201)
    blob = app.state.client.stores.blobs
    path = Path(blob.root) / "sha256" / info["sha256"][:2] / info["sha256"][2:]
    path.write_bytes(b"altered")
    check_error(api.get(f"{API}/models/churn@1/artifact"), 500, "sha256", code="integrity")
    path.unlink()
    check_error(api.get(f"{API}/models/churn@1/artifact"), 404, "sha256", code="not_found")


def test_values_no_back_end_can_store_are_refused(api, skops_file):
    check_error(
        upload_file(api, "m", skops_file, description="a\x00b"), 422, "description", message="NUL"
    )
    check_error(
        upload_file(api, "m", skops_file, metadata='{"x": NaN}'), 422, "metadata", message="JSON"
    )
    check_error(
        upload_file(api, "m", skops_file, metadata='{"x": "a\\u0000b"}'),
        422,
        "metadata",
        message="NUL",
    )
    assert ok(api.get(f"{API}/models")) == []  # nothing was stored


def test_prompt_runtime_errors_and_huge_results_are_refused(api):
    ok(api.post(f"{API}/prompts", json={"name": "sum", "template": "{{ a + b }}"}), 201)
    check_error(
        api.post(f"{API}/prompts/sum/render", json={"values": {"a": 1, "b": "x"}}),
        422,
        "variables",
        message="TypeError",
    )
    ok(api.post(f"{API}/prompts", json={"name": "big", "template": "{{ 9 ** n }}"}), 201)
    check_error(
        api.post(f"{API}/prompts/big/render", json={"values": {"n": 10**9}}),
        422,
        "template",
        message="too large",
    )


def test_upload_paths_that_are_both_file_and_folder_are_refused(api, tmp_path):
    files = [("files", ("a", b"x")), ("files", ("b", b"y"))]
    for paths in (["a", "a/b"], ["a/b", "a"]):
        check_error(
            api.post(f"{API}/models", data={"name": "m", "paths": paths}, files=files),
            422,
            "paths",
            message="both a file and a folder",
        )


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "[::1]:8000", "::1"])
def test_loopback_names_are_served(api, host):
    assert ok(api.get(f"{API}/models", headers={"Host": host})) == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.1"])
def test_a_loopback_server_refuses_other_host_names(api, host):
    """DNS rebinding: a page pointing its own name at 127.0.0.1 must not reach the API."""
    check_error(
        api.get(f"{API}/models", headers={"Host": host}), 400, "Host", message="not this loopback"
    )
