"""`client.runs.download_artifact`: verified copies of run artifacts, in process and over
HTTP, and the route it reads (`GET /api/v1/runs/{run_id}/artifacts/{name}`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stoa.client import LocalClient
from stoa.core.errors import IntegrityError, InvalidInputError, NotFoundError


def _run_with_artifacts(client: LocalClient, tmp_path: Path) -> tuple[str, Path, Path]:
    report = tmp_path / "report.txt"
    report.write_bytes(b"f1 0.9\n")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_bytes(b"x\n1\n")
    (folder / "sub" / "b.txt").write_bytes(b"bee")
    with client.runs.start("fit", capture_environment=False) as run:
        run.log_artifact(report)
        run.log_artifact(folder, name="figures/plots")
    return run.id, report, folder


def _same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def test_download_artifact_writes_verified_copies_in_process_and_over_http(both, tmp_path):
    local, remote, _ = both
    run_id, report, folder = _run_with_artifacts(local, tmp_path)
    for client, label in [(local, "local"), (remote, "http")]:
        copy = client.runs.download_artifact(run_id[:8], "report.txt", tmp_path / f"{label}.txt")
        assert copy.read_bytes() == report.read_bytes()
        tree = client.runs.download_artifact(run_id, "figures/plots", tmp_path / f"{label}-dir")
        assert _same_tree(folder, tree)
        with pytest.raises(InvalidInputError, match="already exists"):
            client.runs.download_artifact(run_id, "report.txt", copy)
        with pytest.raises(NotFoundError, match="no artifact 'nope'") as caught:
            client.runs.download_artifact(run_id, "nope", tmp_path / f"{label}-nope")
        assert caught.value.field == "name" and "report.txt" in (caught.value.fix or "")


def test_the_artifact_route_serves_files_manifests_and_folder_members(both, tmp_path):
    local, _, http = both
    run_id, report, _ = _run_with_artifacts(local, tmp_path)
    single = http.get(f"/runs/{run_id}/artifacts/report.txt")
    assert single.status_code == 200 and single.content == report.read_bytes()
    assert single.headers["X-Stoa-Sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    manifest = http.get(f"/runs/{run_id[:6]}/artifacts/figures/plots")
    assert manifest.headers["X-Stoa-Artifact"] == "folder"
    member = http.get(f"/runs/{run_id}/artifacts/figures/plots", params={"file": "sub/b.txt"})
    assert member.status_code == 200 and member.content == b"bee"
    for path, params, status, field in [
        (f"/runs/{run_id}/artifacts/figures/plots", {"file": "../x"}, 422, "file"),
        (f"/runs/{run_id}/artifacts/figures/plots", {"file": "none.txt"}, 404, "file"),
        (f"/runs/{run_id}/artifacts/report.txt", {"file": "a"}, 422, "file"),
        (f"/runs/{run_id}/artifacts/missing", {}, 404, "name"),
        ("/runs/0123456789/artifacts/report.txt", {}, 404, "run_id"),
    ]:
        answer = http.get(path, params=params)
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["error"]["field"] == field


def test_a_tampered_artifact_is_an_integrity_error_and_leaves_nothing(both, tmp_path):
    local, remote, _ = both
    run_id, report, _ = _run_with_artifacts(local, tmp_path)
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    blob = local.stores.settings.resolved_home / "blobs" / "sha256" / digest[:2] / digest[2:]
    blob.write_bytes(b"f1 0.1\n")
    for client, label in [(local, "local"), (remote, "http")]:
        dest = tmp_path / f"{label}.txt"
        with pytest.raises(IntegrityError):
            client.runs.download_artifact(run_id, "report.txt", dest)
        assert not dest.exists()


def test_an_ambiguous_run_id_prefix_is_a_422_naming_the_candidates(both, monkeypatch):
    import uuid

    from stoa.develop import tracking

    local, _, http = both
    made = iter([uuid.UUID("abcdef01" + "0" * 24), uuid.UUID("abcdef02" + "0" * 24)])
    monkeypatch.setattr(tracking.uuid, "uuid4", lambda: next(made))
    local.runs.create("train")
    local.runs.create("eval")
    monkeypatch.undo()
    answer = http.get("/runs/abcdef")
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "run_id" and "abcdef010000 (train)" in error["message"]
    assert "abcdef020000 (eval)" in error["message"]
    assert http.get("/runs/abcdef02").json()["info"]["name"] == "eval"
