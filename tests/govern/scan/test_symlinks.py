"""Symlinks: a link to a regular file is scanned as its target and reported; anything else
blocks. Hugging Face's cache is the case that matters: every file of a snapshot is a
relative link into the repository's ``blobs/`` folder, outside the snapshot folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from safetensors.numpy import save as save_safetensors

from stoa.core.blobs import BlobStore
from stoa.core.errors import InvalidInputError
from stoa.govern.scan import scan_paths
from stoa.govern.scan.budget import Budget
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.findings import FileReport, ScanFinding
from stoa.govern.scan.onnx_scan import scan_onnx
from stoa.govern.scan.policy import Policy, default_policy, load_policy
from stoa.govern.scan.scan_gate import ScanGate
from tests.govern.scan.corpus import system_pickle

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")

REV = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = save_safetensors({"w": np.ones((2, 3), dtype=np.float32)})
CONFIG = b'{"model_type": "bert", "hidden_size": 3}'


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_snapshot(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """``models--acme--tiny`` as ``huggingface_hub`` lays it out: ``blobs/<sha256>`` holds
    each file once; ``snapshots/<rev>/<name>`` is a relative link to ``../../blobs/<sha256>``."""
    repo = tmp_path / "models--acme--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / REV
    for name, data in files.items():
        (repo / "blobs" / sha256(data)).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(*[".."] * (name.count("/") + 2), "blobs", sha256(data)))
    return snapshot


def strict_policy(tmp_path: Path) -> Policy:
    path = tmp_path / "strict.yaml"
    path.write_text("version: strict/1\nsymlinks: {allow_outside_root: false}\n")
    return load_policy(path)


def scan_one(path: Path, policy: Policy | None = None, **kwargs) -> FileReport:
    [file] = scan_paths([path], policy, **kwargs).files
    return file


def blocking(file: FileReport) -> list[str]:
    return [f.message for f in file.findings if f.blocks]


def findings(file: FileReport, rule: str) -> list[ScanFinding]:
    return [f for f in file.findings if f.rule == rule]


def test_a_hugging_face_snapshot_folder_is_scanned_through_its_symlinks(tmp_path):
    snapshot = hf_snapshot(tmp_path, {"model.safetensors": WEIGHTS, "config.json": CONFIG})
    file = scan_one(snapshot)
    assert (file.format, file.verdict, file.reason) == ("folder", "allowed", "clean"), blocking(
        file
    )
    links = {f.location.path: f for f in findings(file, "symlink")}
    assert sorted(links) == [f"{snapshot}/config.json", f"{snapshot}/model.safetensors"]
    weights = links[f"{snapshot}/model.safetensors"]
    assert (weights.severity, weights.reason, weights.blocks) == ("info", "clean", False)
    assert weights.message == (
        f"model.safetensors is a symlink to ../../blobs/{sha256(WEIGHTS)}, outside the "
        "scanned folder; its target was scanned"
    )
    # The registry's gate agrees: the version would be allowed.
    verdict = ScanGate().check(snapshot)
    assert (verdict.verdict, verdict.status, verdict.findings) == ("allowed", "allowed", [])


def test_a_symlinked_weight_file_is_scanned_and_stored_as_its_target(tmp_path):
    link = hf_snapshot(tmp_path, {"model.safetensors": WEIGHTS}) / "model.safetensors"
    file = scan_one(link, hash_files=True)
    assert (file.format, file.verdict) == ("safetensors", "allowed"), blocking(file)
    assert (file.sha256, file.size) == (sha256(WEIGHTS), len(WEIGHTS))
    [note] = findings(file, "symlink")
    assert f"is a symlink to ../../blobs/{sha256(WEIGHTS)}" in note.message
    # The blob store, which keeps what the registry scanned, reads the same bytes.
    stored = BlobStore(str(tmp_path / "store")).put_path(link)
    assert (stored.artifact, stored.sha256) == ("file", file.sha256)


def test_a_symlink_is_scanned_by_its_targets_content(tmp_path):
    snapshot = hf_snapshot(tmp_path, {"pytorch_model.bin": system_pickle()})
    for path in (snapshot, snapshot / "pytorch_model.bin"):
        file = scan_one(path)
        assert (file.verdict, file.reason) == ("blocked", "malicious"), path
        assert any("os.system" in m or "posix.system" in m for m in blocking(file))


def test_the_policy_can_refuse_symlinks_that_leave_the_scanned_folder(tmp_path):
    policy = strict_policy(tmp_path)
    snapshot = hf_snapshot(tmp_path, {"model.safetensors": WEIGHTS})
    for path, name in ((snapshot, "model.safetensors"), (snapshot / "model.safetensors", None)):
        file = scan_one(path, policy)
        assert (file.verdict, file.reason) == ("blocked", "malicious"), path
        [escape] = findings(file, "symlink-escape")
        assert f"is a symlink to ../../blobs/{sha256(WEIGHTS)}, outside the scanned folder" in (
            escape.message
        )
        assert "symlinks.allow_outside_root: false" in escape.message
        assert escape.message.startswith(name or str(path))
    # From the repository's own folder the same links stay inside, so they are followed.
    file = scan_one(snapshot.parent.parent, policy)
    assert file.verdict == "allowed", blocking(file)
    assert len(findings(file, "symlink")) == 1


@pytest.mark.parametrize("kind", ["folder", "dangling", "loop", "fifo"])
def test_a_symlink_to_anything_but_a_regular_file_stays_blocked(tmp_path, kind):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    link = folder / "extra"
    if kind == "folder":
        (tmp_path / "elsewhere").mkdir()
        link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        expected = "extra is a symlink to ../elsewhere, which is a folder"
    elif kind == "dangling":
        link.symlink_to(tmp_path / "gone")
        expected = f"extra is a symlink to {tmp_path / 'gone'} that cannot be followed"
    elif kind == "loop":
        link.symlink_to("extra")
        expected = "extra is a symlink to extra that cannot be followed"
    else:
        os.mkfifo(tmp_path / "pipe")
        link.symlink_to(tmp_path / "pipe")
        expected = "extra is a symlink to ../pipe, which is not a regular file"
    for path in (folder, link):
        file = scan_one(path)
        assert (file.verdict, file.reason) == ("blocked", "parse-error"), (path, blocking(file))
        [finding] = findings(file, "symlink-target")
        assert expected in finding.message, finding.message
        assert "only links to regular files are followed" in finding.message or (
            "cannot be followed" in finding.message
        )


def test_a_fifo_in_a_model_folder_blocks_instead_of_hanging_the_scan(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    os.mkfifo(folder / "pipe")
    result: list[FileReport] = []
    # Opening a FIFO waits for a writer; a daemon thread keeps a regression from hanging pytest.
    worker = threading.Thread(target=lambda: result.append(scan_one(folder)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result, "the scan is stuck opening the FIFO"
    assert (result[0].verdict, result[0].reason) == ("blocked", "parse-error")
    assert any("pipe is not a regular file" in m for m in blocking(result[0]))


def onnx_external_paths(model: Path, policy: Policy) -> list[ScanFinding]:
    """What the ONNX scanner alone says about external-data locations."""
    ctx = Context(policy=policy, budget=Budget(policy.limits))
    with model.open("rb") as stream:
        scan_onnx(Blob(model.name, stream, model.stat().st_size, path=model), ctx)
    return [f for f in ctx.findings if f.rule == "onnx-external-data-path"]


def test_onnx_external_data_linked_into_the_cache_stays_inside_the_model(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[onnx.numpy_helper.from_array(np.ones(2, dtype=np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(
        model,
        staging / "model.onnx",
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    files = {name: (staging / name).read_bytes() for name in ("model.onnx", "model.onnx_data")}
    linked = hf_snapshot(tmp_path, files) / "model.onnx"
    assert onnx_external_paths(linked, default_policy()) == []
    [escape] = onnx_external_paths(linked, strict_policy(tmp_path))
    assert "'model.onnx_data'" in escape.message and "outside the model's folder" in escape.message
    # The whole snapshot: the linked tensor file is the graph's data, not an unknown format.
    file = scan_one(linked.parent)
    assert (file.verdict, file.reason) == ("allowed", "clean"), blocking(file)
    [data] = findings(file, "onnx-external-data")
    assert data.location.path == f"{linked.parent}/model.onnx_data"


def test_the_symlinks_policy_key_is_checked(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("version: p/1\nsymlinks: {allow_outside: false}\n")
    with pytest.raises(
        InvalidInputError, match=r"unknown key\(s\) under symlinks: allow_outside \(use"
    ):
        load_policy(path)
    path.write_text("version: p/1\nsymlinks: {allow_outside_root: nope}\n")
    with pytest.raises(InvalidInputError, match=r"symlinks\.allow_outside_root must be true"):
        load_policy(path)


def test_a_hugging_face_snapshot_folder_registers_and_downloads(sqlite_client, tmp_path):
    """Scanning a snapshot is half the story: the registry stores its files' content."""
    readme = b"---\nlicense: apache-2.0\n---\n# tiny\n"
    files = {"model.safetensors": WEIGHTS, "config.json": CONFIG, "README.md": readme}
    snapshot = hf_snapshot(tmp_path, files)
    info = sqlite_client.models.register("tiny", snapshot)
    assert info.status == "allowed", info.findings
    out = sqlite_client.models.download("tiny@1", tmp_path / "out")
    for name, data in files.items():
        assert (out / name).read_bytes() == data and not (out / name).is_symlink()
