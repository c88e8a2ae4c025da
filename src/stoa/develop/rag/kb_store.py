"""A knowledge base's data: documents, chunks, the embedding cache, the BM25 index and
the change journal, in one SQLite file under ``STOA_HOME/kbs/ID``.

One file makes each document's replacement one transaction: its old chunks leave the
chunk table and the FTS5 index, its new ones arrive, its vectors are cached and the
journal records the change, all or nothing. The vector backend is written after the
commit; the document stays ``pending`` and its old chunk ids stay in ``tombstones``
until the backend has them, so an interrupted ingest is finished, not repeated, by
the next one. Chunk ids are never reused, so a stale vector can never name a new chunk.

Lexical search is SQLite FTS5 with its BM25 ranking, chosen over bm25s by
``benchmarks/kb_index_choice.py``: FTS5 adds a document without rebuilding or reloading
the index, and it is already on disk when a process starts.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stoa.develop.rag.vectors import json_default, matches

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    uri TEXT PRIMARY KEY, sha256 TEXT NOT NULL, title TEXT NOT NULL, format TEXT NOT NULL,
    metadata TEXT NOT NULL, chunk_ids TEXT NOT NULL, pii TEXT NOT NULL,
    status TEXT NOT NULL, config TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uri TEXT NOT NULL, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, text_sha TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    heading_path TEXT NOT NULL, metadata TEXT NOT NULL, header TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS ix_chunks_uri ON chunks (uri);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, content='', tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS embeddings (text_sha TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, uri TEXT NOT NULL, change TEXT NOT NULL,
    version INTEGER);
CREATE INDEX IF NOT EXISTS ix_journal_uri ON journal (uri);
CREATE TABLE IF NOT EXISTS tombstones (id INTEGER PRIMARY KEY);
"""
# Words too common to tell chunks apart: matching them scores every chunk for nothing.
_COMMON = (
    "a an and are as at be but by can do does for from how i if in into is it its me my no "
    "not of on or our so than that the their them then there these they this to was we what "
    "when where which who why will with would you your"
)
STOPWORDS = frozenset(_COMMON.split(" "))
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class StoredChunk:
    id: int
    uri: str
    ordinal: int
    text: str
    text_sha: str  # of the embedded text (header and text): the embedding cache's key
    start: int
    end: int
    heading_path: tuple[str, ...]
    metadata: dict[str, Any]
    header: str = ""  # the title and heading path that led the embedded text


@dataclass(frozen=True)
class NewChunk:
    text: str
    text_sha: str
    start: int
    end: int
    heading_path: tuple[str, ...]
    metadata: dict[str, Any]
    header: str = ""


@dataclass(frozen=True)
class StoredDocument:
    uri: str
    sha256: str
    title: str
    format: str
    metadata: dict[str, Any]
    chunk_ids: list[int]
    pii: dict[str, int]
    status: str  # pending (the vector backend may lack it) or indexed
    config: str  # the chunking and PII settings it was processed with


