"""ONNX models: external-data paths must stay in the model's folder; custom ops need policy.

Parsing uses our bounded protobuf walker (``protobuf.py``), not ``onnx.load``:
``onnx.load`` copies every initializer's ``raw_data`` into memory (up to the
2 GB protobuf limit), while the walker skips tensor payloads and keeps only
names, domains and external-data entries.

Two checks:

* **External data.** A tensor whose bytes live in a side file names it in
  ``external_data["location"]``. The runtime joins that to the model's folder,
  so ``../../etc/passwd``, absolute paths, drive letters, backslash tricks or a
  symlink inside the folder can make it read any file into a tensor (and serve
  it back through inference). Every location must canonicalise to a file
  inside the folder holding the model; without a path on disk (an archive
  member) the check is lexical only.
* **Operator domains.** A node in a domain outside the ONNX standard ones runs
  a kernel from a custom-op library, which is native code the loader must
  register. A domain the model does not even declare in ``opset_import`` is
  blocked as malicious; a declared one is blocked too unless the policy's
  ``onnx.domains`` lists it, and the message says how to allow it. Calls to
  the model's own local functions are not custom ops.

Field numbers are those of onnx.proto: ModelProto{7: graph, 8: opset_import,
20: training_info, 25: functions}, GraphProto{1: node, 5: initializer,
15: sparse_initializer}, NodeProto{3: name, 4: op_type, 5: attribute,
7: domain}, AttributeProto{1: name, 5: t, 6: g, 10: tensors, 11: graphs,
22: sparse_tensor, 23: sparse_tensors}, TensorProto{8: name,
13: external_data, 14: data_location}, FunctionProto{1: name, 7: node,
9: opset_import, 10: domain, 11: attribute_proto}.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.protobuf import Message, ProtobufError

_NAME_LIMIT = 64 * 1024
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class NodeRef:
    """A node's operator identity and where it sits (``graph/node 'x'``)."""

    where: str
    domain: str
    op_type: str
    scope_domains: frozenset[str] = frozenset()  # a function's own opset_import


@dataclass(frozen=True)
class ExternalRef:
    where: str
    location: str


@dataclass
class OnnxIndex:
    """What the checks need from a model, gathered in one pass."""

    has_graph: bool = False
    opsets: set[str] = field(default_factory=set)
    functions: set[tuple[str, str]] = field(default_factory=set)
    nodes: list[NodeRef] = field(default_factory=list)
    externals: list[ExternalRef] = field(default_factory=list)


def scan_onnx(blob: Blob, ctx: Context) -> None:
    """Check an ONNX model's external-data paths and operator domains."""
    try:
        index = read_index(Message.root(blob.stream, blob.size, tick=ctx.budget.check_time))
    except ProtobufError as exc:
        ctx.parse_error(blob.label, f"not a valid ONNX protobuf: {exc}")
        return
    except BudgetExceeded as exc:
        ctx.add("onnx-budget", "medium", str(exc), blob.label, reason="budget")
        return
    if not index.has_graph:
        ctx.parse_error(blob.label, "not an ONNX model: it has no graph")
        return
    _judge_external(index, blob.path, ctx, blob.label)
    _judge_domains(index, ctx, blob.label)


# --- Reading --------------------------------------------------------------


def read_index(model: Message) -> OnnxIndex:
    index = OnnxIndex()
    for f in model.fields():
        if f.number == 7:
            index.has_graph = True
            _read_graph(model.message(f), "graph", index)
        elif f.number == 8:
            index.opsets.add(_norm(_opset_domain(model.message(f))))
        elif f.number == 20:
            _read_training_info(model.message(f), index)
        elif f.number == 25:
            _read_function(model.message(f), index)
    return index


def _read_training_info(info: Message, index: OnnxIndex) -> None:
    for f in info.fields():
        if f.number in (1, 2):
            kind = "initialization" if f.number == 1 else "algorithm"
            _read_graph(info.message(f), f"training_info.{kind}", index)


def _read_graph(
    graph: Message, where: str, index: OnnxIndex, scope: frozenset[str] = frozenset()
) -> None:
    for f in graph.fields():
        if f.number == 1:
            _read_node(graph.message(f), where, index, scope)
        elif f.number == 5:
            _read_tensor(graph.message(f), f"{where} initializer", index)
        elif f.number == 15:
            _read_sparse(graph.message(f), f"{where} sparse initializer", index)


