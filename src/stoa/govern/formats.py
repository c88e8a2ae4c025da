"""Name a file's format from its bytes. Extensions are never consulted.

The one detector behind both gates: ``detect`` is what the scanner dispatches on (a zip
is a zip until its members are read), and ``detect_format`` is what the format-allowlist
gate needs of a whole file (a zip refined to skops, PyTorch or Keras, and "pickle" for
anything a pickle parser accepts). Order matters in ``detect``: container magics first,
then formats whose loaders only parse data, then pickle. Anything left is tried as a
pickle by the scanner, because a loader such as ``torch.load`` would try exactly that.
"""

from __future__ import annotations

import json
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

# Formats whose loaders only parse data; loading them never executes code. The
# format-allowlist gate allows these alone when no scanner stands behind it.
SAFE_FORMATS = frozenset(
    {"skops", "xgboost-json", "xgboost-ubj", "lightgbm-text", "safetensors", "onnx"}
)
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
_WHOLE_FILE = 64 * 1024 * 1024
# ONNX ModelProto field numbers and their protobuf wire types.
_ONNX_MAX_FIELDS = 100_000
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


NPY_MAGIC = b"\x93NUMPY"
GGUF_MAGIC = b"GGUF"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SEVENZ_MAGIC = b"7z\xbc\xaf\x27\x1c"
# torch.save's legacy format starts with a pickled magic number (LONG1 of 10 bytes).
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
_DATA_MAGICS = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x5d\x00\x00", "lzma"),
)
# Formats whose loaders read data only: nothing in them can run code.
DATA_ONLY = frozenset(
    {"xgboost-json", "xgboost-ubj", "lightgbm-text", "json", "text", "sentencepiece", "empty"}
    | set(_DATA_MAGICS.values())
)
_SENTENCEPIECE_FIELDS = {field: 2 for field in range(1, 6)}  # all length-delimited


def detect(stream: BinaryIO, size: int) -> str:
    """The format of one file; 'maybe-pickle' when only a pickle parse can tell."""
    stream.seek(0)
    head = stream.read(4096)
    if size == 0:
        return "empty"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(SEVENZ_MAGIC):
        return "7z"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    for magic, name in _DATA_MAGICS.items():
        if head.startswith(magic):
            return name
    if _is_safetensors(stream, head, size):
        return "safetensors"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] <= 5:
        return "pickle"
    for magic, name in _COMPRESSIONS:
        if head.startswith(magic):
            return name
    if _is_zlib(head):
        return "zlib"
    if _is_tar(head):
        return "tar"
    if _has_zip_tail(stream, size):
        return "zip"  # junk prepended to a zip: loaders find the central directory at the end
    if head.startswith(b"tree\nversion=v"):
        return "lightgbm-text"
    if head[:1] == b"{" and b"learner" in head[:64] and not head.lstrip().startswith(b'{"'):
        return "xgboost-ubj"
    if _is_onnx_stream(stream, size):
        return "onnx"
    if _is_sentencepiece(stream, size):
        return "sentencepiece"
    text = _text_kind(stream, head, size)
    if text is not None:
        return text
    return "maybe-pickle"


def _is_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x78 and ((head[0] << 8) | head[1]) % 31 == 0


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    block = head[:512]
    try:
        stored = int(block[148:156].split(b"\x00")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return stored == computed


def _has_zip_tail(stream: BinaryIO, size: int) -> bool:
    """An end-of-central-directory record near the end; loaders search for it there."""
    tail = min(size, 65536 + 22)
    stream.seek(size - tail)
    return b"PK\x05\x06" in stream.read(tail)


def _is_safetensors(stream: BinaryIO, head: bytes, size: int) -> bool:
    """The shape of a safetensors header; its scanner parses it and reports a bad one."""
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8


def _safetensors_header_parses(stream: BinaryIO, size: int) -> bool:
    stream.seek(0)
    (length,) = struct.unpack("<Q", stream.read(8))
    if length > min(_SAFETENSORS_MAX_HEADER, size - 8):
        return False
    try:
        return isinstance(json.loads(stream.read(length)), dict)
    except ValueError:
        return False


def _is_sentencepiece(stream: BinaryIO, size: int) -> bool:
    """A SentencePiece ModelProto: only fields 1-5, all length-delimited, pieces present."""
    seen = top_level_fields(stream, size, _SENTENCEPIECE_FIELDS, 2_000_000)
    return seen is not None and 1 in seen


def _text_kind(stream: BinaryIO, head: bytes, size: int) -> str | None:
    """'json' or 'text' for UTF-8 text without NUL bytes; None for binary data."""
    if b"\x00" in head:
        return None
    stream.seek(0)
    data = stream.read(min(size, 64 * 1024 * 1024))
    if len(data) < size and b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except ValueError:
            return "text"
        if isinstance(doc, dict) and "learner" in doc and "version" in doc:
            return "xgboost-json"
        return "json"
    return "text"


def detect_format(path: Path) -> str:
    """One whole file's format, for a gate that has no scanner behind it: a SAFE_FORMATS
    member, a refined zip ('pytorch-zip', 'keras', 'zip'), 'pickle' (any bytes a pickle
    parser accepts, protocol 0 text included), another ``detect`` name, or 'unknown'."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        fmt = detect(stream, size)
        if fmt == "zip":
            return _zip_format(path)
        if fmt == "safetensors":
            return fmt if _safetensors_header_parses(stream, size) else "unknown"
        if fmt in ("text", "json", "maybe-pickle"):
            if _parses_as_pickle(stream, size):
                return "pickle"
            return "unknown" if fmt == "maybe-pickle" else fmt
    return fmt


def _parses_as_pickle(stream: BinaryIO, size: int) -> bool:
    """True when the bytes form a pickle stream; pickletools only parses, it never loads."""
    stream.seek(0)
    if size > _WHOLE_FILE:  # too large to parse whole: a protocol 2+ header is enough
        return stream.read(1) == b"\x80"
    try:
        ops = list(pickletools.genops(stream.read()))
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
