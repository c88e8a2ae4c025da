"""A model of CPython's unpickler that runs no code: it only tracks what loading would do.

Every opcode of protocols 0-5 moves an abstract stack, mark stack and memo the way
``_pickle.c`` moves the real ones, and every import (GLOBAL, INST, STACK_GLOBAL,
EXT1/2/4) and every call or mutation (REDUCE, OBJ, INST, NEWOBJ, NEWOBJ_EX, BUILD,
SETITEM(S), APPEND(S), ADDITEMS) is checked as it happens. So a global name that
comes out of the memo, a payload followed by garbage, or a second stream after
STOP is seen exactly as the loader would see it: whatever ran before an error
still counts.

Values are abstract. Strings are kept when they could name a module or attribute,
and small tuples and dicts keep their items (joblib's array wrapper needs a shape
and a dtype); everything else collapses to a marker. The memo keeps only the
entries that matter for safety and charges them to a fixed budget, so memory does
not grow with the number of opcodes.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import re
import struct
import warnings
from typing import Any, BinaryIO

from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Context
from stoa.govern.scan.denylist import refusal

_CHUNK = 1 << 20
_KEEP_STR = 256  # longer strings cannot name a module or attribute
_KEEP_ITEMS = 64  # tuples and dicts keep items up to this size
_MAX_FINDINGS = 200
_HIGHEST_PROTOCOL = 5
_STR_COST = 96  # rough bytes of a kept memo entry beyond its characters

_FAR = 1 << 62
_SSIZE_MAX = 0x7FFFFFFFFFFFFFFF
_I4 = struct.Struct("<i")
_U4 = struct.Struct("<I")
_U2 = struct.Struct("<H")
_U8 = struct.Struct("<Q")

OPCODE_NAMES = {
    0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT",
    0x49: "INT", 0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2",
    0x4E: "NONE", 0x50: "PERSID", 0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING",
    0x54: "BINSTRING", 0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x58: "BINUNICODE",
    0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT", 0x7D: "EMPTY_DICT",
    0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET",
    0x6C: "LIST", 0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT",
    0x72: "LONG_BINPUT", 0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE",
    0x75: "SETITEMS", 0x47: "BINFLOAT", 0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1",
    0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3",
    0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8A: "LONG1", 0x8B: "LONG4", 0x42: "BINBYTES",
    0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8",
    0x8E: "BINBYTES8", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
    0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME",
    0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}  # fmt: skip


class _Marker:
    """An abstract value that stands for a whole class of runtime values."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


OPAQUE = _Marker("scalar")  # a number, bytes, None-like data: never callable, never a name
LONGSTR = _Marker("long string")  # a string too long to name anything
LIST = _Marker("list")  # a builtin list: APPEND(S) on it calls nothing
SET = _Marker("set")
BIGTUPLE = _Marker("tuple")
UNKNOWN = _Marker("forgotten value")  # a memo value dropped when the budget ran out


class Global:
    """An imported object: what find_class would return."""

    __slots__ = ("allowed", "module", "name", "offset", "opcode")

    def __init__(self, module: str, name: str, offset: int, opcode: str, allowed: bool):
        self.module, self.name, self.offset, self.opcode = module, name, offset, opcode
        self.allowed = allowed

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


class Obj:
    """The result of calling something; ``func`` is what was called."""

    __slots__ = ("args", "func", "offset", "state")

    def __init__(self, func: Any, args: Any, offset: int):
        self.func, self.args, self.state, self.offset = func, args, None, offset


class Persistent:
    """What ``persistent_load`` returned (torch storages)."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any):
        self.pid = pid


class Dct:
    """A builtin dict. Small ones keep their items so array wrappers can be read; every
    one remembers its dunder keys, so padding a BUILD state cannot hide ``__builtins__``."""

    __slots__ = ("dunders", "items")

    def __init__(self) -> None:
        self.items: dict[Any, Any] | None = {}
        self.dunders: list[bytes] = []

    def update(self, pairs: list[Any]) -> None:
        if self.items is None:
            self.note_keys(pairs)
            return
        for i in range(0, len(pairs), 2):
            key = pairs[i]
            if not isinstance(key, bytes | int) or len(self.items) >= _KEEP_ITEMS:
                self.items = None
                self.note_keys(pairs[i:])
                return
            self.items[key] = pairs[i + 1]
            if type(key) is bytes and key[:2] == b"__" and _is_dunder(key):
                self.dunders.append(key)

    def note_keys(self, pairs: list[Any]) -> None:
        for key in pairs[::2]:
            dunder = type(key) is bytes and key[:2] == b"__" and _is_dunder(key)
            if dunder and len(self.dunders) < 8:
                self.dunders.append(key)


class PickleError(Exception):
    """CPython's unpickler would raise here; ``offset`` is where."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


