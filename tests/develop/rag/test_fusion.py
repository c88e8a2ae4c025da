"""Hybrid fusion: reciprocal-rank (plain and weighted) and a convex combination of scores."""

from __future__ import annotations

from collections import Counter

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.retrieve import RRF_K, Fusion, collapse, fuse, fusion_label, parse_fusion

DENSE = [(1, 0.90), (2, 0.80), (3, 0.10)]
SPARSE = [(3, 12.0), (4, 11.0), (1, 2.0)]


def test_rrf_adds_reciprocal_ranks():
    fused = dict(fuse(DENSE, SPARSE, Fusion("rrf", 60, 0.5)))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[4] == pytest.approx(1 / 62)
    assert [i for i, _ in fuse(DENSE, SPARSE, Fusion("rrf", 60, 0.5))][:2] == [1, 3]  # tie: dense


def test_weighted_rrf_leans_towards_the_heavier_list():
    towards_sparse = [i for i, _ in fuse(DENSE, SPARSE, Fusion("rrf", 60, 0.2))]
    towards_dense = [i for i, _ in fuse(DENSE, SPARSE, Fusion("rrf", 60, 0.8))]
    assert towards_sparse[0] == 3 and towards_dense[0] == 1
    assert towards_sparse.index(4) < towards_sparse.index(2)
    assert towards_dense.index(2) < towards_dense.index(4)


def test_convex_scales_each_list_to_its_pool():
    fused = dict(fuse(DENSE, SPARSE, Fusion("convex", 0, 0.5)))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)  # top of dense, bottom of sparse
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused[2] == pytest.approx(0.5 * 0.7 / 0.8)
    assert fused[4] == pytest.approx(0.5 * 9 / 10)
    # One list empty (BM25 matched nothing): the other's order stands.
    assert [i for i, _ in fuse(DENSE, [], Fusion("convex", 0, 0.6))] == [1, 2, 3]
    assert [i for i, _ in fuse([(7, 0.3)], [], Fusion("convex", 0, 0.6))] == [7]


@pytest.mark.parametrize(
    ("fusion", "message"),
    [(("borda", 60, 0.5), "unknown fusion 'borda'"), (("rrf", 60, 1.5), "dense_weight must be"),
     (("rrf", -1, 0.5), "constant 0 or more")],
)  # fmt: skip
def test_bad_fusion_settings_are_refused(fusion, message):
    with pytest.raises(InvalidInputError, match=message):
        Fusion(*fusion)


def test_collapse_keeps_each_documents_first_chunks_in_rank_order():
    owner = {1: "a", 2: "a", 3: "b", 4: "a", 5: "c", 6: "b"}
    ranked = [(i, 1.0 / i) for i in range(1, 7)]
    assert [i for i, _ in collapse(ranked, owner.__getitem__, 1)] == [1, 3, 5]
    assert [i for i, _ in collapse(ranked, owner.__getitem__, 2)] == [1, 2, 3, 5, 6]


def test_a_query_returns_at_most_per_document_chunks_of_one_document(sqlite_client, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sections = "\n\n".join(f"## Part {i}\n\nRefunds are paid in step {i}." for i in range(8))
    (corpus / "refunds.md").write_text(f"# Refunds\n\n{sections}\n")
    (corpus / "other.md").write_text("# Shipping\n\nParcels leave within a day; refunds aside.\n")
    sqlite_client.kbs.create("docs", chunking={"target_tokens": 16, "overlap_tokens": 0})
    sqlite_client.kbs.ingest("docs", [corpus])
    for mode in ("vector", "lexical", "hybrid"):
        hits = sqlite_client.kbs.query("docs", "refunds step", k=5, mode=mode)
        per_uri = Counter(h["uri"].rsplit("/", 1)[-1] for h in hits)
        assert per_uri["refunds.md"] == 2 and len(hits) == 2 + per_uri["other.md"], mode
        hits = sqlite_client.kbs.query("docs", "refunds step", k=5, mode=mode, per_document=0)
        assert Counter(h["uri"].rsplit("/", 1)[-1] for h in hits)["refunds.md"] >= 4, mode
    for bad in (-1, 1.5, True, 10_000):
        with pytest.raises(InvalidInputError, match="per_document must be 0") as err:
            sqlite_client.kbs.query("docs", "refunds", per_document=bad)
        assert err.value.field == "per_document"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("rrf", Fusion("rrf", RRF_K, 0.5)), ("rrf:60", Fusion("rrf", 60, 0.5)),
     ("rrf:60:0.3", Fusion("rrf", 60, 0.3)), ("convex:0.5", Fusion("convex", 0, 0.5)),
     (None, Fusion())],
)  # fmt: skip
def test_fusion_reads_from_text_and_back(text, expected):
    assert parse_fusion(text) == expected
    assert parse_fusion(fusion_label(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("borda", "cannot read fusion 'borda'"), ("rrf:x", "cannot read fusion"),
     ("convex", "cannot read fusion"), ("rrf:1:2:3", "cannot read fusion"),
     ("convex:2", "dense_weight must be 0..1"), (5, "must be text")],
)  # fmt: skip
def test_unreadable_fusions_are_refused_with_the_forms_that_work(text, message):
    with pytest.raises(InvalidInputError, match=message) as err:
        parse_fusion(text)
    assert err.value.field == "fusion"


def test_query_and_eval_take_a_fusion(sqlite_client, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Refunds\n\nRefunds are paid within five days.\n")
    (corpus / "b.md").write_text("# Shipping\n\nParcels leave the warehouse daily.\n")
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [corpus])
    dense_only = sqlite_client.kbs.query("docs", "when is my money back", fusion="rrf:60:1")
    vector = sqlite_client.kbs.query("docs", "when is my money back", mode="vector")
    assert [h["uri"] for h in dense_only] == [h["uri"] for h in vector]
    qa = '{"query": "money back", "relevant": ["a.md"]}\n'
    report = sqlite_client.kbs.eval("docs", qa, fusion="convex:0.5", modes=["hybrid"])
    params = sqlite_client.runs.get(report["run_id"]).params
    assert params["fusion"] == "convex:0.5" and params["per_document"] == "2"
    with pytest.raises(InvalidInputError, match="cannot read fusion"):
        sqlite_client.kbs.query("docs", "refunds", fusion="magic")
