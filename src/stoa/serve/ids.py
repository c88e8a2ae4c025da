"""Prediction ids: UUIDv7 (RFC 9562), made in the serving process without a database
round trip, ordered by time, and carrying the millisecond they were made, so a feedback
event for a prediction still in some worker's unflushed batch can be told apart from one
for an id that never existed."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


def id_age_s(value: str) -> float | None:
    """Seconds since ``value`` was made, or None when it is not a UUIDv7."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return time.time() - (parsed.int >> 80) / 1000