class _Memo:
    """The memo's key set exactly, and the values that matter, within a budget.

    Keys written in order (MEMOIZE, or PUT of the next index as picklers do) are a
    dense range; others go in a set. Values are kept only when they could matter:
    names, globals, call results, small containers. When the kept budget runs out,
    further plain values are forgotten and read back as UNKNOWN, which is safe
    because anything that needs a forgotten value to be a name then blocks.
    """

    __slots__ = ("ctx", "degraded", "dense", "kept", "sparse", "values")

    def __init__(self, ctx: Context):
        self.dense = 0
        self.sparse: set[int] = set()
        self.values: dict[int, Any] = {}
        self.kept = 0
        self.ctx = ctx
        self.degraded = False

    def __len__(self) -> int:
        return self.dense + len(self.sparse)

    def put(self, idx: int, value: Any) -> None:
        if not (idx < self.dense or idx in self.sparse):
            if idx == self.dense:
                self.dense += 1
                sparse = self.sparse
                while sparse and self.dense in sparse:
                    sparse.remove(self.dense)
                    self.dense += 1
            else:
                if len(self.sparse) >= self.ctx.policy.limits.max_memo_values:
                    raise BudgetExceeded("memo entries", self.ctx.policy.limits.max_memo_values)
                self.sparse.add(idx)
        if value is OPAQUE or value is None or value is LONGSTR or type(value) is int:
            if self.values:
                self.values.pop(idx, None)
            return
        if type(value) is bytes and (len(value) > _KEEP_STR or self.degraded):
            self.values.pop(idx, None)
            return
        self.keep(idx, value)

    def keep(self, idx: int, value: Any) -> None:
        """Keep a value the scan may need again; only plain data may be dropped."""
        limits = self.ctx.policy.limits
        cost = _STR_COST + (len(value) if type(value) is bytes else 0)
        if self.kept + cost > limits.max_kept_bytes or len(self.values) >= limits.max_memo_values:
            if isinstance(value, Global | Obj | Persistent):
                raise BudgetExceeded("memo values the scanner must keep", limits.max_memo_values)
            self.degraded = True
            self.values.pop(idx, None)
            return
        self.kept += cost
        self.values[idx] = value

    def get(self, idx: int, offset: int) -> Any:
        if idx < self.dense or idx in self.sparse:
            value = self.values.get(idx, OPAQUE)
            if value is OPAQUE and self.degraded:
                return UNKNOWN
            return value
        raise PickleError(f"Memo value not found at index {idx}", offset)


