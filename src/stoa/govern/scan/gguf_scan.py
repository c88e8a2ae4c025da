"""GGUF (llama.cpp) files: a strict header parse, licence hints and chat-template checks.

The header is parsed here, from the stream, with the rules llama.cpp's
``gguf_init_from_file_impl`` applies (versions 2 and 3, no duplicate keys, no
arrays of arrays, ``general.alignment`` a power-of-two u32, tensor names under
64 bytes and unique, at most 4 dimensions, rows a multiple of the block size,
tensor offsets packed in order with alignment padding) and strict bounds of our
own: every count and length is checked against the bytes left in the file
before anything is allocated, and tensor data is never read.

A GGUF carries no code, except its chat templates: Jinja2 source that the
serving stack (llama-cpp-python, transformers, ...) renders on every request.
Rendered outside a sandbox, ``{{ cycler.__init__.__globals__.os.popen('id') }}``
runs a shell command. Each ``tokenizer.chat_template*`` value is therefore

1. parsed (a syntax error is a parse error) and walked statically: any
   attribute or item access to a name starting with ``_`` (``__class__``,
   ``__globals__``, ``__subclasses__``, ...), any Python introspection
   attribute (``mro``, ``f_globals``, ``gi_frame``, ...) and any ``attr``
   filter with a computed name is blocked, on every branch, taken or not;
2. rendered with realistic inputs in Jinja2's ``ImmutableSandboxedEnvironment``
   inside a child process with time, CPU, memory and output limits; a
   ``SecurityError`` there is malicious, running out of a limit is a budget
   finding (fail closed), and ``raise_exception`` or a type error caused by our
   sample data is only noted.

The default sandbox globals (``range``, ``dict``, ``cycler``, ``joiner``,
``namespace``, ``lipsum``) and ``self`` are not blocked by name: they only lead
out of the sandbox through underscore or introspection attributes, which both
steps block, and ``range`` is capped at 100,000 items by the sandbox itself.
Templates that loop or multiply strings to exhaust the host are stopped by the
child's limits.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from stoa.govern.formats import GGUF_MAGIC
from stoa.govern.scan.budget import BudgetExceeded

if TYPE_CHECKING:
    from stoa.govern.scan.context import Blob, Context

DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME is 64 bytes including the NUL
MAX_KEY = 64 * 1024
MAX_TEMPLATE = 1024 * 1024  # bytes of one chat template we are willing to check
RENDER_SECONDS = 10.0
RENDER_MEMORY = 1024**3
RENDER_OUTPUT = 1024 * 1024  # characters of rendered output per sample

# GGUF value types -> (struct code, size); 8 = string and 9 = array are variable.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}  # fmt: skip
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_LICENSE, _ALIGNMENT = "general.license", "general.alignment"
_TEMPLATE_KEY = "tokenizer.chat_template"


class GgufError(ValueError):
    """The file breaks the GGUF format (a parse error)."""


@dataclass
class GgufHeader:
    """What the checks need: the version, the few values kept, and the tensor layout."""

    version: int = 0
    license: str | None = None
    alignment: int = DEFAULT_ALIGNMENT
    templates: dict[str, str] = field(default_factory=dict)
    oversized_templates: list[str] = field(default_factory=list)
    tensors: int = 0
    data_offset: int = 0


def looks_like_gguf(head: bytes) -> bool:
    return head.startswith(GGUF_MAGIC)


def scan_gguf(blob: Blob, ctx: Context) -> None:
    """Parse the header strictly, collect the licence, check every chat template."""
    try:
        header = read_header(blob.stream, blob.size, ctx)
    except GgufError as exc:
        ctx.parse_error(blob.label, str(exc))
        return
    except BudgetExceeded as exc:
        ctx.add("gguf-budget", "medium", str(exc), blob.label, reason="budget")
        return
    if header.license and header.license.strip():
        ctx.license_hints.append((header.license, "GGUF metadata general.license"))
    for key in header.oversized_templates:
        ctx.add(
            "gguf-template-budget",
            "medium",
            f"{key} is longer than {MAX_TEMPLATE:,} bytes; not checked",
            blob.label,
            reason="budget",
        )
    for key, source in header.templates.items():
        check_chat_template(key, source, blob.label, ctx)


# --- Reading the header ---------------------------------------------------


class _Reader:
    """Sequential reads through a buffer, never past ``size``; skips seek instead of reading."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.size = stream, size
        self.pos, self.endian = 0, "<"
        self._buf, self._buf_start = b"", 0
        stream.seek(0)

    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise GgufError(f"truncated: {what} needs {n:,} bytes at offset {self.pos:,}")
        start = self.pos - self._buf_start
        if start + n > len(self._buf):
            self.stream.seek(self.pos)
            self._buf, self._buf_start, start = self.stream.read(max(n, 1 << 16)), self.pos, 0
        data = self._buf[start : start + n]
        if len(data) != n:
            raise GgufError(f"truncated: short read of {what} at offset {self.pos:,}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise GgufError(f"truncated: {what} needs {n:,} bytes at offset {self.pos:,}")
        self.pos += n

    def scalar(self, code: str, size: int, what: str) -> Any:
        return struct.unpack(self.endian + code, self.read(size, what))[0]

    def u32(self, what: str) -> int:
        return self.scalar("I", 4, what)

    def u64(self, what: str) -> int:
        return self.scalar("Q", 8, what)

    def string(self, what: str, limit: int) -> str | None:
        """A GGUF string, or None (skipped) when it is longer than ``limit`` bytes."""
        n = self.u64(f"{what} length")
        if n > limit:
            self.skip(n, what)
            return None
        try:
            return self.read(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise GgufError(f"{what} at offset {self.pos - n:,} is not UTF-8") from None


def read_header(stream: BinaryIO, size: int, ctx: Context) -> GgufHeader:
    reader, header = _Reader(stream, size), GgufHeader()
    if reader.read(4, "magic") != GGUF_MAGIC:
        raise GgufError("not a GGUF file: bad magic")
    header.version = _read_version(reader)
    header.tensors = reader.u64("tensor count")
    kv_count = reader.u64("key/value count")
    # Smallest possible entries: a key/value is 13 bytes, a tensor info 24.
    if kv_count * 13 + header.tensors * 24 > reader.left():
        raise GgufError(
            f"header claims {kv_count:,} key/values and {header.tensors:,} tensors, "
            f"more than the {reader.left():,} bytes left can hold"
        )
    _read_values(reader, kv_count, header, ctx)
    _read_tensor_infos(reader, header, ctx)
    return header


def _read_version(reader: _Reader) -> int:
    version = reader.u32("version")
    if version & 0xFFFF == 0 and version:
        reader.endian = ">"  # a big-endian file read on a little-endian host
        version = struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (2, 3):
        raise GgufError(f"GGUF version {version} is not supported (only 2 and 3)")
    return version


def _read_values(reader: _Reader, count: int, header: GgufHeader, ctx: Context) -> None:
    seen: set[str] = set()
    for i in range(count):
        key = reader.string(f"key #{i}", MAX_KEY)
        if key is None:
            raise GgufError(f"key #{i} is longer than {MAX_KEY:,} bytes")
        if key in seen:
            raise GgufError(f"duplicate key {key!r}")
        seen.add(key)
        if i % 4096 == 0:
            ctx.budget.check_time()
        _read_value(reader, key, header, ctx)


def _read_value(reader: _Reader, key: str, header: GgufHeader, ctx: Context) -> None:
    kind = reader.u32(f"type of {key}")
    if key == _ALIGNMENT and kind != _UINT32:
        raise GgufError(f"{_ALIGNMENT} must be a u32 (llama.cpp aborts otherwise)")
    if kind == _ARRAY:
        _skip_array(reader, key, ctx)
    elif kind == _STRING:
        _read_string_value(reader, key, header)
    elif kind in _SCALARS:
        value = reader.scalar(*_SCALARS[kind], key)
        if key == _ALIGNMENT:
            if value == 0 or value & (value - 1):
                raise GgufError(f"{_ALIGNMENT} {value} is not a power of two")
            header.alignment = value
    else:
        raise GgufError(f"key {key!r} has unknown value type {kind}")


def _read_string_value(reader: _Reader, key: str, header: GgufHeader) -> None:
    """Keep the licence and chat templates; skip every other string unread."""
    is_template = key == _TEMPLATE_KEY or key.startswith(_TEMPLATE_KEY + ".")
    if not is_template and key != _LICENSE:
        reader.skip(reader.u64(f"{key} length"), key)
        return
    value = reader.string(key, MAX_TEMPLATE)
    if value is None:
        header.oversized_templates.append(key)
    elif is_template:
        header.templates[key] = value
    else:
        header.license = value


def _skip_array(reader: _Reader, key: str, ctx: Context) -> None:
    kind = reader.u32(f"element type of {key}")
    count = reader.u64(f"length of {key}")
    if kind == _ARRAY:
        raise GgufError(f"key {key!r} is an array of arrays, which GGUF readers reject")
    if kind == _STRING:
        if count * 8 > reader.left():
            raise GgufError(f"array {key!r} claims {count:,} strings; the file is too short")
        for i in range(count):
            reader.skip(reader.u64(f"{key}[{i}] length"), f"{key}[{i}]")
            if i % 65536 == 65535:
                ctx.budget.check_time()
    elif kind in _SCALARS:
        reader.skip(count * _SCALARS[kind][1], f"array {key!r} of {count:,} values")
    else:
        raise GgufError(f"array {key!r} has unknown element type {kind}")


# --- Tensor infos ---------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int


def _read_tensor_infos(reader: _Reader, header: GgufHeader, ctx: Context) -> None:
    """Each tensor must start where llama.cpp expects it and end inside the file."""
    alignment = header.alignment
    names: set[str] = set()
    infos = []
    for i in range(header.tensors):
        info = _read_tensor_info(reader, i)
        if info.name in names:
            raise GgufError(f"duplicate tensor name {info.name!r}")
        names.add(info.name)
        infos.append(info)
        if i % 4096 == 0:
            ctx.budget.check_time()
    header.data_offset = _pad(reader.pos, alignment)
    expected = 0
    for info in infos:
        if info.offset != expected:
            raise GgufError(
                f"tensor {info.name!r} has offset {info.offset:,}, expected {expected:,} "
                "(tensors must be packed in order)"
            )
        nbytes = _tensor_bytes(info)
        end = header.data_offset + info.offset + nbytes
        if end > reader.size:
            raise GgufError(
                f"tensor {info.name!r} ends at byte {end:,}, past the end of the file "
                f"({reader.size:,} bytes)"
            )
        expected += _pad(nbytes, alignment)


def _read_tensor_info(reader: _Reader, i: int) -> TensorInfo:
    name = reader.string(f"tensor #{i} name", MAX_TENSOR_NAME)
    if name is None:
        raise GgufError(f"tensor #{i} name is longer than {MAX_TENSOR_NAME} bytes")
    n_dims = reader.u32(f"tensor {name!r} dimension count")
    if n_dims > MAX_DIMS:
        raise GgufError(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
    dims = tuple(reader.scalar("q", 8, f"tensor {name!r} shape") for _ in range(n_dims))
    if any(d < 0 for d in dims):
        raise GgufError(f"tensor {name!r} has a negative dimension {dims}")
    ggml_type = reader.scalar("i", 4, f"tensor {name!r} type")
    offset = reader.u64(f"tensor {name!r} offset")
    return TensorInfo(name, dims, ggml_type, offset)


def _tensor_bytes(info: TensorInfo) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # numpy: load late

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(info.ggml_type)]
    except (ValueError, KeyError):
        raise GgufError(f"tensor {info.name!r} has unknown ggml type {info.ggml_type}") from None
    dims = info.dims or (1,)
    elements = 1
    for d in dims:
        elements *= d
    if elements >= 2**63:
        raise GgufError(f"tensor {info.name!r} shape {dims} overflows int64")
    if dims[0] % block:
        raise GgufError(
            f"tensor {info.name!r} rows of {dims[0]} elements are not a multiple of "
            f"the block size {block}"
        )
    return elements // block * type_size


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


# --- Chat templates -------------------------------------------------------

# Attributes that reach Python internals without a leading underscore.
_INTROSPECTION = frozenset(
    {
        "mro", "format_map", "func_globals", "func_code", "func_closure", "im_func",
        "im_self", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame",
        "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next",
        "co_code",
    }
)  # fmt: skip
# Filters and tests that look attributes up by a name given as an argument.
_ATTRIBUTE_ARGS = frozenset(
    {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)


def sandbox() -> ImmutableSandboxedEnvironment:
    """The environment serving stacks render chat templates in (transformers' settings)."""
    return ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )


def check_chat_template(key: str, source: str, label: str, ctx: Context) -> None:
    """Static walk first; render in the child only when nothing was found statically."""
    try:
        ast = sandbox().parse(source)
    except TemplateSyntaxError as exc:
        ctx.parse_error(label, f"{key} is not a valid Jinja2 template: {exc} (line {exc.lineno})")
        return
    hits = list(static_hits(ast))
    if hits:
        ctx.add("gguf-chat-template", "critical", _describe_hits(key, hits), label)
    else:
        _judge_render(key, render_in_child(source), label, ctx)


def _describe_hits(key: str, hits: list[tuple[int, str]]) -> str:
    """One message per template: each line with the names it reaches for, in order."""
    by_line: dict[int, list[str]] = {}
    for lineno, what in hits:
        if what not in by_line.setdefault(lineno, []):
            by_line[lineno].append(what)
    parts = [f"line {n} accesses {', '.join(whats)}" for n, whats in sorted(by_line.items())]
    return f"{key} {'; '.join(parts)}: a way out of the Jinja2 sandbox"


def static_hits(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """(line, name) for every lookup of a private or introspection name, on any branch."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Getattr):
            names = [node.attr]
        elif isinstance(node, nodes.Getitem):
            const = _const_str(node.arg)
            names = [] if const is None else [const]
        else:
            names = _attribute_args(node)
        for name in names:
            if name is None:
                yield node.lineno, f"a computed name (filter {node.name!r})"
            elif name.startswith("_") or name in _INTROSPECTION:
                yield node.lineno, repr(name)


def _attribute_args(node: nodes.Filter | nodes.Test) -> list[str | None]:
    """Name arguments of attribute-taking filters; None stands for a computed name."""
    if node.name not in _ATTRIBUTE_ARGS:
        return []
    args = [*node.args, *(kw.value for kw in node.kwargs)]
    names = [_const_str(arg) for arg in args]
    if node.name == "attr" and args and names[0] is None:
        return [None]
    return [n for n in names if n is not None]


def _const_str(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


# The child renders with nothing from Stoa imported: a fresh interpreter, limits first.
_RENDER_CHILD = r"""
import json, sys
job = json.load(sys.stdin)
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu"], job["cpu"]))
except (ImportError, ValueError, OSError):
    pass
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

class Raised(Exception):
    pass

def raise_exception(message):
    raise Raised(message)

def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)

def render(template, sample):
    size = 0
    try:
        for chunk in template.generate(**sample):
            size += len(chunk)
            if size > job["max_output"]:
                return {"status": "output", "detail": f"more than {job['max_output']} characters"}
    except SecurityError as exc:
        return {"status": "security", "detail": str(exc)}
    except Raised as exc:
        return {"status": "raised", "detail": str(exc)}
    except MemoryError:
        return {"status": "memory", "detail": "ran out of memory"}
    except Exception as exc:
        return {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "detail": ""}

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=["jinja2.ext.loopcontrols"])
env.filters["tojson"] = tojson
env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: "27 Nov 2026")
try:
    template = env.from_string(job["template"])
    results = [render(template, sample) for sample in job["samples"]]
