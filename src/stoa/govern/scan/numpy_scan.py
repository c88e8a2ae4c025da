"""NumPy ``.npy``: a literal header, then raw data or, for object arrays, a pickle.

``np.load(allow_pickle=True)`` unpickles object arrays, so their payload goes
through the pickle machine; numeric arrays are checked for a consistent size.
"""

from __future__ import annotations

import ast
import struct
from typing import Any

from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.pickle_vm import PickleMachine

_MAX_HEADER = 10_000 * 100  # numpy refuses headers over 10,000 bytes unless told otherwise


def _has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("|<>=").startswith("O")
    if isinstance(descr, list | tuple):
        return any(_has_object(part) for part in descr)
    return False


def scan_npy(blob: Blob, ctx: Context) -> None:
    stream = blob.stream
    stream.seek(6)
    version = stream.read(2)
    if len(version) < 2 or version[0] not in (1, 2, 3):
        ctx.parse_error(blob.label, f"npy: unsupported format version {tuple(version)}")
        return
    width = 2 if version[0] == 1 else 4
    raw_len = stream.read(width)
    if len(raw_len) < width:
        ctx.parse_error(blob.label, "npy: truncated header")
        return
    length = struct.unpack("<H" if width == 2 else "<I", raw_len)[0]
    if length > _MAX_HEADER or 8 + width + length > blob.size:
        ctx.parse_error(blob.label, f"npy: header length {length} is out of bounds")
        return
    raw = stream.read(length)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if version[0] == 3 else "latin-1"))
        descr, shape = header["descr"], header["shape"]
        if not isinstance(header.get("fortran_order"), bool):
            raise ValueError("fortran_order must be a bool")
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as exc:
        ctx.parse_error(blob.label, f"npy: the header is not a valid array description: {exc}")
        return
    data_at = 8 + width + length
    if _has_object(descr):
        ctx.add("npy-object-array", "info", "object array: its data is a pickle, scanned below",
                blob.label, reason="clean", offset=data_at)  # fmt: skip
        PickleMachine(ctx, stream, blob.size, blob.label).scan(data_at, streams=1)
        return
    _check_size(blob, ctx, descr, shape, data_at)


def _check_size(blob: Blob, ctx: Context, descr: Any, shape: Any, data_at: int) -> None:
    from numpy.lib.format import descr_to_dtype

    try:
        itemsize = descr_to_dtype(descr).itemsize
    except (ValueError, TypeError) as exc:
        ctx.parse_error(blob.label, f"npy: bad dtype {descr!r}: {exc}")
        return
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        ctx.parse_error(blob.label, f"npy: bad shape {shape!r}")
        return
    count = 1
    for dim in shape:
        count *= dim
    if data_at + count * itemsize > blob.size:
        ctx.parse_error(blob.label, f"npy: {count * itemsize:,} bytes of data declared, "
                        f"{blob.size - data_at:,} present")  # fmt: skip
