"""Archive formats: recurse into zip, tar and 7z members and into compressed streams.

Each member goes back to the dispatcher through ``ctx.scan_member``, which decides
its format by magic bytes, so a pickle named ``weights.txt`` is still scanned as a
pickle. Every member is counted against the member budget and scanned one level
deeper, so nesting is bounded by the depth budget. Nothing is extracted to disk
under its own name and links are never followed.

Budgets: readers charge every byte they hand over (decompressed, or read through a
view of stored data), and ``BudgetExceeded`` propagates; the dispatcher turns it
into a ``budget`` finding for the top-level file. Damage that keeps content from
being read in full becomes a parse error, after whatever could be read was scanned:
a pickle runs as it is read, so bytes before a corrupt point are still dangerous.
"""

from __future__ import annotations

import bz2
import lzma
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from stoa.govern.scan.budget import Budget, BudgetExceeded
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.findings import Severity
from stoa.govern.scan.zipread import (
    BLOCKING,
    DESCRIPTOR_SIG,
    EOCD_SIG,
    LOCAL_SIG,
    Anomaly,
    DecodeError,
    Decoder,
    DecodingReader,
    GzipDecoder,
    Window,
    ZipMember,
    ZlibDecoder,
    read_zip,
    zstd_decoder,
)

SPOOL_MEMORY = 64 * 1024 * 1024  # decoded members above this go to a temporary file
_COPY_CHUNK = 64 * 1024  # small: a decode error loses at most one chunk of output
_DECOMPRESSED = "<decompressed>"

GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
_ZLIB_FLAGS = (0x01, 0x5E, 0x9C, 0xDA)  # the FLG bytes zlib writes after CMF 0x78

# How a zip anomaly that did not stop the scan is reported (all reason "clean").
_NOTE_SEVERITY: dict[str, Severity] = {
    "crc-mismatch": "medium",
    "name-mismatch": "medium",
    "header-mismatch": "medium",
    "unlisted": "medium",
    "overlap": "medium",
    "slack": "medium",
    "no-central-directory": "medium",
    "duplicate-name": "low",
    "size-mismatch": "low",
    "prepended-data": "low",
    "central-count-mismatch": "low",
    "duplicate-data": "info",
}


def _lz4_decoder() -> Decoder:
    import lz4.frame  # a declared dependency, imported when an lz4 file shows up

    return cast(Decoder, lz4.frame.LZ4FrameDecompressor())


@dataclass(frozen=True)
class _Codec:
    new: Callable[[], Decoder]
    magic: bytes | None  # how a following stream starts; None where streams never concatenate


CODECS: dict[str, _Codec] = {
    "gzip": _Codec(GzipDecoder, GZIP_MAGIC),
    "bz2": _Codec(bz2.BZ2Decompressor, BZ2_MAGIC),
    "xz": _Codec(lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), XZ_MAGIC),
    "lzma": _Codec(lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), None),
    "zlib": _Codec(lambda: ZlibDecoder(15), None),
    "lz4": _Codec(_lz4_decoder, LZ4_MAGIC),
    "zstd": _Codec(zstd_decoder, ZSTD_MAGIC),
}


# --------------------------------------------------------------------------- detection


def looks_like_zip(head: bytes) -> bool:
    """A local header, an empty archive, or a spanning marker before a local header."""
    if head[:4] in (LOCAL_SIG, EOCD_SIG):
        return True
    return head[:4] in (DESCRIPTOR_SIG, b"PK00") and head[4:8] == LOCAL_SIG


