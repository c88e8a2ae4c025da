"""The shared suite every vector backend passes: exact local, HNSW local and Milvus Lite.

It covers true neighbours, filters with fewer matches than k (applied during search,
never after top-k), updates, deletes, persistence across processes, and bad input.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.vectors import VectorBackend

DIM = 16
BACKENDS = ["exact", "hnsw", "milvus"]


def open_backend(kind: str, folder: Path, dimension: int = DIM) -> VectorBackend:
    """The same opening code runs in this process and in the child processes below."""
    if kind == "milvus":
        from stoa.develop.rag.vector_milvus import MilvusVectorBackend

        return MilvusVectorBackend(str(folder / "milvus.db"), "chunks", dimension)
    from stoa.develop.rag.vector_local import HnswConfig, LocalVectorBackend

    threshold = 1 if kind == "hnsw" else 10**9
    return LocalVectorBackend(folder, dimension, hnsw=HnswConfig(threshold=threshold))


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def _meta(i: int) -> dict:
    return {
        "lang": "en" if i % 10 else "fr",
        "year": 2000 + i % 25,
        "date": f"2024-01-{1 + i % 28:02d}",
        "team": f"t{i % 3}",
        "draft": i % 7 == 0,
    }


def _filled(kind: str, folder: Path, n: int = 200) -> tuple[VectorBackend, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    backend = open_backend(kind, folder)
    backend.upsert(list(range(n)), vectors, [_meta(i) for i in range(n)])
    return backend, vectors


def _truth(vectors: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = normed[rows] @ (query / np.linalg.norm(query))
    return [int(rows[i]) for i in np.argsort(-scores)[:k]]


def _agree(kind: str, got: list[int], want: list[int]) -> bool:
    """Exact backends agree exactly; an HNSW graph may swap a near-tie, never miss many."""
    if kind == "exact":
        return got == want
    return len(got) == len(want) and len(set(got) & set(want)) >= 0.8 * len(want)


def test_search_returns_the_true_neighbours_with_cosine_scores(kind, tmp_path):
    backend, vectors = _filled(kind, tmp_path)
    query = vectors[7] + 0.01
    hits = backend.search(query, k=5)
    assert _agree(kind, [h.id for h in hits], _truth(vectors, query, np.arange(200), 5))
    assert hits[0].id == 7 and hits[0].score > 0.99
    assert hits[0].metadata == _meta(7)
    assert backend.count() == 200


def test_filters_apply_during_search_never_after_top_k(kind, tmp_path):
    backend, vectors = _filled(kind, tmp_path)
    hits = backend.search(vectors[1], k=10, where={"lang": "fr"})  # 20 of 200 match
    assert len(hits) == 10 and all(h.metadata["lang"] == "fr" for h in hits)
    fr = np.array([i for i in range(200) if i % 10 == 0])
    assert _agree(kind, [h.id for h in hits], _truth(vectors, vectors[1], fr, 10))
    assert len(backend.search(vectors[1], k=50, where={"lang": "fr"})) == 20  # all, not fewer
    ranged = backend.search(vectors[1], k=200, where={"year": {"gte": 2010, "lt": 2012}})
    assert {h.metadata["year"] for h in ranged} == {2010, 2011} and len(ranged) == 16
    dated = backend.search(vectors[1], k=200, where={"date": {"lte": "2024-01-02"}})
    assert {h.metadata["date"] for h in dated} == {"2024-01-01", "2024-01-02"}
    within = backend.search(vectors[1], k=200, where={"team": {"in": ["t0", "t2"]}})
    assert {h.metadata["team"] for h in within} == {"t0", "t2"} and len(within) == 133
    both = backend.search(vectors[1], k=200, where={"lang": "fr", "team": "t0"})
    assert len(both) == 7 and all(h.id % 30 == 0 for h in both)
    drafts = backend.search(vectors[1], k=200, where={"draft": True})
    assert len(drafts) == 29 and all(h.id % 7 == 0 for h in drafts)
    assert backend.search(vectors[1], k=5, where={"lang": "de"}) == []


def test_upsert_replaces_delete_removes_and_state_survives_a_new_process(kind, tmp_path):
    backend, vectors = _filled(kind, tmp_path, 50)
    backend.upsert([3], vectors[10:11], [{"lang": "xx", "year": 1999}])
    assert backend.count() == 50
    assert {h.id for h in backend.search(vectors[10], k=2)} == {3, 10}
    assert backend.delete([1, 2, 999]) == 2 and backend.count() == 48
    assert all(h.id not in {1, 2} for h in backend.search(vectors[1], k=48))
    backend.close()
    code = (
        "import numpy as np, sys; from pathlib import Path;"
        "from tests.develop.rag.test_vector_backends import open_backend;"
        f"b = open_backend({kind!r}, Path({str(tmp_path)!r}));"
        "h = b.search(np.ones(16), k=1, where={'lang': 'xx'})[0];"
        "print(b.count(), h.id, h.metadata['year']); b.close()"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["48", "3", "1999"]


# Not Milvus: Milvus Lite holds its file for one process; a cluster URI shares state.
@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_a_reopened_backend_sees_another_writers_changes(kind, tmp_path):
    first, vectors = _filled(kind, tmp_path, 40)
    second = open_backend(kind, tmp_path)
    assert second.count() == 40
    first.delete([5])
    first.upsert([100], vectors[6:7] * -1, [{"lang": "new"}])
    assert second.count() == 40  # 39 + 1: the replaced and added entries are both seen
    assert [h.id for h in second.search(-vectors[6], k=1)] == [100]
    assert all(h.id != 5 for h in second.search(vectors[5], k=40))
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (lambda b: b.search(np.zeros(DIM)), "query", "all zeros"),
        (lambda b: b.search(np.ones(3)), "query", "16 finite numbers"),
        (lambda b: b.search(np.ones(DIM), k=0), "k", "1..10000"),
        (lambda b: b.search(np.ones(DIM), where={"year": {"near": 3}}), "where", "near"),
        (lambda b: b.search(np.ones(DIM), where={"year": {"gt": "soon"}}), "where", "ISO date"),
        (lambda b: b.search(np.ones(DIM), where={"team": {"in": "t0"}}), "where", "a list"),
        (lambda b: b.search(np.ones(DIM), where=["lang"]), "where", "JSON object"),
        (lambda b: b.upsert([1], np.full((1, DIM), np.nan), [{}]), "vectors", "NaN"),
        (lambda b: b.upsert([1], np.ones((2, DIM)), [{}]), "vectors", "differ in length"),
        (lambda b: b.upsert([1], np.zeros((1, DIM)), [{}]), "vectors", "all zeros"),
        (lambda b: b.upsert([-1], np.ones((1, DIM)), [{}]), "ids", "outside"),
        (lambda b: b.upsert([1, 1], np.ones((2, DIM)), [{}, {}]), "ids", "repeat"),
    ],
)
def test_bad_input_is_refused_and_loses_nothing(kind, tmp_path, call, field, message):
    backend, vectors = _filled(kind, tmp_path, 20)
    with pytest.raises(InvalidInputError) as err:
        call(backend)
    assert err.value.field == field and message in str(err.value)
    assert backend.count() == 20
    assert backend.search(vectors[4], k=1)[0].id == 4


def test_a_local_index_refuses_another_dimension(tmp_path):
    backend, _ = _filled("exact", tmp_path, 5)
    backend.close()
    with pytest.raises(InvalidInputError, match="16-dimensional"):
        open_backend("exact", tmp_path, dimension=8)


def test_a_stale_hnsw_graph_is_replayed_from_the_change_log_not_rebuilt(tmp_path, monkeypatch):
    from stoa.develop.rag.vector_local import LocalVectorBackend

    backend, vectors = _filled("hnsw", tmp_path, 300)
    backend.flush()  # saves the graph at this generation and empties the change log
    assert (tmp_path / "hnsw.usearch").exists()
    assert backend._db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
    backend.upsert([0], -vectors[0:1], [{"lang": "moved"}])  # written, never flushed
    backend.delete([5])
    backend._db.close()  # as if the process died here

    replayed: list[int] = []
    real = LocalVectorBackend._replay

    def spy(self: LocalVectorBackend, since: int) -> None:
        replayed.append(since)
        real(self, since)

    monkeypatch.setattr(LocalVectorBackend, "_replay", spy)
    reopened = open_backend("hnsw", tmp_path)
    hit = reopened.search(-vectors[0], k=1)[0]
    assert hit.id == 0 and hit.metadata == {"lang": "moved"} and hit.score > 0.99
    assert all(h.id != 5 for h in reopened.search(vectors[5], k=20))
    assert len(replayed) == 1  # the saved graph was loaded and brought up to date
    assert reopened._graph.size == 299
    reopened.flush()  # the replayed graph is saved, and the log it consumed is pruned
    assert reopened._db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
    reopened.close()
    third = open_backend("hnsw", tmp_path)
    assert third.search(-vectors[0], k=1)[0].id == 0 and len(replayed) == 1  # no replay


def test_flush_builds_the_graph_so_no_reader_pays_for_it(tmp_path):
    backend, _ = _filled("hnsw", tmp_path, 100)
    assert not (tmp_path / "hnsw.usearch").exists()
    backend.flush()
    assert (tmp_path / "hnsw.usearch").exists()
    backend.close()
    small = open_backend("exact", tmp_path)  # below its threshold: no graph, no log
    small.flush()
    assert not (tmp_path / "hnsw.usearch").exists()
    assert small._db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


# -- filters on awkward values: every backend gives exactly the reference semantics --

TRICKY_VALUES = [True, False, 1, 1.0, 0, -3, 2.5, 20240102, "1", "true", None, "2024-01-02",
                 "2024-01-02T05:00:00+02:00", [1, 2], {"a": 1}, 'a"b\\c\'d', "x\ny\r\tz\x01",
                 "é😀", "\\", ""]  # fmt: skip


TRICKY_FILTERS = [{"v": v} for v in TRICKY_VALUES if not isinstance(v, list | dict)] + [
    {"v": {"in": [True, 1, "1", None]}}, {"v": {"in": [False, 0.0, "x\ny\r\tz\x01"]}},
    {"v": {"in": []}}, {"v": {"in": [(1, 2), float("nan")]}}, {"v": date(2024, 1, 2)},
    {"v": {"gt": 0}}, {"v": {"gte": -3, "lt": 2}}, {"v": {"gt": 1.5, "in": [2.5, "1"]}},
    {"v": {"gte": "2024-01-02"}}, {"v": {"lt": "2024-01-02T04:00:00"}},
    {"v": {"lte": date(2024, 1, 2)}}, {"v": {"gt": "2024-01-02T03:00:00+00:00"}},
    {"v": 1, "w": 0}, {"v": {"in": [True, False]}, "w": 1}, {"w": {"gte": 1}},
    {"v": np.int64(1)}, {"absent": None}, {"w": {"in": [np.float32(1.0)]}},
    {"w": {"in": [0, 1]}}, {"v": 2**60}, {"v": {"in": ["true", True, 20240102]}},
]  # fmt: skip
# Milvus refuses a list inside "in", and field names it cannot quote; the others compare.
LOCAL_ONLY_FILTERS = [{"v": {"in": [[1, 2], {"a": 1}]}}, {'q"k': 1}, {"a\\b": "x"}]


def _ids(backend: VectorBackend, where: dict, n: int) -> list[int]:
    return sorted(h.id for h in backend.search(np.ones(DIM), k=n, where=where))


def test_filters_give_exactly_the_reference_results_before_and_after_changes(kind, tmp_path):
    """Local answers from column indexes kept up to date with writes, and Milvus from
    translated expressions; both must equal ``filter_mask`` on the current metadata."""
    from stoa.develop.rag.vectors import check_where, filter_mask

    metadata = [{"v": value, "w": i % 2} for i, value in enumerate(TRICKY_VALUES)] + [{"w": 0}]
    n = len(metadata)
    backend = open_backend(kind, tmp_path)
    vectors = np.random.default_rng(1).normal(size=(n, DIM))
    backend.upsert(list(range(n)), vectors, metadata)
    filters = list(TRICKY_FILTERS)
    if kind != "milvus":
        filters += LOCAL_ONLY_FILTERS

    def check(live: dict[int, dict]) -> None:
        rows = sorted(live)
        for where in filters:
            mask = filter_mask(check_where(where), [live[r] for r in rows])
            assert _ids(backend, where, n) == [rows[i] for i in np.flatnonzero(mask)], where

    check(dict(enumerate(metadata)))
    # Values move between rows, two rows go, one arrives: answers follow at once.
    values = TRICKY_VALUES
    moved = {i: {"v": values[(i + 7) % len(values)], "w": 1 - i % 2} for i in range(0, n, 3)}
    backend.upsert(list(moved), vectors[list(moved)], list(moved.values()))
    backend.delete([1, 4])
    backend.upsert([n], vectors[:1], [{"v": "2024-01-02", "w": 1}])
    live = {**dict(enumerate(metadata)), **moved, n: {"v": "2024-01-02", "w": 1}}
    del live[1], live[4]
    check(live)
    backend.close()


def test_milvus_names_odd_fields_safely_and_refuses_what_it_cannot_name(tmp_path):
    odd = ["a b", "a/b~c", "it's", "é😀", "0", "x.y", "$meta", "and", "==", " "]
    backend = open_backend("milvus", tmp_path)
    metadata = [{key: "yes", f"{key}#": i} for i, key in enumerate(odd)]
    backend.upsert(list(range(len(odd))), np.eye(DIM)[: len(odd)] + 0.1, metadata)
    for i, key in enumerate(odd):
        assert _ids(backend, {key: "yes"}, 20) == [i], key
        assert _ids(backend, {f"{key}#": {"gte": 0}}, 20) == [i], key
    for key in ['a"b', "a\\b", "a[0]", "a]", "a\nb", "tab\t"]:
        with pytest.raises(InvalidInputError) as err:
            backend.search(np.ones(DIM), where={key: 1})
        assert err.value.field == "where" and "cannot name" in str(err.value)
    with pytest.raises(InvalidInputError) as err:
        backend.search(np.ones(DIM), where={"n": {"in": [[1]]}})
    assert err.value.field == "where"
    with pytest.raises(InvalidInputError) as err:
        backend.upsert([99], np.ones((1, DIM)), [{"n": float("nan")}])
    assert err.value.field == "metadata" and backend.count() == len(odd)
    backend.close()


def test_a_milvus_collection_refuses_another_dimension(tmp_path):
    backend, _ = _filled("milvus", tmp_path, 5)
    backend.close()
    with pytest.raises(InvalidInputError, match="16-dimensional vectors, not 8") as err:
        open_backend("milvus", tmp_path, dimension=8)
    assert err.value.field == "dimension"
    reopened = open_backend("milvus", tmp_path)  # the refused opening left the file usable
    assert reopened.count() == 5
    reopened.close()


def test_drop_removes_every_vector_for_good(kind, tmp_path):
    backend, _ = _filled(kind, tmp_path, n=20)
    backend.drop()
    reopened = open_backend(kind, tmp_path)
    assert reopened.count() == 0
    reopened.close()
