"""The default vector backend: vectors kept by Stoa under ``STOA_HOME``, searched exactly
below a size threshold and through a usearch HNSW graph above it.

SQLite (one file per knowledge base) is the durable copy: every upsert and delete is a
transaction, so a call that returned survives a crash. Searching uses an in-memory
matrix loaded from it, and, at or above ``hnsw_threshold`` entries, a usearch graph
saved beside it with the write generation it reflects. A graph older than the database
(writes since the last ``flush``, or a crash before it) is brought up to date by
replaying the ids logged since its generation, never trusted as it is, and never rebuilt
when a saved graph exists. Another process's writes are noticed through SQLite's
``data_version`` and reloaded.

Filters select rows exactly, through per-field column indexes (``metadata_columns``)
kept up to date with the in-memory copy. When few rows match, those rows are searched
exactly; when many do, the graph is searched with oversampling that grows until k
matches are found, and the exact search is the fallback, so a filter never returns fewer
than k results when k entries match. usearch was chosen over FAISS by
``benchmarks/kb_index_choice.py`` (see docs/benchmarks.md); FAISS's HNSW cannot remove
entries.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.metadata_columns import MetadataColumns
from stoa.develop.rag.vectors import (
    Hit,
    check_query,
    check_vectors,
    check_where,
    json_default,
)

GRAPH_FILE = "hnsw.usearch"
GRAPH_STAMP = "hnsw.json"
T = TypeVar("T")


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(self: LocalVectorBackend, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class HnswConfig:
    """benchmarks/kb_index_choice.py, 100k clustered MiniLM-like vectors: recall@10 0.965-0.974
    at 0.9-1.3 ms p50 with these values (expansion_search 64 gave only 0.94); exact search
    stays near 1 ms up to 20k rows and misses 5 ms from 50k."""

    threshold: int = 20_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128


class LocalVectorBackend:
    def __init__(self, folder: Path, dimension: int, *, hnsw: HnswConfig | None = None):
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise InvalidInputError("dimension must be a positive integer", field="dimension")
        self.dimension = dimension
        self.folder = Path(folder)
        self.hnsw = hnsw or HnswConfig()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # one connection, shared by a server's threads
        self._db = sqlite3.connect(
            self.folder / "vectors.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, vector BLOB NOT NULL,"
            " metadata TEXT NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
        # Ids each write generation touched, kept until a saved graph reflects them, so a
        # stale graph is brought up to date by replaying them instead of a full rebuild.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS changes (generation INTEGER NOT NULL, id INTEGER NOT NULL)"
        )
        stored = self._info("dimension")
        if stored is None:
            self._db.execute("INSERT OR IGNORE INTO info VALUES ('dimension', ?)", (dimension,))
        elif int(stored) != dimension:
            raise InvalidInputError(
                f"the index in {self.folder} holds {stored}-dimensional vectors, not {dimension}",
                field="dimension",
            )
        self._seen_version: int | None = None
        self._generation = -1
        self._graph: Any = None
        self._graph_generation = -1
        self._columns = MetadataColumns(self._metadata_unkept)

    # -- writing -------------------------------------------------------------------

    @_locked
    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add or replace entries; vectors are normalised so scores are cosine similarities."""
        vectors = check_vectors(self.dimension, ids, vectors, metadata)
        texts = [json.dumps(dict(m), default=json_default) for m in metadata]
        rows = [(int(i), v.tobytes(), t) for i, v, t in zip(ids, vectors, texts, strict=True)]
        self._write("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", rows, [r[0] for r in rows])
        if self._loaded_current():
            self._apply_upsert([int(i) for i in ids], vectors, texts)

    @_locked
    def delete(self, ids: Iterable[int]) -> int:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        self._refresh()
        present = [i for i in wanted if i in self._row]
        if not present:
            return 0
        self._write("DELETE FROM entries WHERE id = ?", [(i,) for i in present], present)
        if self._loaded_current():
            self._apply_delete(present)
        return len(present)

    @_locked
    def flush(self) -> None:
        """Bring the saved graph up to this generation, so no reader rebuilds or replays it.

        Below the threshold there is no graph: a stale file and the change log go.
        """
        self._refresh()
        if len(self._row) < self.hnsw.threshold:
            for name in (GRAPH_FILE, GRAPH_STAMP):
                (self.folder / name).unlink(missing_ok=True)
            self._graph, self._graph_generation = None, -1
            self._prune_changes(self._generation)
            return
        self._ensure_graph()
        if self._graph_generation == self._generation:
            return
        tmp = self.folder / (GRAPH_FILE + ".tmp")
        self._graph.save(str(tmp))
        os.replace(tmp, self.folder / GRAPH_FILE)
        stamp = self.folder / (GRAPH_STAMP + ".tmp")
        stamp.write_text(json.dumps({"generation": self._generation}))
        os.replace(stamp, self.folder / GRAPH_STAMP)
        self._graph_generation = self._generation
        self._prune_changes(self._generation)

    def _prune_changes(self, generation: int) -> None:
        self._db.execute("DELETE FROM changes WHERE generation <= ?", (generation,))

    @_locked
    def close(self) -> None:
        self.flush()
        self._db.close()

    def drop(self) -> None:
        """Close, then remove the vectors' files: the database, the graph and its stamp."""
        self.close()
        for path in self.folder.glob("vectors*"):
            path.unlink(missing_ok=True)
        for name in (GRAPH_FILE, GRAPH_STAMP):
            (self.folder / name).unlink(missing_ok=True)

    @_locked
    def count(self) -> int:
        self._refresh()
        return len(self._row)

    def __len__(self) -> int:
        return self.count()

    # -- searching -----------------------------------------------------------------

    @_locked
    def search(
        self, query: np.ndarray, k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The k most similar entries among those matching ``where`` (filtered first)."""
        query = check_query(self.dimension, query, k)
        where = check_where(where)
        self._refresh()
        alive = self._alive_view
        if where:
            alive = self._columns.mask(where, alive)
        matching = int(alive.sum()) if where else len(self._row)
        if matching == 0:
            return []
        if matching >= self.hnsw.threshold:
            self._ensure_graph()
            hits = self._graph_search(query, k, alive, matching)
            if hits is not None:
                return hits
        if matching == self._size:  # every row: one contiguous product, no gathered copy
            rows = np.arange(self._size)
            scores = self._matrix[: self._size] @ query
        else:
            rows = np.flatnonzero(alive)
            scores = self._matrix[rows] @ query
        take = min(k, rows.size)
        best = np.argpartition(-scores, take - 1)[:take]
        best = best[np.lexsort((rows[best], -scores[best]))]  # score, then insertion order
        return [self._hit(int(rows[b]), float(scores[b])) for b in best]

    def _graph_search(
        self, query: np.ndarray, k: int, admitted: np.ndarray, matching: int
    ) -> list[Hit] | None:
        total = len(self._row)
        count = min(total, k if matching == total else k * math.ceil(total / matching) * 2 + 8)
        while True:
            found = self._graph.search(query, count=count, threads=1)
            hits: list[Hit] = []
            for key, distance in zip(found.keys, found.distances, strict=True):
                row = self._row.get(int(key))
                if row is not None and admitted[row]:
                    hits.append(self._hit(row, 1.0 - float(distance)))
                    if len(hits) == k:
                        return hits
            if count >= total:
                return None  # the graph could not reach k matches: search them exactly
            count = min(total, count * 4)

    def _hit(self, row: int, score: float) -> Hit:
        return Hit(int(self._ids[row]), score, self._metadata_at(row))

    # -- the in-memory copy ------------------------------------------------------------

    def _info(self, key: str) -> str | None:
        found = self._db.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return None if found is None else found[0]

    def _stored_generation(self) -> int:
        return int(self._info("generation") or 0)

    def _write(self, sql: str, rows: list[tuple[Any, ...]], ids: list[int]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(sql, rows)
            self._db.execute(
                "INSERT INTO info VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE"
                " SET value = CAST(value AS INTEGER) + 1"
            )
            generation = self._stored_generation()
            self._db.executemany(
                "INSERT INTO changes VALUES (?, ?)", [(generation, i) for i in ids]
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _loaded_current(self) -> bool:
        """After our own write: apply it in memory when memory held the previous state."""
        if self._seen_version is None:
            return False
        if self._stored_generation() != self._generation + 1:
            self._seen_version = None  # someone else wrote too: reload on next use
            return False
        self._generation += 1
        self._seen_version = self._data_version()
        return True

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _refresh(self) -> None:
        """Load on first use, and again when another process has written."""
        if self._seen_version is not None and self._data_version() == self._seen_version:
            return
        generation = self._stored_generation()
        if self._seen_version is not None and generation == self._generation:
            self._seen_version = self._data_version()
            return
        ids, blobs, texts = [], [], []
        for entry_id, blob, text in self._db.execute("SELECT id, vector, metadata FROM entries"):
            ids.append(entry_id)
            blobs.append(blob)
            texts.append(text)
        n = len(ids)
        self._ids = np.array(ids, dtype=np.int64)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(n, self.dimension)
        self._matrix = np.array(matrix)  # writable, so rows can be appended in place
        self._texts: list[str] = texts
        self._parsed: list[dict[str, Any] | None] = [None] * n
        self._alive = np.ones(n, dtype=bool)
        self._row = {entry_id: r for r, entry_id in enumerate(ids)}
        self._size = n
        self._generation = generation
        self._seen_version = self._data_version()
        self._graph = None
        self._graph_generation = -1
        self._columns.reset(n)

    def _apply_upsert(self, ids: list[int], vectors: np.ndarray, texts: list[str]) -> None:
        self._apply_delete([i for i in ids if i in self._row])
        needed = self._size + len(ids)
        if needed > len(self._matrix):
            capacity = max(needed, 2 * len(self._matrix), 1024)
            grown = np.zeros((capacity, self.dimension), dtype=np.float32)
            grown[: self._size] = self._matrix[: self._size]
            self._matrix = grown
            self._ids = np.resize(self._ids, capacity)
            self._alive = np.concatenate([self._alive[: self._size],
                                          np.zeros(capacity - self._size, dtype=bool)])  # fmt: skip
        start = self._size
        self._matrix[start:needed] = vectors
        self._ids[start:needed] = ids
        self._alive[start:needed] = True
        self._texts.extend(texts)
        self._parsed.extend([None] * len(ids))
        for offset, entry_id in enumerate(ids):
            self._row[entry_id] = start + offset
        self._size = needed
        self._columns.append(len(ids))
        if self._graph is not None:
            self._graph.add(np.array(ids, dtype=np.uint64), vectors, threads=1)
            self._graph_generation = -1

    def _apply_delete(self, ids: list[int]) -> None:
        for entry_id in ids:
            row = self._row.pop(entry_id)
            self._alive[row] = False
            self._texts[row] = ""
            self._parsed[row] = None
        if self._graph is not None and ids:
            self._graph.remove(np.array(ids, dtype=np.uint64))
            self._graph_generation = -1
        if self._size and (self._size - len(self._row)) > max(1024, self._size // 4):
            self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self._alive_view)
        self._matrix = self._matrix[keep]
        self._ids = self._ids[keep]
        self._texts = [self._texts[r] for r in keep]
        self._parsed = [self._parsed[r] for r in keep]
        self._alive = np.ones(len(keep), dtype=bool)
        self._row = {int(entry_id): r for r, entry_id in enumerate(self._ids)}
        self._size = len(keep)
        self._columns.reset(self._size)

    def _metadata_at(self, row: int) -> dict[str, Any]:
        parsed = self._parsed[row]
        if parsed is None:
            parsed = self._parsed[row] = json.loads(self._texts[row])
        return parsed

    def _metadata_unkept(self, row: int) -> dict[str, Any]:
        """A row's metadata for building a column: parsed, but not kept, so a column over
        100k rows holds one field's values rather than every row's whole metadata."""
        parsed = self._parsed[row]
        return parsed if parsed is not None else json.loads(self._texts[row])

    def _replay(self, since: int) -> None:
        """Apply the ids written after ``since`` to the loaded graph: remove, then re-add
        those still present with their current vectors."""
        touched = [row[0] for row in self._db.execute(
            "SELECT DISTINCT id FROM changes WHERE generation > ?", (since,))]  # fmt: skip
        if touched:
            self._graph.remove(np.array(touched, dtype=np.uint64))
            alive = [i for i in touched if i in self._row]
            if alive:
                rows = np.array([self._row[i] for i in alive])
                self._graph.add(np.array(alive, dtype=np.uint64), self._matrix[rows], threads=1)
        self._graph_generation = -1  # differs from the file: flush saves it

    @property
    def _alive_view(self) -> np.ndarray:
        return self._alive[: self._size]

    # -- the graph -----------------------------------------------------------------

    def _ensure_graph(self) -> None:
        """Open the saved graph, replaying the writes since it was saved; else build it."""
        if self._graph is not None:
            return
        from usearch.index import Index

        graph = Index(
            ndim=self.dimension,
            metric="cos",
            dtype="f32",
            connectivity=self.hnsw.connectivity,
            expansion_add=self.hnsw.expansion_add,
            expansion_search=self.hnsw.expansion_search,
        )
        stamp = self.folder / GRAPH_STAMP
        saved = self.folder / GRAPH_FILE
        if saved.exists() and stamp.exists():
            try:
                generation = int(json.loads(stamp.read_text())["generation"])
            except (ValueError, KeyError, TypeError):
                generation = -2
            if 0 <= generation <= self._generation:
                graph.load(str(saved))
                graph.expansion_search = self.hnsw.expansion_search  # not saved in the file
                self._graph, self._graph_generation = graph, generation
                if generation < self._generation:
                    self._replay(generation)
                return
        rows = np.flatnonzero(self._alive_view)
        graph.add(self._ids[rows].astype(np.uint64), self._matrix[rows], threads=os.cpu_count())
        self._graph = graph
        self._graph_generation = -1
        return