def looks_like_tar(head: bytes) -> bool:
    """A valid header checksum; ustar/GNU magic is not required, so v7 tars count too."""
    if len(head) < 512:
        return False
    block = head[:512]
    field = block[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    stored = int(field, 8)
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - 256 * sum(1 for c in block[:148] + block[156:] if c > 0x7F)
    return stored in (unsigned, signed)


def looks_like_7z(head: bytes) -> bool:
    return head[:6] == SEVEN_ZIP_MAGIC


def compression_of(head: bytes) -> str | None:
    """The single-stream compressor ``head`` starts with, as a key of ``CODECS``."""
    for name, magic in (
        ("gzip", GZIP_MAGIC),
        ("xz", XZ_MAGIC),
        ("lz4", LZ4_MAGIC),
        ("zstd", ZSTD_MAGIC),
    ):
        if head.startswith(magic):
            return name
    if head.startswith(BZ2_MAGIC) and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        return "bz2"
    if len(head) >= 2 and head[0] == 0x78 and head[1] in _ZLIB_FLAGS:
        return "zlib" if (head[0] << 8 | head[1]) % 31 == 0 else None
    return "lzma" if _looks_like_lzma_alone(head) else None


def _looks_like_lzma_alone(head: bytes) -> bool:
    """The .lzma header: default properties, a 2^n or 3*2^n dictionary, a sane size field."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    size = int.from_bytes(head[5:13], "little")
    power = dict_size & (dict_size - 1) == 0
    three_powers = dict_size % 3 == 0 and (dict_size // 3) & (dict_size // 3 - 1) == 0
    return dict_size >= 4096 and (power or three_powers) and (size == 2**64 - 1 or size < 2**40)


# --------------------------------------------------------------------------- shared


def _descend(ctx: Context, label: str, stream: BinaryIO, size: int) -> str:
    """Hand a member to the dispatcher one level deeper; the depth is restored afterwards."""
    ctx.budget.check_time()
    ctx.budget.check_depth(ctx.depth + 1)
    ctx.depth += 1
    try:
        return ctx.scan_member(label, stream, size)
    finally:
        ctx.depth -= 1


@contextmanager
def _spooled(source: BinaryIO) -> Iterator[tuple[BinaryIO, int, str | None]]:
    """Copy a non-seekable stream into a seekable one (memory up to ``SPOOL_MEMORY``, then disk).

    Yields the copy, its size and the decode error that stopped the copy, if any:
    what was decoded before the error is still scanned.
    """
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        error = None
        try:
            while chunk := source.read(_COPY_CHUNK):
                spool.write(chunk)
        except DecodeError as exc:
            error = str(exc)
        size = spool.tell()
        spool.seek(0)
        yield cast(BinaryIO, spool), size, error


def is_escaping_path(name: str) -> bool:
    """Whether extracting ``name`` would write outside the target folder (``..``, absolute)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[0].isalpha() and path[1] == ":"):
        return True
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def _check_name(ctx: Context, label: str, name: str) -> None:
    if is_escaping_path(name):
        ctx.add(
            "archive-path-traversal",
            "high",
            f"member name {name!r} points outside the extraction folder",
            label,
        )


# --------------------------------------------------------------------------- zip


def scan_zip(blob: Blob, ctx: Context) -> None:
    """Scan every member any zip reader could load, and the bytes before the archive."""
    index = read_zip(blob.stream, blob.size, ctx.budget)
    for anomaly in index.anomalies:
        _report_anomaly(ctx, blob.label, anomaly)
    if not index.members and not index.has_central_directory:
        ctx.parse_error(blob.label, "no zip member or central directory was found")
    if index.prepended:
        # A file can be a pickle at offset 0 and a zip at its end; each loader sees its own.
        ctx.budget.add_member()
        view = Window(blob.stream, 0, index.prepended, ctx.budget)
        _descend(ctx, f"{blob.label}!/<prepended>", cast(BinaryIO, view), index.prepended)
    for member in index.members:
        _scan_zip_member(blob, ctx, member)


def _scan_zip_member(blob: Blob, ctx: Context, member: ZipMember) -> None:
    label = f"{blob.label}!/{member.name}"
    ctx.budget.add_member()
    for name in member.names:
        _check_name(ctx, label, name)
    if member.can_open and member.duplicate_of is None and not member.is_dir:
        _scan_zip_content(ctx, label, member)
    # After reading, so CRC, size and slack anomalies are known.
    for anomaly in member.anomalies:
        _report_anomaly(ctx, label, anomaly)
    if member.slack is not None:
        start, length = member.slack
        ctx.budget.add_member()
        view = Window(blob.stream, start, length, ctx.budget)
        _descend(ctx, f"{label}!/<slack>", cast(BinaryIO, view), length)


def _scan_zip_content(ctx: Context, label: str, member: ZipMember) -> None:
    stream = member.open()
    if member.method == 0:
        _descend(ctx, label, stream, member.compressed_size)
        return
    with _spooled(stream) as (content, size, error):
        _descend(ctx, label, content, size)
    if error is not None and not any(a.code in BLOCKING for a in member.anomalies):
        ctx.parse_error(label, error)  # a truncation anomaly already explains the error


