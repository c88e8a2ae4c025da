"""A minimal, bounded reader for the protobuf wire format, and a tiny encoder.

SavedModel and ONNX files are protobuf messages. Decoding them with generated
classes (or ``onnx.load``) copies the whole message, tensor payloads included,
into memory: a 2 GB ONNX file costs 2 GB of RAM before the first check runs.
This reader instead walks the file through a small cache and *skips* the
length-delimited fields the scanner does not need (raw tensor bytes), so memory
stays bounded by the few strings the scanners keep. It never interprets a
field it is not asked about, and it fails closed: any malformed varint, length
past the end of its parent, group wire type or over-deep nesting raises
``ProtobufError`` (a parse error) or ``BudgetExceeded`` (a limit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from stoa.govern.scan.budget import BudgetExceeded

VARINT = 0
FIXED64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

# protobuf's own C++ parser refuses messages nested deeper than 100 levels.
MAX_DEPTH = 100
# Fields visited over one walk; real models have well under a million.
MAX_FIELDS = 50_000_000
_CHUNK = 64 * 1024
_MAX_FIELD_NUMBER = (1 << 29) - 1


class ProtobufError(ValueError):
    """The bytes are not a valid protobuf wire encoding (reported as a parse error)."""


@dataclass(frozen=True)
class Field:
    """One decoded field. ``value`` is the integer for VARINT/FIXED*, the length for LEN.

    ``offset`` is where the payload starts in the file, so a LEN field can be
    read or descended into later without having been copied.
    """

    number: int
    wire_type: int
    value: int
    offset: int


class Source:
    """Random-access reads from a seekable stream through one small cached window.

    Walking a message reads many tiny field headers in order and jumps over
    large payloads; one cached chunk makes the headers cheap and the jumps free.
    """

    def __init__(
        self,
        stream: BinaryIO,
        size: int,
        *,
        max_fields: int = MAX_FIELDS,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.size = size
        self.max_fields = max_fields
        self.tick = tick  # called every 65,536 fields, e.g. to check the scan's time budget
        self.fields_seen = 0
        self._start = 0
        self._data = b""

    def read(self, offset: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``offset``; raises ProtobufError when the file is shorter."""
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ProtobufError(f"truncated: {n} bytes at offset {offset} run past the end")
        end = offset + n
        if not (self._start <= offset and end <= self._start + len(self._data)):
            if n > _CHUNK:
                return self._read_direct(offset, n)
            self.stream.seek(offset)
            self._start, self._data = offset, self.stream.read(_CHUNK)
        got = self._data[offset - self._start : end - self._start]
        if len(got) != n:
            raise ProtobufError(f"truncated: short read at offset {offset}")
        return got

    def _read_direct(self, offset: int, n: int) -> bytes:
        self.stream.seek(offset)
        got = self.stream.read(n)
        if len(got) != n:
            raise ProtobufError(f"truncated: short read at offset {offset}")
        return got

    def count_field(self) -> None:
        self.fields_seen += 1
        if self.fields_seen > self.max_fields:
            raise BudgetExceeded("protobuf fields", self.max_fields)
        if self.tick is not None and not self.fields_seen & 0xFFFF:
            self.tick()


