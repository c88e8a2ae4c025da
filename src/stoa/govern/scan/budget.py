"""Limits that keep a hostile file from exhausting memory or time.

One Budget is shared by everything scanned for one top-level path, so nesting
(archives in archives, pickles in zips) cannot multiply the limits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class BudgetExceeded(Exception):
    """Raised when a limit is hit; the scanner reports it as reason ``budget``."""

    def __init__(self, what: str, limit: int | float):
        super().__init__(f"{what} exceeds the scan budget ({limit:,})")
        self.what = what
        self.limit = limit


@dataclass
class Limits:
    """Defaults sized for real checkpoints; the policy file can change each one."""

    max_bytes: int = 64 * 1024**3  # total bytes read or decompressed
    max_members: int = 100_000  # archive members over the whole scan
    max_depth: int = 8  # archives within archives
    max_seconds: float = 600.0
    max_memo_values: int = 1_000_000  # memo entries holding values the scanner must keep
    max_kept_bytes: int = 32 * 1024 * 1024  # memo values kept to name globals later
    max_line: int = 1024 * 1024  # a text-protocol argument (GLOBAL, INT, ...)
    max_stack: int = 10_000_000
    max_json: int = 100 * 1024 * 1024  # a JSON header or config read whole


@dataclass
class Budget:
    limits: Limits = field(default_factory=Limits)
    bytes_used: int = 0
    members: int = 0
    started: float = field(default_factory=time.monotonic)

    def spend_bytes(self, n: int) -> None:
        self.bytes_used += n
        if self.bytes_used > self.limits.max_bytes:
            raise BudgetExceeded("bytes read", self.limits.max_bytes)

    def add_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise BudgetExceeded("archive members", self.limits.max_members)

    def check_depth(self, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise BudgetExceeded("archive nesting depth", self.limits.max_depth)

    def check_time(self) -> None:
        if time.monotonic() - self.started > self.limits.max_seconds:
            raise BudgetExceeded("scan seconds", self.limits.max_seconds)