def _report_anomaly(ctx: Context, label: str, anomaly: Anomaly) -> None:
    if anomaly.code in BLOCKING:
        ctx.parse_error(label, anomaly.message)
        return
    severity = _NOTE_SEVERITY.get(anomaly.code, "medium")
    ctx.add(f"zip-{anomaly.code}", severity, anomaly.message, label, reason="clean")


# --------------------------------------------------------------------------- tar


class _TarSource:
    """The archive stream as tarfile sees it: reads are charged and capped.

    Why the cap: tarfile reads a PAX or GNU long-name header whole, so a header
    claiming gigabytes would otherwise be read into memory.
    """

    def __init__(self, stream: BinaryIO, budget: Budget):
        self._stream = stream
        self._budget = budget
        self._cap = budget.limits.max_json

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._cap:
            raise BudgetExceeded("tar header bytes", self._cap)
        data = self._stream.read(n)
        self._budget.spend_bytes(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()


def scan_tar(blob: Blob, ctx: Context) -> None:
    """Scan regular members through views of the archive; links and devices are only noted."""
    blob.stream.seek(0)
    source = cast(IO[bytes], _TarSource(blob.stream, ctx.budget))
    try:
        # ignore_zeros: keep reading past end-of-archive blocks, as concatenated tars need.
        archive = tarfile.open(fileobj=source, mode="r:", ignore_zeros=True)  # noqa: SIM115
    except tarfile.TarError as exc:
        ctx.parse_error(blob.label, f"not a readable tar archive: {exc}")
        return
    with archive:
        for info in _tar_entries(archive, ctx, blob.label):
            if not _scan_tar_member(blob, ctx, archive, info):
                return  # the file ended inside this member: nothing follows


def _tar_entries(archive: tarfile.TarFile, ctx: Context, label: str) -> Iterator[tarfile.TarInfo]:
    count = 0
    while True:
        try:
            info = archive.next()
        except tarfile.TarError as exc:
            ctx.parse_error(label, f"tar archive is damaged after {count} member(s): {exc}")
            return
        if info is None:
            return
        count += 1
        yield info


def _scan_tar_member(
    blob: Blob, ctx: Context, archive: tarfile.TarFile, info: tarfile.TarInfo
) -> bool:
    """Scan or note one entry; False when the archive ends inside it."""
    label = f"{blob.label}!/{info.name}"
    ctx.budget.add_member()
    _check_name(ctx, label, info.name)
    if info.issym() or info.islnk():
        _report_link(ctx, label, info)
    elif info.ischr() or info.isblk() or info.isfifo():
        ctx.add(
            "archive-special-member", "info", "device or FIFO not extracted", label, reason="clean"
        )
    elif info.issparse():
        extracted = archive.extractfile(info)
        if extracted is not None:
            with _spooled(cast(BinaryIO, extracted)) as (content, size, _):
                _descend(ctx, label, content, size)
    elif not info.isdir():
        return _scan_tar_data(blob, ctx, label, info)
    return True


def _scan_tar_data(blob: Blob, ctx: Context, label: str, info: tarfile.TarInfo) -> bool:
    """Regular (and unknown-type) members are plain bytes in the archive: scan a view of them."""
    available = max(0, min(info.size, blob.size - info.offset_data))
    if available < info.size:
        ctx.parse_error(label, f"member needs {info.size:,} bytes, the file holds {available:,}")
    view = Window(blob.stream, info.offset_data, available, ctx.budget)
    _descend(ctx, label, cast(BinaryIO, view), available)
    return available == info.size


def _report_link(ctx: Context, label: str, info: tarfile.TarInfo) -> None:
    kind = "symbolic link" if info.issym() else "hard link"
    message = f"{kind} to {info.linkname!r} not followed"
    ctx.add("archive-link", "info", message, label, reason="clean")
    # A symlink resolves from its own folder; a hard link names a path from the archive root.
    target = info.linkname
    if info.issym() and not target.startswith("/"):
        target = posixpath.join(posixpath.dirname(info.name), target)
    if is_escaping_path(target):
        ctx.add(
            "archive-path-traversal",
            "high",
            f"{kind} target {info.linkname!r} points outside the extraction folder",
            label,
        )


# --------------------------------------------------------------------------- 7z


class _SevenZipMember:
    """Receives one member's bytes from py7zr (py7zr's ``Py7zIO`` interface, duck-typed)."""

    def __init__(self, name: str, owner: _SevenZipMembers):
        self.name = name
        self.owner = owner
        # Closed by the factory once scanned, or when the archive reader fails.
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self.done = False

    def write(self, data: bytes | bytearray) -> int:
        self.owner.ctx.budget.spend_bytes(len(data))
        return self.spool.write(data)

    def read(self, size: int | None = None) -> bytes:
        return self.spool.read(-1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.spool.seek(offset, whence)

    def flush(self) -> None:
        self.spool.flush()

    def size(self) -> int:
        return self.spool.tell()

    def close(self) -> None:
        """py7zr calls this once a member is complete (and not after a failure)."""
        self.owner.scan(self)


class _SevenZipMembers:
    """py7zr's ``WriterFactory``: scans each member as soon as it is decompressed.

    Why scan on completion: only one member is held at a time, instead of the
    whole extracted archive.
    """

    def __init__(self, label: str, ctx: Context):
        self.label = label
        self.ctx = ctx
        self.current: _SevenZipMember | None = None

    def create(self, filename: str) -> _SevenZipMember:
        self.ctx.budget.add_member()
        self.current = _SevenZipMember(filename, self)
        return self.current

    def scan(self, member: _SevenZipMember) -> None:
        if member.done:
            return
        member.done = True
        try:
            size = member.spool.seek(0, 2)
            member.spool.seek(0)
            _descend(self.ctx, f"{self.label}!/{member.name}", cast(BinaryIO, member.spool), size)
        finally:
            member.spool.close()

    def discard(self) -> None:
        if self.current is not None and not self.current.done:
            self.current.done = True
            self.current.spool.close()

    def scan_partial(self) -> str | None:
        """Scan what a failed extraction had written so far; returns that member's label."""
        member = self.current
        if member is None or member.done:
            return None
        self.scan(member)
        return f"{self.label}!/{member.name}"


def scan_7z(blob: Blob, ctx: Context) -> None:
    """Scan 7z members through py7zr, in memory or temporary files, never under their names."""
    import py7zr  # imported on first use: it loads many codec modules

    members = _SevenZipMembers(blob.label, ctx)
    blob.stream.seek(0)
    try:
        with py7zr.SevenZipFile(blob.stream, mode="r") as archive:
            for name in archive.getnames():
                _check_name(ctx, f"{blob.label}!/{name}", name)
            if archive.needs_password():
                ctx.parse_error(blob.label, "the 7z archive is encrypted and cannot be scanned")
                return
            archive.extractall(factory=cast(Any, members))
    except BudgetExceeded:
        members.discard()
        raise
    except Exception as exc:  # py7zr raises many types: Bad7zFile, CrcError, LZMAError, ...
        label = members.scan_partial() or blob.label
        ctx.parse_error(label, f"7z archive could not be read in full: {exc}")


# --------------------------------------------------------------------------- streams


def scan_compressed(blob: Blob, ctx: Context, codec: str) -> None:
    """Decode a single-stream compressed file (all its concatenated streams) and scan the result."""
    spec = CODECS[codec]
    label = f"{blob.label}!/{_DECOMPRESSED}"
    magic = spec.magic
    try:
        reader = DecodingReader(
            cast(BinaryIO, Window(blob.stream, 0, blob.size)),
            spec.new,
            ctx.budget,
            next_stream=None if magic is None else lambda rest: rest.startswith(magic),
        )
    except DecodeError as exc:
        ctx.parse_error(blob.label, str(exc))
        return
    ctx.budget.add_member()
    with _spooled(cast(BinaryIO, reader)) as (content, size, error):
        _descend(ctx, label, content, size)
    if error is not None:
        ctx.parse_error(label, f"{codec}: {error}")
    if reader.leftover_nonzero:
        ctx.add(
            "compressed-trailing-data",
            "low",
            f"{reader.leftover:,} bytes after the {codec} data were not decoded",
            blob.label,
            reason="clean",
        )
