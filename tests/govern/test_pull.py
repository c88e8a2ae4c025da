"""Curated pulls: policy before download, scan before register, blocked never loadable."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from stoa.core.errors import InvalidInputError, RefusedError
from tests.artifacts import malicious_pickle, write_safetensors
from tests.cli.test_cli import clean_env, one_line_error, stoa  # noqa: F401 - fixture


def _model(folder, license_line: str):
    folder.mkdir()
    write_safetensors(folder / "model.safetensors")
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text(f"---\n{license_line}\n---\n# model\n")
    return folder


def test_pull_a_local_folder_and_a_file_url(sqlite_client, tmp_path):
    source = _model(tmp_path / "src", "license: apache-2.0")
    info = sqlite_client.models.pull(str(source), "bert")
    assert (info.status, info.license, info.metadata["source"]) == (
        "allowed",
        "Apache-2.0",
        str(source),
    )
    assert sqlite_client.models.show("bert@1").scan["files"][0]["license_source"]
    other = _model(tmp_path / "src2", "license: mit")
    via_url = sqlite_client.models.pull(f"file://{other}", "bert2")
    assert (via_url.status, via_url.license) == ("allowed", "MIT")


def test_licence_review_holds_and_unknown_licence_needs_review(sqlite_client, tmp_path):
    nc = sqlite_client.models.pull(str(_model(tmp_path / "nc", "license: cc-by-nc-4.0")), "nc")
    assert nc.status == "pending" and nc.findings[0]["code"] == "license-review"
    with pytest.raises(RefusedError, match="pending and will not be loaded"):
        sqlite_client.models.load("nc@1")
    approved = sqlite_client.models.approve("nc@1", note="legal said yes")
    assert approved.status == "allowed"
    assert sqlite_client.models.download("nc@1", tmp_path / "out").is_dir()
    weights = tmp_path / "w"
    weights.mkdir()
    write_safetensors(weights / "model.safetensors")
    unknown = sqlite_client.models.pull(str(weights), "unknown")
    assert unknown.status == "pending" and "licence unknown" in unknown.findings[0]["message"]


def test_blocked_licence_and_bad_hashes_are_refused_before_anything_is_stored(tmp_path):
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    source = _model(tmp_path / "src", "license: cc-by-nc-4.0")
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "pytorch_model.bin").write_bytes(malicious_pickle())
    digest = hashlib.sha256(malicious_pickle()).hexdigest()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: strict/1\nlicenses:\n  block: [CC-BY-NC-4.0]\ndeny_sha256: [{digest}]\n"
    )
    settings = Settings(home=tmp_path / "home", scan_policy=policy)
    client = LocalClient(settings=settings)
    with pytest.raises(RefusedError, match=r"CC-BY-NC-4\.0, which the policy blocks; nothing was"):
        client.models.pull(str(source), "nc")
    with pytest.raises(RefusedError, match="deny list names as known-bad"):
        client.models.pull(str(evil), "evil", license="MIT")
    assert client.stores.registry.list_series("model") == []
    shutil.rmtree(tmp_path / "home")


def test_a_malicious_pull_is_stored_blocked_and_never_served(sqlite_client, tmp_path):
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "pytorch_model.bin").write_bytes(malicious_pickle())
    info = sqlite_client.models.pull(str(evil), "evil", license="MIT")
    assert info.status == "blocked" and "os.system" in info.findings[0]["message"]
    with pytest.raises(RefusedError):
        sqlite_client.models.download("evil@1", tmp_path / "out")


def test_pull_bad_sources(sqlite_client, tmp_path):
    with pytest.raises(InvalidInputError, match="neither an existing path"):
        sqlite_client.models.pull("no such thing", "x")
    with pytest.raises(InvalidInputError, match=r"cannot read file://"):
        sqlite_client.models.pull(f"file://{tmp_path}/missing", "x")
    with pytest.raises(InvalidInputError, match=r"cannot pull org/model from the Hugging Face Hub"):
        sqlite_client.models.pull("hf://org/model", "x")
    with pytest.raises(InvalidInputError, match="SPDX"):
        sqlite_client.models.pull(str(tmp_path), "x", license="not ok!")


def test_cli_pull(stoa, tmp_path):  # noqa: F811
    source = _model(tmp_path / "src", "license: mit")
    result = stoa("models", "pull", str(source), "bert", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["license"] == "MIT"
    held = _model(tmp_path / "nc", "license: cc-by-nc-4.0")
    assert stoa("models", "pull", str(held), "nc", "--json").returncode == 1
    approved = stoa("models", "approve", "nc@1", "--note", "ok for research", "--json")
    assert json.loads(approved.stdout)["status"] == "allowed"
    one_line_error(stoa("models", "reject", "nc@1"), 1, "is allowed, not pending review")
    one_line_error(stoa("models", "pull", "nowhere", "x"), 2, "source", "neither an existing path")
