"""Per-field indexes over an in-memory vector copy, so a filter costs lookups and one
vectorised comparison instead of a JSON parse and a Python test per row.

A field's column is built the first time a filter names it and is extended as rows are
appended, so a nightly ingest does not rebuild it. Rows are never revived (an update
appends a new row), so a dead row's stale entry is harmless: the caller ANDs the result
with its live-row mask. The semantics are ``vectors.condition_mask``'s, exactly; the
shared backend suite checks the two agree on awkward values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from stoa.develop.rag.vectors import RANGE_OPS, sort_key

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_NO_DATE = np.iinfo(np.int64).min


def _key(value: Any) -> tuple[str, Any] | None:
    """A hashable key under which equal values (by ``vectors._equal``) meet; None when the
    value cannot be hashed. Booleans get their own tag so True never meets 1."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # 1 and 1.0 hash alike and are equal, as ``==`` says
    try:
        hash(value)
    except TypeError:
        return None
    return ("v", value)


class _Field:
    def __init__(self) -> None:
        self.values: list[Any] = []
        self.rows_by_key: dict[tuple[str, Any], list[int]] = {}
        self.unhashable: list[int] = []  # rows holding lists or objects
        self._arrays: dict[tuple[str, Any], np.ndarray] = {}
        self._ranges: tuple[np.ndarray, np.ndarray] | None = None  # built on first range

    def extend(self, values: Iterable[Any]) -> None:
        start = len(self.values)
        for row, value in enumerate(values, start):
            self.values.append(value)
            key = _key(value)
            if key is None:
                self.unhashable.append(row)
            else:
                self.rows_by_key.setdefault(key, []).append(row)
        self._arrays.clear()
        if self._ranges is not None:
            added = _range_keys(self.values[start:])
            self._ranges = (np.concatenate([self._ranges[0], added[0]]),
                            np.concatenate([self._ranges[1], added[1]]))  # fmt: skip

    def equal_mask(self, wanted: Any, size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        key = _key(wanted)
        if key is None:  # an unhashable wanted value can only equal an unhashable value
            for row in self.unhashable:
                mask[row] = self.values[row] == wanted
            return mask
        if key[0] == "n" and wanted != wanted:  # NaN equals nothing
            return mask
        rows = self._arrays.get(key)
        if rows is None:
            rows = self._arrays[key] = np.array(self.rows_by_key.get(key, ()), dtype=np.int64)
        mask[rows] = True
        return mask

    def range_mask(self, op: str, bound: Any) -> np.ndarray:
        if self._ranges is None:
            self._ranges = _range_keys(self.values)
        numbers, dates = self._ranges
        key = sort_key(bound)
        if isinstance(key, datetime):
            return (dates != _NO_DATE) & RANGE_OPS[op](dates, _micros(key))
        return RANGE_OPS[op](numbers, key)  # NaN (not a number) compares False


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _range_keys(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Numbers as float64 (NaN where not a number) and dates as UTC microseconds."""
    numbers = np.full(len(values), np.nan)
    dates = np.full(len(values), _NO_DATE, dtype=np.int64)
    for row, value in enumerate(values):
        key = sort_key(value)
        if isinstance(key, float):
            numbers[row] = key
        elif key is not None:
            dates[row] = _micros(key)
    return numbers, dates


class MetadataColumns:
    """The fields filters have named, one entry per row of the in-memory copy."""

    def __init__(self, metadata_at: Callable[[int], Mapping[str, Any]]):
        self._metadata_at = metadata_at
        self._fields: dict[str, _Field] = {}
        self._size = 0

    def reset(self, size: int) -> None:
        """Row numbers changed (a reload or a compaction): forget every column."""
        self._fields.clear()
        self._size = size

    def append(self, count: int) -> None:
        """``count`` live rows were appended to the copy."""
        start, self._size = self._size, self._size + count
        if self._fields:  # each new row parsed once, however many fields are indexed
            added = [self._metadata_at(row) for row in range(start, self._size)]
            for name, field in self._fields.items():
                field.extend(metadata.get(name) for metadata in added)

    def mask(self, where: Mapping[str, Any], alive: np.ndarray) -> np.ndarray:
        """Which live rows a checked filter admits."""
        mask = alive.copy()
        for name, condition in where.items():
            field = self._field(name, alive)
            if not isinstance(condition, Mapping):
                mask &= field.equal_mask(condition, self._size)
                continue
            if "in" in condition:
                either = np.zeros(self._size, dtype=bool)
                for wanted in condition["in"]:
                    either |= field.equal_mask(wanted, self._size)
                mask &= either
            for op, bound in condition.items():
                if op != "in":
                    mask &= field.range_mask(op, bound)
        return mask

    def _field(self, name: str, alive: np.ndarray) -> _Field:
        field = self._fields.get(name)
        if field is None:
            field = self._fields[name] = _Field()
            field.extend(
                self._metadata_at(row).get(name) if alive[row] else None
                for row in range(self._size)
            )
        return field
