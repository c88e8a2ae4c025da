"""Curated pulls: policy before download, scan before register, blocked never loadable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from stoa.core.errors import InvalidInputError, RefusedError
from tests.artifacts import malicious_pickle, write_safetensors
from tests.cli.test_cli import clean_env, one_line_error, stoa  # noqa: F401 - fixture
from tests.govern.scan.test_symlinks import hf_snapshot


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


def snapshot_with_links(tmp_path, license_line: str):
    weights = tmp_path / "weights.safetensors"
    write_safetensors(weights)
    files = {
        "model.safetensors": weights.read_bytes(),
        "config.json": b"{}",
        "README.md": f"---\n{license_line}\n---\n# model\n".encode(),
    }
    return hf_snapshot(tmp_path, files), files


def test_pull_a_hugging_face_snapshot_copies_what_its_links_point_at(sqlite_client, tmp_path):
    snapshot, files = snapshot_with_links(tmp_path, "license: mit")
    info = sqlite_client.models.pull(str(snapshot), "tiny")
    assert (info.status, info.license) == ("allowed", "MIT"), info.findings
    out = sqlite_client.models.download("tiny@1", tmp_path / "out")
    for name, data in files.items():
        assert (out / name).read_bytes() == data and not (out / name).is_symlink()


def test_pull_reads_a_linked_model_card_before_copying(tmp_path):
    from stoa.govern.pull import fetch
    from stoa.govern.scan.policy import load_policy

    snapshot, _ = snapshot_with_links(tmp_path, "license: cc-by-nc-4.0")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: strict/1\nlicenses:\n  block: [CC-BY-NC-4.0]\n")
    staging = tmp_path / "staging"
    with pytest.raises(RefusedError, match=r"CC-BY-NC-4\.0, which the policy blocks; nothing was"):
        fetch(load_policy(policy), str(snapshot), None, staging)
    assert not staging.exists()


@pytest.mark.parametrize("kind", ["dangling", "folder-outside", "file-outside-refused"])
def test_pull_refuses_a_link_it_cannot_copy(tmp_path, kind):
    from stoa.govern.pull import fetch
    from stoa.govern.scan.policy import default_policy, load_policy

    source = _model(tmp_path / "src", "license: mit")
    policy = default_policy()
    (tmp_path / "elsewhere").mkdir()
    if kind == "dangling":
        (source / "tokenizer.json").symlink_to("../../blobs/gone")
        error, expected = (
            InvalidInputError,
            (
                f"{source}: tokenizer.json is a symlink to ../../blobs/gone that cannot be "
                "followed (No such file or directory); nothing was pulled"
            ),
        )
    elif kind == "folder-outside":
        (source / "extra").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        error, expected = (
            InvalidInputError,
            (
                f"{source}: extra is a symlink to ../elsewhere, which is a folder; only links to "
                "regular files are followed, and it leaves the source folder; nothing was pulled"
            ),
        )
    else:
        (tmp_path / "elsewhere" / "vocab.txt").write_text("a\nb\n")
        (source / "vocab.txt").symlink_to(tmp_path / "elsewhere" / "vocab.txt")
        path = tmp_path / "strict.yaml"
        path.write_text("version: strict/1\nsymlinks: {allow_outside_root: false}\n")
        policy = load_policy(path)
        error, expected = (
            RefusedError,
            (
                f"{source}: vocab.txt is a symlink to ../elsewhere/vocab.txt, outside the source "
                "folder, and the policy sets symlinks.allow_outside_root: false; nothing was pulled"
            ),
        )
    with pytest.raises(error) as raised:
        fetch(policy, str(source), None, tmp_path / "staging")
    assert raised.value.message == expected
    assert raised.value.field == "source"


def test_pull_keeps_a_link_to_a_folder_inside_the_source_inside_staging(tmp_path):
    from stoa.govern.pull import fetch
    from stoa.govern.scan.policy import default_policy

    source = _model(tmp_path / "src", "license: mit")
    (source / "sub").mkdir()
    (source / "sub" / "a.json").write_text("{}")
    (source / "alias").symlink_to(source / "sub", target_is_directory=True)  # absolute
    fetched = fetch(default_policy(), str(source), None, tmp_path / "staging")
    assert os.readlink(fetched / "alias") == "sub"
    assert (fetched / "alias" / "a.json").read_text() == "{}"


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
