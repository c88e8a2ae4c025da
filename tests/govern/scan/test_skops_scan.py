"""skops archives: the schema's types go through the same allowlist as pickles."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from stoa.govern.scan import scan_paths


def _model() -> bytes:
    model = make_pipeline(StandardScaler(), FunctionTransformer(np.abs), LogisticRegression())
    return sio.dumps(model.fit(np.random.rand(20, 3), [0, 1] * 10))


def _rewrite(data: bytes, edit) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name == "schema.json":
                raw = json.dumps(edit(json.loads(raw))).encode()
            dst.writestr(name, raw)
    return out.getvalue()


def test_a_real_skops_pipeline_is_allowed(tmp_path):
    path = tmp_path / "m.skops"
    path.write_bytes(_model())
    [file] = scan_paths([path]).files
    assert (file.format, file.verdict) == ("skops", "allowed"), file.findings


def test_a_schema_naming_a_foreign_function_blocks(tmp_path):
    def swap(schema):
        text = (
            json.dumps(schema)
            .replace('"absolute"', '"system"')
            .replace(
                '"__module__": "numpy", "__loader__": "FunctionNode"',
                '"__module__": "os", "__loader__": "FunctionNode"',
            )
        )
        return json.loads(text)

    data = _rewrite(_model(), swap)
    assert b'"os"' in zipfile.ZipFile(io.BytesIO(data)).read("schema.json")
    path = tmp_path / "evil.skops"
    path.write_bytes(data)
    [file] = scan_paths([path]).files
    assert (file.verdict, file.reason) == ("blocked", "malicious")
    [finding] = [f for f in file.findings if f.rule == "skops-type"]
    assert "loads os.system" in finding.message and "FunctionNode" in finding.message


def test_a_schema_naming_an_unvetted_class_is_an_unknown_global(tmp_path):
    def swap(schema):
        text = json.dumps(schema).replace('"StandardScaler"', '"FancyScaler"')
        return json.loads(text.replace('"sklearn.preprocessing._data"', '"acme.scalers"'))

    path = tmp_path / "unvetted.skops"
    path.write_bytes(_rewrite(_model(), swap))
    [file] = scan_paths([path]).files
    assert (file.verdict, file.reason) == ("blocked", "unknown-global")
    [finding] = [f for f in file.findings if f.blocks]
    assert (finding.rule, finding.severity) == ("skops-type", "high")
    assert "loads acme.scalers.FancyScaler, which the scan policy does not allow" in (
        finding.message
    )


def test_an_unreadable_schema_is_a_parse_error(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", "{not json")
    path = tmp_path / "bad.skops"
    path.write_bytes(out.getvalue())
    [file] = scan_paths([path]).files
    assert file.reason == "parse-error"
    assert any("skops schema is unreadable" in f.message for f in file.findings)