class Message:
    """A view of one message: the byte range ``[start, end)`` of a Source."""

    def __init__(self, source: Source, start: int, end: int, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise BudgetExceeded("protobuf nesting depth", MAX_DEPTH)
        self.source = source
        self.start = start
        self.end = end
        self.depth = depth

    @classmethod
    def root(
        cls,
        stream: BinaryIO,
        size: int,
        *,
        max_fields: int = MAX_FIELDS,
        tick: Callable[[], None] | None = None,
    ) -> Message:
        """The top-level message spanning the whole stream."""
        return cls(Source(stream, size, max_fields=max_fields, tick=tick), 0, size)

    def fields(self) -> Iterator[Field]:
        """Every field in wire order; LEN payloads are skipped, not read."""
        pos = self.start
        while pos < self.end:
            self.source.count_field()
            key, pos = self._varint(pos)
            number, wire_type = key >> 3, key & 7
            if not 1 <= number <= _MAX_FIELD_NUMBER:
                raise ProtobufError(f"invalid field number {number} at offset {pos}")
            field, pos = self._payload(number, wire_type, pos)
            yield field

    def message(self, field: Field) -> Message:
        """The sub-message a LEN field holds."""
        self._expect_len(field)
        return Message(self.source, field.offset, field.offset + field.value, self.depth + 1)

    def payload(self, field: Field, limit: int) -> bytes:
        """The payload of a LEN field, refusing (as a budget) anything over ``limit`` bytes."""
        self._expect_len(field)
        if field.value > limit:
            raise BudgetExceeded("protobuf string field", limit)
        return self.source.read(field.offset, field.value)

    def string(self, field: Field, limit: int) -> str:
        """A LEN field decoded as UTF-8, as protobuf ``string`` fields must be."""
        try:
            return self.payload(field, limit).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtobufError(
                f"field {field.number} at offset {field.offset} is not UTF-8"
            ) from None

    def _payload(self, number: int, wire_type: int, pos: int) -> tuple[Field, int]:
        if wire_type == VARINT:
            value, end = self._varint(pos)
            return Field(number, wire_type, value, pos), end
        if wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            raw = self._within(pos, width)
            return Field(number, wire_type, int.from_bytes(raw, "little"), pos), pos + width
        if wire_type == LEN:
            length, start = self._varint(pos)
            if length > self.end - start:
                raise ProtobufError(
                    f"field {number} at offset {pos} claims {length} bytes; "
                    f"only {self.end - start} remain in its message"
                )
            return Field(number, wire_type, length, start), start + length
        kind = "group" if wire_type in (START_GROUP, END_GROUP) else "unknown"
        raise ProtobufError(f"field {number} at offset {pos} uses {kind} wire type {wire_type}")

    def _varint(self, pos: int) -> tuple[int, int]:
        raw = self.source.read(pos, min(10, self.end - pos))
        value = 0
        for i, byte in enumerate(raw):
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if value >> 64:
                    raise ProtobufError(f"varint at offset {pos} overflows 64 bits")
                return value, pos + i + 1
        raise ProtobufError(f"unterminated varint at offset {pos}")

    def _within(self, pos: int, n: int) -> bytes:
        if pos + n > self.end:
            raise ProtobufError(f"fixed-width field at offset {pos} runs past its message")
        return self.source.read(pos, n)

    @staticmethod
    def _expect_len(field: Field) -> None:
        if field.wire_type != LEN:
            raise ProtobufError(
                f"field {field.number} at offset {field.offset} should be length-delimited "
                f"but has wire type {field.wire_type}"
            )


def as_signed(value: int) -> int:
    """Reinterpret a decoded varint as the int64 it encodes (negative numbers use 10 bytes)."""
    return value - (1 << 64) if value >> 63 else value


# --- Encoder: just enough to build test messages by hand. -------------------


def encode_varint(value: int) -> bytes:
    """Base-128 varint; negative numbers are written as their 64-bit two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_key(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def encode_field(number: int, value: int | bytes | str) -> bytes:
    """One field: ints as VARINT, bytes and str (UTF-8) as LEN (sub-messages are bytes)."""
    if isinstance(value, int):
        return encode_key(number, VARINT) + encode_varint(value)
    data = value.encode("utf-8") if isinstance(value, str) else value
    return encode_key(number, LEN) + encode_varint(len(data)) + data


def encode_fixed32(number: int, value: int) -> bytes:
    return encode_key(number, FIXED32) + (value & 0xFFFFFFFF).to_bytes(4, "little")


def encode_fixed64(number: int, value: int) -> bytes:
    return encode_key(number, FIXED64) + (value & (2**64 - 1)).to_bytes(8, "little")


def encode_message(*fields: bytes) -> bytes:
    """Concatenate encoded fields into a message (protobuf messages are just that)."""
    return b"".join(fields)