class KbStore:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            folder / "store.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(chunks)")}
        if "header" not in columns:  # a store written before contextual chunks
            self._db.execute("ALTER TABLE chunks ADD COLUMN header TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- documents -----------------------------------------------------------------

    def document(self, uri: str) -> StoredDocument | None:
        with self._lock:
            row = self._db.execute(
                "SELECT uri, sha256, title, format, metadata, chunk_ids, pii, status, config"
                " FROM documents WHERE uri = ?",
                (uri,),
            ).fetchone()
        return None if row is None else _document(row)

    def documents(self) -> list[StoredDocument]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uri, sha256, title, format, metadata, chunk_ids, pii, status, config"
                " FROM documents ORDER BY uri"
            ).fetchall()
        return [_document(r) for r in rows]

    def document_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """One page of documents by URI, each with its chunk count, personal data found,
        and the versions that added it and last changed it (from the journal)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uri, title, format, json_array_length(chunk_ids), pii, status,"
                " updated_at FROM documents ORDER BY uri LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            marks = ",".join("?" * len(rows))
            history = self._db.execute(
                f"SELECT uri, change, max(version) FROM journal WHERE uri IN ({marks})"
                " AND version IS NOT NULL GROUP BY uri, change",
                [r[0] for r in rows],
            ).fetchall()
        latest: dict[tuple[str, str], int] = {(u, c): v for u, c, v in history}
        page = []
        for uri, title, fmt, chunks, pii, status, updated in rows:
            added = latest.get((uri, "added"))
            changed = latest.get((uri, "changed"))
            page.append({
                "uri": uri, "title": title, "format": fmt, "chunks": int(chunks),
                "pii": json.loads(pii), "status": status,
                "added_in": added,
                # A change before the document was last added belongs to a removed copy.
                "changed_in": changed if changed and (added is None or changed > added) else None,
                "updated_at": updated.replace(" ", "T") + "+00:00",
            })  # fmt: skip
        return page

    def replace_document(
        self,
        doc: StoredDocument,
        chunks: Sequence[NewChunk],
        vectors: Mapping[str, np.ndarray],
        change: str,
    ) -> list[int]:
        """Swap a document's chunks in one transaction; returns the new chunk ids."""
        with self._transaction() as db:
            self._drop_chunks(db, doc.uri)
            ids = []
            for ordinal, chunk in enumerate(chunks):
                cursor = db.execute(
                    'INSERT INTO chunks (uri, ordinal, text, text_sha, start, "end",'
                    " heading_path, metadata, header) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc.uri, ordinal, chunk.text, chunk.text_sha, chunk.start, chunk.end,
                     json.dumps(list(chunk.heading_path)),
                     json.dumps(chunk.metadata, default=json_default), chunk.header),
                )  # fmt: skip
                chunk_id = int(cursor.lastrowid or 0)
                ids.append(chunk_id)
                db.execute(
                    "INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)",
                    (chunk_id, _title_field(doc.title, chunk.heading_path), chunk.text),
                )
            db.executemany(
                "INSERT OR IGNORE INTO embeddings VALUES (?, ?)",
                [(sha, np.asarray(v, dtype=np.float32).tobytes()) for sha, v in vectors.items()],
            )
            db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?,"
                " datetime('now'))",
                (doc.uri, doc.sha256, doc.title, doc.format,
                 json.dumps(doc.metadata, default=json_default), json.dumps(ids),
                 json.dumps(doc.pii), doc.config),
            )  # fmt: skip
            if change:
                db.execute("INSERT INTO journal (uri, change) VALUES (?, ?)", (doc.uri, change))
        return ids

    def remove_document(self, uri: str) -> bool:
        with self._transaction() as db:
            if not self._drop_chunks(db, uri):
                return False
            db.execute("DELETE FROM documents WHERE uri = ?", (uri,))
            db.execute("INSERT INTO journal (uri, change) VALUES (?, 'removed')", (uri,))
        return True

    def _drop_chunks(self, db: sqlite3.Connection, uri: str) -> bool:
        """Old chunks leave the index and their ids wait in tombstones for the backend."""
        found = db.execute("SELECT title FROM documents WHERE uri = ?", (uri,)).fetchone()
        if found is None:
            return False
        title = found[0]
        rows = db.execute("SELECT id, text, heading_path FROM chunks WHERE uri = ?", (uri,))
        for chunk_id, text, heading in rows.fetchall():
            db.execute(
                "INSERT INTO chunks_fts (chunks_fts, rowid, title, text)"
                " VALUES ('delete', ?, ?, ?)",
                (chunk_id, _title_field(title, tuple(json.loads(heading))), text),
            )
            db.execute("INSERT OR IGNORE INTO tombstones VALUES (?)", (chunk_id,))
        db.execute("DELETE FROM chunks WHERE uri = ?", (uri,))
        return True

    def mark_indexed(self, uri: str, tombstones: Iterable[int]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE documents SET status = 'indexed' WHERE uri = ?", (uri,))
            db.executemany("DELETE FROM tombstones WHERE id = ?", [(i,) for i in tombstones])

    def tombstones(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM tombstones ORDER BY id")]

    def clear_tombstones(self, ids: Iterable[int]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM tombstones WHERE id = ?", [(i,) for i in ids])

    # -- chunks and vectors ------------------------------------------------------------

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        wanted = list(ids)
        out: dict[int, StoredChunk] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                for row in self._db.execute(
                    f'SELECT id, uri, ordinal, text, text_sha, start, "end", heading_path,'
                    f" metadata, header FROM chunks WHERE id IN ({marks})",
                    part,
                ):
                    out[row[0]] = StoredChunk(
                        row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                        tuple(json.loads(row[7])), json.loads(row[8]), row[9],
                    )  # fmt: skip
        return out

    def cached_vectors(self, shas: Iterable[str], dimension: int) -> dict[str, np.ndarray]:
        wanted = sorted(set(shas))
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                for sha, blob in self._db.execute(
                    f"SELECT text_sha, vector FROM embeddings WHERE text_sha IN ({marks})", part
                ):
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (dimension,):
                        out[sha] = vector
        return out

    def counts(self) -> dict[str, int]:
        with self._lock:
            documents = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"documents": int(documents), "chunks": int(chunks)}

    # -- lexical search ----------------------------------------------------------------

    def lexical(
        self, query: str, k: int, where: Mapping[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over chunk text and headings, filtered while the ranking is read.

        The conditions SQLite can decide exactly (equality and ``in`` on text, booleans
        and integers) run inside the query; the rest are checked in Python per ranked row.
        """
        terms = query_terms(query)
        if not terms:
            return []
        with self._lock:
            terms = self._weighted_terms(terms)
        expression = fts_expression(terms)
        where = where or {}
        pushed, params, exact = sqlite_filter(where, "c.metadata")
        sql = (
            "SELECT c.id, -bm25(chunks_fts, 2.0, 1.0), c.metadata FROM chunks_fts"
            " JOIN chunks c ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ?"
            + "".join(f" AND {condition}" for condition in pushed)
            + " ORDER BY bm25(chunks_fts, 2.0, 1.0)"
        )
        out: list[tuple[int, float]] = []
        with self._lock:
            if exact:
                rows = self._db.execute(sql + " LIMIT ?", (expression, *params, k)).fetchall()
                return [(int(r[0]), float(r[1])) for r in rows]
            for chunk_id, score, metadata in self._db.execute(sql, (expression, *params)):
                if matches(where, json.loads(metadata)):
                    out.append((int(chunk_id), float(score)))
                    if len(out) == k:
                        break
        return out

    def _weighted_terms(self, terms: list[str]) -> list[str]:
        """Drop terms found in more than half the chunks while a rarer one remains.

        FTS5's BM25 gives such a term an IDF of zero (clamped to 1e-6), so it cannot
        change the order of chunks that match a rarer term, yet every chunk holding it
        is scored: on 200,000 chunks one such word costs about 0.3 s a query. Counting a
        term's chunks costs a few milliseconds.
        """
        if len(terms) < 2:
            return terms
        total = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        count = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
        frequency = {
            term: self._db.execute(count, (fts_expression([term]),)).fetchone()[0] for term in terms
        }
        kept = [term for term in terms if frequency[term] <= total / 2]
        return kept or [min(terms, key=frequency.__getitem__)]

    # -- the journal -------------------------------------------------------------------

    def unversioned(self) -> dict[str, list[str]]:
        """The net change since the last version, per document: added, changed or removed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uri, change FROM journal WHERE version IS NULL ORDER BY seq"
            ).fetchall()
        first: dict[str, str] = {}
        last: dict[str, str] = {}
        for uri, change in rows:
            first.setdefault(uri, change)
            last[uri] = change
        diff: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
        for uri in sorted(first):
            if first[uri] == "added" and last[uri] == "removed":
                continue
            if last[uri] == "removed":
                diff["removed"].append(uri)
            elif first[uri] == "added":
                diff["added"].append(uri)
            else:
                diff["changed"].append(uri)
        return diff

    def mark_versioned(self, version: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE journal SET version = ? WHERE version IS NULL", (version,))


def _document(row: Sequence[Any]) -> StoredDocument:
    return StoredDocument(
        row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]),
        json.loads(row[6]), row[7], row[8],
    )  # fmt: skip


_EXACT_INT = 2**53  # integers SQLite and Python both hold exactly


def sqlite_filter(where: Mapping[str, Any], column: str) -> tuple[list[str], list[Any], bool]:
    """SQL conditions over a JSON ``column`` that admit exactly what ``vectors.matches``
    admits, for the conditions that can be said exactly; ``exact`` is whether every
    condition could. ``json_type`` keeps ``true`` from meeting 1 and "1" from meeting 1.
    """
    pushed: list[str] = []
    params: list[Any] = []
    exact = True
    for field, condition in where.items():
        tests = _sqlite_condition(column, field, condition)
        if tests is None:
            exact = False
            continue
        pushed.append("(" + " OR ".join(sql for sql, _ in tests) + ")" if tests else "0")
        params.extend(value for _, values in tests for value in values)
    return pushed, params, exact


def _sqlite_condition(
    column: str, field: str, condition: Any
) -> list[tuple[str, list[Any]]] | None:
    """One test per allowed value, or None where SQLite cannot decide it exactly (ranges,
    which compare dates as instants, null, floats, lists, names a JSON path cannot quote)."""
    if '"' in field or "\\" in field:
        return None
    if isinstance(condition, Mapping):
        if set(condition) != {"in"}:
            return None
        wanted = list(condition["in"])
    else:
        wanted = [condition]
    tests = []
    for value in wanted:
        test = _sqlite_equal(column, f'$."{field}"', value)
        if test is None:
            return None
        tests.append(test)
    return tests


def _sqlite_equal(column: str, path: str, value: Any) -> tuple[str, list[Any]] | None:
    kind, extract = f"json_type({column}, ?)", f"json_extract({column}, ?)"
    if isinstance(value, bool):
        return f"{kind} = ?", [path, "true" if value else "false"]
    if isinstance(value, int) and -_EXACT_INT < value < _EXACT_INT:
        return f"({kind} IN ('integer', 'real') AND {extract} = ?)", [path, path, value]
    if isinstance(value, str):
        return f"({kind} = 'text' AND {extract} = ?)", [path, path, value]
    return None


def _title_field(title: str, heading_path: tuple[str, ...]) -> str:
    return " / ".join([title, *heading_path])


def query_terms(text: str) -> list[str]:
    """The distinct words of a query, stopwords dropped unless nothing else is left."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and word not in terms:
            terms.append(word)
    if not terms:  # a query of only common words still searches for them
        terms = list(dict.fromkeys(_WORD.findall(text.lower())))
    return terms[:MAX_QUERY_TERMS]


def fts_expression(terms: Sequence[str]) -> str:
    """Terms as an FTS5 OR of quoted strings: no operator or syntax in them is ever live."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def fts_query(text: str) -> str:
    """User text as an FTS5 OR of quoted terms."""
    return fts_expression(query_terms(text))
