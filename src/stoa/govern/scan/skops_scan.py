"""skops archives: every type its ``schema.json`` names must be on the allowlist.

skops loads objects by importing the ``__module__``/``__class__`` each node names and
building them from the node's content, much as a pickle would. So the same exact
(module, qualname) allowlist applies, plus builtin containers and NumPy ufuncs (what
``FunctionTransformer(np.log1p)`` stores). Arrays are separate ``.npy`` members, scanned
by content like any other member; object arrays among them are pickles.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.denylist import refusal

_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
     "complex", "bool", "NoneType", "slice", "object"}
)  # fmt: skip
_MAX_NODES = 1_000_000


def scan_skops(blob: Blob, ctx: Context) -> None:
    try:
        blob.stream.seek(0)
        with zipfile.ZipFile(blob.stream) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > ctx.policy.limits.max_json:
                raise BudgetExceeded("skops schema.json bytes", ctx.policy.limits.max_json)
            schema = json.loads(archive.read(info))
    except (KeyError, ValueError, zipfile.BadZipFile, RecursionError) as exc:
        ctx.parse_error(f"{blob.label}!/schema.json", f"skops schema is unreadable: {exc}")
        return
    label = f"{blob.label}!/schema.json"
    reported: set[tuple[str, str]] = set()
    for path, node in _nodes(schema):
        module, name = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(name, str):
            continue
        if _allowed(ctx, module, name, node.get("__loader__")) or (module, name) in reported:
            continue
        reported.add((module, name))
        loader = node.get("__loader__", "a node")
        refused = refusal(module, name, ctx.policy.unknown_globals)
        ctx.add(refused.rule("skops-type"), refused.severity,
                f"{path} ({loader}) loads {module}.{name}{refused.why}", label,
                reason=refused.reason)  # fmt: skip


def _allowed(ctx: Context, module: str, name: str, loader: Any) -> bool:
    if (module, name) in ctx.policy.pickle_allow:
        return True
    if module == "builtins" and name in _BUILTINS:
        return True
    return loader == "FunctionNode" and module == "numpy" and _is_ufunc(name)


def _is_ufunc(name: str) -> bool:
    """A NumPy ufunc by that exact name: a lookup on numpy itself, never on the file."""
    import numpy

    return isinstance(getattr(numpy, name, None), numpy.ufunc)


def _nodes(schema: Any) -> Any:
    """Every dict in the schema with its JSON path, iteratively and within a node budget."""
    stack: list[tuple[str, Any]] = [("schema", schema)]
    seen = 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise BudgetExceeded("skops schema nodes", _MAX_NODES)
        if isinstance(value, dict):
            yield path, value
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