class PickleMachine:
    """Scans pickle streams from a seekable stream, reporting into a Context."""

    def __init__(self, ctx: Context, stream: BinaryIO, size: int, label: str):
        self.ctx = ctx
        self.stream = stream
        self.size = size
        self.label = label
        self.allow = ctx.policy.pickle_allow
        self.containers = ctx.policy.pickle_containers
        self.reported: set[tuple[str, str, str]] = set()
        self.findings = 0
        self.streams = 0
        self.calls = 0  # REDUCE, OBJ, INST, NEWOBJ(_EX), BUILD and method calls seen
        self.wrapper_imported = False  # joblib's NumpyArrayWrapper was imported
        self.globals: list[str] = []

    # -- reporting ---------------------------------------------------------------

    def flag(self, rule: str, message: str, offset: int, opcode: str, *,
             severity: str = "high", reason: str = "malicious", key: str = "") -> None:  # fmt: skip
        dedupe = (rule, key or message, opcode)
        if dedupe in self.reported:
            return
        self.reported.add(dedupe)
        self.findings += 1
        if self.findings > _MAX_FINDINGS:
            return
        self.ctx.add(rule, severity, message, self.label, reason=reason, offset=offset,
                     opcode=opcode)  # type: ignore[arg-type]  # fmt: skip

    def import_global(self, module: str, name: str, offset: int, opcode: str, proto: int) -> Global:
        written = f"{module}.{name}"
        if proto < 3:
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is not None:
                module, name = mapped
            else:
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == _WRAPPER:
            self.wrapper_imported = True
        allowed = (module, name) in self.allow or (
            # TorchScript's own unpickler resolves __torch__.* to classes compiled from the
            # archive's code, never to Python imports; only trusted when TorchScript is.
            self.ctx.torchscript_names
            and (module == "__torch__" or module.startswith("__torch__."))
        )
        if len(self.globals) < 1000:
            self.globals.append(f"{module}.{name}")
        if not allowed:
            refused = refusal(module, name, self.ctx.policy.unknown_globals)
            message = f"{opcode} at offset {offset} imports {module}.{name}"
            if written != f"{module}.{name}":
                message += f" (written {written})"
            self.flag(refused.rule("pickle-global"), message + refused.why, offset, opcode,
                      severity=refused.severity, reason=refused.reason,
                      key=f"{module}.{name}")  # fmt: skip
        return Global(module, name, offset, opcode, allowed)

    def check_call(self, func: Any, offset: int, opcode: str) -> None:
        """A call is safe only when it calls an allowed import directly."""
        self.calls += 1
        if isinstance(func, Global):
            return  # an import that is not allowed is already reported where it was made
        if func is UNKNOWN:
            self.flag(
                "pickle-budget",
                f"{opcode} at offset {offset} calls a memo value forgotten when the scan "
                "budget ran out; raise limits.max_kept_bytes to scan this file",
                offset, opcode, severity="medium", reason="budget",
            )  # fmt: skip
            return
        what = _describe(func)
        self.flag("pickle-computed-call",
                  f"{opcode} at offset {offset} calls {what}, not an imported name; "
                  "loading would run code chosen at load time", offset, opcode)  # fmt: skip

    def check_mutation(self, target: Any, offset: int, opcode: str) -> None:
        """SETITEM(S), APPEND(S) and ADDITEMS call methods unless the target is builtin."""
        if isinstance(target, Dct) or target is LIST or target is SET or target is OPAQUE:
            return
        self.calls += 1
        func = target.func if isinstance(target, Obj) else None
        if isinstance(func, Global) and (func.module, func.name) in self.containers:
            return
        self.flag("pickle-mutation",
                  f"{opcode} at offset {offset} calls a method of {_describe(target)}, "
                  "not of a builtin container", offset, opcode)  # fmt: skip

    def check_build(self, inst: Any, state: Any, offset: int) -> None:
        self.calls += 1
        if isinstance(inst, Global):
            self.flag("pickle-build-global",
                      f"BUILD at offset {offset} sets attributes on {inst.dotted} itself, "
                      "which changes it for the whole process", offset, "BUILD")  # fmt: skip
        elif not isinstance(inst, Obj | Dct) and inst is not UNKNOWN and inst is not OPAQUE:
            self.flag("pickle-build-target",
                      f"BUILD at offset {offset} sets state on {_describe(inst)}",
                      offset, "BUILD")  # fmt: skip
        for source in (state,) + (state if isinstance(state, tuple) else ()):
            if isinstance(source, Dct) and source.dunders:
                dunders = sorted({k.decode("utf-8", "replace") for k in source.dunders})
                if dunders:
                    self.flag("pickle-build-dunder",
                              f"BUILD at offset {offset} sets {', '.join(sorted(dunders)[:5])} "
                              f"on {_describe(inst)}", offset, "BUILD")  # fmt: skip

    # -- the machine ---------------------------------------------------------------

    def scan(self, start: int = 0, *, streams: int | None = None) -> int:
        """Scan pickle streams from ``start`` until the end (or ``streams`` of them).

        Returns the offset after the last STOP. Errors are reported as parse-error
        findings; findings made before an error stand.
        """
        offset = start
        count = 0
        while offset < self.size and (streams is None or count < streams):
            try:
                offset = self._run(offset)
            except PickleError as exc:
                self.ctx.parse_error(self.label, f"pickle: {exc} at offset {exc.offset}",
                                     exc.offset)  # fmt: skip
                return self.size
            count += 1
            self.streams += 1
        if count == 0 and streams:
            self.ctx.parse_error(self.label, "pickle: Ran out of input", offset)
        return offset

    def _run(self, start: int) -> int:
        """One stream, STOP included. Strings travel as their UTF-8 bytes until needed."""
        ctx = self.ctx
        max_stack = ctx.policy.limits.max_stack
        r = _Reader(self.stream, self.size, start, ctx)
        buf, pos, end = r.buf, 0, len(r.buf)
        safe = r.safe(end)
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo = _Memo(ctx)
        proto = 0
        i4, u4, u2, u8 = _I4.unpack_from, _U4.unpack_from, _U2.unpack_from, _U8.unpack_from
        append = stack.append
        first = True

        while True:
            if pos > safe:
                if r.frame_end >= 0:
                    _leave_frame(r, pos)
                buf, pos, end = r.fill(buf, pos, 16)
                safe = r.safe(end)
                if len(stack) > max_stack or len(metastack) > max_stack:
                    raise BudgetExceeded("pickle stack depth", max_stack)
            if pos >= end:
                at = r.base + pos
                raise PickleError("Ran out of input" if first else "pickle data was truncated", at)
            first = False
            op = buf[pos]
            pos += 1
            # The most frequent opcodes first: this loop is the scanner's hot path.
            if op == 0x8C:  # SHORT_BINUNICODE
                if pos >= end:
                    raise PickleError("pickle data was truncated", r.base + pos - 1)
                n = buf[pos] + 1
                if pos + n > end:
                    buf, pos, end = r.fill(buf, pos, n)
                    safe = r.safe(end)
                    if pos + n > end:
                        raise PickleError("pickle data was truncated", r.base + pos - 1)
                value = buf[pos + 1 : pos + n]
                if not value.isascii():
                    _check_utf8(value, r.base + pos - 1)
                append(value)
                pos += n
            elif op == 0x94:  # MEMOIZE
                if not stack:
                    raise PickleError("unpickling stack underflow", r.base + pos - 1)
                value = stack[-1]
                if memo.sparse:
                    memo.put(len(memo), value)
                else:
                    idx = memo.dense
                    memo.dense = idx + 1
                    if type(value) is bytes:
                        if len(value) <= _KEEP_STR and not memo.degraded:
                            memo.keep(idx, value)
                    elif not (value is OPAQUE or value is None or type(value) is int):
                        memo.keep(idx, value)
            elif op == 0x4B:  # BININT1
                if pos >= end:
                    raise PickleError("pickle data was truncated", r.base + pos - 1)
                append(buf[pos])
                pos += 1
            elif op == 0x4A:  # BININT
                if pos + 4 > end:
                    raise PickleError("pickle data was truncated", r.base + pos - 1)
                append(i4(buf, pos)[0])
                pos += 4
            elif op == 0x4D:  # BININT2
                if pos + 2 > end:
                    raise PickleError("pickle data was truncated", r.base + pos - 1)
                append(u2(buf, pos)[0])
                pos += 2
            elif op == 0x47:  # BINFLOAT
                if pos + 8 > end:
                    raise PickleError("pickle data was truncated", r.base + pos - 1)
                append(OPAQUE)
                pos += 8
            elif op == 0x28:  # MARK
                metastack.append(stack)
                stack = []
                append = stack.append
            elif op == 0x75:  # SETITEMS
                at = r.base + pos - 1
                if not metastack:
                    raise PickleError("could not find MARK", at)
                items = stack
                stack = metastack.pop()
                append = stack.append
                if len(items) % 2:
                    raise PickleError("odd number of items for SETITEMS", at)
                if not stack:
                    raise PickleError("unpickling stack underflow", at)
                target = stack[-1]
                if type(target) is Dct:
                    target.update(items)
                else:
                    self.check_mutation(target, at, "SETITEMS")
            elif op == 0x65:  # APPENDS
                at = r.base + pos - 1
                if not metastack:
                    raise PickleError("could not find MARK", at)
                stack = metastack.pop()
                append = stack.append
                if not stack:
                    raise PickleError("unpickling stack underflow", at)
                if stack[-1] is not LIST:
                    self.check_mutation(stack[-1], at, "APPENDS")
            elif op == 0x71 or op == 0x68:  # BINPUT, BINGET
                at = r.base + pos - 1
                if pos >= end:
                    raise PickleError("pickle data was truncated", at)
                idx = buf[pos]
                pos += 1
                if op == 0x68:
                    append(memo.get(idx, at))
                elif not stack:
                    raise PickleError("unpickling stack underflow", at)
                else:
                    memo.put(idx, stack[-1])
            elif op == 0x72 or op == 0x6A:  # LONG_BINPUT, LONG_BINGET
                at = r.base + pos - 1
                if pos + 4 > end:
                    raise PickleError("pickle data was truncated", at)
                idx = u4(buf, pos)[0]
                pos += 4
                if op == 0x6A:
                    append(memo.get(idx, at))
                elif not stack:
                    raise PickleError("unpickling stack underflow", at)
                else:
                    memo.put(idx, stack[-1])
            elif op == 0x58 or op == 0x8D:  # BINUNICODE, BINUNICODE8
                at = r.base + pos - 1
                width = 4 if op == 0x58 else 8
                if pos + width > end:
                    raise PickleError("pickle data was truncated", at)
                n = u4(buf, pos)[0] if width == 4 else u8(buf, pos)[0]
                pos += width
                if n > _SSIZE_MAX:
                    raise PickleError("BINUNICODE8 exceeds system's maximum size", at)
                value, buf, pos, end = r.take(buf, pos, n, at)
                safe = r.safe(end)
                append(_utf8(value, at))
            elif op == 0x73 or op == 0x61:  # SETITEM, APPEND
                at = r.base + pos - 1
                if len(stack) < (3 if op == 0x73 else 2):
                    raise PickleError("unpickling stack underflow", at)
                if op == 0x73:
                    value = stack.pop()
                    key = stack.pop()
                    target = stack[-1]
                    if type(target) is Dct:
                        target.update([key, value])
                    else:
                        self.check_mutation(target, at, "SETITEM")
                else:
                    stack.pop()
                    if stack[-1] is not LIST:
                        self.check_mutation(stack[-1], at, "APPEND")
            elif op == 0x4E:  # NONE
                append(None)
            elif op == 0x88:  # NEWTRUE
                append(True)
            elif op == 0x89:  # NEWFALSE
                append(False)
            elif op == 0x7D:  # EMPTY_DICT
                append(Dct())
            elif op == 0x5D:  # EMPTY_LIST
                append(LIST)
            elif op == 0x29:  # EMPTY_TUPLE
                append(())
            elif 0x85 <= op <= 0x87:  # TUPLE1-3
                n = op - 0x84
                if len(stack) < n:
                    raise PickleError("unpickling stack underflow", r.base + pos - 1)
                items = stack[-n:]
                del stack[-n:]
                append(tuple(items))
            elif op == 0x95:  # FRAME
                at = r.base + pos - 1
                if pos + 8 > end:
                    raise PickleError("pickle data was truncated", at)
                n = u8(buf, pos)[0]
                pos += 8
                if n > _SSIZE_MAX:
                    raise PickleError("FRAME length exceeds system's maximum", at)
                if r.base + pos + n > self.size:
                    raise PickleError("pickle data was truncated", at)
                if r.frame_end > at:
                    raise PickleError("beginning of a new frame before end of current frame", at)
                r.frame_end = r.base + pos + n
                safe = r.safe(end)
            else:
                # Everything rarer: calls, imports, text protocols. Handled out of line.
                at = r.base + pos - 1
                if op == 0x2E:  # STOP
                    if not stack:
                        raise PickleError("unpickling stack underflow", at)
                    return r.base + pos
                state = _Frame(stack, metastack, memo, proto)
                buf, pos, end = self._slow(op, at, r, buf, pos, end, state)
                safe = r.safe(end)
                stack, proto = state.stack, state.proto
                append = stack.append

    def _slow(self, op: int, at: int, r: _Reader, buf: bytes, pos: int, end: int,
              st: _Frame) -> tuple[bytes, int, int]:  # fmt: skip
        """The rarer opcodes; returns the reader position. ``st`` carries stack and proto."""
        stack = st.stack

        def pop() -> Any:
            if not st.stack:
                raise PickleError("unpickling stack underflow", at)
            return st.stack.pop()

        def top() -> Any:
            if not st.stack:
                raise PickleError("unpickling stack underflow", at)
            return st.stack[-1]

        def pop_mark() -> list[Any]:
            if not st.metastack:
                raise PickleError("could not find MARK", at)
            items = st.stack
            st.stack = st.metastack.pop()
            return items

        def need(n: int) -> bytes:
            nonlocal buf, pos, end
            data, buf, pos, end = r.take(buf, pos, n, at)
            if data is None:
                raise PickleError("argument too large", at)
            return data

        def line() -> bytes:
            nonlocal buf, pos, end
            data, buf, pos, end = r.line(buf, pos, at)
            return data

        name = OPCODE_NAMES.get(op)
        if op == 0x52:  # REDUCE
            args = pop()
            func = top()
            self.check_call(func, at, "REDUCE")
            st.stack[-1] = Obj(func, args, at)
        elif op == 0x62:  # BUILD
            state = pop()
            inst = top()
            self.check_build(inst, state, at)
            if isinstance(inst, Obj):
                inst.state = state
                if self.wrapper_imported and not _is_array_wrapper(inst) and _may_hold(inst):
                    # joblib tests isinstance(..., NumpyArrayWrapper) after every BUILD; an
                    # instance built any other way would make it read bytes as array data.
                    raise PickleError(
                        "an object that may be a joblib NumpyArrayWrapper is built in a way "
                        "the scanner does not model (joblib only writes NEWOBJ)",
                        at,
                    )
                if _is_array_wrapper(inst):
                    resume = self._skip_joblib_array(inst, r.base + pos, at)
                    if r.frame_end > r.base + pos:
                        raise PickleError("joblib array data inside a FRAME", at)
                    r.frame_end = -1  # joblib ends the frame before it writes array bytes
                    self.ctx.formats_seen.append("joblib")
                    buf, pos, end = r.restart(resume)
                    st.stack[-1] = OPAQUE
        elif op == 0x93:  # STACK_GLOBAL
            gname = pop()
            module = pop()
            stack.append(self._stack_global(module, gname, at, st.proto))
        elif op == 0x63 or op == 0x69:  # GLOBAL, INST
            module = line()
            gname = line()
            glob = self._named_global(module, gname, at, name or "", st.proto)
            if op == 0x63:
                stack.append(glob)
            else:
                args = pop_mark()
                self.calls += 1
                st.stack.append(Obj(glob, tuple(args[:_KEEP_ITEMS]), at))
        elif op == 0x6F:  # OBJ
            args = pop_mark()
            if not args:
                raise PickleError("unpickling stack underflow", at)
            self.check_call(args[0], at, "OBJ")
            st.stack.append(Obj(args[0], tuple(args[1:_KEEP_ITEMS]), at))
        elif op == 0x81 or op == 0x92:  # NEWOBJ, NEWOBJ_EX
            if op == 0x92:
                pop()  # kwargs
            args = pop()
            cls = pop()
            self._check_class(cls, at, name or "")
            stack.append(Obj(cls, args, at))
        elif 0x82 <= op <= 0x84:  # EXT1, EXT2, EXT4
            width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
            code = int.from_bytes(need(width), "little", signed=op == 0x84)
            if code <= 0:
                raise PickleError("EXT specifies code <= 0", at)
            self.flag("pickle-extension",
                      f"{name} at offset {at} imports extension code {code} from the copyreg "
                      "registry, which is set at run time and cannot be checked",
                      at, name or "", key=str(code))  # fmt: skip
            stack.append(Global("copyreg", f"<extension {code}>", at, name or "", False))
        elif op == 0x80:  # PROTO
            proto = need(1)[0]
            if proto > _HIGHEST_PROTOCOL:
                raise PickleError(f"unsupported pickle protocol: {proto}", at)
            st.proto = proto
        elif op == 0x30:  # POP
            if st.stack:
                st.stack.pop()
            else:
                pop_mark()
        elif op == 0x31:  # POP_MARK
            pop_mark()
        elif op == 0x32:  # DUP
            stack.append(top())
        elif op in (0x8E, 0x42, 0x96, 0x43):  # BINBYTES8, BINBYTES, BYTEARRAY8, SHORT_BINBYTES
            width = {0x8E: 8, 0x42: 4, 0x96: 8, 0x43: 1}[op]
            raw = need(width)
            n = int.from_bytes(raw, "little")
            if n > _SSIZE_MAX:
                raise PickleError(f"{name} exceeds system's maximum size", at)
            _, buf, pos, end = r.take(buf, pos, n, at)
            stack.append(OPAQUE)
        elif op == 0x54 or op == 0x55:  # BINSTRING, SHORT_BINSTRING
            n = need(1)[0] if op == 0x55 else _I4.unpack(need(4))[0]
            if n < 0:
                raise PickleError("BINSTRING pickle has negative byte count", at)
            data, buf, pos, end = r.take(buf, pos, n, at)
            stack.append(LONGSTR if data is None else _latin1(data))
        elif op == 0x53:  # STRING
            # As _pickle.c: only the newline is stripped, bytes escapes are decoded (octal
            # wraps at 256, \u is literal), then the text is decoded (UTF-8, as torch asks).
            raw = line()
            if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                raise PickleError("the STRING opcode argument must be quoted", at)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # octal escapes > 0o377
                    text = codecs.escape_decode(raw[1:-1])[0].decode("utf-8")  # type: ignore[attr-defined]
            except (UnicodeDecodeError, ValueError):
                raise PickleError("bad STRING escape", at) from None
            stack.append(_as_value(text))
        elif op == 0x56:  # UNICODE
            try:
                text = line().decode("raw-unicode-escape")
            except UnicodeDecodeError:
                raise PickleError("bad UNICODE escape", at) from None
            stack.append(_as_value(text))
        elif op == 0x49:  # INT
            raw = line()
            stack.append(False if raw == b"00" else True if raw == b"01" else _parse_int(raw, at))
        elif op == 0x4C:  # LONG
            raw = line()
            _parse_int(raw[:-1] if raw.endswith(b"L") else raw, at)
            stack.append(OPAQUE)
        elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
            n = need(1)[0] if op == 0x8A else _I4.unpack(need(4))[0]
            if n < 0:
                raise PickleError("LONG pickle has negative byte count", at)
            data, buf, pos, end = r.take(buf, pos, n, at)
            small = data is not None and n <= 8
            stack.append(int.from_bytes(data, "little", signed=True) if small else OPAQUE)
        elif op == 0x46:  # FLOAT
            try:
                float(line())
            except ValueError:
                raise PickleError("could not convert string to float", at) from None
            stack.append(OPAQUE)
        elif op == 0x67 or op == 0x70:  # GET, PUT
            idx = _parse_int(line(), at)
            if op == 0x67:
                stack.append(st.memo.get(idx, at))
            else:
                if idx < 0:
                    raise PickleError("negative PUT argument", at)
                st.memo.put(idx, top())
        elif op == 0x6C:  # LIST
            pop_mark()
            st.stack.append(LIST)
        elif op == 0x74:  # TUPLE
            items = pop_mark()
            st.stack.append(tuple(items) if len(items) <= _KEEP_ITEMS else BIGTUPLE)
        elif op == 0x64:  # DICT
            items = pop_mark()
            if len(items) % 2:
                raise PickleError("odd number of items for DICT", at)
            d = Dct()
            d.update(items)
            st.stack.append(d)
        elif op == 0x8F:  # EMPTY_SET
            stack.append(SET)
        elif op == 0x90:  # ADDITEMS
            pop_mark()
            target = top()
            if target is not SET:
                self.check_mutation(target, at, "ADDITEMS")
        elif op == 0x91:  # FROZENSET
            pop_mark()
            st.stack.append(OPAQUE)
        elif op == 0x50:  # PERSID
            stack.append(Persistent(line()))
        elif op == 0x51:  # BINPERSID
            st.stack.append(_persistent_load(pop()))
        elif op == 0x97:  # NEXT_BUFFER
            raise PickleError(
                "pickle stream refers to out-of-band data but no *buffers* argument was given", at
            )
        elif op == 0x98:  # READONLY_BUFFER
            top()
        else:
            raise PickleError(f"invalid load key, {chr(op)!r}", at)
        return buf, pos, end

    def _named_global(self, module: bytes, name: bytes, at: int, opcode: str, proto: int) -> Global:
        """GLOBAL and INST names are text lines, decoded as UTF-8 like _pickle.c does."""
        try:
            return self.import_global(module.decode(), name.decode(), at, opcode, proto)
        except UnicodeDecodeError:
            raise PickleError(f"{opcode} name is not valid UTF-8", at) from None

    def _stack_global(self, module: Any, name: Any, at: int, proto: int) -> Global:
        """STACK_GLOBAL takes any two values; CPython insists both are exact str."""
        if type(module) is bytes and type(name) is bytes:
            module_text = module.decode("utf-8", "surrogatepass")
            name_text = name.decode("utf-8", "surrogatepass")
            return self.import_global(module_text, name_text, at, "STACK_GLOBAL", proto)
        for value in (module, name):
            if value is UNKNOWN:
                self.flag("pickle-budget",
                          f"STACK_GLOBAL at offset {at} takes a name from a memo entry forgotten "
                          "when the scan budget ran out; raise limits.max_kept_bytes",
                          at, "STACK_GLOBAL", severity="medium", reason="budget")  # fmt: skip
                return Global("?", "?", at, "STACK_GLOBAL", False)
        if all(type(v) is bytes or v is LONGSTR for v in (module, name)):
            self.flag("pickle-global-unnamed",
                      f"STACK_GLOBAL at offset {at} imports a name too long to check",
                      at, "STACK_GLOBAL")  # fmt: skip
            return Global("?", "?", at, "STACK_GLOBAL", False)
        if any(isinstance(v, Obj | Persistent) for v in (module, name)):
            self.flag("pickle-global-computed",
                      f"STACK_GLOBAL at offset {at} imports a name computed at load time "
                      f"({_describe(module)}, {_describe(name)})", at, "STACK_GLOBAL")  # fmt: skip
            return Global("?", "?", at, "STACK_GLOBAL", False)
        raise PickleError("STACK_GLOBAL requires str", at)

    def _check_class(self, cls: Any, at: int, opcode: str) -> None:
        if isinstance(cls, Global):
            self.calls += 1
            return
        if isinstance(cls, Obj | Persistent) or cls is UNKNOWN:
            self.check_call(cls, at, opcode)
            return
        raise PickleError(f"{opcode} class argument isn't a type object", at)

    def _skip_joblib_array(self, wrapper: Obj, after: int, at: int) -> int:
        """joblib writes array bytes straight after the wrapper's BUILD; skip them like it."""
        state = wrapper.state
        items = state.items if isinstance(state, Dct) else None
        if not items:
            raise PickleError("joblib array wrapper without a readable state", at)
        shape, dtype = items.get(b"shape"), items.get(b"dtype")
        count = _shape_count(shape)
        itemsize, has_object = _dtype_size(dtype)
        if count is None or (itemsize is None and not has_object):
            raise PickleError("joblib array wrapper with a shape or dtype the scanner cannot size",
                              at)  # fmt: skip
        if has_object:  # the array is a nested pickle stream, loaded with a fresh unpickler
            return self.scan(after, streams=1)
        offset = after
        if items.get(b"numpy_array_alignment_bytes") is not None:
            self.stream.seek(offset)
            pad = self.stream.read(1)
            if not pad:
                raise PickleError("pickle data was truncated", offset)
            offset += 1 + pad[0]
        assert itemsize is not None
        offset += count * itemsize
        if offset > self.size:
            raise PickleError("joblib array data was truncated", after)
        self.ctx.budget.spend_bytes(count * itemsize)
        return offset


