"""safetensors: validate the header exactly as strictly as the safetensors library does.

A safetensors file is data only, so it cannot run code; what it can do is lie.
A header whose offsets overlap, leave gaps, run past the end of the file or
disagree with dtype x shape is the raw material for parser-differential and
out-of-bounds bugs in loaders that trust it. We enforce what the Rust crate
(``safetensors/src/tensor.rs``: ``read_metadata`` and ``Metadata::validate``)
enforces, checked against the installed library:

* 8-byte little-endian header length N, with 8 + N <= file size and
  N <= 100,000,000 (the crate's MAX_HEADER_SIZE);
* the header is UTF-8 JSON holding an object; ``__metadata__`` is absent,
  null, or a str -> str map;
* every tensor has a known dtype, a shape of non-negative integers and
  ``data_offsets`` [begin, end] with begin <= end;
* (end - begin) == prod(shape) x dtype bits / 8, and sub-byte dtypes (F4, F6)
  must end on a byte boundary;
* sorted by offsets, tensors tile the data section exactly: the first starts
  at 0, each starts where the previous ended (no overlap, no gap), and the
  last ends at the end of the file (no trailing bytes).

We are stricter in two places, because two parsers that disagree are the
attack: duplicate JSON keys (the crate keeps the last silently) and NaN or
Infinity literals (which Python's json accepts and serde rejects) are errors.
Tensor bytes are never read.
"""

from __future__ import annotations

import json
import math
from typing import Any

from stoa.govern.scan.budget import BudgetExceeded
from stoa.govern.scan.context import Blob, Context

# Bits per element for every dtype the safetensors library (0.8) knows.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8,
    "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}  # fmt: skip
CRATE_MAX_HEADER = 100_000_000
_U64 = 1 << 64


class HeaderError(ValueError):
    """The header breaks a rule the safetensors library enforces (a parse error)."""


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """A plausible header length followed by the start of a JSON object."""
    if len(head) < 9 or size < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:].lstrip(b" \t\r\n")[:1] == b"{"


def scan_safetensors(blob: Blob, ctx: Context) -> None:
    """Validate a safetensors header without reading any tensor data."""
    try:
        header, n = read_header(blob, ctx)
        validate_header(header, data_size=blob.size - 8 - n)
    except HeaderError as exc:
        ctx.parse_error(blob.label, str(exc))
        return
    except BudgetExceeded as exc:
        ctx.add("safetensors-budget", "medium", str(exc), blob.label, reason="budget")
        return
    metadata = header.get("__metadata__") or {}
    if "license" in metadata:
        ctx.license_hints.append((metadata["license"], "safetensors __metadata__.license"))


def read_header(blob: Blob, ctx: Context) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and its length N, after the size checks."""
    if blob.size < 8:
        raise HeaderError(f"file is {blob.size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(blob.head(8), "little")
    if n > blob.size - 8:
        raise HeaderError(
            f"header length {n:,} runs past the end of the file ({blob.size:,} bytes)"
        )
    if n > CRATE_MAX_HEADER:
        raise HeaderError(f"header length {n:,} exceeds the safetensors limit of 100,000,000")
    if n > ctx.policy.limits.max_json:
        raise BudgetExceeded("safetensors header bytes", ctx.policy.limits.max_json)
    ctx.budget.spend_bytes(8 + n)
    blob.stream.seek(8)
    return _parse_json(blob.stream.read(n)), n


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not UTF-8 (byte {8 + exc.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise HeaderError("header JSON is nested too deeply") from None
    except ValueError as exc:
        raise HeaderError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise HeaderError(f"header is a JSON {type(header).__name__}, not an object")
    return header


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise HeaderError(f"header repeats the key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise HeaderError(f"header uses the non-JSON literal {name}")


def validate_header(header: dict[str, Any], data_size: int) -> None:
    """Apply the crate's rules to a parsed header; ``data_size`` is the bytes after it."""
    _check_metadata(header.get("__metadata__"))
    spans = []
    for name, info in header.items():
        if name != "__metadata__":
            begin, end = _check_tensor(name, info)
            if end > data_size:
                raise HeaderError(
                    f"tensor {name!r} ends at byte {end:,} of the data section, past the "
                    f"end of the file (the data section holds {data_size:,} bytes)"
                )
            spans.append((begin, end, name))
    _check_tiling(sorted(spans), data_size)


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise HeaderError("__metadata__ must be an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise HeaderError(f"__metadata__[{key!r}] is a {type(value).__name__}, not a string")


def _check_tensor(name: str, info: Any) -> tuple[int, int]:
    """(begin, end) of a tensor whose dtype, shape and byte length agree."""
    if not isinstance(info, dict):
        raise HeaderError(f"tensor {name!r} is a {type(info).__name__}, not an object")
    dtype = info.get("dtype")
    if dtype not in DTYPE_BITS:
        raise HeaderError(f"tensor {name!r} has unknown dtype {dtype!r}")
    shape = _u64_list(name, "shape", info.get("shape"))
    offsets = _u64_list(name, "data_offsets", info.get("data_offsets"))
    if len(offsets) != 2:
        raise HeaderError(f"tensor {name!r} data_offsets must be [begin, end]")
    begin, end = offsets
    if begin > end:
        raise HeaderError(f"tensor {name!r} data_offsets [{begin}, {end}] end before they begin")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits // 8 >= _U64:
        raise HeaderError(f"tensor {name!r} shape {shape} overflows 64 bits")
    if bits % 8:
        raise HeaderError(f"tensor {name!r} ({dtype} {shape}) does not end on a byte boundary")
    if end - begin != bits // 8:
        raise HeaderError(
            f"tensor {name!r} is {dtype} {shape} = {bits // 8:,} bytes, but data_offsets "
            f"[{begin}, {end}] span {end - begin:,} bytes"
        )
    return begin, end


def _u64_list(name: str, key: str, value: Any) -> list[int]:
    ok = isinstance(value, list) and all(type(v) is int and 0 <= v < _U64 for v in value)
    if not ok:
        raise HeaderError(f"tensor {name!r} {key} must be a list of non-negative integers")
    return value


def _check_tiling(spans: list[tuple[int, int, str]], data_size: int) -> None:
    """Sorted by offset, tensors must cover the data section with no overlap and no gap."""
    cursor, previous = 0, None
    for begin, end, name in spans:
        if begin < cursor:
            raise HeaderError(
                f"tensor {name!r} [{begin}, {end}] overlaps tensor {previous!r}, "
                f"which ends at byte {cursor:,}"
            )
        if begin > cursor:
            after = f"after tensor {previous!r}" if previous else "at the start of the data"
            raise HeaderError(f"gap of {begin - cursor:,} bytes {after} before tensor {name!r}")
        cursor, previous = end, name
    if cursor != data_size:
        raise HeaderError(
            f"tensors cover {cursor:,} bytes but the data section holds {data_size:,}: "
            "the file has bytes no tensor accounts for"
        )
