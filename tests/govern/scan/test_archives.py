"""Archive scanning: every member a real loader could load reaches the dispatcher.

All samples are built here, byte by byte where a zip has to be malformed in a way
no writer produces. A stub dispatcher records each member's label and content and
recurses into nested archives, so the tests see exactly what a scan would see.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import inflate64
import lz4.frame
import py7zr
import pytest
from backports import zstd

from stoa.govern.scan.archives import (
    compression_of,
    looks_like_7z,
    looks_like_tar,
    looks_like_zip,
    scan_7z,
    scan_compressed,
    scan_tar,
    scan_zip,
)
from stoa.govern.scan.budget import Budget, BudgetExceeded, Limits
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.policy import Policy

PAYLOAD = b"\x80\x04\x95 payload that stands in for a pickle " * 20

# --------------------------------------------------------------------------- harness


class Recorder:
    """A stub dispatcher: records (label -> content) and recurses into archives by magic."""

    def __init__(self) -> None:
        self.seen: dict[str, bytes] = {}

    def __call__(self, ctx: Context, label: str, stream: BinaryIO, size: int) -> str:
        stream.seek(0)
        data = stream.read(min(size, 1 << 20))
        self.seen[label] = data
        blob = Blob(label, stream, size)
        if looks_like_zip(data):
            scan_zip(blob, ctx)
        elif looks_like_7z(data):
            scan_7z(blob, ctx)
        elif codec := compression_of(data):
            scan_compressed(blob, ctx, codec)
        elif looks_like_tar(data):
            scan_tar(blob, ctx)
        return "x"


def run_scan(
    data: bytes,
    scanner: Callable[[Blob, Context], None] = scan_zip,
    limits: Limits | None = None,
) -> tuple[Context, dict[str, bytes]]:
    recorder = Recorder()
    ctx = Context(policy=Policy(version="test"), budget=Budget(limits or Limits()))
    ctx.member_scanner = recorder
    scanner(Blob("f", io.BytesIO(data), len(data)), ctx)
    assert ctx.depth == 0
    return ctx, recorder.seen


def rules(ctx: Context) -> dict[str, list[str]]:
    """rule -> messages, so a test can check both what was found and what it says."""
    found: dict[str, list[str]] = {}
    for finding in ctx.findings:
        found.setdefault(finding.rule, []).append(finding.message)
    return found


def blocking(ctx: Context) -> list[str]:
    return [f.rule for f in ctx.findings if f.blocks]


# --------------------------------------------------------------------------- zip builder


def compress(method: int, data: bytes) -> bytes:
    if method == 0:
        return data
    if method == 8:
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        return deflater.compress(data) + deflater.flush()
    if method == 9:
        deflate64 = inflate64.Deflater()
        return deflate64.deflate(data) + deflate64.flush()
    if method == 12:
        return bz2.compress(data)
    if method == 93:
        return zstd.compress(data)
    if method == 95:
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    return data  # methods nobody decodes: the bytes do not matter


@dataclass
class Entry:
    """One member for ``build_zip``; every field can make it lie in one way."""

    name: bytes
    data: bytes = PAYLOAD
    method: int = 0
    flags: int = 0
    local_name: bytes | None = None
    crc: int | None = None  # written instead of the real CRC
    listed: bool = True  # False: a local header only
    descriptor: bool = False  # zero local sizes, a data descriptor after the data
    trailer: bytes = b""  # bytes after the compressed stream, inside the declared size
    local_csize: int | None = None  # a local compressed size that differs from the central one
    alias_of: int | None = None  # no local header: the central record reuses entry N's
    central_csize: int | None = None  # with alias_of: a different span of the same bytes


def build_zip(
    entries: list[Entry],
    *,
    prefix: bytes = b"",
    sfx_offsets: bool = False,
    central: bool = True,
    zip64: bool = False,
) -> bytes:
    """A zip with exactly the given lies. ``prefix`` is junk before the archive;
    ``sfx_offsets`` writes offsets from the start of the file, as self-extractors do."""
    out = bytearray(prefix)
    base = 0 if sfx_offsets else len(prefix)
    records: list[tuple[Entry, int, int, int, int]] = []  # entry, flags, crc, csize, offset
    for entry in entries:
        if entry.alias_of is not None:
            _, flags, crc, csize, offset = records[entry.alias_of]
            records.append((entry, flags, crc, entry.central_csize or csize, offset))
            continue
        body = compress(entry.method, entry.data) + entry.trailer
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        flags = entry.flags | (0x0008 if entry.descriptor else 0)
        offset = len(out) - base
        out += local_header(entry, flags, crc, body) + body
        if entry.descriptor:
            out += struct.pack("<4sIII", b"PK\x07\x08", crc, len(body), len(entry.data))
        if entry.listed:
            records.append((entry, flags, crc, len(body), offset))
    if not central:
        return bytes(out)
    cd_start = len(out)
    for record in records:
        out += central_record(*record, zip64=zip64)
    out += end_records(len(records), len(out) - cd_start, cd_start - base, len(out) - base, zip64)
    return bytes(out)


def local_header(entry: Entry, flags: int, crc: int, body: bytes) -> bytes:
    name = entry.local_name or entry.name
    sizes = (0, 0, 0) if entry.descriptor else (crc, len(body), len(entry.data))
    if entry.local_csize is not None:
        sizes = (crc, entry.local_csize, entry.local_csize)
    fields = (20, flags, entry.method, 0, 0x21, *sizes, len(name), 0)
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", *fields) + name


def central_record(
    entry: Entry, flags: int, crc: int, csize: int, offset: int, *, zip64: bool
) -> bytes:
    usize, extra = len(entry.data), b""
    if zip64:
        extra = struct.pack("<HHQQQ", 1, 24, usize, csize, offset)
        usize = csize = offset = 0xFFFFFFFF
    fields = (20, 20, flags, entry.method, 0, 0x21, crc, csize, usize)
    lengths = (len(entry.name), len(extra), 0, 0, 0, 0)
    head = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", *fields, *lengths, offset)
    return head + entry.name + extra


def end_records(count: int, cd_size: int, cd_offset: int, here: int, zip64: bool) -> bytes:
    out = b""
    if zip64:
        fields = (44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
        out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", *fields)
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, here, 1)
        count, cd_size, cd_offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    return out + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def zipfile_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --------------------------------------------------------------------------- zip


def test_normal_zip_delivers_every_member_and_reports_nothing() -> None:
    data = zipfile_bytes({"a/data.pkl": PAYLOAD, "a/notes.txt": b"hello", "a/empty": b""})
    ctx, seen = run_scan(data)
    assert seen == {"f!/a/data.pkl": PAYLOAD, "f!/a/notes.txt": b"hello", "f!/a/empty": b""}
    assert ctx.findings == []
    assert ctx.budget.members == 3


@pytest.mark.parametrize("method", [0, 8, 9, 12, 93, 95])
def test_every_supported_method_decodes(method: int) -> None:
    data = build_zip([Entry(b"m.bin", PAYLOAD * 50, method=method)])
    ctx, seen = run_scan(data)
    assert seen == {"f!/m.bin": PAYLOAD * 50}
    assert ctx.findings == []


def test_lzma_members_written_by_zipfile_decode() -> None:
    ctx, seen = run_scan(zipfile_bytes({"m.bin": PAYLOAD * 50}, zipfile.ZIP_LZMA))
    assert seen == {"f!/m.bin": PAYLOAD * 50}
    assert ctx.findings == []


@pytest.mark.parametrize("method", [0, 8])
def test_wrong_crc_is_scanned_like_torch_and_noted(method: int) -> None:
    data = build_zip([Entry(b"data.pkl", method=method, crc=0x12345678)])
    with pytest.raises(zipfile.BadZipFile):  # the strict reader would skip this member
        zipfile.ZipFile(io.BytesIO(data)).read("data.pkl")
    ctx, seen = run_scan(data)
    assert seen["f!/data.pkl"] == PAYLOAD
    [finding] = [f for f in ctx.findings if f.rule == "zip-crc-mismatch"]
    assert (finding.severity, finding.reason) == ("medium", "clean")
    assert "12345678" in finding.message


def test_local_name_that_differs_from_central_is_scanned_and_both_names_reported() -> None:
    data = build_zip([Entry(b"weights.bin", local_name=b"evil.pkl")])
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(data)).read("weights.bin")
    ctx, seen = run_scan(data)
    assert seen["f!/weights.bin"] == PAYLOAD
    [message] = rules(ctx)["zip-name-mismatch"]
    assert "evil.pkl" in message and "weights.bin" in message
    assert blocking(ctx) == []


def test_encrypted_member_is_a_parse_error_but_its_bytes_are_still_scanned() -> None:
    ctx, seen = run_scan(build_zip([Entry(b"secret.pkl", flags=0x0001), Entry(b"ok.txt")]))
    assert list(seen) == ["f!/secret.pkl", "f!/ok.txt"]
    [finding] = [f for f in ctx.findings if f.blocks]
    assert finding.reason == "parse-error"
    assert finding.location.path == "f!/secret.pkl"
    assert "encrypted" in finding.message


def test_unknown_method_is_a_parse_error() -> None:
    ctx, seen = run_scan(build_zip([Entry(b"imploded", method=6)]))
    assert seen == {}
    assert [f.reason for f in ctx.findings] == ["parse-error"]


@pytest.mark.parametrize("method", [0, 8])
def test_utf8_flag_and_data_descriptor_are_read_quietly(method: int) -> None:
    name = "modèle/data.pkl".encode()
    data = build_zip([Entry(name, method=method, flags=0x0800, descriptor=True)])
    assert zipfile.ZipFile(io.BytesIO(data)).read(name.decode()) == PAYLOAD
    ctx, seen = run_scan(data)
    assert seen == {"f!/modèle/data.pkl": PAYLOAD}
    assert ctx.findings == []


def test_without_central_directory_local_headers_are_scanned() -> None:
    entries = [Entry(b"a.pkl", method=8), Entry(b"b.pkl", b"second", method=8, descriptor=True)]
    ctx, seen = run_scan(build_zip(entries, central=False))
    assert seen == {"f!/a.pkl": PAYLOAD, "f!/b.pkl": b"second"}
    assert "zip-no-central-directory" in rules(ctx)
    assert blocking(ctx) == []


@pytest.mark.parametrize("sfx_offsets", [False, True])
def test_prepended_bytes_are_scanned_and_members_still_found(sfx_offsets: bool) -> None:
    junk = b"#!/bin/sh\nexit 0\n" * 10
    data = build_zip([Entry(b"data.pkl", method=8)], prefix=junk, sfx_offsets=sfx_offsets)
    assert zipfile.ZipFile(io.BytesIO(data)).read("data.pkl") == PAYLOAD
    ctx, seen = run_scan(data)
    assert seen == {"f!/<prepended>": junk, "f!/data.pkl": PAYLOAD}
    assert "zip-prepended-data" in rules(ctx)


def test_local_member_missing_from_central_directory_is_scanned() -> None:
    entries = [Entry(b"a.txt"), Entry(b"hidden.pkl", b"hidden", method=8, listed=False)]
    data = build_zip(entries)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a.txt"]
    ctx, seen = run_scan(data)
    assert seen["f!/hidden.pkl"] == b"hidden"
    [message] = rules(ctx)["zip-unlisted"]
    assert "not in the central directory" in message


def test_local_size_that_stops_early_exposes_a_hidden_header() -> None:
    hidden = build_zip([Entry(b"hidden.pkl", b"streamed")], central=False)
    entries = [Entry(b"a.bin", b"A" * 100 + hidden, local_csize=100)]
    ctx, seen = run_scan(build_zip(entries))
    assert seen["f!/hidden.pkl"] == b"streamed"
    assert {"zip-header-mismatch", "zip-unlisted", "zip-overlap"} <= set(rules(ctx))


def test_bytes_after_a_deflate_stream_are_scanned_as_slack() -> None:
    hidden = build_zip([Entry(b"hidden.pkl", b"in the slack")], central=False)
    ctx, seen = run_scan(build_zip([Entry(b"a.pkl", method=8, trailer=hidden)]))
    assert seen["f!/a.pkl"] == PAYLOAD
    assert seen["f!/a.pkl!/<slack>"] == hidden
    assert seen["f!/a.pkl!/<slack>!/hidden.pkl"] == b"in the slack"
    assert "zip-slack" in rules(ctx)


def test_aliased_members_are_scanned_once() -> None:
    """Central records sharing one local header (the overlap bomb trick) cost one scan.

    The shorter alias is read with the local header's longer size, so it is the same data.
    """
    entries = [
        Entry(b"a.pkl"),
        Entry(b"same.pkl", alias_of=0),
        Entry(b"part.pkl", alias_of=0, central_csize=10),
    ]
    ctx, seen = run_scan(build_zip(entries))
    assert seen == {"f!/a.pkl": PAYLOAD}
    assert len(rules(ctx)["zip-duplicate-data"]) == 2
    assert ctx.budget.members == 3


def test_duplicate_names_are_both_scanned() -> None:
    ctx, seen = run_scan(build_zip([Entry(b"data.pkl", b"one"), Entry(b"data.pkl", b"two!")]))
    assert seen["f!/data.pkl"] in (b"one", b"two!")
    assert ctx.budget.members == 2
    assert "zip-duplicate-name" in rules(ctx)


def test_truncated_member_is_scanned_as_far_as_it_goes_and_blocks() -> None:
    data = build_zip([Entry(b"data.pkl")], central=False)[:-100]
    ctx, seen = run_scan(data)
    assert seen["f!/data.pkl"] == PAYLOAD[: len(PAYLOAD) - 100]
    assert [f.reason for f in ctx.findings if f.blocks] == ["parse-error"]


def test_zip64_records_are_followed() -> None:
    data = build_zip([Entry(b"a.pkl", method=8), Entry(b"b.txt", b"b")], zip64=True)
    assert zipfile.ZipFile(io.BytesIO(data)).read("a.pkl") == PAYLOAD
    ctx, seen = run_scan(data)
    assert seen == {"f!/a.pkl": PAYLOAD, "f!/b.txt": b"b"}
    assert ctx.findings == []


def test_path_traversal_names_are_findings_but_still_scanned() -> None:
    ctx, seen = run_scan(build_zip([Entry(b"../../etc/evil.pkl")]))
    assert seen["f!/../../etc/evil.pkl"] == PAYLOAD
    assert [(f.rule, f.reason) for f in ctx.findings] == [("archive-path-traversal", "malicious")]


def test_deflate_bomb_exhausts_the_byte_budget() -> None:
    bomb = build_zip([Entry(b"bomb", bytes(64 << 20), method=8)])
    assert len(bomb) < 100_000
    with pytest.raises(BudgetExceeded) as raised:
        run_scan(bomb, limits=Limits(max_bytes=8 << 20))
    assert raised.value.what == "bytes read"


def nested(levels: int) -> bytes:
    data = PAYLOAD
    for level in range(levels):
        data = build_zip([Entry(f"z{level}".encode(), data, method=8)])
    return data


def test_nesting_within_the_depth_budget_reaches_the_payload() -> None:
    _, seen = run_scan(nested(3), limits=Limits(max_depth=3))
    assert seen["f!/z2!/z1!/z0"] == PAYLOAD


def test_nesting_beyond_the_depth_budget_is_refused() -> None:
    with pytest.raises(BudgetExceeded) as raised:
        run_scan(nested(3), limits=Limits(max_depth=2))
    assert raised.value.what == "archive nesting depth"


def test_member_count_budget() -> None:
    data = build_zip([Entry(f"{i}".encode(), b"x") for i in range(5)])
    run_scan(data, limits=Limits(max_members=5))
    with pytest.raises(BudgetExceeded) as raised:
        run_scan(data, limits=Limits(max_members=4))
    assert raised.value.what == "archive members"


def test_torch_save_archive_is_read_in_full(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, path)
    data = path.read_bytes()
    ctx, seen = run_scan(data)
    expected = {f"f!/{name}" for name in zipfile.ZipFile(path).namelist()}
    assert set(seen) == expected
    assert any(label.endswith("/data.pkl") for label in seen)
    assert [f for f in ctx.findings if f.blocks] == []


# --------------------------------------------------------------------------- tar


def tar_bytes(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        add(archive)
    return buffer.getvalue()


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def add_link(archive: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    archive.addfile(info)


def test_tar_members_links_and_traversal() -> None:
    def add(archive: tarfile.TarFile) -> None:
        add_file(archive, "model/data.pkl", PAYLOAD)
        add_file(archive, "../escape.pkl", b"up")
        add_file(archive, "/abs.pkl", b"root")
        add_link(archive, "model/passwd", "/etc/passwd", tarfile.SYMTYPE)
        add_link(archive, "model/sibling", "../model/data.pkl", tarfile.SYMTYPE)
        add_link(archive, "model/hard", "model/data.pkl", tarfile.LNKTYPE)

    ctx, seen = run_scan(tar_bytes(add), scan_tar)
    assert seen == {"f!/model/data.pkl": PAYLOAD, "f!/../escape.pkl": b"up", "f!//abs.pkl": b"root"}
    traversal = [f.location.path for f in ctx.findings if f.rule == "archive-path-traversal"]
    assert traversal == ["f!/../escape.pkl", "f!//abs.pkl", "f!/model/passwd"]
    links = [f for f in ctx.findings if f.rule == "archive-link"]
    assert [(f.severity, f.reason) for f in links] == [("info", "clean")] * 3


def test_tar_inside_gzip_is_reached_by_magic() -> None:
    data = gzip.compress(tar_bytes(lambda archive: add_file(archive, "w.pkl", PAYLOAD)))
    ctx, seen = run_scan(data, lambda blob, ctx: scan_compressed(blob, ctx, "gzip"))
    assert seen["f!/<decompressed>!/w.pkl"] == PAYLOAD
    assert ctx.findings == []


def test_damaged_tar_is_a_parse_error() -> None:
    data = tar_bytes(lambda archive: add_file(archive, "w.pkl", PAYLOAD))
    ctx, seen = run_scan(data[:600], scan_tar)
    assert seen == {"f!/w.pkl": data[512:600]}
    assert [f.reason for f in ctx.findings] == ["parse-error"]


def test_v7_tar_is_recognised_by_its_checksum() -> None:
    header = bytearray(tar_bytes(lambda archive: add_file(archive, "w.pkl", b"x"))[:512])
    assert looks_like_tar(bytes(header))
    header[257:265] = bytes(8)  # no ustar/GNU magic, as in a v7 archive
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    assert looks_like_tar(bytes(header))
    header[0] ^= 1
    assert not looks_like_tar(bytes(header))
    assert not looks_like_tar(bytes(512))


# --------------------------------------------------------------------------- streams


CODEC_SAMPLES: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "lz4": lz4.frame.compress,
    "zstd": zstd.compress,
}


@pytest.mark.parametrize("codec", sorted(CODEC_SAMPLES))
def test_compressed_streams_are_detected_and_decoded(codec: str) -> None:
    data = CODEC_SAMPLES[codec](PAYLOAD)
    assert compression_of(data[:16]) == codec
    ctx, seen = run_scan(data, lambda blob, ctx: scan_compressed(blob, ctx, codec))
    assert seen == {"f!/<decompressed>": PAYLOAD}
    assert ctx.findings == []


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "lz4", "zstd"])
def test_concatenated_streams_are_all_decoded(codec: str) -> None:
    data = CODEC_SAMPLES[codec](b"first ") + CODEC_SAMPLES[codec](b"second")
    ctx, seen = run_scan(data, lambda blob, ctx: scan_compressed(blob, ctx, codec))
    assert seen == {"f!/<decompressed>": b"first second"}
    assert ctx.findings == []


def test_gzip_with_bad_crc_is_scanned_then_blocked() -> None:
    data = bytearray(gzip.compress(PAYLOAD))
    data[-8:-4] = b"\0\0\0\0"
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(bytes(data))
    ctx, seen = run_scan(bytes(data), lambda blob, ctx: scan_compressed(blob, ctx, "gzip"))
    assert seen["f!/<decompressed>"] == PAYLOAD
    assert [f.reason for f in ctx.findings] == ["parse-error"]


def test_trailing_garbage_after_gzip_is_noted() -> None:
    data = gzip.compress(PAYLOAD) + b"not gzip"
    ctx, seen = run_scan(data, lambda blob, ctx: scan_compressed(blob, ctx, "gzip"))
    assert seen["f!/<decompressed>"] == PAYLOAD
    assert [(f.rule, f.reason) for f in ctx.findings] == [("compressed-trailing-data", "clean")]


def test_gzip_bomb_exhausts_the_byte_budget() -> None:
    bomb = gzip.compress(bytes(64 << 20))
    with pytest.raises(BudgetExceeded):
        run_scan(bomb, lambda b, c: scan_compressed(b, c, "gzip"), Limits(max_bytes=8 << 20))


def test_detection_rejects_near_misses() -> None:
    assert looks_like_zip(b"PK\x03\x04rest") and looks_like_zip(b"PK\x05\x06")
    assert not looks_like_zip(b"PK\x01\x02")
    assert looks_like_7z(b"7z\xbc\xaf\x27\x1c\x00\x04") and not looks_like_7z(b"7z")
    assert compression_of(b"\x78\x9c") == "zlib"
    assert compression_of(b"\x78\x00") is None
    assert compression_of(b"BZh0") is None
    assert compression_of(b"\x80\x04\x95") is None
    assert compression_of(b"](\x00\x00\x00") is None  # a protocol-1 pickle, not .lzma


# --------------------------------------------------------------------------- 7z


def seven_zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buffer.getvalue()


def test_7z_members_are_scanned() -> None:
    data = seven_zip_bytes({"model/data.pkl": PAYLOAD, "model/readme.txt": b"hi"})
    ctx, seen = run_scan(data, scan_7z)
    assert seen == {"f!/model/data.pkl": PAYLOAD, "f!/model/readme.txt": b"hi"}
    assert ctx.findings == []


def test_7z_bomb_exhausts_the_byte_budget() -> None:
    data = seven_zip_bytes({"bomb": bytes(32 << 20)})
    with pytest.raises(BudgetExceeded):
        run_scan(data, scan_7z, Limits(max_bytes=4 << 20))


def test_encrypted_7z_is_a_parse_error() -> None:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password="secret") as archive:
        archive.writestr(PAYLOAD, "data.pkl")
    ctx, seen = run_scan(buffer.getvalue(), scan_7z)
    assert seen == {}
    assert [f.reason for f in ctx.findings] == ["parse-error"]


def test_damaged_7z_is_a_parse_error() -> None:
    data = seven_zip_bytes({"data.pkl": PAYLOAD})
    ctx, _ = run_scan(data[:40], scan_7z)
    assert [f.reason for f in ctx.findings] == ["parse-error"]
