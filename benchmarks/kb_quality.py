"""Retrieval quality on the shipped QA set, across chunk sizes and RRF constants.

This is the measurement behind two defaults in docs/knowledge-bases.md: the chunk size
(192 tokens, overlap 32) and the reciprocal-rank-fusion constant (5). For each chunking
it builds a knowledge base over the user guide shipped with the package
(``src/stoa/demo/docs``) with the default embedder, evaluates vector, lexical and hybrid
retrieval on ``src/stoa/demo/data/kb_qa.jsonl`` at k=5 (``KnowledgeBases.evaluate``,
the code behind ``stoa kb eval``), and, on the same vector and BM25 rankings, hybrid with
other RRF constants. Quality is deterministic for a given embedder; no latency is quoted.

    .venv/bin/python benchmarks/kb_quality.py [--k 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from stoa.core.db import Database
from stoa.develop.rag.kb import KnowledgeBases
from stoa.develop.rag.kb_eval import parse_qa, score_question
from stoa.develop.rag.load import load_paths
from stoa.develop.rag.retrieve import RRF_K, Result, fuse

DEMO = Path(__file__).resolve().parents[1] / "src" / "stoa" / "demo"
CHUNKINGS = [(128, 16), (160, 16), (192, 32), (224, 16), (256, 32)]
CONSTANTS = [2, 5, 10, 20, 60]
POOL = 40  # what retrieve() fuses for hybrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    qa_text = (DEMO / "data" / "kb_qa.jsonl").read_text(encoding="utf-8")
    questions = parse_qa(qa_text)
    documents, failures = load_paths([DEMO / "docs"])
    print(f"{len(questions)} questions, {len(documents)} documents, k={args.k}")
    print(f"\n{'chunking':<10} {'chunks':>6}  " + "  ".join(
        f"{m + ' hit/MRR':>18}" for m in ("vector", "lexical", "hybrid")))  # fmt: skip
    sweeps = {}
    for target, overlap in CHUNKINGS:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            db = Database(f"sqlite:///{home / 'stoa.db'}")
            kbs = KnowledgeBases(db, home)
            kbs.create("q", chunking={"target_tokens": target, "overlap_tokens": overlap})
            kbs.ingest("q", documents, failures)
            report = kbs.evaluate("q", qa_text, k=args.k)
            store, backend, embedder = kbs.open(kbs.get("q"))
            sweeps[(target, overlap)] = _constants(questions, store, backend, embedder, args.k)
            chunks = store.counts()["chunks"]
            kbs.close()
            db.dispose()
        row = "  ".join(
            f"{report['modes'][m]['hit_at_k']:>9.3f} / {report['modes'][m]['mrr']:.3f}"
            for m in ("vector", "lexical", "hybrid")
        )
        print(f"{target}/{overlap:<6} {chunks:>6}  {row}")
    print(f"\nhybrid hit@{args.k} / MRR by RRF constant (Stoa uses {RRF_K})")
    print(f"{'chunking':<10} " + "  ".join(f"{'k=' + str(c):>15}" for c in CONSTANTS))
    for (target, overlap), values in sweeps.items():
        print(f"{target}/{overlap:<6} " + "  ".join(
            f"{values[c][0]:>7.3f} / {values[c][1]:.3f}" for c in CONSTANTS))  # fmt: skip


def _constants(questions, store, backend, embedder, k: int) -> dict[int, tuple[float, float]]:
    """Hybrid at each constant, from one pair of rankings per question."""
    rankings = []
    for q in questions:
        dense = [h.id for h in backend.search(embedder.embed([q.query])[0], POOL)]
        sparse = [i for i, _ in store.lexical(q.query, POOL)]
        rankings.append((q, dense, sparse))
    chunks = store.chunks({i for _, d, s in rankings for i in d + s})
    out = {}
    for constant in CONSTANTS:
        scores = []
        for q, dense, sparse in rankings:
            ids = [i for i, _ in fuse([dense, sparse], constant)][:k]
            results = [Result(i, chunks[i].text, 0.0, chunks[i].uri, chunks[i].heading_path,
                              chunks[i].start, chunks[i].end, {}) for i in ids]  # fmt: skip
            scores.append(score_question(q, results, k))
        out[constant] = (float(np.mean([s["hit_at_k"] for s in scores])),
                         float(np.mean([s["mrr"] for s in scores])))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
