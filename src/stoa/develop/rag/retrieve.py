"""Retrieval: vector, lexical (BM25) or hybrid, then an optional cross-encoder reranker,
a per-document limit and MMR diversity.

Hybrid fuses ranks by default (reciprocal-rank fusion, constant 10), because cosine
similarities and BM25 scores live on scales no fixed weight reconciles across queries.
The constant, weighted RRF and a convex combination of min-max scaled scores were
compared on four corpora of different shapes (``benchmarks/kb_corpora.py``): with
contextual 128-token chunks, RRF with constant 10 and equal weights had the best sum of
MRR and beat the better single mode on every corpus. Weighting one list helps the corpus
where that list is stronger and hurts the others, so it is a per-query option
(``fusion``), measured with ``stoa kb eval --fusion``. Each result
carries what a citation needs: text, source URI, heading path and character offsets
into the source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.chunk import contextual_text
from stoa.develop.rag.embed import Embedder
from stoa.develop.rag.kb_store import KbStore
from stoa.develop.rag.vectors import VectorBackend, check_where

MODES = ("vector", "lexical", "hybrid")
RRF_K = 10
MAX_RESULTS = 1000
MAX_QUERY_CHARS = 10_000
#: At most this many chunks of one document in a result list (0: no limit).
PER_DOCUMENT = 2


@dataclass(frozen=True)
class Result:
    id: int
    text: str
    score: float
    uri: str
    heading_path: tuple[str, ...]
    start: int
    end: int
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["heading_path"] = list(self.heading_path)
        return out


def check_query_options(
    query: Any, k: Any, mode: Any, mmr: Any, per_document: Any = PER_DOCUMENT
) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("must be non-empty text", field="query")
    if len(query) > MAX_QUERY_CHARS or "\x00" in query:
        raise InvalidInputError(
            f"must be under {MAX_QUERY_CHARS:,} characters without NUL bytes", field="query"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULTS:
        raise InvalidInputError(f"k must be 1..{MAX_RESULTS}", field="k")
    if mode not in MODES:
        raise InvalidInputError(
            f"unknown mode {mode!r}", field="mode", fix="use vector, lexical or hybrid"
        )
    if mmr is not None and (
        isinstance(mmr, bool) or not isinstance(mmr, int | float) or not 0 <= mmr <= 1
    ):
        raise InvalidInputError(
            "mmr is the relevance weight lambda, 0..1", field="mmr", fix="e.g. 0.5"
        )
    if (
        isinstance(per_document, bool)
        or not isinstance(per_document, int)
        or not 0 <= per_document <= MAX_RESULTS
    ):
        raise InvalidInputError(
            f"per_document must be 0 (no limit) to {MAX_RESULTS}", field="per_document"
        )


def retrieve(
    store: KbStore,
    backend: VectorBackend,
    embedder: Embedder,
    query: str,
    *,
    k: int = 5,
    mode: str = "hybrid",
    where: Mapping[str, Any] | None = None,
    mmr: float | None = None,
    reranker: str | None = None,
    fusion: Fusion | None = None,
    per_document: int = PER_DOCUMENT,
) -> list[Result]:
    """The ``k`` best chunks, at most ``per_document`` from one document: a question
    answered by one page should not fill every slot with that page's neighbours."""
    check_query_options(query, k, mode, mmr, per_document)
    where = check_where(where)
    narrow = mode != "hybrid" and mmr is None and reranker is None and not per_document
    pool = min(k if narrow else max(4 * k, 40), MAX_RESULTS)
    query_vector = None
    ranked: list[tuple[int, float]]
    if mode in ("vector", "hybrid") or mmr is not None:
        query_vector = embedder.embed([query])[0]
    if mode == "vector":
        assert query_vector is not None
        ranked = [(h.id, h.score) for h in backend.search(query_vector, pool, where)]
    elif mode == "lexical":
        ranked = store.lexical(query, pool, where)
    else:
        assert query_vector is not None
        dense = [(h.id, h.score) for h in backend.search(query_vector, pool, where)]
        ranked = fuse(dense, store.lexical(query, pool, where), fusion)
    chunks = store.chunks(i for i, _ in ranked)
    ranked = [(i, s) for i, s in ranked if i in chunks]  # ids a crash left behind are skipped
    if reranker is not None and ranked:
        pairs = [(query, contextual_text(chunks[i].header, chunks[i].text)) for i, _ in ranked]
        scores = cross_encoder(reranker).predict(pairs)
        ranked = sorted(zip((i for i, _ in ranked), map(float, scores), strict=True),
                        key=lambda pair: -pair[1])  # fmt: skip
    if per_document:
        ranked = collapse(ranked, lambda i: chunks[i].uri, per_document)
    if mmr is not None and ranked:
        assert query_vector is not None
        cached = store.cached_vectors((chunks[i].text_sha for i, _ in ranked), embedder.dimension)
        vectors = np.array([cached[chunks[i].text_sha] for i, _ in ranked], dtype=np.float32)
        order = maximal_marginal_relevance(query_vector, vectors, k, float(mmr))
        ranked = [ranked[j] for j in order]
    out = []
    for chunk_id, score in ranked[:k]:
        c = chunks[chunk_id]
        out.append(Result(c.id, c.text, score, c.uri, c.heading_path, c.start, c.end, c.metadata))
    return out