def _read_node(node: Message, where: str, index: OnnxIndex, scope: frozenset[str]) -> None:
    name, op_type, domain, attributes = "", "", "", []
    for f in node.fields():
        if f.number == 3:
            name = node.string(f, _NAME_LIMIT)
        elif f.number == 4:
            op_type = node.string(f, _NAME_LIMIT)
        elif f.number == 7:
            domain = node.string(f, _NAME_LIMIT)
        elif f.number == 5:
            attributes.append(node.message(f))
    node_where = f"{where}/node {name or op_type!r}"
    index.nodes.append(NodeRef(node_where, domain, op_type, scope))
    for attribute in attributes:
        _read_attribute(attribute, node_where, index, scope)


def _read_attribute(attr: Message, where: str, index: OnnxIndex, scope: frozenset[str]) -> None:
    name, values = "", []
    for f in attr.fields():
        if f.number == 1:
            name = attr.string(f, _NAME_LIMIT)
        elif f.number in (5, 6, 10, 11, 22, 23):
            values.append(f)
    attr_where = f"{where} attr {name!r}"
    for f in values:
        sub = attr.message(f)
        if f.number in (5, 10):
            _read_tensor(sub, attr_where, index)
        elif f.number in (6, 11):
            _read_graph(sub, attr_where, index, scope)
        else:
            _read_sparse(sub, attr_where, index)


def _read_sparse(sparse: Message, where: str, index: OnnxIndex) -> None:
    for f in sparse.fields():
        if f.number in (1, 2):
            _read_tensor(sparse.message(f), where, index)


def _read_tensor(tensor: Message, where: str, index: OnnxIndex) -> None:
    """Record a tensor whose bytes live in a side file (external entries or EXTERNAL flag)."""
    name, location, external = "", None, False
    for f in tensor.fields():
        if f.number == 8:
            name = tensor.string(f, _NAME_LIMIT)
        elif f.number == 14 and f.value == _EXTERNAL:
            external = True
        elif f.number == 13:
            key, value = _string_entry(tensor.message(f))
            external = True
            if key == "location":
                location = value
    if external:
        index.externals.append(ExternalRef(f"{where} tensor {name!r}", location or ""))


def _read_function(function: Message, index: OnnxIndex) -> None:
    name, domain, opsets, nodes, attributes = "", "", set(), [], []
    for f in function.fields():
        if f.number == 1:
            name = function.string(f, _NAME_LIMIT)
        elif f.number == 10:
            domain = function.string(f, _NAME_LIMIT)
        elif f.number == 9:
            opsets.add(_norm(_opset_domain(function.message(f))))
        elif f.number == 7:
            nodes.append(function.message(f))
        elif f.number == 11:
            attributes.append(function.message(f))
    index.functions.add((_norm(domain), name))
    where, scope = f"function {domain}.{name}", frozenset(opsets)
    for node in nodes:
        _read_node(node, where, index, scope)
    for attribute in attributes:
        _read_attribute(attribute, where, index, scope)


def _opset_domain(opset: Message) -> str:
    for f in opset.fields():
        if f.number == 1:
            return opset.string(f, _NAME_LIMIT)
    return ""


def _string_entry(entry: Message) -> tuple[str, str]:
    key = value = ""
    for f in entry.fields():
        if f.number == 1:
            key = entry.string(f, _NAME_LIMIT)
        elif f.number == 2:
            value = entry.string(f, _NAME_LIMIT)
    return key, value


def _norm(domain: str) -> str:
    """``ai.onnx`` is the default domain's long name; ONNX treats both alike."""
    return "" if domain == "ai.onnx" else domain


# --- External data --------------------------------------------------------


def lexical_problem(location: str) -> str | None:
    """Why a location cannot be trusted from its text alone, or None.

    Backslashes count as separators because Windows runtimes treat them so.
    """
    if "\x00" in location:
        return "has a NUL byte in its location"
    if location.startswith(("/", "\\")) or _DRIVE.match(location):
        return "is an absolute path"
    if ":" in location:
        return "contains ':' (a drive or alternate data stream on Windows)"
    depth = 0
    for part in re.split(r"[\\/]", location):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "climbs out of the model's folder with '..'"
        elif part not in ("", "."):
            depth += 1
    return None if depth > 0 else "does not name a file inside the model's folder"


