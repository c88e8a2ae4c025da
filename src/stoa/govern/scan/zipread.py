"""A lenient, bounded zip reader that finds every member some real loader could load.

Why not :mod:`zipfile`: it refuses archives that PyTorch loads. ``torch.load`` reads
zips with miniz, which takes the member list, method and sizes from the central
directory, finds the data through the *local* header's name and extra lengths, and
skips CRC checks (pytorch/pytorch#28858). zipfile raises on a CRC mismatch or on a
local name that differs from the central one, so a scanner built on it skips
members that torch still loads. Streaming readers (``unzip`` recovery, Java's
ZipInputStream) go the other way and walk local headers, so bytes the central
directory does not list can be loaded too. This reader reports the union: every
listed member read the way miniz reads it, plus every local header found outside
listed data, each with the anomalies that made it unusual.

Nothing is decompressed up front: ``ZipMember.open`` streams, and every byte it
produces is charged to the scan budget, so a zip bomb ends in ``BudgetExceeded``
rather than in exhausted memory. The bounded readers (``Window``,
``DecodingReader``) are shared with the other archive formats.
"""

from __future__ import annotations

import bisect
import bz2
import io
import lzma
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import BinaryIO, Protocol, cast

from stoa.govern.scan.budget import Budget, BudgetExceeded

try:  # Deflate64 (method 9) has no stdlib decoder.
    import inflate64
except ImportError:  # pragma: no cover - installed with py7zr
    inflate64 = None

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
EOCD64_SIG = b"PK\x06\x06"
EOCD64_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_HEADERS = 0x2000
_ENCRYPTION_FLAGS = FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS
METHOD_STORED = 0
METHOD_AES = 99

_U32 = 0xFFFFFFFF
_ZIP64_EXTRA = 0x0001
_MAX_EOCD_SEARCH = _EOCD.size + 0xFFFF  # the record plus the longest comment
_CHUNK = 1 << 20
# Compressed input per decoder call. Small, because a decoder that fails mid-call loses
# that call's output, and a loader reading the same stream would already have used it.
_INPUT_CHUNK = 64 * 1024
_DESCRIPTOR_SIZES = (12, 16, 20, 24)  # with/without signature, 32/64-bit sizes
_MAX_STALLS = 1000

# Anomalies that keep a member's bytes from being read at all.
# An "encrypted" member still blocks, but its bytes are scanned first: a loader that
# ignores the flag (as some miniz versions did) reads them as plain data.
CANNOT_OPEN = frozenset({"unsupported-method", "missing-local-header"})
# Anomalies that should block: the content is not (fully) deliverable, or readers disagree
# on how to decode it. Every other anomaly is a note; the member's content was scanned.
BLOCKING = CANNOT_OPEN | frozenset({"encrypted", "truncated", "method-conflict"})


class DecodeError(Exception):
    """Raised when member bytes cannot be read or decoded; the caller reports a parse error."""


@dataclass(frozen=True)
class Anomaly:
    """Something a strict reader would reject. ``code`` is stable; ``message`` is for people."""

    code: str
    message: str


class Decoder(Protocol):
    """The incremental-decompressor shape of ``bz2``/``lzma``/``zstd``/``lz4.frame``."""

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


# --------------------------------------------------------------------------- readers


class Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of ``stream`` from ``start``.

    A stored zip member or a tar member is already plain bytes inside the archive,
    so a view hands it to the dispatcher without a copy, even a 10 GB tensor blob.
    Every read seeks first, so views over one stream never disturb each other or
    the archive reader. Bytes read are charged to ``budget`` when one is given.
    While reads stay sequential from offset 0 the view keeps a CRC-32 and passes it
    to ``on_end`` at the end, so a stored member's CRC is checked without a second pass.
    """

    def __init__(
        self,
        stream: BinaryIO,
        start: int,
        length: int,
        budget: Budget | None = None,
        on_end: Callable[[int], None] | None = None,
    ):
        super().__init__()
        self._stream = stream
        self._start = start
        self._length = max(0, length)
        self._budget = budget
        self._on_end = on_end
        self._pos = 0
        self._crc = 0
        self._crc_pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self._pos
        if remaining <= 0:
            return b""
        n = remaining if size is None or size < 0 else min(size, remaining)
        self._stream.seek(self._start + self._pos)
        data = self._stream.read(n)
        if self._budget is not None:
            self._budget.spend_bytes(len(data))
        self._track_crc(data)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _track_crc(self, data: bytes) -> None:
        if self._on_end is None or self._pos != self._crc_pos:
            return
        self._crc = zlib.crc32(data, self._crc)
        self._crc_pos += len(data)
        if self._crc_pos >= self._length:
            on_end, self._on_end = self._on_end, None
            on_end(self._crc)


class DecodingReader(io.RawIOBase):
    """Streams the decompressed bytes of ``source``; never holds more than one chunk.

    Each byte produced is charged to ``budget`` before it is returned, so a
    decompression bomb raises ``BudgetExceeded`` while memory stays flat.
    ``next_stream`` (given the bytes after one stream's end) says whether another
    stream follows, for multi-member gzip, bz2, xz, lz4 and zstd files. After the last
    stream, ``leftover`` counts the input bytes nobody decoded (``leftover_nonzero``:
    whether any is not padding). ``expected_size`` lets a stream without an end marker
    (raw LZMA in zips) finish when its input does. Corrupt input raises
    ``DecodeError`` after everything decodable has been returned.
    """

    def __init__(
        self,
        source: BinaryIO,
        new_decoder: Callable[[], Decoder],
        budget: Budget,
        *,
        expected_size: int | None = None,
        next_stream: Callable[[bytes], bool] | None = None,
        on_end: Callable[[DecodingReader], None] | None = None,
    ):
        super().__init__()
        self._source = source
        self._new_decoder = new_decoder
        self._budget = budget
        self._expected = expected_size
        self._next_stream = next_stream
        self._on_end = on_end
        self._decoder = new_decoder()
        self._pending = b""
        self._done = False
        self._stalls = 0
        self.produced = 0
        self.crc = 0
        self.streams = 1
        self.leftover = 0
        self.leftover_nonzero = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        while not self._done and size > 0:
            out = self._step(size)
            if out:
                self._budget.spend_bytes(len(out))
                self.crc = zlib.crc32(out, self.crc)
                self.produced += len(out)
                return out
        return b""

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _step(self, size: int) -> bytes:
        decoder = self._decoder
        if decoder.eof:
            self._stream_ended()
            return b""
        try:
            if decoder.needs_input:
                data, self._pending = self._pending or self._source.read(_INPUT_CHUNK), b""
                if not data:
                    self._input_ended()
                    return b""
                return decoder.decompress(data, size)
            out = decoder.decompress(b"", size)
        except DecodeError:
            raise
        except Exception as exc:  # each codec raises its own type (zlib.error, OSError, ...)
            self._corrupt(exc)
            return b""
        self._stalls = 0 if out or decoder.eof else self._stalls + 1
        if self._stalls > _MAX_STALLS:
            self._corrupt(RuntimeError("the decoder stopped making progress"))
        return out

    def _corrupt(self, exc: Exception) -> None:
        """Data past the declared size is junk nobody loads; before it, corruption blocks."""
        self._done = True
        if self._expected is not None and self.produced >= self._expected:
            self._finish()
            return
        raise DecodeError(f"corrupt compressed data after {self.produced:,} bytes: {exc}")

    def _stream_ended(self) -> None:
        rest = (self._decoder.unused_data or b"") + self._pending  # lz4: None until the end
        self._pending = b""
        if self._next_stream is not None:
            rest = self._top_up(rest, 16)
            if rest and self._next_stream(rest):
                self._decoder = self._new_decoder()
                self._pending = rest
                self.streams += 1
                return
        self._count_leftover(rest)
        while chunk := self._source.read(_CHUNK):
            self._count_leftover(chunk)
        self._finish()

    def _input_ended(self) -> None:
        self._done = True
        if self._expected is not None and self.produced >= self._expected:
            self._finish()
            return
        raise DecodeError(
            f"compressed data ends after {self.produced:,} decoded bytes, before its stream does"
        )

    def _top_up(self, rest: bytes, n: int) -> bytes:
        while len(rest) < n and (more := self._source.read(n - len(rest))):
            rest += more
        return rest

    def _count_leftover(self, data: bytes) -> None:
        self.leftover += len(data)
        self.leftover_nonzero = self.leftover_nonzero or bool(data.strip(b"\0"))

    def _finish(self) -> None:
        self._done = True
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self)


# --------------------------------------------------------------------------- decoders


class ZlibDecoder:
    """``zlib.decompressobj`` in the ``Decoder`` shape (raw deflate, zlib or gzip by ``wbits``)."""

    def __init__(self, wbits: int):
        self._obj = zlib.decompressobj(wbits)
        self._limited = False

    @property
    def eof(self) -> bool:
        return self._obj.eof

    @property
    def needs_input(self) -> bool:
        return not self._obj.unconsumed_tail and not self._limited

    @property
    def unused_data(self) -> bytes:
        return self._obj.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        buffered = self._obj.unconsumed_tail + data
        out = self._obj.decompress(buffered, max(0, max_length))
        # Output that filled max_length may leave more queued inside zlib.
        self._limited = max_length > 0 and len(out) >= max_length
        return out


class GzipDecoder:
    """One gzip member: header parsed here, raw deflate, then the CRC and size trailer.

    Why not zlib's gzip mode: it checks the trailer inside the call that returns the
    last output, so a bad CRC would lose that output. Python's gzip module, which
    loaders use, returns all the data and fails after it, when a pickle read from it
    has already run; so the data is delivered first and the trailer checked after.
    """

    _MAX_HEADER = 1 << 20

    def __init__(self) -> None:
        self._head = b""
        self._body: ZlibDecoder | None = None
        self._trailer = b""
        self._crc = 0
        self._size = 0
        self._eof = False

    @property
    def eof(self) -> bool:
        return self._eof

    @property
    def needs_input(self) -> bool:
        if self._body is None:
            return True
        if not self._body.eof:
            return self._body.needs_input
        return len(self._trailer) < 8

    @property
    def unused_data(self) -> bytes:
        return self._trailer[8:] if self._eof else b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._body is None:
            data = self._start(data)
            if self._body is None:
                return b""
        out = b""
        if not self._body.eof:
            out = self._body.decompress(data, max_length)
            self._crc = zlib.crc32(out, self._crc)
            self._size += len(out)
            data = self._body.unused_data if self._body.eof else b""
        if self._body.eof:
            self._trailer += data
            if len(self._trailer) >= 8 and not out:  # output first, the verdict after
                self._check_trailer()
        return out

    def _start(self, data: bytes) -> bytes:
        self._head += data
        end = _gzip_header_end(self._head)
        if end is None:
            if len(self._head) > self._MAX_HEADER:
                raise DecodeError("gzip header is longer than 1 MiB")
            return b""
        self._body = ZlibDecoder(-15)
        rest, self._head = self._head[end:], b""
        return rest

    def _check_trailer(self) -> None:
        self._eof = True
        crc, size = struct.unpack_from("<II", self._trailer)
        if crc != self._crc or size != self._size & _U32:
            raise DecodeError(
                f"gzip trailer says CRC {crc:08x} and {size:,} bytes, "
                f"the data has {self._crc:08x} and {self._size:,}"
            )


def _gzip_header_end(head: bytes) -> int | None:
    """Where the deflate data starts after a gzip header, or None until enough is read."""
    if len(head) < 10:
        return None
    if head[:3] != b"\x1f\x8b\x08":
        raise DecodeError("not a gzip member (bad magic or method)")
    flags, pos = head[3], 10
    if flags & 0x04:  # FEXTRA
        if len(head) < pos + 2:
            return None
        pos += 2 + int.from_bytes(head[pos : pos + 2], "little")
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = head.find(b"\0", pos)
            if end < 0:
                return None
            pos = end + 1
    if flags & 0x02:  # FHCRC
        pos += 2
    return pos if len(head) >= pos else None


class _Deflate64Decoder:
    """inflate64 has no output limit, so it is fed small pieces: at most ~4 MiB out per call."""

    _PIECE = 4096

    def __init__(self) -> None:
        assert inflate64 is not None
        self._inflater = inflate64.Inflater()
        self._input = b""
        self._output = bytearray()

    @property
    def eof(self) -> bool:
        return bool(self._inflater.eof) and not self._output

    @property
    def needs_input(self) -> bool:
        return not self._input and not self._output

    @property
    def unused_data(self) -> bytes:
        return self._input if self._inflater.eof else b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        self._input += data
        while not self._output and self._input and not self._inflater.eof:
            piece, self._input = self._input[: self._PIECE], self._input[self._PIECE :]
            self._output += self._inflater.inflate(piece)
        n = len(self._output) if max_length < 0 else max_length
        out = bytes(self._output[:n])
        del self._output[:n]
        return out


class _ZipLzmaDecoder:
    """Zip method 14: a 4-byte version/size header and the LZMA properties, then raw LZMA1."""

    def __init__(self) -> None:
        self._head = b""
        self._lzma: lzma.LZMADecompressor | None = None

    @property
    def eof(self) -> bool:
        return self._lzma is not None and self._lzma.eof

    @property
    def needs_input(self) -> bool:
        return self._lzma is None or self._lzma.needs_input

    @property
    def unused_data(self) -> bytes:
        return self._lzma.unused_data if self._lzma is not None else b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._lzma is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            end = 4 + int.from_bytes(self._head[2:4], "little")
            if len(self._head) < end:
                return b""
            lzma1 = _lzma1_filter(self._head[4:end])
            self._lzma = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
            data, self._head = self._head[end:], b""
        return self._lzma.decompress(data, max_length)


def _lzma1_filter(props: bytes) -> dict[str, int]:
    """Decode the 5 LZMA property bytes: ``(pb * 5 + lp) * 9 + lc`` then the dictionary size."""
    if len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise DecodeError(f"invalid LZMA properties {props.hex()}")
    pb, rest = divmod(props[0], 45)
    lp, lc = divmod(rest, 9)
    dict_size = max(4096, int.from_bytes(props[1:5], "little"))  # liblzma's minimum
    return {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}


def _zstd_module() -> ModuleType | None:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    return cast(ModuleType, zstd)


def zstd_decoder() -> Decoder:
    """A zstd decoder, or ``DecodeError`` when no zstd library is installed (fail closed)."""
    module = _zstd_module()
    if module is None:
        raise DecodeError("zstd data cannot be read: install backports.zstd")
    return cast(Decoder, module.ZstdDecompressor())


def _zip_decoders() -> dict[int, Callable[[], Decoder]]:
    decoders: dict[int, Callable[[], Decoder]] = {
        8: lambda: ZlibDecoder(-15),
        12: bz2.BZ2Decompressor,
        14: _ZipLzmaDecoder,
        95: lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ),
    }
    if inflate64 is not None:
        decoders[9] = _Deflate64Decoder
    if _zstd_module() is not None:
        decoders[93] = zstd_decoder
    return decoders


ZIP_DECODERS = _zip_decoders()


# --------------------------------------------------------------------------- members


@dataclass(eq=False)
class ZipMember:
    """One member as this reader will deliver it.

    ``name`` comes from the central directory (from the local header for members
    the central directory does not list); ``local_name`` is set only when the local
    header names the member differently. ``compressed_size`` is the span of bytes
    read, which is the larger of the central and local sizes when they disagree, so
    both readings are covered. ``crc_ok``, ``actual_size`` and ``slack`` are filled
    in once the member has been read to its end.
    """

    name: str
    local_name: str | None
    offset: int
    data_offset: int
    compressed_size: int
    size: int | None
    method: int
    flags: int
    crc: int | None
    listed: bool
    anomalies: list[Anomaly] = field(default_factory=list)
    duplicate_of: str | None = None
    crc_ok: bool | None = None
    actual_size: int | None = None
    slack: tuple[int, int] | None = None
    local_end: int | None = field(default=None, repr=False)
    _stream: BinaryIO | None = field(default=None, repr=False)
    _budget: Budget | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        return [self.name] if self.local_name is None else [self.name, self.local_name]

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.compressed_size == 0

    @property
    def can_open(self) -> bool:
        return not any(a.code in CANNOT_OPEN for a in self.anomalies)

    def note(self, code: str, message: str) -> None:
        self.anomalies.append(Anomaly(code, message))

    def open(self) -> BinaryIO:
        """A stream of the member's content: seekable for stored data, decoded otherwise."""
        blocked = [a for a in self.anomalies if a.code in CANNOT_OPEN]
        if blocked:
            raise DecodeError(blocked[0].message)
        if self._stream is None or self._budget is None:
            raise DecodeError("member is not attached to an archive stream")
        if self.method == METHOD_STORED:
            view = Window(
                self._stream, self.data_offset, self.compressed_size, self._budget, self._stored_end
            )
            return cast(BinaryIO, view)
        raw = Window(self._stream, self.data_offset, self.compressed_size)
        reader = DecodingReader(
            cast(BinaryIO, raw),
            ZIP_DECODERS[self.method],
            self._budget,
            expected_size=self.size,
            on_end=self._decoded_end,
        )
        return cast(BinaryIO, reader)

    def _stored_end(self, crc: int) -> None:
        self.actual_size = self.compressed_size
        self._check_crc(crc)

    def _decoded_end(self, reader: DecodingReader) -> None:
        self.actual_size = reader.produced
        self._check_crc(reader.crc)
        if self.size is not None and reader.produced != self.size:
            self.note(
                "size-mismatch",
                f"decoded {reader.produced:,} bytes where the header declares {self.size:,}",
            )
        if reader.leftover:
            start = self.data_offset + self.compressed_size - reader.leftover
            self.slack = (start, reader.leftover)
            self.note(
                "slack",
                f"{reader.leftover:,} bytes follow the end of the compressed stream "
                "inside the member's declared size",
            )

    def _check_crc(self, crc: int) -> None:
        if self.crc is None:
            return
        self.crc_ok = crc == self.crc
        if not self.crc_ok:
            self.note(
                "crc-mismatch",
                f"CRC-32 is {crc:08x}, the header says {self.crc:08x} "
                "(torch ignores CRCs, so the content was scanned)",
            )


@dataclass
class ZipIndex:
    """Everything found in one zip: members in central-directory order, then unlisted ones."""

    members: list[ZipMember]
    anomalies: list[Anomaly]
    prepended: int  # bytes before the first zip structure, which another format may claim
    has_central_directory: bool


def read_zip(stream: BinaryIO, size: int, budget: Budget) -> ZipIndex:
    """Index a zip without trusting any single structure in it."""
    return _Indexer(stream, size, budget).run()


def iter_zip_members(stream: BinaryIO, size: int, budget: Budget) -> Iterator[ZipMember]:
    """The members of ``read_zip`` (archive-level anomalies are on ``read_zip``'s index)."""
    yield from read_zip(stream, size, budget).members


def decode_name(raw: bytes, flags: int) -> str:
    """UTF-8 when flagged or valid, else cp437 (the zip default); never fails."""
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", "backslashreplace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _extra_field(extra: bytes, tag: int) -> bytes:
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, pos)
        if kind == tag:
            return extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return b""