_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


def _is_array_wrapper(obj: Obj) -> bool:
    """joblib's own form: NEWOBJ (or a call) of the wrapper class itself."""
    func = obj.func
    return isinstance(func, Global) and func.allowed and (func.module, func.name) == _WRAPPER


def _may_hold(obj: Obj, depth: int = 0) -> bool:
    """Whether the wrapper class could reach this object's construction: named in its
    callable or arguments, or hidden in a value the scanner does not keep."""
    return any(_mentions_wrapper(value, depth) for value in (obj.func, obj.args))


def _mentions_wrapper(value: Any, depth: int) -> bool:
    if isinstance(value, Global):
        return (value.module, value.name) == _WRAPPER
    if value is UNKNOWN or value is BIGTUPLE or isinstance(value, Persistent) or depth > 4:
        return True
    if isinstance(value, Obj):
        return _may_hold(value, depth + 1)
    if isinstance(value, tuple):
        return any(_mentions_wrapper(v, depth + 1) for v in value)
    if isinstance(value, Dct):
        return value.items is None or any(
            _mentions_wrapper(v, depth + 1) for v in value.items.values()
        )
    return False


def _shape_count(shape: Any) -> int | None:
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        return None
    count = 1
    for dim in shape:
        count *= dim
    return count


_DTYPE = re.compile(r"^[<>=|]?([?bBhHiIlLqQpPefdgFDGbiufcmMOSUV])(\d*)(?:\[[a-zA-Z]+\])?$")