except TemplateError as exc:
    results = [{"status": "syntax", "detail": str(exc)}]
json.dump(results, sys.stdout)
"""

_BASE = {
    "add_generation_prompt": True,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "tools": None,
    "documents": None,
}
SAMPLES: list[dict[str, Any]] = [
    {
        **_BASE,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
    },
    {**_BASE, "messages": [{"role": "user", "content": "Hello!"}]},
]
# Worst first: the status a template is judged by.
_STATUS_ORDER = ("security", "syntax", "timeout", "memory", "output", "crash", "raised", "error")


def render_in_child(source: str, timeout: float = RENDER_SECONDS) -> dict[str, str]:
    """Render ``source`` with every sample in a limited child; the worst result wins."""
    job = {
        "template": source,
        "samples": SAMPLES,
        "max_output": RENDER_OUTPUT,
        "memory": RENDER_MEMORY,
        "cpu": int(timeout) + 1,
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _RENDER_CHILD],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "detail": f"did not finish within {timeout:g} s"}
    except OSError as exc:  # no interpreter to start: fail closed
        return {"status": "crash", "detail": f"cannot start the renderer: {exc}"}
    try:
        results = json.loads(proc.stdout)
    except ValueError:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"status": "crash", "detail": tail[0]}
    return min(results, key=lambda r: _rank(r["status"]))


def _rank(status: str) -> int:
    return _STATUS_ORDER.index(status) if status in _STATUS_ORDER else len(_STATUS_ORDER)


def _judge_render(key: str, result: dict[str, str], label: str, ctx: Context) -> None:
    status, detail = result["status"], result["detail"]
    if status == "security":
        ctx.add(
            "gguf-chat-template",
            "critical",
            f"{key} tried to leave the Jinja2 sandbox while rendering: {detail}",
            label,
        )
    elif status == "syntax":
        ctx.parse_error(label, f"{key} does not compile as a Jinja2 template: {detail}")
    elif status in ("timeout", "memory", "output", "crash"):
        ctx.add(
            "gguf-template-budget",
            "medium",
            f"rendering {key} with sample messages hit a limit: {detail}",
            label,
            reason="budget",
        )
    elif status in ("raised", "error"):
        ctx.add(
            "gguf-template-render",
            "info",
            f"rendering {key} with sample messages stopped ({detail}); not a security issue",
            label,
            reason="clean",
        )
