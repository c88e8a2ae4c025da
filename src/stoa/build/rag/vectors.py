"""The local vector backend: exact cosine search with metadata filters applied *during*
search, so a filter never returns fewer than k results when k chunks match.

Vectors are unit-length float32 rows kept in one matrix; search is one BLAS
matrix-vector product over the rows the filter admits, then ``argpartition``. The
index persists as ``vectors.npy`` plus ``entries.json`` (ids and metadata) and reloads
in another process unchanged. HNSW above a size threshold comes in a later slice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError

_RANGE_OPS = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    metadata: dict[str, Any]


class LocalVectorIndex:
    def __init__(self, dimension: int):
        if dimension <= 0:
            raise InvalidInputError("dimension must be positive", field="dimension")
        self.dimension = dimension
        self._vectors = np.zeros((0, dimension), dtype=np.float32)
        self._ids: list[str] = []
        self._metadata: list[dict[str, Any]] = []
        self._row: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add or replace entries; vectors are normalised so scores are cosine similarities."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise InvalidInputError(
                f"vectors must have shape (n, {self.dimension}), not {vectors.shape}",
                field="vectors",
            )
        if not (len(ids) == len(vectors) == len(metadata)):
            raise InvalidInputError("ids, vectors and metadata differ in length", field="vectors")
        if not np.isfinite(vectors).all():
            raise InvalidInputError("vectors hold NaN or infinite values", field="vectors")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InvalidInputError("a vector is all zeros", field="vectors")
        vectors = vectors / norms
        self.delete([i for i in ids if i in self._row])
        start = len(self._ids)
        self._vectors = np.vstack([self._vectors, vectors])
        for offset, (entry_id, meta) in enumerate(zip(ids, metadata, strict=True)):
            self._ids.append(entry_id)
            self._metadata.append(dict(meta))
            self._row[entry_id] = start + offset

    def delete(self, ids: Iterable[str]) -> int:
        doomed = {self._row[i] for i in ids if i in self._row}
        if not doomed:
            return 0
        keep = [r for r in range(len(self._ids)) if r not in doomed]
        self._vectors = self._vectors[keep]
        self._ids = [self._ids[r] for r in keep]
        self._metadata = [self._metadata[r] for r in keep]
        self._row = {entry_id: r for r, entry_id in enumerate(self._ids)}
        return len(doomed)

    def search(
        self, query: np.ndarray, k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The k most similar entries among those matching ``where`` (filtered first)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10_000:
            raise InvalidInputError("k must be 1..10000", field="k")
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension or not np.isfinite(query).all():
            raise InvalidInputError(
                f"the query must be {self.dimension} finite numbers", field="query"
            )
        norm = float(np.linalg.norm(query))
        if norm == 0:
            raise InvalidInputError("the query vector is all zeros", field="query")
        rows = self._matching(where) if where else np.arange(len(self._ids))
        if rows.size == 0:
            return []
        scores = self._vectors[rows] @ (query / norm)
        take = min(k, rows.size)
        best = np.argpartition(-scores, take - 1)[:take]
        best = best[np.lexsort((rows[best], -scores[best]))]  # score, then insertion order
        return [Hit(self._ids[rows[b]], float(scores[b]), self._metadata[rows[b]]) for b in best]

    def _matching(self, where: Mapping[str, Any]) -> np.ndarray:
        mask = np.ones(len(self._ids), dtype=bool)
        for field, condition in where.items():
            values = [m.get(field) for m in self._metadata]
            mask &= _condition_mask(field, condition, values)
        return np.flatnonzero(mask)

    # -- persistence ---------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Written to temporary names, then renamed: a crash leaves the previous index."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp_vectors, tmp_entries = folder / "vectors.npy.tmp", folder / "entries.json.tmp"
        with open(tmp_vectors, "wb") as handle:
            np.save(handle, self._vectors, allow_pickle=False)
        entries = {"dimension": self.dimension, "ids": self._ids, "metadata": self._metadata}
        tmp_entries.write_text(json.dumps(entries, default=_json_default))
        os.replace(tmp_vectors, folder / "vectors.npy")
        os.replace(tmp_entries, folder / "entries.json")

    @classmethod
    def load(cls, folder: Path) -> LocalVectorIndex:
        entries = json.loads((folder / "entries.json").read_text())
        index = cls(int(entries["dimension"]))
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if vectors.shape != (len(entries["ids"]), index.dimension):
            raise InvalidInputError(f"the index in {folder} is inconsistent", field="index")
        index._vectors = vectors.astype(np.float32, copy=False)
        index._ids = list(entries["ids"])
        index._metadata = list(entries["metadata"])
        index._row = {entry_id: r for r, entry_id in enumerate(index._ids)}
        return index


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _condition_mask(field: str, condition: Any, values: list[Any]) -> np.ndarray:
    """Equality, ``{"in": [...]}`` and ranges ``{"gte": x, "lt": y}`` on numbers or dates."""
    if not isinstance(condition, Mapping):
        return np.array([v == condition for v in values], dtype=bool)
    unknown = set(condition) - {"in", *_RANGE_OPS}
    if unknown:
        raise InvalidInputError(
            f"filter on {field!r}: unknown operator(s) {', '.join(sorted(unknown))}",
            field="where",
            fix="use a value, {in: [...]}, or gt/gte/lt/lte",
        )
    mask = np.ones(len(values), dtype=bool)
    if "in" in condition:
        allowed = condition["in"]
        if not isinstance(allowed, list | tuple | set):
            raise InvalidInputError(f"filter on {field!r}: 'in' takes a list", field="where")
        mask &= np.array([v in allowed for v in values], dtype=bool)
    for op, bound in condition.items():
        if op == "in":
            continue
        key = _sort_key(bound)
        if key is None:
            raise InvalidInputError(
                f"filter on {field!r}: {op} takes a number or an ISO date", field="where"
            )
        mask &= np.array(
            [(k := _sort_key(v)) is not None and type(k) is type(key) and _RANGE_OPS[op](k, key)
             for v in values], dtype=bool,
        )  # fmt: skip
    return mask


def _sort_key(value: Any) -> float | datetime | None:
    """Numbers compare as numbers and dates as instants; anything else does not compare."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed
    return None