def _dtype_size(dtype: Any) -> tuple[int | None, bool]:
    """(itemsize, has_object) of a ``numpy.dtype(...)`` call result, or (None, False)."""
    if not (isinstance(dtype, Obj) and isinstance(dtype.func, Global)):
        return None, False
    if (dtype.func.module, dtype.func.name) not in (("numpy", "dtype"), ("numpy.dtypes", "dtype")):
        return None, False
    args = dtype.args
    if not isinstance(args, tuple) or not args or type(args[0]) is not bytes:
        return None, False
    match = _DTYPE.match(args[0].decode("utf-8", "replace"))
    if not match:
        return None, False
    kind = match.group(1)
    if kind == "O":
        return None, True
    state = dtype.state
    if (
        isinstance(state, tuple)
        and len(state) >= 8
        and (state[3] is not None or state[2] is not None)
    ):
        # A structured or subarray dtype: NumPy takes its size from the state.
        elsize, fields = state[5], state[4]
        if state[3] is not None and not (isinstance(fields, Dct) and fields.items):
            return None, False  # too many fields to check for objects: cannot size safely
        for field in fields.items.values() if isinstance(fields, Dct) and fields.items else ():
            inner = field[0] if isinstance(field, tuple) and field else None
            if _dtype_size(inner) == (None, False) or _dtype_size(inner)[1]:
                return None, _dtype_size(inner)[1]
        return (elsize, False) if type(elsize) is int and elsize > 0 else (None, False)
    return _numpy_itemsize(args[0], state), False


