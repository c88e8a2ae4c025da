"""The vector backend for when one machine is not enough: Milvus, a distributed engine.

One code path serves a cluster (``http://host:19530``) and Milvus Lite (a local ``.db``
file, what the shared suite runs). Filters become Milvus expressions, so they apply during
search, with the local backend's semantics; because Milvus Lite compares JSON the Python
way (``true == 1``), numbers and ISO dates also go into typed side fields that ranges and
numeric equality use.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.vectors import (
    Hit,
    check_query,
    check_vectors,
    check_where,
    json_default,
    sort_key,
)

_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
# Milvus takes a JSON key verbatim between its quotes (no unescaping) and splits paths on
# brackets, so these characters cannot be named safely in an expression.
_UNSAFE_KEY = re.compile(r'["\\\[\]\x00-\x1f\x7f]')
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_ID_BATCH = 1_000  # ids per query or delete, keeping expressions short
_UPSERT_BYTES = 8 << 20  # vector bytes per upsert request, well under gRPC's 64 MiB
_FIELDS = {
    "id": DataType.INT64,
    "vector": DataType.FLOAT_VECTOR,
    "metadata": DataType.JSON,
    "numbers": DataType.JSON,
    "dates": DataType.JSON,
}

# Milvus Lite serves a .db path from a server inside this process that holds the file's
# lock; it is stopped when the last backend using that path closes, so that another
# process can open the file.
_lite_users: dict[str, int] = {}
_lite_lock = threading.Lock()


class MilvusVectorBackend:
    def __init__(self, uri: str, collection: str, dimension: int, *, token: str | None = None):
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise InvalidInputError("dimension must be a positive integer", field="dimension")
        if not isinstance(collection, str) or not _COLLECTION_NAME.fullmatch(collection):
            raise InvalidInputError(
                f"collection name {collection!r} is not a Milvus name",
                field="collection",
                fix="use letters, digits and underscores, starting with a letter or _",
            )
        self.dimension = dimension
        self.uri = uri
        self.collection = collection
        self._local = uri.endswith(".db")  # pymilvus's own test for Milvus Lite
        self._lite_path = os.path.abspath(uri) if self._local else None
        self._lock = threading.Lock()
        self._closed = False
        if self._lite_path is not None:
            with _lite_lock:
                _lite_users[self._lite_path] = _lite_users.get(self._lite_path, 0) + 1
        try:
            self._client = MilvusClient(uri=uri, token=token or "")
            self._open_collection()
        except BaseException:
            self._release()
            raise

    # -- setup ---------------------------------------------------------------------

    def _open_collection(self) -> None:
        client, name = self._client, self.collection
        if not client.has_collection(name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("numbers", DataType.JSON)
            schema.add_field("dates", DataType.JSON)
            index = client.prepare_index_params()
            if self._local:
                index.add_index("vector", index_type="FLAT", metric_type="COSINE")
            else:
                index.add_index(
                    "vector",
                    index_type="HNSW",
                    metric_type="COSINE",
                    params={"M": 16, "efConstruction": 128},
                )
            client.create_collection(name, schema=schema, consistency_level="Strong")
            # sync=False skips pymilvus's fixed half-second poll; an empty index is ready
            # at once, and loading below waits for whatever Milvus still has to do.
            client.create_index(name, index, sync=False)
        else:
            fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
            wrong = sorted(
                n for n, t in _FIELDS.items() if n not in fields or fields[n]["type"] != t
            )
            if wrong:
                raise InvalidInputError(
                    f"collection {name!r} was not made by Stoa: {', '.join(wrong)} missing or"
                    " of another type",
                    field="collection",
                )
            stored = int(fields["vector"].get("params", {}).get("dim", 0))
            if stored != self.dimension:
                raise InvalidInputError(
                    f"collection {name!r} holds {stored}-dimensional vectors, not {self.dimension}",
                    field="dimension",
                )
        if getattr(client.get_load_state(name).get("state"), "name", None) != "Loaded":
            client.load_collection(name)

    # -- writing -------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add or replace entries; vectors are normalised so scores are cosine similarities."""
        vectors = check_vectors(self.dimension, ids, vectors, metadata)
        rows = [
            _row(int(i), v, m) for i, v, m in zip(ids, vectors, metadata, strict=True)
        ]  # every row is checked before anything is written
        batch = max(1, _UPSERT_BYTES // (4 * self.dimension))
        with self._lock:
            for start in range(0, len(rows), batch):
                self._client.upsert(self.collection, rows[start : start + batch])

    def delete(self, ids: Iterable[int]) -> int:
        """Remove entries; returns how many of the ids existed."""
        wanted = sorted({int(i) for i in ids})
        wanted = [i for i in wanted if 0 <= i < 2**63]  # no other id can be stored
        deleted = 0
        with self._lock:
            for start in range(0, len(wanted), _ID_BATCH):
                chunk = wanted[start : start + _ID_BATCH]
                found = self._client.query(
                    self.collection,
                    filter=f"id in [{', '.join(map(str, chunk))}]",
                    output_fields=["id"],
                    consistency_level="Strong",
                )
                present = sorted({int(r["id"]) for r in found})
                if present:
                    self._client.delete(self.collection, ids=present)
                    deleted += len(present)
        return deleted

    def flush(self) -> None:
        """Nothing to do: Milvus has written each change to its log before answering."""

    def drop(self) -> None:
        """Drop the collection on the Milvus server (or in the Lite file), then close."""
        with self._lock:
            if self._client.has_collection(self.collection):
                self._client.drop_collection(self.collection)
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._client.close()
            finally:
                self._release()

    def _release(self) -> None:
        if self._lite_path is None:
            return
        with _lite_lock:
            users = _lite_users.get(self._lite_path, 0) - 1
            if users > 0:
                _lite_users[self._lite_path] = users
                return
            _lite_users.pop(self._lite_path, None)
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(self._lite_path)

    def count(self) -> int:
        found = self._client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(found[0]["count(*)"])

    def __len__(self) -> int:
        return self.count()

    # -- searching -----------------------------------------------------------------

    def search(
        self, query: np.ndarray, k: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The k most similar entries among those matching ``where`` (filtered in Milvus)."""
        query = check_query(self.dimension, query, k)
        expression = milvus_filter(check_where(where))
        if expression is None:
            return []
        params: dict[str, Any] = {} if self._local else {"ef": max(k, 96)}
        found = self._client.search(
            self.collection,
            data=[query.tolist()],
            anns_field="vector",
            limit=k,
            filter=expression,
            output_fields=["metadata"],
            search_params={"metric_type": "COSINE", "params": params},
            consistency_level="Strong",
        )
        hits = [
            Hit(int(h["id"]), float(h["distance"]), dict(h["entity"]["metadata"] or {}))
            for h in found[0]
        ]
        hits.sort(key=lambda h: (-h.score, h.id))  # ties in id order, whatever Milvus sent
        return hits


# -- rows ------------------------------------------------------------------------------


def _row(entry_id: int, vector: np.ndarray, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """One Milvus row: metadata as the local backend stores it, plus its typed side fields."""
    clean = json.loads(json.dumps(dict(metadata), default=json_default))
    _check_storable(clean)
    numbers = {
        key: value
        for key, value in clean.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    dates = {
        key: _micros(instant)
        for key, value in clean.items()
        if isinstance(value, str) and isinstance(instant := sort_key(value), datetime)
    }
    return {
        "id": entry_id,
        "vector": vector.tolist(),
        "metadata": clean,
        "numbers": numbers,
        "dates": dates,
    }


def _check_storable(value: Any) -> None:
    """Milvus JSON holds no NaN or infinity (they would come back as null) nor huge integers."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(
            "metadata holds NaN or an infinite number, which Milvus cannot store",
            field="metadata",
        )
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise InvalidInputError(
            f"metadata integer {value} is outside the 64-bit range Milvus stores",
            field="metadata",
        )
    if isinstance(value, dict):
        for item in value.values():
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)


