"""The local vector backend: exact search, filters during search, upserts, persistence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stoa.build.rag.vectors import LocalVectorIndex
from stoa.core.errors import InvalidInputError


def _index(n: int = 200, dim: int = 16) -> tuple[LocalVectorIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    index = LocalVectorIndex(dim)
    meta = [
        {"lang": "en" if i % 10 else "fr", "year": 2000 + i % 25,
         "date": f"2024-01-{1 + i % 28:02d}", "team": f"t{i % 3}"}
        for i in range(n)
    ]  # fmt: skip
    index.upsert([f"c{i}" for i in range(n)], vectors, meta)
    return index, vectors


def test_exact_search_returns_the_true_neighbours():
    index, vectors = _index()
    query = vectors[7] + 0.01
    hits = index.search(query, k=5)
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.argsort(-(normed @ (query / np.linalg.norm(query))))[:5]
    assert [h.id for h in hits] == [f"c{i}" for i in truth]
    assert hits[0].id == "c7" and hits[0].score > 0.99


def test_filters_apply_during_search_never_after_top_k():
    index, vectors = _index()
    hits = index.search(vectors[1], k=10, where={"lang": "fr"})  # only 20 of 200 match
    assert len(hits) == 10 and all(h.metadata["lang"] == "fr" for h in hits)
    hits = index.search(vectors[1], k=50, where={"lang": "fr"})
    assert len(hits) == 20  # every match, not fewer
    ranged = index.search(vectors[1], k=200, where={"year": {"gte": 2010, "lt": 2012}})
    assert {h.metadata["year"] for h in ranged} == {2010, 2011} and len(ranged) == 16
    dated = index.search(vectors[1], k=200, where={"date": {"lte": "2024-01-02"}})
    assert {h.metadata["date"] for h in dated} == {"2024-01-01", "2024-01-02"}
    within = index.search(vectors[1], k=200, where={"team": {"in": ["t0", "t2"]}})
    assert {h.metadata["team"] for h in within} == {"t0", "t2"}
    assert index.search(vectors[1], k=5, where={"lang": "de"}) == []


def test_upsert_replaces_delete_removes_and_persistence_survives_a_new_process(tmp_path):
    index, vectors = _index(50)
    index.upsert(["c3"], vectors[10:11], [{"lang": "xx"}])
    assert len(index) == 50 and index.search(vectors[10], k=2)[1].id in {"c3", "c10"}
    assert index.delete(["c1", "c2", "nope"]) == 2 and len(index) == 48
    index.save(tmp_path / "kb")
    code = (
        "import numpy as np; from pathlib import Path;"
        "from stoa.build.rag.vectors import LocalVectorIndex;"
        f"i = LocalVectorIndex.load(Path({str(tmp_path / 'kb')!r}));"
        "print(len(i), i.search(np.ones(16), k=1, where={'lang': 'xx'})[0].id)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["48", "c3"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda i: i.search(np.zeros(16)), "query"),
        (lambda i: i.search(np.ones(3)), "query"),
        (lambda i: i.search(np.ones(16), k=0), "k"),
        (lambda i: i.search(np.ones(16), where={"year": {"near": 3}}), "where"),
        (lambda i: i.search(np.ones(16), where={"year": {"gt": "soon"}}), "where"),
        (lambda i: i.upsert(["x"], np.full((1, 16), np.nan), [{}]), "vectors"),
        (lambda i: i.upsert(["x"], np.ones((2, 16)), [{}]), "vectors"),
    ],
)
def test_bad_input(call, field):
    index, _ = _index(20)
    with pytest.raises(InvalidInputError) as err:
        call(index)
    assert err.value.field == field
