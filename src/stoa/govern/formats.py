"""Recognise model file formats from their bytes, never from their names.

The model scanner extends this; until then the gate uses it to tell formats that
cannot run code when loaded from everything else.
"""

from __future__ import annotations

import json
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

# Formats whose loaders only parse data; loading them never executes code.
SAFE_FORMATS = frozenset(
    {"skops", "xgboost-json", "xgboost-ubj", "lightgbm-text", "safetensors", "onnx"}
)
# Files that ride along in a model folder and are read as plain data.
DATA_FORMATS = frozenset({"json", "text"})

_HEAD = 4096
_WHOLE_FILE = 64 * 1024 * 1024
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
# ONNX ModelProto field numbers and their protobuf wire types.
_ONNX_MAX_FIELDS = 100_000
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def detect_format(path: Path) -> str:
    """Name the format of one file: a SAFE_FORMATS member, 'pickle', 'json', 'text' or 'unknown'."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    size = path.stat().st_size
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(path)
    if _is_safetensors(path, head, size):
        return "safetensors"
    if head.startswith(b"tree\nversion=v"):
        return "lightgbm-text"
    if head[:1] == b"{" and b"learner" in head[:64] and not head.lstrip().startswith(b'{"'):
        return "xgboost-ubj"
    # Files up to _WHOLE_FILE are read once and parsed in memory; larger ones are only
    # sniffed from their head (and ONNX walked with seeks).
    data = path.read_bytes() if size <= _WHOLE_FILE else None
    if _parses_as_pickle(data, head):
        return "pickle"
    if _is_onnx(path, size):
        return "onnx"
    text = _as_text(data)
    if text is not None:
        try:
            doc = json.loads(text)
        except ValueError:
            return "text"
        if isinstance(doc, dict) and "learner" in doc and "version" in doc:
            return "xgboost-json"
        return "json"
    return "unknown"


def _parses_as_pickle(data: bytes | None, head: bytes) -> bool:
    """True when the bytes form a pickle stream; pickletools only parses, it never loads."""
    if data is None:  # too large to parse whole: a protocol 2+ header is enough to say so
        return head[:1] == b"\x80"
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # any parse failure means "not a pickle"
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def _zip_format(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            # Pickles first: an extra schema.json must not pass a PyTorch zip off as skops.
            if any(n.endswith(".pkl") for n in names):
                return "pytorch-zip"
            if "schema.json" in names and _is_skops(archive, names):
                return "skops"
    except (zipfile.BadZipFile, OSError):
        return "unknown"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return "keras"
    return "zip"


def _is_skops(archive: zipfile.ZipFile, names: set[str]) -> bool:
    """skops writes schema.json and plain .npy arrays; an object array would carry a pickle."""
    if not all(n == "schema.json" or n.endswith((".npy", ".json")) for n in names):
        return False
    for name in names:
        if name.endswith(".npy"):
            with archive.open(name) as member:
                header = member.read(256)
            if b"'descr': '|O'" in header or b"'descr': 'O'" in header:
                return False
    return True


def _is_safetensors(path: Path, head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if not (2 <= length <= min(_SAFETENSORS_MAX_HEADER, size - 8)) or head[8:9] != b"{":
        return False
    with open(path, "rb") as handle:
        handle.seek(8)
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return False
    return isinstance(header, dict)


def _read_varint(handle: BinaryIO) -> int:
    value = shift = 0
    while shift <= 63:
        byte = handle.read(1)
        if not byte:
            raise ValueError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
    raise ValueError("varint too long")


def _is_onnx(path: Path, size: int) -> bool:
    with open(path, "rb") as handle:
        return _is_onnx_stream(handle, size)


def _is_onnx_stream(handle: BinaryIO, size: int) -> bool:
    """An ONNX model's top level holds only ModelProto fields, and a graph."""
    seen = top_level_fields(handle, size, _ONNX_FIELDS, _ONNX_MAX_FIELDS)
    return seen is not None and {1, 7} <= seen


def top_level_fields(
    handle: BinaryIO, size: int, wire_types: dict[int, int], max_fields: int
) -> set[int] | None:
    """The field numbers of a protobuf message that fills the file, or None when a field
    is not in ``wire_types`` (number -> wire type) or the bytes are not such a message.

    Only field headers are read: a length-delimited field is skipped with a seek, so a
    multi-GB file costs a few reads, never its size in memory.
    """
    seen: set[int] = set()
    handle.seek(0)
    try:
        for _ in range(max_fields):
            if handle.tell() >= size:
                return seen
            key = _read_varint(handle)
            field, wire = key >> 3, key & 7
            if wire_types.get(field) != wire:
                return None
            if wire == 0:
                _read_varint(handle)
            else:
                length = _read_varint(handle)
                if handle.tell() + length > size:
                    return None
                handle.seek(length, 1)
            seen.add(field)
    except ValueError:
        return None
    return None  # more top-level fields than any real file has


def _as_text(data: bytes | None) -> str | None:
    if data is None or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
