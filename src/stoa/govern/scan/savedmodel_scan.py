"""TensorFlow SavedModel (``saved_model.pb``): every op must be on the policy allowlist.

A SavedModel runs no Python when it loads, but its graph can call any op
registered in the TensorFlow process, and some ops read or write files, run
Python callbacks or talk to other hosts. So the rule is an allowlist: every op
in the graph, in every function of its library, and every op or function named
in a ``func`` attribute (``PartitionedCall(f=ReadFile)`` instantiates a
primitive op as a function) must be in the policy's ``savedmodel.ops`` or be
one of the model's own library functions. Ops in ``DENIED_OPS`` are reported
as critical even when a policy lists them: a policy can widen the allowlist but
never re-enable the deny rules.

Field numbers come from TensorFlow's protos: SavedModel{2: meta_graphs},
MetaGraphDef{2: graph_def}, GraphDef{1: node, 2: library},
FunctionDefLibrary{1: function}, FunctionDef{1: signature (OpDef{1: name}),
3: node_def}, NodeDef{1: name, 2: op, 5: attr}, AttrValue{1: list, 2: s,
10: func}, ListValue{9: func}, NameAttrList{1: name, 2: attr}.
The ``variables/`` folder next to the .pb holds checkpoint data only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.protobuf import LEN, Message, ProtobufError

_NAME_LIMIT = 64 * 1024  # bytes in one node, op or attr name

_FILES = "reads or writes files chosen by the graph"
_PYTHON = "calls back into Python code registered in the loading process"
_REMOTE = "talks to other processes or hosts"
_DEBUG = "dumps tensors to files or URLs"

# Never allowed, whatever the policy says.
DENIED_OPS: dict[str, str] = {
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), _PYTHON),
    **dict.fromkeys(
        (
            "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
            "FileSystemSetConfiguration", "DecodeProtoV2", "EncodeProto",
            "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
            "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
            "FixedLengthRecordReaderV2", "LMDBReader",
            "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
            "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "MatchingFilesDataset",
            "ExperimentalMatchingFilesDataset", "CSVDataset", "CSVDatasetV2",
            "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset",
            "ExperimentalSqlDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset",
            "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SnapshotDataset",
            "SnapshotDatasetV2", "CacheDataset", "CacheDatasetV2",
            "SummaryWriter", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
        ),
        _FILES,
    ),
    **dict.fromkeys(
        (
            "RemoteCall", "Rpc", "TryRpc", "RpcClient", "RpcCall", "RpcServer",
            "RpcServerStart", "RpcServerRegister", "RpcCheckStatus", "RpcGetValue",
            "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
            "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2",
        ),
        _REMOTE,
    ),
    **dict.fromkeys(
        (
            "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
            "DebugNumericSummary", "DebugNumericSummaryV2",
        ),
        _DEBUG,
    ),
}  # fmt: skip

# PrintV2 is harmless unless its output_stream is "file://<path>".
_SAFE_PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})


@dataclass(frozen=True)
class OpUse:
    """One place an op is named: a node's ``op`` or a ``func`` attribute."""

    op: str
    where: str
    output_stream: str | None = None


@dataclass
class GraphOps:
    """Everything the checks need from a SavedModel, gathered in one pass."""

    uses: list[OpUse] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    meta_graphs: int = 0


def scan_savedmodel(blob: Blob, ctx: Context) -> None:
    """Check every op a ``saved_model.pb`` can run against the policy allowlist."""
    try:
        ops = read_graph_ops(Message.root(blob.stream, blob.size, tick=ctx.budget.check_time))
    except ProtobufError as exc:
        ctx.parse_error(blob.label, f"not a valid SavedModel protobuf: {exc}")
        return
    except BudgetExceeded as exc:
        ctx.add("savedmodel-budget", "medium", str(exc), blob.label, reason="budget")
        return
    if ops.meta_graphs == 0:
        ctx.parse_error(blob.label, "not a SavedModel: it holds no MetaGraphDef")
        return
    _judge(ops, ctx, blob.label)


def read_graph_ops(root: Message) -> GraphOps:
    """Collect the ops of every meta graph, graph node and library function."""
    ops = GraphOps()
    for f in root.fields():
        if f.number == 2:
            ops.meta_graphs += 1
            meta = root.message(f)
            for g in meta.fields():
                if g.number == 2:
                    _read_graph_def(meta.message(g), ops)
    return ops