def _apply_zip64(extra: bytes, values: list[int]) -> list[int]:
    """Replace each 0xFFFFFFFF value by the next 8-byte value of the zip64 extra, in order."""
    data = _extra_field(extra, _ZIP64_EXTRA)
    out, pos = [], 0
    for value in values:
        if value == _U32 and pos + 8 <= len(data):
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        out.append(value)
    return out


@dataclass(frozen=True)
class _Local:
    offset: int
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    name: bytes
    data_offset: int

    @property
    def sizes_known(self) -> bool:
        """With a data descriptor the local CRC and sizes are usually zero placeholders."""
        return not (self.flags & FLAG_DESCRIPTOR and self.csize == 0)


@dataclass(frozen=True)
class _Central:
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    local_offset: int
    name: bytes


@dataclass(frozen=True)
class _Directory:
    start: int  # offset of the first central record
    shift: int  # bytes prepended after the offsets were written
    entries: int


class _Indexer:
    """Builds a ``ZipIndex``: central directory first, then local headers it does not list."""

    def __init__(self, stream: BinaryIO, size: int, budget: Budget):
        self.stream = stream
        self.size = size
        self.budget = budget
        self.members: list[ZipMember] = []
        self.anomalies: list[Anomaly] = []
        self.by_offset: dict[int, ZipMember] = {}
        self.directory: _Directory | None = None

    def run(self) -> ZipIndex:
        self.directory = self._find_directory()
        if self.directory is None:
            self.anomalies.append(
                Anomaly(
                    "no-central-directory",
                    "no central directory: members were found from their local headers",
                )
            )
        else:
            self._read_directory(self.directory)
        self._walk_local_chains()
        self._sweep()
        self._mark_overlaps()
        prepended = self._prepended()
        if prepended:
            self.anomalies.append(
                Anomaly("prepended-data", f"{prepended:,} bytes precede the first zip structure")
            )
        return ZipIndex(self.members, self.anomalies, prepended, self.directory is not None)

    # -- low level

    def _read(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset >= self.size or n <= 0:
            return b""
        self.stream.seek(offset)
        data = self.stream.read(min(n, self.size - offset))
        self.budget.spend_bytes(len(data))
        return data

    def _add(self, member: ZipMember) -> None:
        if self.budget.members + len(self.members) >= self.budget.limits.max_members:
            raise BudgetExceeded("archive members", self.budget.limits.max_members)
        if len(self.members) % 1024 == 0:
            self.budget.check_time()
        member._stream, member._budget = self.stream, self.budget
        self.members.append(member)
        self.by_offset.setdefault(member.offset, member)

    def _read_local(self, offset: int) -> _Local | None:
        head = self._read(offset, _LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != LOCAL_SIG:
            return None
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = _LOCAL.unpack(head)
        data_offset = offset + _LOCAL.size + name_len + extra_len
        if data_offset > self.size:
            return None
        tail = self._read(offset + _LOCAL.size, name_len + extra_len)
        usize, csize = _apply_zip64(tail[name_len:], [usize, csize])
        return _Local(offset, flags, method, crc, csize, usize, tail[:name_len], data_offset)

    # -- central directory

    def _find_directory(self) -> _Directory | None:
        """Try end-of-central-directory records from the last one back (as miniz and zipfile do)."""
        tail_start = max(0, self.size - _MAX_EOCD_SEARCH)
        tail = self._read(tail_start, self.size - tail_start)
        end = len(tail)
        while (pos := tail.rfind(EOCD_SIG, 0, end)) >= 0:
            found = self._directory_at(tail_start + pos, tail[pos : pos + _EOCD.size])
            if found is not None:
                return found
            end = pos + len(EOCD_SIG) - 1
        return None

    def _directory_at(self, eocd_at: int, record: bytes) -> _Directory | None:
        if len(record) < _EOCD.size:
            return None
        _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack(record)
        end = eocd_at
        zip64 = self._zip64_end(eocd_at)
        if zip64 is not None:
            end, entries, cd_size, cd_offset = zip64
        for start in (cd_offset, end - cd_size):
            if self._read(start, 4) == CENTRAL_SIG:
                return _Directory(start, start - cd_offset, entries)
        if entries == 0 and cd_size == 0:
            return _Directory(end, 0, 0)
        return None

    def _zip64_end(self, eocd_at: int) -> tuple[int, int, int, int] | None:
        locator = self._read(eocd_at - _EOCD64_LOCATOR.size, _EOCD64_LOCATOR.size)
        if len(locator) < _EOCD64_LOCATOR.size or locator[:4] != EOCD64_LOCATOR_SIG:
            return None
        _, _, record_at, _ = _EOCD64_LOCATOR.unpack(locator)
        for at in (record_at, eocd_at - _EOCD64_LOCATOR.size - _EOCD64.size):
            record = self._read(at, _EOCD64.size)
            if len(record) == _EOCD64.size and record[:4] == EOCD64_SIG:
                _, _, _, _, _, _, _, entries, cd_size, cd_offset = _EOCD64.unpack(record)
                return at, entries, cd_size, cd_offset
        return None

    def _read_directory(self, directory: _Directory) -> None:
        """Read records while the signature holds: the declared count may understate them."""
        pos, count = directory.start, 0
        seen: set[bytes] = set()
        while len(head := self._read(pos, _CENTRAL.size)) == _CENTRAL.size:
            if head[:4] != CENTRAL_SIG:
                break
            fields = _CENTRAL.unpack(head)
            flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
            name_len, extra_len, comment_len, local_offset = (*fields[10:13], fields[16])
            tail = self._read(pos + _CENTRAL.size, name_len + extra_len)
            usize, csize, local_offset = _apply_zip64(tail[name_len:], [usize, csize, local_offset])
            record = _Central(flags, method, crc, csize, usize, local_offset, tail[:name_len])
            member = self._listed_member(record, directory.shift)
            if record.name in seen:
                member.note("duplicate-name", f"another member is also named {member.name!r}")
            seen.add(record.name)
            self._add(member)
            count += 1
            pos += _CENTRAL.size + name_len + extra_len + comment_len
        if count != directory.entries:
            self.anomalies.append(
                Anomaly(
                    "central-count-mismatch",
                    f"the central directory holds {count} records but declares {directory.entries}",
                )
            )

    def _listed_member(self, record: _Central, shift: int) -> ZipMember:
        local = self._read_local(record.local_offset)
        if local is None and shift:
            local = self._read_local(record.local_offset + shift)
        member = ZipMember(
            name=decode_name(record.name, record.flags),
            local_name=None,
            offset=record.local_offset,
            data_offset=record.local_offset,
            compressed_size=0,
            size=record.usize,
            method=record.method,
            flags=record.flags,
            crc=record.crc,
            listed=True,
        )
        if local is None:
            member.note(
                "missing-local-header", f"no local header at offset {record.local_offset:,}"
            )
            return member
        member.offset, member.data_offset = local.offset, local.data_offset
        self._compare_headers(member, record, local)
        member.compressed_size = self._span(member, record, local)
        if local.sizes_known:
            member.local_end = local.data_offset + local.csize
        self._check_readable(member, local.flags)
        return member

    def _compare_headers(self, member: ZipMember, record: _Central, local: _Local) -> None:
        if local.name != record.name:
            member.local_name = decode_name(local.name, local.flags)
            member.note(
                "name-mismatch",
                f"the local header names this member {member.local_name!r}, "
                f"the central directory {member.name!r}",
            )
        if local.method != record.method:
            member.note(
                "method-conflict",
                f"the local header says method {local.method}, the central directory "
                f"{record.method} (scanned as {record.method}, as torch reads it)",
            )
        if not local.sizes_known:
            return
        differing = [
            what
            for what, here, there in (
                ("CRC", local.crc, record.crc),
                ("compressed size", local.csize, record.csize),
                ("size", local.usize, record.usize),
            )
            if here != there and not (local.flags & FLAG_DESCRIPTOR and here == 0)
        ]
        if differing:
            member.note(
                "header-mismatch",
                f"local and central headers disagree on {', '.join(differing)}",
            )

    def _span(self, member: ZipMember, record: _Central, local: _Local) -> int:
        """Bytes to read: the largest size any header gives, so every reading is covered."""
        room = self.size - local.data_offset
        spans = {record.csize}
        if local.sizes_known:
            spans.add(local.csize)
        if record.method == METHOD_STORED:
            spans.add(record.usize)
        if record.csize > room:
            member.note(
                "truncated",
                f"the member needs {record.csize:,} bytes but the file ends after {room:,}",
            )
        span = min(max(spans), room)
        if span > record.csize:
            member.note(
                "size-mismatch",
                f"read {span:,} bytes where the central directory gives {record.csize:,}, "
                "to cover every header's reading",
            )
        return span

    def _check_readable(self, member: ZipMember, local_flags: int) -> None:
        if (member.flags | local_flags) & _ENCRYPTION_FLAGS or member.method == METHOD_AES:
            member.note(
                "encrypted",
                "the member is flagged encrypted, so what it really holds cannot be shown to be "
                "safe; its bytes were scanned as a loader ignoring the flag would read them",
            )
        if member.method != METHOD_STORED and member.method not in ZIP_DECODERS:
            member.note(
                "unsupported-method", f"compression method {member.method} cannot be decoded"
            )

    # -- local headers the central directory does not list

    def _walk_local_chains(self) -> None:
        """Follow local sizes from header to header, as streaming readers do."""
        queue = [m for m in self.members if m.local_end is not None]
        while queue:
            member = queue.pop()
            assert member.local_end is not None
            ends = [member.local_end]
            if member.flags & FLAG_DESCRIPTOR:
                ends += [member.local_end + n for n in _DESCRIPTOR_SIZES]
            for at in ends:
                if at in self.by_offset or self._read(at, 4) != LOCAL_SIG:
                    continue
                found = self._unlisted_member(at)
                if found is not None and found.local_end is not None:
                    queue.append(found)
                break

    def _sweep(self) -> None:
        """Find local headers in every byte that is not member data (fail closed)."""
        spans = _merge((m.data_offset, m.data_offset + m.compressed_size) for m in self.members)
        starts = [start for start, _ in spans]
        pos = 0
        while (hit := self._next_signature(pos, spans, starts)) is not None:
            member = self.by_offset.get(hit) or self._unlisted_member(hit)
            if member is None:
                pos = hit + 1
                continue
            pos = max(hit + 4, member.data_offset + member.compressed_size)

    def _next_signature(
        self, pos: int, spans: list[tuple[int, int]], starts: list[int]
    ) -> int | None:
        while pos < self.size:
            i = bisect.bisect_right(starts, pos) - 1
            if i >= 0 and pos < spans[i][1]:
                pos = spans[i][1]
                continue
            gap_end = starts[i + 1] if i + 1 < len(starts) else self.size
            hit = self._find(LOCAL_SIG, pos, gap_end)
            if hit is not None:
                return hit
            pos = gap_end
        return None

    def _find(self, signature: bytes, start: int, end: int) -> int | None:
        """First ``signature`` starting in ``[start, end)``, read in bounded chunks."""
        pos = start
        while pos < end:
            self.budget.check_time()
            chunk = self._read(pos, min(_CHUNK, end - pos) + len(signature) - 1)
            hit = chunk.find(signature)
            if hit >= 0 and pos + hit < end:
                return pos + hit
            pos += _CHUNK
        return None

    def _unlisted_member(self, offset: int) -> ZipMember | None:
        local = self._read_local(offset)
        if local is None:
            return None
        crc: int | None = local.crc
        length = local.csize
        if not local.sizes_known:
            length, crc = self._data_extent(local)
        member = ZipMember(
            name=decode_name(local.name, local.flags),
            local_name=None,
            offset=offset,
            data_offset=local.data_offset,
            compressed_size=min(length, self.size - local.data_offset),
            size=local.usize if local.sizes_known else None,
            method=local.method,
            flags=local.flags,
            crc=crc,
            listed=False,
            local_end=local.data_offset + length,
        )
        if self.directory is not None:
            member.note(
                "unlisted",
                f"a local header at offset {offset:,} is not in the central directory "
                "(streaming readers would load it)",
            )
        if local.data_offset + length > self.size:
            member.note("truncated", "the member's data runs past the end of the file")
        self._check_readable(member, local.flags)
        self._add(member)
        return member

    def _data_extent(self, local: _Local) -> tuple[int, int | None]:
        """Length and CRC of data whose sizes trail it in a data descriptor.

        The descriptor is the first ``PK\\x07\\x08`` whose size field equals its
        distance from the data; without one, the data runs to the next zip
        signature, else to the end of the file.
        """
        pos, start = local.data_offset, local.data_offset
        while pos < self.size:
            chunk = self._read(pos, _CHUNK + 24)
            for at in _signature_positions(chunk, _CHUNK):
                distance = pos + at - start
                if chunk[at : at + 4] == DESCRIPTOR_SIG:
                    crc, small, big = _descriptor_sizes(chunk[at + 4 : at + 24])
                    if distance in (small, big):
                        return distance, crc
                elif distance > 0:
                    return distance, None
            pos += _CHUNK
        return self.size - start, None

    # -- overlaps

    def _mark_overlaps(self) -> None:
        """Overlapping members are how zip bombs multiply one payload; identical ones scan once."""
        seen: dict[tuple[int, int, int], ZipMember] = {}
        reach, owner = -1, None
        for member in sorted(self.members, key=lambda m: (m.offset, not m.listed)):
            if not member.can_open or member.compressed_size == 0:
                continue
            key = (member.data_offset, member.compressed_size, member.method)
            first = seen.setdefault(key, member)
            if first is not member:
                member.duplicate_of = first.name
                member.note("duplicate-data", f"same data as {first.name!r}, scanned once")
                continue
            if member.offset < reach and owner is not None:
                member.note("overlap", f"the member overlaps the data of {owner.name!r}")
            end = member.data_offset + member.compressed_size
            if end > reach:
                reach, owner = end, member

    def _prepended(self) -> int:
        starts = [m.offset for m in self.members if not _has(m, "missing-local-header")]
        if self.directory is not None:
            starts.append(self.directory.start)
        first = min(starts, default=0)
        return first if 0 < first <= self.size else 0


def _has(member: ZipMember, code: str) -> bool:
    return any(a.code == code for a in member.anomalies)


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _signature_positions(chunk: bytes, limit: int) -> Iterator[int]:
    """Offsets below ``limit`` where a descriptor or header signature starts, in order."""
    pos = chunk.find(b"PK", 0, limit)
    while pos >= 0:
        if chunk[pos : pos + 4] in (DESCRIPTOR_SIG, LOCAL_SIG, CENTRAL_SIG, EOCD_SIG):
            yield pos
        pos = chunk.find(b"PK", pos + 1, limit)


def _descriptor_sizes(body: bytes) -> tuple[int, int, int]:
    """CRC, 32-bit compressed size and 64-bit compressed size of a descriptor body."""
    body = body.ljust(20, b"\0")
    crc, small = struct.unpack_from("<II", body)
    (big,) = struct.unpack_from("<Q", body, 4)
    return crc, small, big