def _micros(instant: datetime) -> int:
    """A naive UTC instant (as ``sort_key`` gives) as exact integer epoch microseconds."""
    return (instant - _EPOCH) // _MICROSECOND


# -- filters ---------------------------------------------------------------------------


def milvus_filter(where: Mapping[str, Any]) -> str | None:
    """A checked filter as a Milvus expression: ``""`` for none, ``None`` if nothing can match.

    Same semantics as ``vectors.condition_mask``: equality and ``in`` match JSON values
    of the same kind (booleans only booleans, numbers by value, null or missing for None);
    ranges compare numbers with numbers and ISO dates with dates, never text.
    """
    clauses: list[str] = []
    for field, condition in where.items():
        key = _key(field)
        if not isinstance(condition, Mapping):
            term = _equals(field, key, condition)
            if term is None:
                return None
            clauses.append(term)
            continue
        if "in" in condition:
            terms = [t for v in condition["in"] if (t := _equals(field, key, v)) is not None]
            if not terms:
                return None
            unique = list(dict.fromkeys(terms))
            clauses.append(unique[0] if len(unique) == 1 else f"({' or '.join(unique)})")
        for op, bound in condition.items():
            if op == "in":
                continue
            instant = sort_key(bound)
            if isinstance(instant, datetime):
                clauses.append(f"dates[{key}] {_OPERATORS[op]} {_micros(instant)}")
            else:
                clauses.append(f"numbers[{key}] {_OPERATORS[op]} {_number(instant)}")
    return " and ".join(clauses)


def _equals(field: str, key: str, value: Any) -> str | None:
    """The expression for ``metadata[field] == value``; None when no JSON value equals it."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return f"not (exists metadata[{key}])"
    if isinstance(value, bool):
        # Milvus Lite evaluates true == 1: a boolean is a value with no number beside it.
        return (
            f"(metadata[{key}] == {'true' if value else 'false'} and not (exists numbers[{key}]))"
        )
    if isinstance(value, int | float):
        return f"numbers[{key}] == {_number(value)}" if math.isfinite(value) else None
    if isinstance(value, str):
        return f"metadata[{key}] == {_string(value)}"
    if isinstance(value, list | dict):
        raise InvalidInputError(
            f"filter on {field!r}: the Milvus backend cannot compare lists or objects",
            field="where",
        )
    return None  # a tuple, a date object...: never equal to a value read back from JSON


def _key(field: str) -> str:
    if _UNSAFE_KEY.search(field):
        raise InvalidInputError(
            f"filter on {field!r}: Milvus cannot name a field holding quotes, backslashes,"
            " brackets or control characters",
            field="where",
            fix="rename the metadata field",
        )
    return f'"{field}"'


def _string(value: str) -> str:
    """A string literal both Milvus (Go unquoting) and Milvus Lite read back unchanged.

    Only these escapes are common to both; other characters, control characters and
    non-ASCII included, are taken literally by both, so they are not escaped.
    """
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(raw, escaped)
    return f'"{value}"'


def _number(value: int | float) -> str:
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return str(int(value))  # int() so that an IntEnum prints as a number
    return repr(float(value))
