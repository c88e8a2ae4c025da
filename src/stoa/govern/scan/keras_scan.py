"""Keras models (``.keras`` zips and legacy HDF5 ``.h5``): judge the config, never build it.

Loading a Keras model deserialises its JSON config into objects, and a few
config shapes make that run code:

* ``Lambda`` layers carry marshalled Python bytecode (``function`` with
  ``function_type: lambda`` in tf.keras, ``{"class_name": "__lambda__"}`` in
  Keras 3);
* any object's ``module`` is imported by Keras 3 before it looks up
  ``class_name`` in it (``{"module": "os", "class_name": "system"}``), so
  every ``module`` must be on the policy's exact ``keras.modules`` list, and
  a ``registered_name`` must not point at another package either;
* ``TFSMLayer`` loads and runs a SavedModel from a path in its config,
  ``TorchModuleWrapper`` unpickles a torch module, and tf.keras
  ``TFOpLambda`` calls any ``tf.*`` function by name (``tf.io.write_file``).

The walk covers the whole config, iteratively, at any depth: nested
Functional/Sequential models, wrappers (TimeDistributed, Bidirectional),
compile configs, anything. It is bounded in depth and node count. Weights
(``model.weights.h5``) are data and are only noted; other zip members are
handed back to the dispatcher.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import h5py

from stoa.govern.formats import HDF5_MAGIC
from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.findings import Severity

MAX_DEPTH = 200  # JSON nesting; real configs stay under 40
MAX_NODES = 5_000_000  # JSON values visited in one config

_CONFIG_NAMES = ("config.json", "metadata.json")
_H5_CONFIGS = ("model_config", "training_config")
_WEIGHTS_NAME = "model.weights.h5"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LAYER_SLOT = re.compile(r"(layers\[\d+\]|\blayer|_layer)$")  # where configs nest layers
_SPOOL_IN_MEMORY = 16 * 1024 * 1024

# Classes that run code or read files by design, whatever module they claim.
_CODE_CLASSES = {
    "Lambda": "runs marshalled Python bytecode when the model is built",
    "TFSMLayer": "loads a TensorFlow SavedModel from a path in its config and runs its graph",
    "TorchModuleWrapper": "unpickles a torch module stored in its config",
}
# Top-level modules that are plainly an attack when a config names them.
_HOSTILE_MODULES = frozenset(
    {
        "os", "posix", "nt", "sys", "subprocess", "builtins", "importlib", "runpy", "shutil",
        "socket", "pickle", "marshal", "ctypes", "code", "codeop", "pty", "platform", "webbrowser",
        "multiprocessing", "tempfile", "io", "pathlib", "glob", "urllib", "http", "requests",
        "types", "operator", "functools"
    }
)  # fmt: skip
# tf.keras TFOpLambda resolves ``function`` on the ``tf`` module.
_SAFE_TF_NAMESPACES = frozenset(
    {
        "__operators__", "math", "nn", "linalg", "image", "signal", "random", "bitwise", "sparse",
        "ragged", "dtypes"
    }
)  # fmt: skip
_UNSAFE_TF_NAMES = frozenset(
    {
        "io", "gfile", "raw_ops", "py_function", "numpy_function", "py_func", "print", "summary",
        "saved_model", "load_op_library", "load_library", "data", "debugging", "distribute",
        "train", "keras", "function", "autograph", "experimental"
    }
)  # fmt: skip


@dataclass(frozen=True)
class Hit:
    """One dangerous spot in a config: which rule, how bad, and the message."""

    rule: str
    severity: Severity
    message: str


# --- Entry points ---------------------------------------------------------


def looks_like_hdf5(head: bytes) -> bool:
    """HDF5 files (and so legacy Keras .h5 models) start with this signature."""
    return head.startswith(HDF5_MAGIC)


def scan_keras_zip(blob: Blob, ctx: Context) -> None:
    """A Keras 3 ``.keras`` archive: check config.json, note weights, hand on the rest."""
    blob.stream.seek(0)
    try:
        with zipfile.ZipFile(blob.stream) as archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            names = {i.filename for i in members}
            if "config.json" not in names:
                ctx.parse_error(blob.label, "not a Keras archive: it has no config.json")
            for info in members:
                ctx.budget.add_member()
                _scan_zip_member(archive, info, blob, ctx)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        ctx.parse_error(blob.label, f"cannot read the .keras zip: {exc}")
    except BudgetExceeded as exc:
        ctx.add("keras-budget", "medium", str(exc), blob.label, reason="budget")


def scan_hdf5(blob: Blob, ctx: Context) -> None:
    """A legacy Keras ``.h5``: check the model_config and training_config attributes."""
    blob.stream.seek(0)
    try:
        with h5py.File(blob.stream, "r") as h5:
            texts = {name: _h5_text_attr(h5, name, ctx) for name in _H5_CONFIGS}
    except BudgetExceeded as exc:
        ctx.add("keras-budget", "medium", str(exc), blob.label, reason="budget")
        return
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        ctx.parse_error(blob.label, f"cannot read the HDF5 file: {exc}")
        return
    if texts["model_config"] is None:
        ctx.add(
            "keras-weights-only",
            "info",
            "HDF5 file has no model_config: weights only (data)",
            blob.label,
            reason="clean",
        )
    for name, text in texts.items():
        if text is not None:
            check_config_text(text, f"{blob.label} attribute {name}", blob.label, ctx)


# --- .keras members -------------------------------------------------------


def _scan_zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, blob: Blob, ctx: Context
) -> None:
    label = f"{blob.label}!/{info.filename}"
    if info.filename in _CONFIG_NAMES:
        text = _read_member_text(archive, info, ctx)
        if info.filename == "config.json":
            check_config_text(text, info.filename, label, ctx)
        else:
            _parse_json(text, info.filename, label, ctx)
    elif info.filename == _WEIGHTS_NAME:
        ctx.add(
            "keras-weights",
            "info",
            f"{info.filename} holds HDF5 weights (data, not deserialised as objects)",
            label,
            reason="clean",
        )
    elif ctx.member_scanner is not None:
        with _spool_member(archive, info, ctx) as (stream, size):
            ctx.scan_member(label, stream, size)


def _read_member_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: Context) -> str:
    """A JSON member, read no further than the policy's max_json whatever its header says."""
    limit = ctx.policy.limits.max_json
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise BudgetExceeded(f"{info.filename} bytes", limit)
    ctx.budget.spend_bytes(len(data))
    return data.decode("utf-8", "replace")