@dataclass(frozen=True)
class Fusion:
    """How hybrid merges the vector and BM25 rankings.

    ``rrf``: each list adds ``weight / (constant + rank)``. ``convex``: each list's
    scores are scaled to 0..1 over its pool (min-max), then ``dense_weight`` of the
    vector score plus the rest of the BM25 score; a chunk absent from a list gets 0.
    """

    method: str = "rrf"
    constant: float = RRF_K
    dense_weight: float = 0.5  # rrf: weights are 2*w and 2*(1-w), so 0.5 is plain RRF

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "convex"):
            raise InvalidInputError(
                f"unknown fusion {self.method!r}", field="fusion", fix="use rrf or convex"
            )
        if not 0 <= self.dense_weight <= 1 or self.constant < 0:
            raise InvalidInputError(
                "dense_weight must be 0..1 and constant 0 or more", field="fusion"
            )


FUSION_HELP = "rrf, rrf:K, rrf:K:W (W: the vector list's weight, 0..1) or convex:W"


def parse_fusion(text: str | Fusion | None) -> Fusion:
    """``rrf:60:0.3`` is RRF with constant 60 and the vector list weighted 0.3 against
    BM25's 0.7; ``convex:0.5`` mixes min-max scaled scores half and half."""
    if text is None or isinstance(text, Fusion):
        return text or Fusion()
    if not isinstance(text, str):
        raise InvalidInputError("must be text", field="fusion", fix=f"use {FUSION_HELP}")
    method, *numbers = text.strip().split(":")
    try:
        values = [float(n) for n in numbers]
    except ValueError:
        values = None
    if (
        values is None
        or method not in ("rrf", "convex")
        or len(values) > (2 if method == "rrf" else 1)
        or (method == "convex" and not values)
    ):
        raise InvalidInputError(
            f"cannot read fusion {text!r}", field="fusion", fix=f"use {FUSION_HELP}"
        )  # fmt: skip
    if method == "convex":
        return Fusion("convex", 0, values[0])
    constant = values[0] if values else Fusion.constant
    return Fusion("rrf", constant, values[1] if len(values) > 1 else 0.5)


def fusion_label(fusion: Fusion) -> str:
    """The text ``parse_fusion`` reads back."""
    if fusion.method == "convex":
        return f"convex:{fusion.dense_weight:g}"
    return f"rrf:{fusion.constant:g}:{fusion.dense_weight:g}"


def fuse(
    dense: Sequence[tuple[int, float]],
    sparse: Sequence[tuple[int, float]],
    fusion: Fusion | None = None,
) -> list[tuple[int, float]]:
    """Merge two ranked (id, score) lists; ties go to the entry the vector list ranked first."""
    fusion = fusion or Fusion()
    weights = (fusion.dense_weight, 1.0 - fusion.dense_weight)
    scores: dict[int, float] = {}
    for weight, ranking in zip(weights, (dense, sparse), strict=True):
        if fusion.method == "rrf":
            gains = [2 * weight / (fusion.constant + rank) for rank in range(1, len(ranking) + 1)]
        else:
            gains = [weight * g for g in _min_max([score for _, score in ranking])]
        for (entry, _), gain in zip(ranking, gains, strict=True):
            scores[entry] = scores.get(entry, 0.0) + gain
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _min_max(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def collapse(
    ranked: Sequence[tuple[int, float]], document: Callable[[int], str], limit: int
) -> list[tuple[int, float]]:
    """Keep each document's first ``limit`` chunks, in rank order."""
    taken: dict[str, int] = {}
    out = []
    for entry in ranked:
        uri = document(entry[0])
        if taken.get(uri, 0) < limit:
            taken[uri] = taken.get(uri, 0) + 1
            out.append(entry)
    return out


def maximal_marginal_relevance(
    query: np.ndarray, candidates: np.ndarray, k: int, weight: float
) -> list[int]:
    """Greedy MMR: relevance to the query against similarity to what is already chosen."""
    relevance = candidates @ query
    chosen: list[int] = []
    closest = np.full(len(candidates), -np.inf)
    remaining = np.ones(len(candidates), dtype=bool)
    for _ in range(min(k, len(candidates))):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        value = weight * relevance - (1 - weight) * redundancy
        value[~remaining] = -np.inf
        pick = int(np.argmax(value))
        chosen.append(pick)
        remaining[pick] = False
        closest = np.maximum(closest, candidates @ candidates[pick])
    return chosen


@functools.cache
def cross_encoder(path: str) -> Any:
    """A local cross-encoder folder (never a hub download), loaded once per process."""
    from pathlib import Path

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise InvalidInputError(
            f"{path} is not a cross-encoder folder (no config.json)",
            field="reranker",
            fix="give a local sentence-transformers CrossEncoder folder",
        )
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device="cpu", local_files_only=True)
