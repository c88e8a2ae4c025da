"""POST /api/v1/scans: the same scanner over HTTP, with the one error shape."""

from __future__ import annotations

import pickle

from tests.artifacts import folder_model, malicious_pickle
from tests.serve.test_api import API, check_error, ok


def test_scan_a_file_and_a_folder(api, tmp_path):
    files = [("files", ("weights.bin", malicious_pickle()))]
    report = ok(api.post(f"{API}/scans", files=files))
    [file] = report["files"]
    assert (file["path"], file["verdict"], file["reason"]) == (
        "weights.bin",
        "blocked",
        "malicious",
    )
    assert "os.system" in file["findings"][0]["message"]

    clean = [("files", ("m.pkl", pickle.dumps([1, 2])))]
    assert (
        ok(api.post(f"{API}/scans", files=clean, data={"license": "MIT"}))["verdict"] == "allowed"
    )

    folder = folder_model(tmp_path)
    rels = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    upload = [("files", (rel, (folder / rel).read_bytes())) for rel in rels]
    report = ok(api.post(f"{API}/scans", files=upload, data={"paths": rels}))
    assert report["files"][0]["verdict"] == "allowed", report


def test_scan_bad_input(api):
    check_error(api.post(f"{API}/scans"), 422, "files", message="Field required")
    two = [("files", ("a", b"x")), ("files", ("b", b"y"))]
    check_error(api.post(f"{API}/scans", files=two), 422, "paths", message="'paths' entry")
    escape = [("files", ("a", b"x"))]
    check_error(api.post(f"{API}/scans", files=escape, data={"paths": ["../a"]}), 422, "paths",
                message="..")  # fmt: skip
    lic = [("files", ("a", b"x"))]
    check_error(api.post(f"{API}/scans", files=lic, data={"license": "no way!"}), 422, "license",
                message="not an SPDX licence expression")  # fmt: skip


def test_licence_review_approve_and_reject_need_admin(api, tmp_path):
    from tests.serve.test_api import bearer

    card = b"---\nlicense: cc-by-nc-4.0\n---\n# model\n"
    folder = folder_model(tmp_path)
    rels = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    upload = [("files", (rel, (folder / rel).read_bytes())) for rel in rels]
    upload.append(("files", ("README.md", card)))
    for name in ("nc", "nc2"):
        data = {"name": name, "paths": [*rels, "README.md"]}
        info = ok(api.post(f"{API}/models", files=upload, data=data), 201)
        assert info["status"] == "pending" and info["findings"][0]["code"] == "license-review"
    check_error(api.get(f"{API}/models/nc@1/artifact"), 409, "ref", message="pending")

    admin = ok(api.post(f"{API}/tokens", json={"name": "root", "scopes": ["admin"]}), 201)
    as_admin = bearer(admin["token"])
    writer = ok(
        api.post(f"{API}/tokens", json={"name": "w", "scopes": ["write"]}, headers=as_admin), 201
    )
    check_error(
        api.post(f"{API}/models/nc@1/approve", json={}, headers=bearer(writer["token"])),
        403,
        "scope",
        message="lacks the 'admin'",
    )
    note = {"note": "legal: research use only"}
    approved = ok(api.post(f"{API}/models/nc@1/approve", json=note, headers=as_admin))
    assert approved["status"] == "allowed"
    assert api.get(f"{API}/models/nc@1/artifact", headers=as_admin).status_code == 200
    rejected = ok(api.post(f"{API}/models/nc2@1/reject", json={}, headers=as_admin))
    assert rejected["status"] == "blocked"
    check_error(
        api.post(f"{API}/models/nc@1/approve", json={}, headers=as_admin),
        409,
        "ref",
        message="is allowed, not pending review",
    )
    check_error(
        api.post(f"{API}/models/nc2@1/approve", json={"note": "x" * 3000}, headers=as_admin),
        422,
        "note",
        message="under 2,000 characters",
    )
