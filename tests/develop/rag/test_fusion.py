"""Hybrid fusion: reciprocal-rank (plain and weighted) and a convex combination of scores."""

from __future__ import annotations

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.retrieve import Fusion, fuse

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