@contextmanager
def _spool_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: Context
) -> Iterator[tuple[IO[bytes], int]]:
    """Copy a member to a seekable spool, charging every byte to the budget (zip bombs)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        with archive.open(info) as member:
            while chunk := member.read(1024 * 1024):
                ctx.budget.spend_bytes(len(chunk))
                spool.write(chunk)
                size += len(chunk)
        spool.seek(0)
        yield spool, size


# --- HDF5 attributes ------------------------------------------------------


def _h5_text_attr(h5: h5py.File, name: str, ctx: Context) -> str | None:
    """A scalar string attribute, size-checked before h5py materialises it."""
    if name not in h5.attrs:
        return None
    attr_id = h5.attrs.get_id(name)
    shape = attr_id.shape or ()
    if len(shape) > 1 or (shape and shape[0] != 1):
        raise ValueError(f"attribute {name} is an array of shape {shape}, not a string")
    if attr_id.dtype.itemsize > ctx.policy.limits.max_json:  # fixed-length strings
        raise BudgetExceeded(f"attribute {name} bytes", ctx.policy.limits.max_json)
    value = h5.attrs[name]
    if hasattr(value, "tolist") and not isinstance(value, bytes):
        value = value.tolist()
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"attribute {name} holds {type(value).__name__}, not JSON text")
    if len(value) > ctx.policy.limits.max_json:
        raise BudgetExceeded(f"attribute {name} bytes", ctx.policy.limits.max_json)
    return value


# --- The config walk ------------------------------------------------------

_INVALID = object()  # _parse_json's "already reported" result; JSON has no such value


def check_config_text(text: str, source: str, label: str, ctx: Context) -> None:
    """Parse a JSON config and report every dangerous spot in it."""
    config = _parse_json(text, source, label, ctx)
    if config is _INVALID:
        return
    try:
        hits = list(walk_config(config, ctx.policy.keras_modules))
    except BudgetExceeded as exc:
        ctx.add("keras-budget", "medium", f"{source}: {exc}", label, reason="budget")
        return
    for hit in hits:
        ctx.add(hit.rule, hit.severity, f"{source}: {hit.message}", label)


def _parse_json(text: str, source: str, label: str, ctx: Context) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        ctx.add("keras-budget", "medium", f"{source} is nested too deeply", label, reason="budget")
    except ValueError as exc:
        ctx.parse_error(label, f"{source} is not valid JSON: {exc}")
    return _INVALID


def walk_config(config: Any, modules: frozenset[str]) -> Iterator[Hit]:
    """Every dangerous spot in a parsed config, found with an explicit stack (no recursion).

    Inside a layer already reported as Lambda, its bytecode markers are not
    reported again; everything else still is.
    """
    stack: list[tuple[str, Any, int, bool]] = [("", config, 0, False)]
    seen = 0
    while stack:
        path, value, depth, in_lambda = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise BudgetExceeded("config JSON values", MAX_NODES)
        if depth > MAX_DEPTH:
            raise BudgetExceeded("config nesting depth", MAX_DEPTH)
        if isinstance(value, dict):
            hits = list(_object_hits(path, value, modules, in_lambda))
            yield from hits
            in_lambda = in_lambda or value.get("class_name") == "Lambda"
            children = [(_join(path, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            if value == "__lambda__" and not in_lambda:
                yield _lambda_marker(path)
            continue
        stack.extend((p, v, depth + 1, in_lambda) for p, v in reversed(children))


def _object_hits(
    path: str, obj: dict[str, Any], modules: frozenset[str], in_lambda: bool
) -> Iterator[Hit]:
    """Hits for one JSON object: code-running classes, modules, registered names, markers."""
    where = _describe(path, obj)
    class_name = obj.get("class_name")
    if isinstance(class_name, str) and class_name in _CODE_CLASSES:
        yield Hit("keras-code-layer", "critical", f"{where} {_CODE_CLASSES[class_name]}")
    if class_name == "TFOpLambda":
        yield from _tf_op_hits(where, obj)
    if "class_name" in obj:
        yield from _module_hits(where, obj, modules)
    if not in_lambda and class_name != "Lambda":
        if "__lambda__" in obj:
            yield _lambda_marker(path)
        if obj.get("function_type") == "lambda":
            yield Hit("keras-lambda", "critical", f"{where} holds a marshalled Python lambda")
        elif _looks_like_bytecode(obj.get("function")):
            yield Hit("keras-lambda", "critical", f"{where} holds a marshalled function blob")


def _module_hits(where: str, obj: dict[str, Any], modules: frozenset[str]) -> Iterator[Hit]:
    module, registered = obj.get("module"), obj.get("registered_name")
    module_ok = module is None or (isinstance(module, str) and module in modules)
    if not module_ok:
        top = str(module).split(".")[0]
        severity = "critical" if top in _HOSTILE_MODULES else "high"
        yield Hit(
            "keras-module",
            severity,
            f"{where} imports module {module!r}, which is not in the policy's keras.modules",
        )
        return  # one finding per object: its registered_name cannot make it worse
    if registered is None or (isinstance(registered, str) and _PLAIN_NAME.match(registered)):
        return
    package, sep, name = str(registered).partition(">")
    same_package = isinstance(module, str) and module.split(".")[0] == package
    if not (sep and _PLAIN_NAME.match(name) and same_package):
        yield Hit(
            "keras-registered-name",
            "high",
            f"{where} has registered_name {registered!r}, which names code outside the "
            "allowed Keras modules",
        )


def _tf_op_hits(where: str, obj: dict[str, Any]) -> Iterator[Hit]:
    config = obj.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    if not isinstance(function, str) or not _tf_function_is_safe(function):
        yield Hit(
            "keras-tf-op",
            "critical",
            f"{where} calls tf.{function}, outside the pure-math TensorFlow namespaces",
        )


def _tf_function_is_safe(function: str) -> bool:
    parts = function.split(".")
    if parts[:2] in (["compat", "v1"], ["compat", "v2"]):
        parts = parts[2:]
    if not parts or any(p in _UNSAFE_TF_NAMES for p in parts):
        return False
    return len(parts) == 1 or parts[0] in _SAFE_TF_NAMESPACES


def _looks_like_bytecode(value: Any) -> bool:
    """tf.keras stores a lambda as [base64 marshal, defaults, closure]."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and len(value[0]) > 16
        and re.fullmatch(r"[A-Za-z0-9+/=\s]+", value[0]) is not None
    )


def _lambda_marker(path: str) -> Hit:
    return Hit(
        "keras-lambda",
        "critical",
        f"{path or 'the config root'} holds a __lambda__ (marshalled Python bytecode)",
    )


def _describe(path: str, obj: dict[str, Any]) -> str:
    """``Lambda layer 'scale' at config.layers[1]``: the class, its name and its path."""
    class_name = obj.get("class_name")
    config = obj.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    is_layer = obj.get("module") == "keras.layers" or _LAYER_SLOT.search(path) is not None
    kind = "layer" if is_layer else "object"
    label = f"{class_name} {kind}" if isinstance(class_name, str) else "object"
    named = f" {name!r}" if isinstance(name, str) else ""
    return f"{label}{named} at {path or 'the config root'}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
