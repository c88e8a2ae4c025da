"""The gate interface and the format allowlist that stands until the scanner lands."""

import json
import pickle
from pathlib import Path

import pytest

from stoa.govern.formats import detect_format
from stoa.govern.gate import Finding, FormatGate, Gate, Verdict, run_gate
from tests.artifacts import safetensors_bytes


def onnx_bytes() -> bytes:
    """A minimal ModelProto: ir_version=8 and an empty graph."""
    return b"\x08\x08" + b"\x3a\x00"


@pytest.fixture
def files(tmp_path, skops_file):
    import lightgbm
    import numpy as np
    import xgboost

    x = np.random.default_rng(0).normal(size=(50, 3))
    y = (x[:, 0] > 0).astype(int)
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, y), 2)
    booster.save_model(str(tmp_path / "m.json"))
    booster.save_model(str(tmp_path / "m.ubj"))
    lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(x, y), 2).save_model(
        str(tmp_path / "m.txt")
    )
    (tmp_path / "m.safetensors").write_bytes(safetensors_bytes())
    (tmp_path / "m.onnx").write_bytes(onnx_bytes())
    for proto in (0, 2, 5):
        (tmp_path / f"p{proto}.bin").write_bytes(pickle.dumps({"a": 1}, protocol=proto))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 4)
    return {"skops": skops_file, **{p.name: p for p in tmp_path.iterdir() if p.is_file()}}


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("skops", "skops"),
        ("m.json", "xgboost-json"),
        ("m.ubj", "xgboost-ubj"),
        ("m.txt", "lightgbm-text"),
        ("m.safetensors", "safetensors"),
        ("m.onnx", "onnx"),
    ],
)
def test_safe_formats_are_allowed(files, name, fmt):
    verdict = run_gate(FormatGate(), files[name])
    assert (verdict.verdict, verdict.format, verdict.findings) == ("allowed", fmt, [])
    assert verdict.status == "allowed"


@pytest.mark.parametrize("name", ["p0.bin", "p2.bin", "p5.bin", "notes.txt", "random.bin"])
def test_everything_else_is_blocked_with_a_reason(files, name):
    verdict = run_gate(FormatGate(), files[name])
    assert verdict.verdict == "blocked" and verdict.status == "blocked"
    assert verdict.findings[0].code == "no-scanner"
    assert "no scanner for this format" in verdict.findings[0].message


def test_format_is_detected_by_content_not_extension(files, tmp_path):
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(files["p2.bin"].read_bytes())
    assert detect_format(disguised) == "pickle"
    assert run_gate(FormatGate(), disguised).verdict == "blocked"


def test_folder_allowed_only_when_every_file_is_safe(tmp_path):
    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes())
    (folder / "config.json").write_text("{}")
    (folder / "modules.json").write_text(
        json.dumps([{"type": "sentence_transformers.models.Transformer"}])
    )
    assert run_gate(FormatGate(), folder).verdict == "allowed"

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps([1]))
    (folder / "modeling.py").write_text("import os\n")
    (folder / "modules.json").write_text(json.dumps([{"type": "os.system"}]))
    verdict = run_gate(FormatGate(), folder)
    assert verdict.verdict == "blocked"
    assert {(f.code, f.path) for f in verdict.findings} == {
        ("no-scanner", "pytorch_model.bin"),
        ("custom-code", "modeling.py"),
        ("foreign-module", "modules.json"),
    }


def test_folder_without_weights_is_blocked(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "config.json").write_text("{}")
    assert run_gate(FormatGate(), tmp_path / "f").findings[0].code == "no-model-file"


class _Exploding:
    name = "exploding/1"

    def check(self, path: Path, *, license: str | None = None) -> Verdict:
        raise MemoryError("budget")


class _AllowEverything:
    name = "allow-all/1"

    def check(self, path: Path, *, license: str | None = None) -> Verdict:
        return Verdict("allowed", self.name, "pickle", [Finding("note", "trusted", "info")])


def test_a_gate_that_fails_blocks(files):
    verdict = run_gate(_Exploding(), files["skops"])
    assert verdict.verdict == "error" and verdict.status == "blocked"
    assert "could not decide: MemoryError" in verdict.findings[0].message


def test_a_custom_gate_plugs_into_the_registry(tmp_path, files):
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    assert isinstance(_AllowEverything(), Gate)
    client = LocalClient(settings=Settings(home=tmp_path / "h"), gate=_AllowEverything())
    info = client.models.register("m", files["p2.bin"])
    assert (info.status, info.gate, info.findings[0]["code"]) == ("allowed", "allow-all/1", "note")
    strict = LocalClient(settings=Settings(home=tmp_path / "h"), gate=_Exploding())
    assert strict.models.register("m", files["skops"]).status == "blocked"


def test_registry_records_gate_verdict_and_refuses_to_load(sqlite_client, files):
    from stoa.core.errors import RefusedError
    from stoa.govern.scan.scan_gate import ScanGate
    from tests.artifacts import malicious_pickle

    evil = files["p2.bin"].parent / "evil.bin"
    evil.write_bytes(malicious_pickle())
    info = sqlite_client.models.register("m", evil)
    assert info.status == "blocked" and info.gate == ScanGate.name
    assert info.findings[0]["code"] == "pickle-global"
    with pytest.raises(RefusedError, match="blocked and will not be loaded: GLOBAL at offset 2"):
        sqlite_client.models.load("m@1")
    with pytest.raises(RefusedError):
        sqlite_client.models.download("m@1", files["p2.bin"].parent / "out")
    report = sqlite_client.models.show("m@1").scan
    assert report["policy_version"].startswith("stoa-default/")
    assert report["files"][0]["reason"] == "malicious"


def test_a_pickle_zip_cannot_pass_as_skops(tmp_path):
    import io
    import zipfile

    import numpy as np

    disguised = tmp_path / "disguised.skops"
    with zipfile.ZipFile(disguised, "w") as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("archive/data.pkl", pickle.dumps([1]))
    assert run_gate(FormatGate(), disguised).verdict == "blocked"

    object_array = tmp_path / "objects.skops"
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, None], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(object_array, "w") as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("1.npy", buffer.getvalue())
    assert detect_format(object_array) == "zip"
    assert run_gate(FormatGate(), object_array).verdict == "blocked"


def test_explicit_flavor_must_match_the_artifact(sqlite_client, files):
    from stoa.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="onnx artifact no flavor loads") as info:
        sqlite_client.models.register("m", files["m.onnx"], flavor="sklearn")
    assert info.value.field == "flavor"
    assert sqlite_client.models.list() == []
