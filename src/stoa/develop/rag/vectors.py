"""What every vector backend shares: the interface, the hit, and the filter language.

Filters are exact (equality, ``in``, ranges on numbers and ISO dates) and every backend
applies them *during* search, never after top-k, so a filter never returns fewer than k
results when k entries match. The semantics live here once; the local backend evaluates
them directly and the Milvus backend translates them into its expression language.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import numpy as np

from stoa.core.errors import InvalidInputError

RANGE_OPS = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}
MAX_K = 10_000


@dataclass(frozen=True)
class Hit:
    id: int
    score: float  # cosine similarity
    metadata: dict[str, Any]


class VectorBackend(Protocol):
    """Durable when a call returns: ``upsert`` and ``delete`` survive a crash after them."""

    dimension: int

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]
    ) -> None: ...

    def delete(self, ids: Iterable[int]) -> int: ...

    def search(
        self, query: np.ndarray, k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Hit]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...

    def drop(self) -> None:
        """Remove every vector and the index itself, for good; the backend is closed after."""


def check_vectors(
    dimension: int, ids: Sequence[int], vectors: Any, metadata: Sequence[Mapping[str, Any]]
) -> np.ndarray:
    """Unit-length float32 rows, or a refusal naming what is wrong."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dimension:
        raise InvalidInputError(
            f"vectors must have shape (n, {dimension}), not {vectors.shape}", field="vectors"
        )
    if not (len(ids) == len(vectors) == len(metadata)):
        raise InvalidInputError("ids, vectors and metadata differ in length", field="vectors")
    for entry_id in ids:
        if isinstance(entry_id, bool) or not isinstance(entry_id, int | np.integer):
            raise InvalidInputError(f"id {entry_id!r} is not an integer", field="ids")
        if not 0 <= int(entry_id) < 2**63:
            raise InvalidInputError(f"id {entry_id} is outside 0..2^63-1", field="ids")
    if len(set(map(int, ids))) != len(ids):
        raise InvalidInputError("ids repeat within one call", field="ids")
    if not np.isfinite(vectors).all():
        raise InvalidInputError("vectors hold NaN or infinite values", field="vectors")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidInputError("a vector is all zeros", field="vectors")
    return vectors / norms


def check_query(dimension: int, query: Any, k: Any) -> np.ndarray:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be 1..{MAX_K}", field="k")
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if query.shape[0] != dimension or not np.isfinite(query).all():
        raise InvalidInputError(f"the query must be {dimension} finite numbers", field="query")
    norm = float(np.linalg.norm(query))
    if norm == 0:
        raise InvalidInputError("the query vector is all zeros", field="query")
    return query / norm


def check_where(where: Any) -> dict[str, Any]:
    """Validate a filter before any backend sees it, so every backend refuses alike."""
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise InvalidInputError("must be a JSON object of field conditions", field="where")
    where = {field: _plain(condition) for field, condition in where.items()}
    for field, condition in where.items():
        if not isinstance(field, str) or not field:
            raise InvalidInputError("field names must be non-empty text", field="where")
        if isinstance(condition, Mapping):
            unknown = set(condition) - {"in", *RANGE_OPS}
            if unknown or not condition:
                raise InvalidInputError(
                    f"filter on {field!r}: unknown operator(s) {', '.join(sorted(unknown))}"
                    if unknown
                    else f"filter on {field!r}: no operator",
                    field="where",
                    fix="use a value, {in: [...]}, or gt/gte/lt/lte",
                )
            if "in" in condition and not isinstance(condition["in"], list | tuple):
                raise InvalidInputError(f"filter on {field!r}: 'in' takes a list", field="where")
            for op, bound in condition.items():
                if op != "in" and sort_key(bound) is None:
                    raise InvalidInputError(
                        f"filter on {field!r}: {op} takes a number or an ISO date",
                        field="where",
                    )
        elif isinstance(condition, list | dict) or (
            isinstance(condition, float) and not math.isfinite(condition)
        ):
            raise InvalidInputError(
                f"filter on {field!r}: equality takes a single value", field="where"
            )
    return dict(where)


def _plain(condition: Any) -> Any:
    """NumPy scalars become the Python values they hold, so ``np.int64(1)`` filters as 1."""
    if isinstance(condition, np.generic):
        return condition.item()
    if isinstance(condition, Mapping):
        return {op: _plain(value) for op, value in condition.items()}
    if isinstance(condition, list | tuple):
        return type(condition)(_plain(value) for value in condition)
    return condition


def filter_mask(where: Mapping[str, Any], metadata: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Which entries a (checked) filter admits."""
    mask = np.ones(len(metadata), dtype=bool)
    for field, condition in where.items():
        mask &= condition_mask(field, condition, [m.get(field) for m in metadata])
    return mask


def matches(where: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    return bool(filter_mask(where, [metadata])[0])


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def condition_mask(field: str, condition: Any, values: list[Any]) -> np.ndarray:
    """Equality, ``{"in": [...]}`` and ranges ``{"gte": x, "lt": y}`` on numbers or dates."""
    if not isinstance(condition, Mapping):
        return np.array([_equal(v, condition) for v in values], dtype=bool)
    mask = np.ones(len(values), dtype=bool)
    if "in" in condition:
        allowed = list(condition["in"])
        mask &= np.array([any(_equal(v, a) for a in allowed) for v in values], dtype=bool)
    for op, bound in condition.items():
        if op == "in":
            continue
        key = sort_key(bound)
        mask &= np.array(
            [(k := sort_key(v)) is not None and type(k) is type(key) and RANGE_OPS[op](k, key)
             for v in values], dtype=bool,
        )  # fmt: skip
    return mask


def _equal(value: Any, wanted: Any) -> bool:
    """Equality without Python's True == 1: a boolean filter matches booleans only."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value is wanted
    return value == wanted


def sort_key(value: Any) -> float | datetime | None:
    """Numbers compare as numbers and dates as instants; anything else does not compare."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return _naive_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return _naive_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def _naive_utc(value: datetime) -> datetime:
    """Aware instants become naive UTC so that every date compares with every other."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