def resolved_problem(location: str, folder: Path, *, file_links: bool = False) -> str | None:
    """Why a lexically clean location still lands outside ``folder`` on disk (symlinks).

    With ``file_links`` (the policy's ``symlinks.allow_outside_root``), the location may
    itself be a symlink to a regular file anywhere, as in Hugging Face's cache: a folder
    scan follows and reports that link like any other member. The folders on the way
    must still stay inside.
    """
    base = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, target]) == base and target != base:
        return None
    if file_links:
        parent = os.path.realpath(os.path.join(base, os.path.dirname(location)))
        link = os.path.join(parent, os.path.basename(location))
        inside = os.path.commonpath([base, parent]) == base
        if inside and os.path.islink(link) and os.path.isfile(target):
            return None
    return f"resolves through a symlink to {target}, outside the model's folder"


def _judge_external(index: OnnxIndex, model: Path | None, ctx: Context, label: str) -> None:
    """Block every location that leaves the model's folder; claim the others as data.

    A claimed file is one a folder scan may accept as raw bytes (``ctx.external_data``):
    the claim is the file the runtime opens, the location's real path.
    """
    folder = model.parent if model is not None else None
    by_location: dict[str, list[str]] = defaultdict(list)
    for ref in index.externals:
        by_location[ref.location].append(ref.where)
    for location, wheres in by_location.items():
        more = f" and {len(wheres) - 1} more" if len(wheres) > 1 else ""
        if not location:
            ctx.parse_error(label, f"{wheres[0]}{more} is external data without a location")
            continue
        problem = lexical_problem(location)
        if problem is None and folder is not None:
            problem = resolved_problem(
                location, folder, file_links=ctx.policy.symlinks_allow_outside_root
            )
        if problem is not None:
            ctx.add(
                "onnx-external-data-path",
                "critical",
                f"external data location {location!r} ({wheres[0]}{more}) {problem}",
                label,
            )
        elif model is not None and folder is not None:
            ctx.external_data.setdefault(os.path.realpath(folder / location), model)


# --- Domains --------------------------------------------------------------


def _judge_domains(index: OnnxIndex, ctx: Context, label: str) -> None:
    """One finding per offending domain, naming the first node that uses it."""
    allowed = {_norm(d) for d in ctx.policy.onnx_domains}
    undeclared: dict[str, list[NodeRef]] = defaultdict(list)
    custom: dict[str, list[NodeRef]] = defaultdict(list)
    for node in index.nodes:
        domain = _norm(node.domain)
        if (domain, node.op_type) in index.functions:
            continue  # a call to one of the model's own functions
        if domain not in index.opsets and domain not in node.scope_domains:
            undeclared[domain].append(node)
        elif domain not in allowed:
            custom[domain].append(node)
    for domain, nodes in undeclared.items():
        _report_undeclared(nodes, domain in allowed, ctx, label)
    for nodes in custom.values():
        ctx.add(
            "onnx-custom-domain",
            "high",
            f"operator {_op(nodes[0])} ({_where(nodes)}) is a custom op: it needs a native "
            f"custom-op library to run. Add {nodes[0].domain!r} to onnx.domains in your "
            "policy if you trust that library",
            label,
        )


def _report_undeclared(nodes: list[NodeRef], standard: bool, ctx: Context, label: str) -> None:
    if standard:
        ctx.parse_error(
            label,
            f"operator {_op(nodes[0])} ({_where(nodes)}) uses a domain the model does not "
            "import in opset_import; no runtime can load it",
        )
        return
    ctx.add(
        "onnx-undeclared-domain",
        "critical",
        f"operator {_op(nodes[0])} ({_where(nodes)}) uses custom domain {nodes[0].domain!r}, "
        "which the model does not declare in opset_import",
        label,
    )


def _op(node: NodeRef) -> str:
    return f"{node.domain}::{node.op_type}" if node.domain else repr(node.op_type)


def _where(nodes: list[NodeRef]) -> str:
    return nodes[0].where + (f" and {len(nodes) - 1} more" if len(nodes) > 1 else "")