def _numpy_itemsize(code: bytes, state: Any) -> int | None:
    """The element size NumPy itself gives ``dtype(code, False, True)`` after setstate.

    Which state fields count depends on the kind (an element size in the state is honoured
    for S/U/V and ignored for numbers), so NumPy answers, on a private copy of the
    descriptor: copy=True never hands out the shared builtin one.
    """
    import numpy

    try:
        descr = numpy.dtype(code.decode("ascii"), False, True)
        if isinstance(state, tuple):
            if not all(v is None or type(v) in (int, bytes) for v in state):
                return None  # the loader would set a state the scanner cannot see
            descr.__setstate__(tuple(v.decode("ascii") if type(v) is bytes else v for v in state))
        return descr.itemsize or None
    except (TypeError, ValueError, UnicodeDecodeError):
        return None


def _parse_int(raw: bytes, at: int) -> int:
    try:
        return int(raw)
    except ValueError:
        try:
            return int(raw, 0)
        except ValueError:
            raise PickleError(f"invalid literal for int(): {raw[:40]!r}", at) from None


def _is_dunder(key: bytes) -> bool:
    return len(key) > 4 and key.startswith(b"__") and key.endswith(b"__")


def _describe(value: Any) -> str:
    if isinstance(value, Global):
        return value.dotted
    if isinstance(value, Obj):
        return f"the result of calling {_describe(value.func)} (offset {value.offset})"
    if isinstance(value, Persistent):
        return "a persistent-load result"
    if isinstance(value, _Marker):
        return f"a {value.name}"
    if isinstance(value, Dct):
        return "a dict"
    if isinstance(value, bytes):
        return "a str"
    return f"a {type(value).__name__}"


