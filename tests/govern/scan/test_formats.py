"""Format scanners: Keras, SavedModel, ONNX, safetensors and GGUF, plus the protobuf reader.

Every sample is built here, in tmp_path, with the real writer where one is
installed (onnx.helper, safetensors, gguf.GGUFWriter, h5py) and by hand where a
file has to be malformed in a way no writer produces. Keras and TensorFlow are
not installed, so Keras configs are hand-written in the Keras 3 format and
SavedModels are encoded with ``protobuf.encode_*``. Tests check messages, not
just verdicts: a finding must name the culprit.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import gguf
import h5py
import numpy as np
import onnx
import pytest
import safetensors
import torch
from onnx import TensorProto, helper
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

from stoa.govern.scan import scan_paths
from stoa.govern.scan.budget import Budget, BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.findings import FileReport, ScanFinding
from stoa.govern.scan.gguf_scan import (
    SAMPLES,
    check_chat_template,
    looks_like_gguf,
    render_in_child,
    scan_gguf,
)
from stoa.govern.scan.keras_scan import looks_like_hdf5, scan_hdf5, scan_keras_zip
from stoa.govern.scan.onnx_scan import lexical_problem, scan_onnx
from stoa.govern.scan.policy import default_policy
from stoa.govern.scan.protobuf import (
    Message,
    ProtobufError,
    as_signed,
    encode_field,
    encode_fixed32,
    encode_fixed64,
    encode_key,
    encode_message,
    encode_varint,
)
from stoa.govern.scan.safetensors_scan import looks_like_safetensors, scan_safetensors
from stoa.govern.scan.savedmodel_scan import scan_savedmodel
from stoa.govern.scan.scan_gate import ScanGate
from tests.govern.scan.corpus import system_pickle

Scanner = Callable[[Blob, Context], None]

# --------------------------------------------------------------------------- harness


def run_scan(scanner: Scanner, path: Path, *, on_disk: bool = True) -> Context:
    """Scan one file the way the dispatcher would; ``on_disk=False`` mimics an archive member."""
    ctx = Context(policy=default_policy(), budget=Budget())
    with path.open("rb") as fh:
        blob = Blob(path.name, fh, path.stat().st_size, path=path if on_disk else None)
        scanner(blob, ctx)
    return ctx


def blocking(ctx: Context) -> list[ScanFinding]:
    return [f for f in ctx.findings if f.blocks]


def assert_clean(ctx: Context) -> None:
    assert blocking(ctx) == [], [f.message for f in blocking(ctx)]


def block(scanner: Scanner, path: Path, reason: str, *, on_disk: bool = True) -> ScanFinding:
    """Scan ``path`` and return its single blocking finding, which must have ``reason``."""
    return only_block(run_scan(scanner, path, on_disk=on_disk), reason)


def only_block(ctx: Context, reason: str) -> ScanFinding:
    """The single blocking finding, which must have ``reason``."""
    found = blocking(ctx)
    assert len(found) == 1, [f.message for f in found]
    assert found[0].reason == reason, found[0]
    return found[0]


# --------------------------------------------------------------------------- protobuf


def test_varints_round_trip_including_negative_int64() -> None:
    for value in (0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)):
        data = encode_field(1, value)
        (field,) = Message.root(io.BytesIO(data), len(data)).fields()
        assert as_signed(field.value) == value


def test_reader_decodes_every_wire_type_and_nested_messages() -> None:
    inner = encode_message(encode_field(1, "name"), encode_fixed32(2, 7), encode_fixed64(3, 9))
    data = encode_message(encode_field(1, 5), encode_field(2, inner))
    root = Message.root(io.BytesIO(data), len(data))
    first, second = root.fields()
    assert first.value == 5
    sub = root.message(second)
    name, fixed32, fixed64 = sub.fields()
    assert sub.string(name, 100) == "name"
    assert (fixed32.value, fixed64.value) == (7, 9)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (encode_key(1, 2) + encode_varint(100) + b"short", "claims 100 bytes"),
        (encode_key(1, 3), "group wire type 3"),
        (encode_key(1, 7), "unknown wire type 7"),
        (encode_key(1, 0) + b"\xff" * 11, "unterminated varint"),
        (encode_key(1, 0) + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
        (encode_key(0, 0) + b"\x00", "invalid field number 0"),
        (encode_key(1, 5) + b"\x00\x00", "runs past"),
    ],
)
def test_reader_fails_closed_on_malformed_wire_data(data: bytes, error: str) -> None:
    with pytest.raises(ProtobufError, match=error):
        list(Message.root(io.BytesIO(data), len(data)).fields())


def test_reader_bounds_nesting_depth() -> None:
    data = b""
    for _ in range(150):
        data = encode_field(1, data)

    def descend(message: Message) -> None:
        for field in message.fields():
            descend(message.message(field))

    with pytest.raises(BudgetExceeded, match="nesting depth"):
        descend(Message.root(io.BytesIO(data), len(data)))


# --------------------------------------------------------------------------- Keras

DTYPE = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}


def layer(class_name: str, name: str, **config: Any) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, "trainable": True, "dtype": DTYPE, **config},
        "registered_name": None,
    }


def dense(name: str, units: int = 4) -> dict[str, Any]:
    init = {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    return layer(
        name=name,
        class_name="Dense",
        units=units,
        activation="relu",
        kernel_initializer=init,
        use_bias=True,
    )


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": DTYPE,
            "layers": [layer("InputLayer", "input", batch_shape=[None, 8]), *layers],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 8]},
        "compile_config": {
            "optimizer": {
                "module": "keras.optimizers",
                "class_name": "Adam",
                "config": {"learning_rate": 0.001},
                "registered_name": None,
            },
            "loss": {
                "module": "keras.losses",
                "class_name": "MeanSquaredError",
                "config": {"name": "mean_squared_error"},
                "registered_name": None,
            },
        },
    }


def functional(name: str, *layers: dict[str, Any]) -> dict[str, Any]:
    tensor = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 8], "dtype": "float32", "keras_history": ["in", 0, 0]},
    }
    wired = [
        {
            **item,
            "name": item["config"]["name"],
            "inbound_nodes": [{"args": [tensor], "kwargs": {}}],
        }
        for item in layers
    ]
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": wired,
            "input_layers": [["in", 0, 0]],
            "output_layers": [["out", 0, 0]],
        },
        "registered_name": "Functional",
    }


def keras3_lambda(name: str) -> dict[str, Any]:
    code = "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHIC"
    return layer(
        "Lambda",
        name,
        arguments={},
        function={
            "class_name": "__lambda__",
            "config": {"code": code, "defaults": None, "closure": None},
        },
    )


def write_keras(
    tmp_path: Path, config: dict[str, Any], extra: dict[str, bytes] | None = None
) -> Path:
    path = tmp_path / "model.keras"
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.zeros((8, 4), dtype=np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0", "date_saved": "x"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights.getvalue())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_keras_benign_sequential_and_functional_pass(tmp_path: Path) -> None:
    config = sequential(dense("d1"), functional("inner", dense("d2")), dense("out", 1))
    ctx = run_scan(scan_keras_zip, write_keras(tmp_path, config))
    assert_clean(ctx)
    assert any("model.weights.h5 holds HDF5 weights" in f.message for f in ctx.findings)


def test_keras_lambda_inside_functional_inside_sequential_is_named(tmp_path: Path) -> None:
    inner = functional("inner", dense("a"), dense("b"), keras3_lambda("sneaky"))
    ctx = run_scan(scan_keras_zip, write_keras(tmp_path, sequential(dense("d"), inner)))
    finding = only_block(ctx, "malicious")
    assert finding.severity == "critical"
    assert "Lambda layer 'sneaky' at config.layers[2].config.layers[2]" in finding.message
    assert "bytecode" in finding.message
    assert finding.location.path == "model.keras!/config.json"


def test_keras_lambda_inside_wrapper_and_bare_lambda_marker(tmp_path: Path) -> None:
    wrapped = layer("TimeDistributed", "td", layer=keras3_lambda("inside"))
    activation = {"class_name": "__lambda__", "config": {"code": "AAAA", "defaults": None}}
    config = sequential(wrapped, layer("Activation", "act", activation=activation))
    messages = [
        f.message for f in blocking(run_scan(scan_keras_zip, write_keras(tmp_path, config)))
    ]
    assert len(messages) == 2, messages
    assert "Lambda layer 'inside' at config.layers[1].config.layer " in messages[0]
    assert "config.layers[2].config.activation.class_name holds a __lambda__" in messages[1]


def test_keras_module_outside_keras_is_blocked(tmp_path: Path) -> None:
    evil = {
        "module": "os",
        "class_name": "system",
        "config": {"command": "id"},
        "registered_name": "os>system",
    }
    ctx = run_scan(
        scan_keras_zip,
        write_keras(tmp_path, sequential(layer("Dense", "d", kernel_initializer=evil))),
    )
    finding = only_block(ctx, "malicious")
    assert (finding.rule, finding.severity) == ("keras-module", "critical")
    assert "system object at config.layers[1].config.kernel_initializer imports module 'os'" in (
        finding.message
    )


def test_keras_registered_name_pointing_at_another_package(tmp_path: Path) -> None:
    sneaky = {**dense("d"), "registered_name": "subprocess>Popen"}
    finding = only_block(
        run_scan(scan_keras_zip, write_keras(tmp_path, sequential(sneaky))), "malicious"
    )
    assert "registered_name 'subprocess>Popen'" in finding.message


def test_keras_unknown_package_module_is_high_not_critical(tmp_path: Path) -> None:
    custom = {
        **dense("d"),
        "module": "keras_hub.src.models.gemma",
        "registered_name": "keras_hub>X",
    }
    finding = only_block(
        run_scan(scan_keras_zip, write_keras(tmp_path, sequential(custom))), "malicious"
    )
    assert finding.severity == "high"
    assert "'keras_hub.src.models.gemma'" in finding.message


def test_keras_tfsmlayer_is_blocked(tmp_path: Path) -> None:
    tfsm = layer("TFSMLayer", "loader", filepath="/tmp/evil_savedmodel", call_endpoint="serve")
    finding = only_block(
        run_scan(scan_keras_zip, write_keras(tmp_path, sequential(tfsm))), "malicious"
    )
    assert "TFSMLayer layer 'loader' at config.layers[1]" in finding.message
    assert "SavedModel" in finding.message


def test_keras_broken_json_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", '{"class_name": "Sequential", ')
    finding = block(scan_keras_zip, path, "parse-error")
    assert "config.json is not valid JSON" in finding.message


def test_keras_deep_nesting_is_a_budget_finding(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(500):
        deep = [deep]
    path = write_keras(tmp_path, sequential(layer("Dense", "d", extra=deep)))
    finding = block(scan_keras_zip, path, "budget")
    assert "nesting depth" in finding.message


def test_keras_zip_members_other_than_config_go_to_the_dispatcher(tmp_path: Path) -> None:
    seen: dict[str, bytes] = {}

    def stub(ctx: Context, label: str, stream: BinaryIO, size: int) -> str:
        seen[label] = stream.read()
        return "pickle"

    path = write_keras(tmp_path, sequential(dense("d")), {"assets/vocab.pkl": b"\x80\x04N."})
    ctx = Context(policy=default_policy(), budget=Budget(), member_scanner=stub)
    with path.open("rb") as fh:
        scan_keras_zip(Blob("model.keras", fh, path.stat().st_size, path=path), ctx)
    assert seen == {"model.keras!/assets/vocab.pkl": b"\x80\x04N."}


def write_h5(path: Path, **attrs: str) -> Path:
    with h5py.File(path, "w") as h5:
        for key, value in attrs.items():
            h5.attrs[key] = value
        h5.create_dataset("model_weights/dense/kernel", data=np.ones((2, 2)))
    return path


def test_hdf5_benign_model_config_passes(tmp_path: Path) -> None:
    legacy = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "relu"}},
                {
                    "class_name": "TFOpLambda",
                    "config": {"name": "add", "function": "__operators__.add"},
                },
            ],
        },
    }
    training = {"loss": "mse", "optimizer_config": {"class_name": "Adam", "config": {}}}
    path = write_h5(
        tmp_path / "m.h5", model_config=json.dumps(legacy), training_config=json.dumps(training)
    )
    assert looks_like_hdf5(path.read_bytes()[:8])
    assert_clean(run_scan(scan_hdf5, path))


def test_hdf5_legacy_lambda_and_tf_op_are_blocked(tmp_path: Path) -> None:
    legacy = {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [
                {
                    "class_name": "Lambda",
                    "config": {
                        "name": "lam",
                        "function": ["4wEAAAAAAAAAAAAAAAEAAAAC", None, None],
                        "function_type": "lambda",
                        "module": "__main__",
                    },
                },
                {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}},
            ],
        },
    }
    ctx = run_scan(scan_hdf5, write_h5(tmp_path / "m.h5", model_config=json.dumps(legacy)))
    messages = sorted(f.message for f in blocking(ctx))
    assert len(messages) == 2, messages
    assert "m.h5 attribute model_config: Lambda layer 'lam' at config.layers[0]" in messages[0]
    assert "TFOpLambda layer 'w' at config.layers[1] calls tf.io.write_file" in messages[1]


def test_hdf5_weights_only_is_noted_and_garbage_is_a_parse_error(tmp_path: Path) -> None:
    ctx = run_scan(scan_hdf5, write_h5(tmp_path / "w.h5"))
    assert_clean(ctx)
    assert "weights only" in ctx.findings[0].message
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    assert "cannot read the HDF5 file" in block(scan_hdf5, bad, "parse-error").message


# --------------------------------------------------------------------------- SavedModel


def tf_node(name: str, op: str, **attrs: bytes) -> bytes:
    entries = [encode_field(5, encode_field(1, k) + encode_field(2, v)) for k, v in attrs.items()]
    return encode_message(encode_field(1, name), encode_field(2, op), *entries)


def attr_s(value: str) -> bytes:
    return encode_field(2, value)


def attr_func(name: str) -> bytes:
    return encode_field(10, encode_field(1, name))


def tf_function(name: str, *nodes: bytes) -> bytes:
    return encode_message(
        encode_field(1, encode_field(1, name)), *(encode_field(3, n) for n in nodes)
    )


def saved_model(path: Path, nodes: list[bytes], functions: list[bytes]) -> Path:
    library = encode_message(*(encode_field(1, f) for f in functions))
    graph = encode_message(*(encode_field(1, n) for n in nodes), encode_field(2, library))
    meta = encode_message(encode_field(1, encode_field(1, "serve")), encode_field(2, graph))
    path.write_bytes(encode_message(encode_field(1, 1), encode_field(2, meta)))
    return path


SERVE = "__inference_serve_42"


def serving_model(path: Path, *body: bytes) -> Path:
    """A TF2-shaped SavedModel: a serving function, a saver function, a graph calling both."""
    serve = tf_function(
        "__inference_serve_42",
        tf_node("x", "Placeholder"),
        tf_node("w", "ReadVariableOp"),
        tf_node("mm", "MatMul"),
        tf_node("b", "BiasAdd"),
        tf_node("act", "Relu"),
        tf_node("p", "PrintV2", output_stream=attr_s("stderr")),
        *body,
    )
    save = tf_function(
        "__inference__traced_save_99",
        tf_node("prefix", "StringJoin"),
        tf_node("shard", "ShardedFilename"),
        tf_node("save", "SaveV2"),
        tf_node("merge", "MergeV2Checkpoints"),
    )
    graph = [
        tf_node("saver_filename", "Placeholder"),
        tf_node("v", "VarHandleOp"),
        tf_node("call", "StatefulPartitionedCall", f=attr_func("__inference_serve_42")),
        tf_node("save_call", "StatefulPartitionedCall", f=attr_func("__inference__traced_save_99")),
        tf_node("fn_as_op", "__inference_serve_42"),
    ]
    return saved_model(path, graph, [serve, save])


def test_savedmodel_benign_graph_with_saver_passes(tmp_path: Path) -> None:
    assert_clean(run_scan(scan_savedmodel, serving_model(tmp_path / "saved_model.pb")))


@pytest.mark.parametrize(
    ("body", "culprit"),
    [
        (tf_node("leak", "ReadFile"), f"op 'ReadFile' (node 'leak' in function {SERVE!r})"),
        (tf_node("cb", "PyFunc"), f"op 'PyFunc' (node 'cb' in function {SERVE!r})"),
        (
            tf_node("c", "PartitionedCall", f=attr_func("WriteFile")),
            f"op 'WriteFile' (attr 'f' of node 'c' in function {SERVE!r})",
        ),
    ],
)
def test_savedmodel_denied_ops_are_critical(tmp_path: Path, body: bytes, culprit: str) -> None:
    finding = block(scan_savedmodel, serving_model(tmp_path / "s.pb", body), "malicious")
    assert finding.severity == "critical"
    assert culprit in finding.message


def test_savedmodel_unknown_op_and_print_to_file(tmp_path: Path) -> None:
    path = serving_model(
        tmp_path / "s.pb",
        tf_node("k1", "MyCustomKernel"),
        tf_node("k2", "MyCustomKernel"),
        tf_node("dump", "PrintV2", output_stream=attr_s("file:///tmp/exfil")),
    )
    by_rule = {f.rule: f for f in blocking(run_scan(scan_savedmodel, path))}
    assert set(by_rule) == {"savedmodel-unknown-op", "savedmodel-print-to-file"}
    unknown = by_rule["savedmodel-unknown-op"]
    assert unknown.severity == "high"
    assert "op 'MyCustomKernel' (node 'k1' in function '__inference_serve_42' and 1 more)" in (
        unknown.message
    )
    assert "'file:///tmp/exfil'" in by_rule["savedmodel-print-to-file"].message


def test_savedmodel_truncated_or_not_a_savedmodel_is_a_parse_error(tmp_path: Path) -> None:
    good = serving_model(tmp_path / "s.pb").read_bytes()
    (tmp_path / "cut.pb").write_bytes(good[:-7])
    assert (
        "not a valid SavedModel"
        in block(scan_savedmodel, tmp_path / "cut.pb", "parse-error").message
    )
    (tmp_path / "empty.pb").write_bytes(encode_field(1, 1))
    assert "no MetaGraphDef" in block(scan_savedmodel, tmp_path / "empty.pb", "parse-error").message


# --------------------------------------------------------------------------- ONNX

OPSET = [helper.make_opsetid("", 17)]


def onnx_model(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto] = (),
    opsets=OPSET,
    functions: list[onnx.FunctionProto] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=list(inits),
    )
    return helper.make_model(graph, opset_imports=list(opsets), functions=list(functions))


def external(name: str, location: str) -> TensorProto:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [2], [1.0, 2.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def save_onnx(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_benign_model_with_external_weights_passes(tmp_path: Path) -> None:
    weights = onnx.numpy_helper.from_array(np.ones(512, dtype=np.float32), "w")
    model = onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [weights])
    path = tmp_path / "model" / "model.onnx"
    (tmp_path / "model" / "weights").mkdir(parents=True)
    onnx.save_model(
        model, path, save_as_external_data=True, location="weights/w.bin", size_threshold=0
    )
    assert (tmp_path / "model" / "weights" / "w.bin").is_file()
    assert_clean(run_scan(scan_onnx, path))


def test_onnx_external_data_escaping_from_a_subgraph(tmp_path: Path) -> None:
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["secret"], ["y"])],
        "then",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[external("secret", "../../etc/passwd")],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "else",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    node = helper.make_node(
        "If", ["c"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph
    )
    path = save_onnx(onnx_model([node]), tmp_path / "m" / "model.onnx")
    finding = block(scan_onnx, path, "malicious")
    assert "'../../etc/passwd'" in finding.message
    assert "(graph/node 'branch' attr 'then_branch' initializer tensor 'secret')" in finding.message
    assert "climbs out of the model's folder" in finding.message


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share\\w.bin", "absolute path"),
        ("C:\\Windows\\system.ini", "absolute path"),
        ("weights\\..\\..\\secret.bin", "climbs out"),
        ("w.bin:stream", "contains ':'"),
        ("weights/..", "does not name a file"),
        ("./", "does not name a file"),
    ],
)
def test_onnx_external_locations_judged_lexically(location: str, problem: str) -> None:
    assert problem in (lexical_problem(location) or "")


def test_onnx_absolute_location_in_an_archive_member(tmp_path: Path) -> None:
    model = onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [external("w", "/etc/shadow")])
    path = save_onnx(model, tmp_path / "model.onnx")
    finding = block(scan_onnx, path, "malicious", on_disk=False)
    assert "'/etc/shadow'" in finding.message and "absolute path" in finding.message


def test_onnx_external_tensor_without_location_is_a_parse_error(tmp_path: Path) -> None:
    model = onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [external("w", "")])
    finding = block(scan_onnx, save_onnx(model, tmp_path / "model.onnx"), "parse-error")
    assert "graph initializer tensor 'w' is external data without a location" in finding.message


def test_onnx_symlink_pointing_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"\x00" * 8)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link").symlink_to(outside, target_is_directory=True)
    model = onnx_model(
        [helper.make_node("Add", ["x", "w"], ["y"])], [external("w", "link/data.bin")]
    )
    finding = block(scan_onnx, save_onnx(model, folder / "model.onnx"), "malicious")
    assert "'link/data.bin'" in finding.message
    assert "symlink" in finding.message and str(outside.resolve()) in finding.message


def test_onnx_undeclared_custom_domain_is_critical(tmp_path: Path) -> None:
    node = helper.make_node("Backdoor", ["x"], ["y"], name="bd", domain="evil.ops")
    finding = only_block(
        run_scan(scan_onnx, save_onnx(onnx_model([node]), tmp_path / "m.onnx")), "malicious"
    )
    assert finding.severity == "critical"
    assert "evil.ops::Backdoor (graph/node 'bd')" in finding.message
    assert "does not declare" in finding.message


def test_onnx_declared_custom_domain_needs_policy(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Fancy", ["x"], ["t"], name="f", domain="my.ops"),
        helper.make_node("Gelu", ["t"], ["y"], name="g", domain="com.microsoft"),
    ]
    opsets = [*OPSET, helper.make_opsetid("my.ops", 1), helper.make_opsetid("com.microsoft", 1)]
    path = save_onnx(onnx_model(nodes, opsets=opsets), tmp_path / "m.onnx")
    finding = block(scan_onnx, path, "malicious")
    assert "my.ops::Fancy (graph/node 'f') is a custom op" in finding.message
    assert "Add 'my.ops' to onnx.domains in your policy" in finding.message


def test_onnx_local_functions_are_not_custom_ops(tmp_path: Path) -> None:
    body = [helper.make_node("Relu", ["a"], ["b"])]
    fn = helper.make_function("local.fn", "MyRelu", ["a"], ["b"], body, OPSET)
    node = helper.make_node("MyRelu", ["x"], ["y"], domain="local.fn")
    opsets = [*OPSET, helper.make_opsetid("local.fn", 1)]
    model = onnx_model([node], opsets=opsets, functions=[fn])
    onnx.checker.check_model(model)
    assert_clean(run_scan(scan_onnx, save_onnx(model, tmp_path / "m.onnx")))


def test_onnx_garbage_is_a_parse_error(tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_bytes(b"\x0a\xff\xff\xff\x0f not protobuf")
    assert (
        "not a valid ONNX protobuf" in block(scan_onnx, tmp_path / "x.onnx", "parse-error").message
    )


def onnx_folder(folder: Path, location: str = "weights.bin") -> Path:
    """What ``onnx.save_model(..., save_as_external_data=True)`` writes: the graph and a raw
    tensor file it names."""
    weights = onnx.numpy_helper.from_array(np.arange(512, dtype=np.float32), "w")
    model = onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [weights])
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model, folder / "model.onnx", save_as_external_data=True, location=location,
        size_threshold=0,
    )  # fmt: skip
    assert (folder / location).is_file()
    return folder


def scan_folder(folder: Path) -> FileReport:
    [file] = scan_paths([folder]).files
    return file


def test_onnx_external_data_in_a_folder_is_data_not_an_unknown_format(tmp_path: Path) -> None:
    folder = onnx_folder(tmp_path / "model")
    file = scan_folder(folder)
    assert (file.verdict, file.format) == ("allowed", "folder"), [m.message for m in file.findings]
    [note] = [f for f in file.findings if f.rule == "onnx-external-data"]
    assert (note.location.path, note.blocks) == (f"{folder}/weights.bin", False)
    assert note.message == (
        "weights.bin holds external tensor data of model.onnx: the ONNX runtime reads it as "
        "raw bytes, so it was accepted as data"
    )
    assert ScanGate().check(folder).verdict == "allowed"  # what registering the folder runs


def test_onnx_external_data_in_a_subfolder_is_claimed_by_its_path(tmp_path: Path) -> None:
    folder = onnx_folder(tmp_path / "model", "weights/w.bin")
    assert scan_folder(folder).verdict == "allowed"
    (folder / "stray.bin").write_bytes((folder / "weights" / "w.bin").read_bytes())
    file = scan_folder(folder)  # raw bytes no graph names are still an unknown format
    assert [(f.rule, f.location.path) for f in file.findings if f.blocks] == [
        ("unknown-format", f"{folder}/stray.bin")
    ]


def test_onnx_external_data_holding_a_pickle_is_still_scanned_as_one(tmp_path: Path) -> None:
    folder = onnx_folder(tmp_path / "model", "pytorch_model.bin")
    (folder / "pytorch_model.bin").write_bytes(system_pickle())  # torch.load would run it
    file = scan_folder(folder)
    assert (file.verdict, file.reason) == ("blocked", "malicious")
    assert not [f for f in file.findings if f.rule == "onnx-external-data"]


@pytest.mark.parametrize("how", ["absolute", "dotdot", "folder-link"])
def test_onnx_external_data_outside_the_folder_blocks_the_folder(tmp_path: Path, how: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(np.ones(2, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    location, problem = {
        "absolute": (str(outside / "w.bin"), "is an absolute path"),
        "dotdot": ("../outside/w.bin", "climbs out of the model's folder with '..'"),
        "folder-link": (
            "link/w.bin",
            f"resolves through a symlink to {outside.resolve()}/w.bin, outside the model's folder",
        ),
    }[how]
    if how == "folder-link":
        (folder / "link").symlink_to(outside, target_is_directory=True)
    model = onnx_model([helper.make_node("Add", ["x", "w"], ["y"])], [external("w", location)])
    save_onnx(model, folder / "model.onnx")
    file = scan_folder(folder)
    assert (file.verdict, file.reason) == ("blocked", "malicious")
    [escape] = [f for f in file.findings if f.rule == "onnx-external-data-path"]
    assert escape.location.path == f"{folder}/model.onnx"
    assert escape.message.startswith(f"external data location {location!r} (graph initializer")
    assert escape.message.endswith(problem)
    assert not [f for f in file.findings if f.rule == "onnx-external-data"]


# --------------------------------------------------------------------------- safetensors


def raw_safetensors(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def f32(begin: int, end: int, *shape: int) -> dict[str, Any]:
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, end]}


def test_safetensors_real_files_pass_and_report_their_licence(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    save_torch(
        {"a": torch.zeros(3, 2), "b": torch.ones(5, dtype=torch.bfloat16), "empty": torch.zeros(0)},
        path,
        metadata={"license": "apache-2.0"},
    )
    ctx = run_scan(scan_safetensors, path)
    assert ctx.findings == []
    assert ctx.license_hints == [("apache-2.0", "safetensors __metadata__.license")]
    assert looks_like_safetensors(path.read_bytes()[:64], path.stat().st_size)
    save_numpy({"x": np.arange(10, dtype=np.int64)}, tmp_path / "n.safetensors")
    assert run_scan(scan_safetensors, tmp_path / "n.safetensors").findings == []


MALFORMED_SAFETENSORS = [
    ("overlap", raw_safetensors({"a": f32(0, 8, 2), "b": f32(4, 12, 2)}, bytes(12)),
     "tensor 'b' [4, 12] overlaps tensor 'a', which ends at byte 8"),
    ("past-eof", raw_safetensors({"a": f32(0, 16, 4)}, bytes(8)),
     "tensor 'a' ends at byte 16 of the data section, past the end of the file"),
    ("bad-dtype", raw_safetensors({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}},
                                  bytes(16)), "unknown dtype 'F128'"),
    ("header-too-long", struct.pack("<Q", 10_000) + b"{}", "runs past the end of the file"),
    ("gap", raw_safetensors({"a": f32(4, 8, 1)}, bytes(8)), "gap of 4 bytes at the start"),
    ("trailing", raw_safetensors({"a": f32(0, 4, 1)}, bytes(8)), "tensors cover 4 bytes"),
    ("size-mismatch", raw_safetensors({"a": f32(0, 8, 3)}, bytes(8)), "= 12 bytes"),
    ("f4-odd", raw_safetensors({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}},
                               bytes(2)), "byte boundary"),
    ("negative-shape", raw_safetensors({"a": f32(0, 4, -1)}, bytes(4)), "non-negative"),
    ("metadata-not-str", raw_safetensors({"__metadata__": {"n": 1}}, b""), "not a string"),
    ("not-object", raw_safetensors(b"[]", b""), "not an object"),
    ("not-utf8", raw_safetensors(b'{"\xff": 1}', b""), "not UTF-8"),
    ("short", b"\x01\x00", "shorter than the 8-byte header length"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data", "message"), MALFORMED_SAFETENSORS, ids=[m[0] for m in MALFORMED_SAFETENSORS]
)
def test_safetensors_malformed_headers_match_the_library(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the crate's error types vary by version
        safetensors.deserialize(data)
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(data)
    assert message in block(scan_safetensors, path, "parse-error").message


def test_safetensors_is_stricter_on_duplicate_keys_and_nan(tmp_path: Path) -> None:
    entry = b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    dup = b"{" + entry + b"," + entry + b"}"
    (tmp_path / "dup.safetensors").write_bytes(raw_safetensors(dup, bytes(4)))
    assert (
        "repeats the key 'a'"
        in block(scan_safetensors, tmp_path / "dup.safetensors", "parse-error").message
    )
    (tmp_path / "nan.safetensors").write_bytes(raw_safetensors(b'{"__metadata__": NaN}', b""))
    assert "NaN" in block(scan_safetensors, tmp_path / "nan.safetensors", "parse-error").message


def test_safetensors_header_over_the_json_budget(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    path.write_bytes(raw_safetensors(b"{}" + b" " * 2000, b""))
    ctx = Context(policy=default_policy(), budget=Budget())
    object.__setattr__(ctx, "policy", _with_max_json(ctx.policy, 1000))
    with path.open("rb") as fh:
        scan_safetensors(Blob(path.name, fh, path.stat().st_size, path=path), ctx)
    assert "header bytes" in only_block(ctx, "budget").message


def _with_max_json(policy: Any, limit: int) -> Any:
    from dataclasses import replace

    return replace(policy, limits=replace(policy.limits, max_json=limit))


# --------------------------------------------------------------------------- GGUF

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)


def write_gguf(path: Path, template: str | list[dict[str, str]] = CHATML) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_license("apache-2.0")
    writer.add_chat_template(template)
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"])
    writer.add_array("tokenizer.ggml.scores", [0.0, 0.0, -1.5])
    writer.add_tensor("token_embd.weight", np.zeros((3, 32), dtype=np.float32))
    writer.add_tensor("output.weight", np.zeros((2, 64), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_benign_chatml_llama3_and_named_templates_pass(tmp_path: Path) -> None:
    ctx = run_scan(scan_gguf, write_gguf(tmp_path / "a.gguf"))
    assert ctx.findings == []
    assert ctx.license_hints == [("apache-2.0", "GGUF metadata general.license")]
    named = [{"name": "default", "template": LLAMA3}, {"name": "tool_use", "template": CHATML}]
    assert_clean(run_scan(scan_gguf, write_gguf(tmp_path / "b.gguf", named)))
    assert looks_like_gguf((tmp_path / "b.gguf").read_bytes()[:4])


def test_gguf_template_that_raises_on_sample_data_is_only_noted(tmp_path: Path) -> None:
    ctx = run_scan(scan_gguf, write_gguf(tmp_path / "m.gguf", MISTRAL))
    assert_clean(ctx)
    assert "Conversation roles must alternate" in ctx.findings[0].message


@pytest.mark.parametrize(
    ("template", "culprit"),
    [
        (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "line 1 accesses '__subclasses__', '__mro__', '__class__'",
        ),
        (
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "accesses '__globals__', '__init__'",
        ),
        (
            "{% if messages|length > 99 %}{{ self._TemplateReference__context }}{% endif %}",
            "accesses '_TemplateReference__context'",
        ),
        ("{{ ''|attr('__class__') }}", "accesses '__class__'"),
        ("{{ messages|map(attribute='__class__')|list }}", "accesses '__class__'"),
        ("{{ ()|attr(messages[0]['content']) }}", "computed name"),
        ("{{ lipsum['__globals__'] }}", "accesses '__globals__'"),
        ("{{ ''.mro() }}", "accesses 'mro'"),
    ],
)
def test_gguf_template_escapes_are_found_statically(template: str, culprit: str) -> None:
    ctx = Context(policy=default_policy(), budget=Budget())
    check_chat_template("tokenizer.chat_template", template, "m.gguf", ctx)
    finding = only_block(ctx, "malicious")
    assert finding.severity == "critical"
    assert f"tokenizer.chat_template {culprit}" in finding.message or culprit in finding.message
    assert "a way out of the Jinja2 sandbox" in finding.message


def test_gguf_template_escape_built_at_runtime_hits_the_sandbox(tmp_path: Path) -> None:
    template = (
        "{% set a = '__cla' ~ 'ss__' %}{% set b = '__mr' ~ 'o__' %}"
        "{{ messages[0]['content'][a][b] }}" + CHATML
    )
    path = write_gguf(tmp_path / "m.gguf", template)
    finding = block(scan_gguf, path, "malicious")
    assert "tokenizer.chat_template tried to leave the Jinja2 sandbox" in finding.message
    assert "__class__" in finding.message


def test_gguf_template_syntax_error_is_a_parse_error(tmp_path: Path) -> None:
    finding = block(scan_gguf, write_gguf(tmp_path / "m.gguf", "{% if %}"), "parse-error")
    assert "tokenizer.chat_template is not a valid Jinja2 template" in finding.message


def test_gguf_template_render_limits() -> None:
    spin = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    assert render_in_child(spin, timeout=1.0)["status"] == "timeout"
    assert render_in_child("{{ 'x' * 5000000 }}")["status"] == "output"
    assert render_in_child(CHATML)["status"] == "ok"
    assert len(SAMPLES) >= 2


def test_gguf_truncated_file_is_a_parse_error(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    cuts = (
        (40, "more than the 16 bytes left"),
        (300, "truncated"),
        (len(data) - 100, "past the end of the file"),
    )
    for cut, message in cuts:
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        assert message in block(scan_gguf, tmp_path / "cut.gguf", "parse-error").message


def gguf_bytes(kvs: list[bytes], version: int = 3, tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, len(kvs)) + b"".join(kvs)


def gguf_str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gguf_bytes([], version=1), "version 1 is not supported"),
        (gguf_bytes([gguf_str("a") + struct.pack("<IB", 0, 1)] * 2), "duplicate key 'a'"),
        (gguf_bytes([gguf_str("a") + struct.pack("<IIQ", 9, 9, 1)]), "array of arrays"),
        (gguf_bytes([gguf_str("a") + struct.pack("<I", 13)]), "unknown value type 13"),
        (gguf_bytes([gguf_str("general.alignment") + struct.pack("<II", 4, 48)]), "power of two"),
        (gguf_bytes([gguf_str("general.alignment") + struct.pack("<IQ", 10, 32)]), "must be a u32"),
        (gguf_bytes([gguf_str("a") + struct.pack("<IIQ", 9, 8, 2**40)]), "file is too short"),
        (gguf_bytes([], tensors=2**40), "more than the"),
    ],
)
def test_gguf_header_rules(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "h.gguf").write_bytes(data)
    assert message in block(scan_gguf, tmp_path / "h.gguf", "parse-error").message


def test_gguf_scan_never_needs_the_tensor_data(tmp_path: Path) -> None:
    """A tensor placed out of order is refused from its offset alone."""
    path = write_gguf(tmp_path / "m.gguf")
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["GGUF.tensor_count"]
    assert int(field.parts[-1][0]) == 2
    data = bytearray(path.read_bytes())
    name = b"output.weight"
    at = data.index(name) + len(name) + 4 + 2 * 8 + 4  # n_dims, two dims, type
    data[at : at + 8] = struct.pack("<Q", 1 << 20)
    (tmp_path / "moved.gguf").write_bytes(bytes(data))
    finding = block(scan_gguf, tmp_path / "moved.gguf", "parse-error")
    assert "tensor 'output.weight' has offset 1,048,576" in finding.message
    assert os.path.getsize(tmp_path / "moved.gguf") < 1 << 20
