"""Name a file's format from its bytes. Extensions are never consulted.

Order matters: container magics first, then formats whose loaders only parse
data, then pickle. Anything left is tried as a pickle by the dispatcher, because
a loader such as ``torch.load`` would try exactly that.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from stoa.govern.formats import _is_onnx_stream, top_level_fields

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
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8


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
        import json

        try:
            doc = json.loads(text)
        except ValueError:
            return "text"
        if isinstance(doc, dict) and "learner" in doc and "version" in doc:
            return "xgboost-json"
        return "json"
    return "text"