def _read_graph_def(graph: Message, ops: GraphOps) -> None:
    for f in graph.fields():
        if f.number == 1:
            _read_node(graph.message(f), "the graph", ops)
        elif f.number == 2:
            library = graph.message(f)
            for g in library.fields():
                if g.number == 1:
                    _read_function(library.message(g), ops)


def _read_function(function: Message, ops: GraphOps) -> None:
    # The signature may follow the body in a hand-made file, so name nodes after the pass.
    name, nodes = "?", []
    for f in function.fields():
        if f.number == 1:
            name = _opdef_name(function.message(f))
        elif f.number == 3:
            nodes.append(function.message(f))
    ops.functions.add(name)
    for node in nodes:
        _read_node(node, f"function {name!r}", ops)


def _opdef_name(opdef: Message) -> str:
    for f in opdef.fields():
        if f.number == 1:
            return opdef.string(f, _NAME_LIMIT)
    return ""


def _read_node(node: Message, scope: str, ops: GraphOps) -> None:
    name, op, stream, funcs = "", "", None, []
    for f in node.fields():
        if f.number == 1:
            name = node.string(f, _NAME_LIMIT)
        elif f.number == 2:
            op = node.string(f, _NAME_LIMIT)
        elif f.number == 5:
            key, value = _map_entry(node.message(f))
            if value is not None:
                funcs += [(key, fn) for fn in _attr_funcs(value)]
                if key == "output_stream":
                    stream = _attr_string(value)
    where = f"node {name!r} in {scope}"
    ops.uses.append(OpUse(op, where, stream))
    # An op reached through a func attr gets its attrs from the caller: judge it as unknown.
    unknown = "(set by the caller)"
    ops.uses.extend(OpUse(fn, f"attr {key!r} of {where}", unknown) for key, fn in funcs)


def _map_entry(entry: Message) -> tuple[str, Message | None]:
    """A ``map<string, AttrValue>`` entry: {1: key, 2: value}."""
    key, value = "", None
    for f in entry.fields():
        if f.number == 1:
            key = entry.string(f, _NAME_LIMIT)
        elif f.number == 2:
            value = entry.message(f)
    return key, value


def _attr_funcs(value: Message) -> list[str]:
    """Function or op names an AttrValue refers to, including nested NameAttrList attrs."""
    names: list[str] = []
    for f in value.fields():
        if f.number == 10:
            names += _name_attr_list(value.message(f))
        elif f.number == 1:
            listed = value.message(f)
            for g in listed.fields():
                if g.number == 9:
                    names += _name_attr_list(listed.message(g))
    return names


def _name_attr_list(func: Message) -> list[str]:
    names: list[str] = []
    for f in func.fields():
        if f.number == 1:
            names.append(func.string(f, _NAME_LIMIT))
        elif f.number == 2:
            _, value = _map_entry(func.message(f))
            if value is not None:
                names += _attr_funcs(value)
    return names


def _attr_string(value: Message) -> str:
    """The ``s`` of an AttrValue, or a note when it holds a placeholder filled in at call time."""
    for f in value.fields():
        if f.number == 2 and f.wire_type == LEN:
            return value.payload(f, _NAME_LIMIT).decode("utf-8", "replace")
    return "(a function placeholder)"


def _judge(ops: GraphOps, ctx: Context, label: str) -> None:
    """One finding per offending op (not per node), naming where it first appears."""
    by_op: dict[str, list[str]] = defaultdict(list)
    for use in ops.uses:
        if use.op == "PrintV2":
            _judge_print(use, ctx, label)
        by_op[use.op].append(use.where)
    for op, wheres in by_op.items():
        where = wheres[0] + (f" and {len(wheres) - 1} more" if len(wheres) > 1 else "")
        if op in DENIED_OPS:
            ctx.add(
                "savedmodel-denied-op",
                "critical",
                f"op {op!r} ({where}) {DENIED_OPS[op]}",
                label,
                opcode=op,
            )
        elif op not in ops.functions and op not in ctx.policy.savedmodel_ops:
            ctx.add(
                "savedmodel-unknown-op",
                "high",
                f"op {op!r} ({where}) is not in the policy's savedmodel.ops allowlist; "
                "add it to your policy only if you trust what it does",
                label,
                opcode=op,
            )


def _judge_print(use: OpUse, ctx: Context, label: str) -> None:
    stream = "stderr" if use.output_stream is None else use.output_stream
    if stream not in _SAFE_PRINT_STREAMS:
        ctx.add(
            "savedmodel-print-to-file",
            "critical",
            f"op 'PrintV2' ({use.where}) writes to output_stream {stream!r}, "
            "not to stdout, stderr or the log",
            label,
            opcode="PrintV2",
        )