def _persistent_load(pid: Any) -> Any:
    """What ``persistent_load`` returns. torch's legacy loader (``torch.save`` with
    ``_use_new_zipfile_serialization=False``) writes each module class as the id
    ``('module', cls, source_file, source)`` and hands back ``cls``, an import already
    checked where it was made. Any other id stays opaque: zip checkpoints accept only
    storages, and ``pickle.load`` accepts none."""
    if type(pid) is tuple and len(pid) >= 2 and pid[0] == b"module" and type(pid[1]) is Global:
        return pid[1]
    return Persistent(pid)


def scan_pickle(blob: Any, ctx: Context) -> None:
    """Scan a file made of one or more pickle streams."""
    machine = PickleMachine(ctx, blob.stream, blob.size, blob.label)
    machine.scan(0, streams=None if blob.size else 1)


class _Frame:
    """The machine state the out-of-line opcodes may change."""

    __slots__ = ("memo", "metastack", "proto", "stack")

    def __init__(self, stack: list[Any], metastack: list[list[Any]], memo: _Memo, proto: int):
        self.stack, self.metastack, self.memo, self.proto = stack, metastack, memo, proto


class _Reader:
    """Buffered reads from a seekable stream; large arguments are skipped, never read."""

    __slots__ = ("base", "buf", "ctx", "eof", "frame_end", "size", "stream")

    def __init__(self, stream: BinaryIO, size: int, start: int, ctx: Context):
        self.stream, self.size, self.ctx = stream, size, ctx
        self.buf = b""
        self.frame_end = -1  # absolute offset where the current FRAME ends, or -1
        self.restart(start)

    def safe(self, end: int) -> int:
        """The last buffer position the hot loop may reach before it must stop and check:
        16 bytes before the buffer's end, and the byte before the current frame's end."""
        limit = end - 16 if not self.eof else _FAR
        if self.frame_end >= 0:
            limit = min(limit, self.frame_end - self.base - 1)
        return limit

    def restart(self, offset: int) -> tuple[bytes, int, int]:
        self.stream.seek(offset)
        self.base = offset
        self.buf = self.stream.read(min(_CHUNK, self.size - offset))
        self.eof = offset + len(self.buf) >= self.size
        return self.buf, 0, len(self.buf)

    def fill(self, buf: bytes, pos: int, need: int) -> tuple[bytes, int, int]:
        """Make ``need`` bytes available at ``pos`` unless the input ends first."""
        end = len(buf)
        if end - pos >= need or self.eof:
            return buf, pos, end
        self.ctx.budget.check_time()
        self.stream.seek(self.base + end)
        more = self.stream.read(max(_CHUNK, need - (end - pos)))
        self.buf = buf = buf[pos:] + more
        self.base += pos
        self.eof = self.base + len(buf) >= self.size
        return buf, 0, len(buf)

    def take(self, buf: bytes, pos: int, n: int, at: int) -> tuple[bytes | None, bytes, int, int]:
        """Consume ``n`` argument bytes; long ones are skipped and come back as None."""
        end = len(buf)
        if n > _KEEP_STR * 4 and n > end - pos:
            target = self.base + pos + n
            if target > self.size:
                raise PickleError("pickle data was truncated", at)
            self.ctx.budget.spend_bytes(n)
            buf, pos, end = self.restart(target)
            return None, buf, pos, end
        buf, pos, end = self.fill(buf, pos, n)
        if end - pos < n:
            raise PickleError("pickle data was truncated", at)
        return buf[pos : pos + n], buf, pos + n, end

    def line(self, buf: bytes, pos: int, at: int) -> tuple[bytes, bytes, int, int]:
        limit = self.ctx.policy.limits.max_line
        nl = buf.find(b"\n", pos)
        while nl < 0:
            if self.eof:
                raise PickleError("pickle data was truncated", at)
            if len(buf) - pos > limit:
                raise BudgetExceeded("a text argument", limit)
            buf, pos, _ = self.fill(buf, pos, len(buf) - pos + _CHUNK)
            nl = buf.find(b"\n", pos)
        return buf[pos:nl], buf, nl + 1, len(buf)


def _leave_frame(r: _Reader, pos: int) -> None:
    """An opcode that runs past its FRAME's end is read differently by each unpickler:
    pickle.py refuses it, _pickle.c reading a file refills and may run bytes that a
    whole-buffer parser sees as data. Refuse it, as pickle.py does."""
    rel = r.frame_end - r.base
    if pos > rel:
        raise PickleError("an opcode runs past the end of its FRAME", r.frame_end)
    if pos == rel:
        r.frame_end = -1


def _check_utf8(value: bytes, at: int) -> None:
    try:
        value.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise PickleError(f"bad str: {exc.reason}", at) from None


def _utf8(value: bytes | None, at: int) -> Any:
    """A str argument as the machine keeps it: its UTF-8 bytes, or LONGSTR."""
    if value is None or len(value) > _KEEP_STR:
        return LONGSTR
    if not value.isascii():
        _check_utf8(value, at)
    return value


def _latin1(data: bytes) -> Any:
    return _as_value(data.decode("latin-1"))


def _as_value(text: str) -> Any:
    return LONGSTR if len(text) > _KEEP_STR else text.encode("utf-8", "surrogatepass")
