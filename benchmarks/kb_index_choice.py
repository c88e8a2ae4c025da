"""Which indexes Stoa's knowledge bases should use: an HNSW library and a BM25 store.

Run from the repository root::

    .venv/bin/python benchmarks/kb_index_choice.py [--n 100000] [--queries 1000]

The peer libraries live outside the project's environment; install them with::

    .venv/bin/pip install --target benchmarks/.kb-peers usearch faiss-cpu bm25s

Part 1, vectors (``--part vectors``). ``--n`` synthetic 384-d unit float32 vectors shaped
like all-MiniLM-L6-v2 sentence embeddings: ~2,000 cluster centres (shared offset, so
unrelated texts have a small positive cosine), Zipf-like cluster sizes, anisotropic noise
scaled per cluster so that intra-cluster cosine is ~0.5-0.8; the queries are further
points drawn the same way. It measures:

- exact NumPy/BLAS search (one query at a time) p50/p95 at 5k-100k rows, to place the
  exact -> HNSW threshold;
- usearch (metric cos; f32 at connectivity 16/32 x expansion_add 128/200, plus f16 and
  i8) and FAISS ``IndexHNSWFlat`` (inner product, in ``IndexIDMap2`` for int64 keys;
  M 16/32 x efConstruction 128/200): build time, single-threaded single-query p50/p95
  and recall@10 against exact search at expansion_search/efSearch 32/64/128, file size,
  save, load, memory-mapped view, and RSS taken by a load;
- maintenance on the connectivity/M 16, 128 builds: adding 1,000 keys, removing and
  replacing 1,000 keys (FAISS HNSW has no ``remove_ids``: its tombstone workaround, an
  ``IDSelectorNot`` in ``SearchParametersHNSW``, is timed instead), recall after churn;
- filtered search at 50/10/1 % selectivity: FAISS's in-search ``IDSelectorBatch`` against
  usearch, whose Python ``search`` takes no predicate, by oversampling (count grows x4
  until k allowed keys come back) and by exact search over the allowed rows.

Part 2, BM25 (``--part bm25``). ``--docs`` (default ``--n``) chunks of 100-200 words drawn
with Zipf frequencies from a real vocabulary (the Python docs' prose in ``pydoc_data``
ranked by frequency, then other words of the standard library; ``/usr/share/dict/words``
too when present), 15 % of each chunk from one of 1,000 topics. Queries have 1-6 terms,
mixing common, mid-frequency and rare words taken mostly from a target chunk. It compares
SQLite FTS5 (``tokenize='porter unicode61'``, terms quoted and OR-ed, ``ORDER BY rank
LIMIT 10``) with detail=full/column/none, contentless, and stopwords dropped from queries,
against bm25s (numpy backend): build time, queries/s and p50 by term count, adding 100
documents (bm25s has no incremental add: it re-tokenises, re-indexes and re-saves),
deleting/replacing, on-disk size, reopen/load time and the first query after it.

Latencies are medians over ``--repeats`` passes of each pass's p50/p95. Everything is
written to a temporary directory that is removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import collections
import gc
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench_common import ClusteredSpace, table

PEERS = Path(__file__).resolve().parent / ".kb-peers"
K = 10
DIM = 384
STOPWORDS = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he",
    "her", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of",
    "on", "or", "our", "she", "so", "such", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "to", "was", "we", "were", "what", "when", "which", "who", "will",
    "with", "you", "your",
]  # fmt: skip


# --------------------------------------------------------------------------- helpers
def ms(ns: float) -> float:
    return ns / 1e6


def time_each(fn: Callable, items: Sequence, repeats: int) -> tuple[float, float, list[float]]:
    """Median over ``repeats`` passes of (p50, p95) in ms; also the last pass's samples."""
    p50s, p95s, lat = [], [], []
    for _ in range(repeats):
        lat = []
        for item in items:
            t0 = time.perf_counter_ns()
            fn(item)
            lat.append(time.perf_counter_ns() - t0)
        arr = np.asarray(lat, dtype=np.float64)
        p50s.append(ms(np.percentile(arr, 50)))
        p95s.append(ms(np.percentile(arr, 95)))
    return statistics.median(p50s), statistics.median(p95s), [ms(x) for x in lat]


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += p.stat().st_size
    return total / 2**20


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f[f >= 0], t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


# --------------------------------------------------------------------------- vectors
class VectorData:
    """Clustered unit vectors like sentence embeddings (see the module docstring)."""

    def __init__(self, dim: int, n_clusters: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.space = ClusteredSpace(dim, n_clusters, self.rng)

    def draw(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        out = np.empty((m, space.centres.shape[1]), dtype=np.float32)
        labels = self.rng.choice(len(space.weights), size=m, p=space.weights)
        for s in range(0, m, 20_000):
            lab = labels[s : s + 20_000]
            out[s : s + len(lab)] = space.vectors(
                lab, self.rng.standard_normal((len(lab), space.centres.shape[1]))
            )
        return out, labels


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 256):
        sc = queries[s : s + 256] @ base.T
        idx = np.argpartition(-sc, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sc, idx, axis=1), axis=1)
        out[s : s + 256] = np.take_along_axis(idx, order, axis=1)
    return out


def exact_one(base: np.ndarray, q: np.ndarray, k: int = K) -> np.ndarray:
    sc = base @ q
    idx = np.argpartition(sc, -k)[-k:]
    return idx[np.argsort(-sc[idx])]


def describe_data(base: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    same, rand = [], []
    for _ in range(3000):
        i = int(rng.integers(len(base)))
        mates = np.flatnonzero(labels == labels[i])
        if len(mates) > 1:
            same.append(float(base[i] @ base[int(rng.choice(mates))]))
        rand.append(float(base[i] @ base[int(rng.integers(len(base)))]))
    top = np.sort(queries[:200] @ base.T, axis=1)[:, ::-1]
    sizes = np.bincount(labels)
    table(
        "synthetic vectors",
        ["rows", "clusters", "largest", "median size", "intra cos p50", "random cos p50",
         "query top1 cos", "query top10 cos"],
        [[len(base), int((sizes > 0).sum()), int(sizes.max()), float(np.median(sizes[sizes > 0])),
          float(np.median(same)), float(np.median(rand)), float(np.median(top[:, 0])),
          float(np.median(top[:, K - 1]))]],
    )  # fmt: skip


def bench_exact(base: np.ndarray, queries: np.ndarray, repeats: int, usearch_mod) -> None:
    rows = []
    sizes = [s for s in (5_000, 10_000, 20_000, 50_000, 100_000, 200_000) if s < len(base)]
    for size in [*sizes, len(base)]:
        sub = np.ascontiguousarray(base[:size])
        p50, p95, _ = time_each(lambda q, sub=sub: exact_one(sub, q), queries, repeats)
        rows.append([f"{size:,}", "numpy matvec+argpartition", p50, p95])
    exact_search = usearch_mod.compiled.exact_search
    sub = np.ascontiguousarray(base)
    p50, p95, _ = time_each(
        lambda q: exact_search(sub, q[None], K, threads=1), queries[:300], repeats
    )
    rows.append([f"{len(base):,}", "usearch exact_search threads=1", p50, p95])
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    table(f"exact search, one query at a time (ms), OPENBLAS_NUM_THREADS={blas}",
          ["rows", "method", "p50", "p95"], rows)  # fmt: skip


def run_exact(args) -> None:
    """The exact-search table, once per BLAS thread setting (fixed when numpy loads)."""
    if args.part == "exact":  # the child process
        sys.path.append(str(PEERS))
        import usearch.compiled

        data = VectorData(DIM, min(2_000, max(1, args.n // 20)), args.seed)
        base, _ = data.draw(args.n)
        queries, _ = data.draw(args.queries)
        bench_exact(base, queries, args.repeats, usearch)
        return
    cmd = [sys.executable, __file__, "--part", "exact", "--n", str(args.n), "--queries",
           str(args.queries), "--repeats", str(args.repeats), "--seed", str(args.seed)]  # fmt: skip
    for env in ({}, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}):
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        print(done.stdout.rstrip() or done.stderr[-2000:])


def usearch_search_fn(index, es: int):
    index.expansion_search = es
    return lambda q: index.search(q, K, threads=1)


def bench_usearch(base, keys, queries, truth, tmp, repeats, configs, sweep):
    from usearch.index import Index

    builds, searches, kept = [], [], None
    for dtype, conn, ea in configs:
        gc.collect()
        index = Index(ndim=DIM, metric="cos", dtype=dtype, connectivity=conn, expansion_add=ea)
        build_s, _ = timed(index.add, keys, base, threads=0)
        path = tmp / f"u_{dtype}_{conn}_{ea}.usearch"
        save_s, _ = timed(index.save, str(path))
        mem = index.memory_usage / 2**20
        del index
        gc.collect()
        before = rss_mb()
        load_s, index = timed(Index.restore, str(path))
        load_rss = rss_mb() - before
        view_s, view = timed(Index.restore, str(path), view=True)
        first_s, _ = timed(view.search, queries[0], K, threads=1)
        del view
        print(f"  built usearch {dtype} c{conn} ea{ea} in {build_s:.1f} s", flush=True)
        builds.append([f"usearch {dtype} c{conn} ea{ea}", build_s, save_s, load_s, view_s,
                       ms(first_s * 1e9), size_mb(path), mem, load_rss])  # fmt: skip
        for es in sweep:
            fn = usearch_search_fn(index, es)
            found = index.search(queries, K, threads=0).keys.astype(np.int64)
            p50, p95, _ = time_each(fn, queries, repeats)
            searches.append([f"usearch {dtype} c{conn} ea{ea}", es, recall(found, truth), p50, p95])
        if (dtype, conn, ea) == ("f32", 16, 128):
            kept = index
        else:
            del index
    return builds, searches, kept


def bench_faiss(base, keys, queries, truth, tmp, repeats, configs, sweep):
    import faiss

    threads = os.cpu_count() or 1
    builds, searches, kept = [], [], None
    for m, efc in configs:
        gc.collect()
        faiss.omp_set_num_threads(threads)
        hnsw = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = efc
        index = faiss.IndexIDMap2(hnsw)
        build_s, _ = timed(index.add_with_ids, base, keys.astype(np.int64))
        path = tmp / f"f_{m}_{efc}.faiss"
        save_s, _ = timed(faiss.write_index, index, str(path))
        del index, hnsw
        gc.collect()
        before = rss_mb()
        load_s, index = timed(faiss.read_index, str(path))
        load_rss = rss_mb() - before
        faiss.omp_set_num_threads(1)
        view_s, view = timed(faiss.read_index, str(path), faiss.IO_FLAG_MMAP)
        first_s, _ = timed(view.search, queries[:1], K)
        del view
        print(f"  built faiss M{m} efC{efc} in {build_s:.1f} s", flush=True)
        builds.append([f"faiss M{m} efC{efc}", build_s, save_s, load_s, view_s,
                       ms(first_s * 1e9), size_mb(path), float("nan"), load_rss])  # fmt: skip
        inner = faiss.downcast_index(index.index)
        for es in sweep:
            inner.hnsw.efSearch = es
            faiss.omp_set_num_threads(threads)
            _, found = index.search(queries, K)
            faiss.omp_set_num_threads(1)
            p50, p95, _ = time_each(lambda q, index=index: index.search(q[None], K), queries,
                                    repeats)  # fmt: skip
            searches.append([f"faiss M{m} efC{efc}", es, recall(found, truth), p50, p95])
        if (m, efc) == (16, 128):
            kept = index
        else:
            del index
    faiss.omp_set_num_threads(threads)
    return builds, searches, kept


def bench_vector_ops(data: VectorData, base, queries, uindex, findex, repeats) -> None:
    """Add, remove, replace and filtered search on the c16/M16, 128 builds."""
    import faiss

    n = len(base)
    rng = np.random.default_rng(7)
    extra, _ = data.draw(1_200)
    new_keys = np.arange(n, n + 1_200, dtype=np.int64)
    gone = rng.choice(n, size=1_000, replace=False).astype(np.int64)
    fresh, _ = data.draw(1_000)
    rows = []
    threads = os.cpu_count() or 1

    # usearch ------------------------------------------------------------------
    uindex.expansion_search = 64
    t, _ = timed(uindex.add, new_keys[:1_000], extra[:1_000], threads=0)
    rows.append(["usearch", "add 1,000 keys (batch)", t * 1e3, ""])
    singles = list(zip(new_keys[1_000:], extra[1_000:], strict=True))
    p50, _, _ = time_each(lambda kv: uindex.add(int(kv[0]), kv[1], threads=1), singles, 1)
    rows.append(["usearch", "add 1 key (p50 of 200)", p50, ""])
    try:
        uindex.add(int(new_keys[0]), extra[0])
        dup = "accepted (duplicate!)"
    except RuntimeError as e:
        dup = f"RuntimeError: {e}"
    rows.append(["usearch", "add an existing key", float("nan"), dup])
    t, removed = timed(uindex.remove, gone[:900])
    rows.append(["usearch", "remove 900 keys (batch)", t * 1e3, f"returns {removed}"])
    p50, _, _ = time_each(lambda key: uindex.remove(int(key)), gone[900:], 1)
    rows.append(["usearch", "remove 1 key (p50 of 100)", p50, f"len={len(uindex)}"])
    size0 = uindex.serialized_length / 2**20
    t, _ = timed(uindex.add, gone, fresh, threads=0)  # re-add removed keys = "replace"
    for _ in range(4):  # churn: replace the same 1,000 keys four more times
        uindex.remove(gone)
        uindex.add(gone, fresh, threads=0)
    rows.append(["usearch", "re-add the 1,000 removed keys", t * 1e3,
                 f"5 replace rounds: serialized {size0:.0f} -> "
                 f"{uindex.serialized_length / 2**20:.0f} MiB"])  # fmt: skip
    current = base.copy()
    current[gone] = fresh
    current = np.vstack([current, extra])
    truth = exact_topk(current, queries)
    found = uindex.search(queries, K, threads=0).keys.astype(np.int64)
    rows.append(["usearch", "recall@10 after churn (es 64)", recall(found, truth), ""])

    # faiss ----------------------------------------------------------------------
    inner = faiss.downcast_index(findex.index)
    inner.hnsw.efSearch = 64
    faiss.omp_set_num_threads(threads)
    t, _ = timed(findex.add_with_ids, extra[:1_000], new_keys[:1_000])
    rows.append(["faiss", "add 1,000 keys (batch)", t * 1e3, ""])
    faiss.omp_set_num_threads(1)
    p50, _, _ = time_each(
        lambda kv: findex.add_with_ids(kv[1][None], np.array([kv[0]], dtype=np.int64)),
        singles, 1,
    )  # fmt: skip
    rows.append(["faiss", "add 1 key (p50 of 200)", p50, ""])
    try:
        findex.remove_ids(faiss.IDSelectorBatch(gone))
        note = "works"
    except RuntimeError as e:
        note = str(e).strip().splitlines()[-1][-60:]
    rows.append(["faiss", "remove_ids on HNSW", float("nan"), note])
    tomb = faiss.IDSelectorNot(faiss.IDSelectorBatch(gone))
    params = faiss.SearchParametersHNSW(sel=tomb, efSearch=64)
    p50, p95, _ = time_each(lambda q: findex.search(q[None], K, params=params), queries, repeats)
    rows.append(["faiss", "search with 1,000 tombstones p50", p50, f"p95 {p95:.3f} ms"])
    keep = np.ones(len(current), dtype=bool)
    keep[gone] = False
    live = np.flatnonzero(keep)
    truth_live = live[exact_topk(current[live], queries)]
    faiss.omp_set_num_threads(threads)
    _, found = findex.search(queries, K, params=params)
    rows.append(["faiss", "recall@10 excl. tombstones (ef 64)", recall(found, truth_live), ""])
    table("maintenance on the connectivity/M 16, expansion_add/efC 128 builds (ms)",
          ["library", "operation", "ms / value", "note"], rows)  # fmt: skip

    # filtered search -------------------------------------------------------------
    rows = []
    total = len(current)
    for sel in (0.5, 0.1, 0.01):
        allowed = (rng.random(total) < sel) & keep  # faiss still holds the tombstoned rows
        ids = np.flatnonzero(allowed)
        start = min(total, max(4 * K, math.ceil(2 * K / sel)))
        truth_f = ids[exact_topk(current[ids], queries)]

        def over(q, allowed=allowed, start=start):
            count = start
            while True:
                m = uindex.search(q, count, threads=1)
                keys = m.keys.astype(np.int64)
                hit = keys[allowed[keys]]
                if len(hit) >= K or count >= len(uindex):
                    return hit[:K]
                count = min(len(uindex), count * 4)

        def subset(q, ids=ids, allowed=allowed):
            if len(ids) <= total // 5:  # gather the allowed rows
                return ids[exact_one(current[ids], q)]
            sc = current @ q  # else score all rows and mask the others
            sc[~allowed] = -np.inf
            top = np.argpartition(sc, -K)[-K:]
            return top[np.argsort(-sc[top])]

        for name, fn in (("usearch oversample x4", over), ("exact (gather <=20%, else mask)",
                                                           subset)):  # fmt: skip
            found = np.array([np.pad(fn(q), (0, K))[:K] for q in queries])
            p50, p95, _ = time_each(fn, queries, repeats)
            rows.append([f"{sel:.0%}", name, recall(found, truth_f), p50, p95])
        for ef in (64, 128):
            fparams = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBatch(ids), efSearch=ef)
            faiss.omp_set_num_threads(threads)
            _, found = findex.search(queries, K, params=fparams)
            faiss.omp_set_num_threads(1)
            p50, p95, _ = time_each(lambda q, p=fparams: findex.search(q[None], K, params=p),
                                    queries, repeats)  # fmt: skip
            rows.append([f"{sel:.0%}", f"faiss IDSelectorBatch ef{ef}", recall(found, truth_f),
                         p50, p95])  # fmt: skip
    faiss.omp_set_num_threads(threads)
    table("filtered search (selector: random subset), one query at a time",
          ["allowed", "method", "recall@10", "p50 ms", "p95 ms"], rows)  # fmt: skip


def run_vectors(args, tmp: Path) -> None:
    sys.path.append(str(PEERS))
    import faiss
    import usearch
    import usearch.compiled

    print(f"usearch {usearch.__version__}, faiss {faiss.__version__}, numpy {np.__version__}, "
          f"cpus {os.cpu_count()}")  # fmt: skip
    data = VectorData(DIM, min(2_000, max(1, args.n // 20)), args.seed)
    t, (base, labels) = timed(data.draw, args.n)
    queries, _ = data.draw(args.queries)
    print(f"generated {args.n:,} vectors in {t:.1f} s")
    describe_data(base, labels, queries)
    t, truth = timed(exact_topk, base, queries)
    print(f"exact ground truth for {args.queries} queries (batched BLAS) in {t:.2f} s")
    run_exact(args)
    keys = np.arange(args.n, dtype=np.int64)
    sweep = (32, 64, 128)
    u_cfg = [("f32", 16, 128), ("f32", 16, 200), ("f32", 32, 128), ("f32", 32, 200),
             ("f16", 16, 128), ("i8", 16, 128)]  # fmt: skip
    f_cfg = [(16, 128), (16, 200), (32, 128), (32, 200)]
    if args.quick:
        u_cfg, f_cfg = [("f32", 16, 128), ("i8", 16, 128)], [(16, 128)]
    ub, us, ukept = bench_usearch(base, keys, queries, truth, tmp, args.repeats, u_cfg, sweep)
    fb, fs, fkept = bench_faiss(base, keys, queries, truth, tmp, args.repeats, f_cfg, sweep)
    table("HNSW build / persistence (build uses all cores; s unless noted)",
          ["index", "build s", "save s", "load s", "mmap view s", "1st query ms", "file MiB",
           "mem MiB", "load RSS MiB"], ub + fb)  # fmt: skip
    table("HNSW search: one query at a time, one thread (k=10)",
          ["index", "ef/expansion_search", "recall@10", "p50 ms", "p95 ms"], us + fs)  # fmt: skip
    bench_vector_ops(data, base, queries, ukept, fkept, args.repeats)


# --------------------------------------------------------------------------- text
def load_vocabulary(limit: int) -> list[str]:
    """Real words ranked by frequency: Python docs prose first, then the stdlib's text."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    word = re.compile(r"\b[a-z]{2,15}\b")
    head = collections.Counter(word.findall((stdlib / "pydoc_data" / "topics.py").read_text(
        encoding="utf-8", errors="ignore").lower()))  # fmt: skip
    vocab = [w for w, _ in head.most_common()]
    seen = set(vocab)
    tail: collections.Counter[str] = collections.Counter()
    for path in sorted(stdlib.glob("**/*.py")):
        if "site-packages" in path.parts or len(seen) + len(tail) > limit * 1.2:
            continue
        tail.update(w for w in word.findall(path.read_text(errors="ignore").lower())
                    if w not in seen and len(w) > 2)  # fmt: skip
    vocab += [w for w, _ in tail.most_common()]
    dict_words = Path("/usr/share/dict/words")
    if dict_words.exists():
        seen = set(vocab)
        vocab += [w for w in dict_words.read_text(errors="ignore").lower().split()
                  if w.isalpha() and w not in seen]  # fmt: skip
    return vocab[:limit]


class TextData:
    def __init__(self, vocab: list[str], n_docs: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.vocab = vocab
        self.words = np.array(vocab, dtype=object)
        ranks = np.arange(1, len(vocab) + 1)
        p = 1.0 / (ranks + 2.7)  # Zipf-Mandelbrot, exponent 1
        self.cdf = np.cumsum(p / p.sum())
        self.topics = self.rng.integers(300, len(vocab), size=(1_000, 30))
        self.docs, self.doc_ids = self.make(n_docs)

    def make(self, n: int) -> tuple[list[str], list[np.ndarray]]:
        lengths = self.rng.integers(100, 201, size=n)
        ids = np.searchsorted(self.cdf, self.rng.random(lengths.sum()))
        ids = np.minimum(ids, len(self.vocab) - 1)
        topic = np.repeat(self.rng.integers(0, len(self.topics), size=n), lengths)
        topical = self.rng.random(len(ids)) < 0.15
        pick = self.rng.integers(0, self.topics.shape[1], size=int(topical.sum()))
        ids[topical] = self.topics[topic[topical], pick]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        doc_ids = [ids[bounds[i] : bounds[i + 1]] for i in range(n)]
        return [" ".join(self.words[d]) for d in doc_ids], doc_ids

    def queries(self, n: int) -> list[list[str]]:
        """1-6 terms each (balanced); a third common (rank < 150), a third mid, a third rare."""
        bands = ((0, 150), (150, 3_000), (3_000, len(self.vocab)))
        out = []
        for i in range(n):
            target = self.doc_ids[int(self.rng.integers(len(self.doc_ids)))]
            terms: list[str] = []
            for _ in range(1 + i % 6):
                lo, hi = bands[int(self.rng.integers(3))]
                own = target[(target >= lo) & (target < hi)]
                rid = self.rng.choice(own) if len(own) else self.rng.integers(lo, hi)
                terms.append(self.vocab[int(rid)])
            out.append(terms)
        return out


# --------------------------------------------------------------------------- FTS5
FTS_SQL = "SELECT rowid, -bm25(docs) FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT 10"


def fts_match(terms: Sequence[str]) -> str:
    """Each term as an FTS5 string (double quotes doubled), OR-ed: no operator survives."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def fts_connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def fts_build(path: Path, docs: Sequence[str], options: str) -> dict:
    con = fts_connect(path)
    con.execute(f"CREATE VIRTUAL TABLE docs USING fts5(body, tokenize='porter unicode61'{options})")
    t0 = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO docs(rowid, body) VALUES (?, ?)", enumerate(docs))
    con.execute("COMMIT")
    build = time.perf_counter() - t0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = size_mb(path)
    t_opt, _ = timed(con.execute, "INSERT INTO docs(docs) VALUES('optimize')")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.close()
    return {"build": build, "size": size, "optimize": t_opt, "size_opt": size_mb(path)}


class DfPruner:
    """Drops query terms in more than ``max_df`` of the rows: a stopword list from the corpus.

    Terms are stemmed by a scratch in-memory FTS5 table with the same tokenizer, and their
    document frequency read from an ``fts5vocab`` table over the index (in ``temp``).
    """

    def __init__(self, con: sqlite3.Connection, max_df: float) -> None:
        self.con = con
        con.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.docs_v USING fts5vocab(main, docs, row)"
        )
        self.limit = max_df * con.execute("SELECT count(*) FROM docs").fetchone()[0]
        self.tok = sqlite3.connect(":memory:", isolation_level=None)
        self.tok.execute("CREATE VIRTUAL TABLE q USING fts5(x, tokenize='porter unicode61')")
        self.tok.execute("CREATE VIRTUAL TABLE qi USING fts5vocab(q, instance)")

    def match(self, terms: Sequence[str]) -> str:
        self.tok.execute("DELETE FROM q")
        self.tok.executemany("INSERT INTO q(rowid, x) VALUES (?, ?)", enumerate(terms))
        stems = dict(self.tok.execute("SELECT doc, term FROM qi"))
        marks = ",".join("?" * len(stems))
        df = dict(self.con.execute(f"SELECT term, doc FROM temp.docs_v WHERE term IN ({marks})",
                                   list(stems.values())))  # fmt: skip
        freq = {i: df.get(stem, 0) for i, stem in stems.items()}
        kept = [terms[i] for i, f in freq.items() if f <= self.limit]
        if not kept and freq:
            kept = [terms[min(freq, key=freq.get)]]
        return fts_match(kept)


def fts_queries(con, queries: list[list[str]], repeats: int, to_match=fts_match):
    """Latency includes building the MATCH string (and, for DfPruner, its look-ups)."""

    found: dict[int, list[int]] = {}

    def run(i):
        found[i] = [r[0] for r in con.execute(FTS_SQL, (to_match(queries[i]),))]

    p50, p95, lat = time_each(run, range(len(queries)), repeats)
    return p50, p95, lat, [found[i] for i in range(len(queries))]


def by_terms(queries: list[list[str]], lat: list[float]) -> list[float]:
    groups = collections.defaultdict(list)
    for q, t in zip(queries, lat, strict=True):
        groups[len(q)].append(t)
    return [float(np.median(groups[i])) if groups[i] else float("nan") for i in range(1, 7)]


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean share of ``a``'s top-k found in ``b``'s, over the queries ``b`` ran."""
    vals = [len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(a, b, strict=False) if x]
    return float(np.mean(vals))


def run_bm25(args, tmp: Path) -> None:
    sys.path.append(str(PEERS))
    import bm25s

    n_docs = args.docs or args.n
    print(f"\nsqlite {sqlite3.sqlite_version}, bm25s {bm25s.__version__}")
    t, vocab = timed(load_vocabulary, 60_000)
    print(f"vocabulary: {len(vocab):,} words in {t:.1f} s; top: {' '.join(vocab[:12])}")
    t, text = timed(TextData, vocab, n_docs, args.seed)
    words = sum(len(d) for d in text.doc_ids)
    print(f"generated {n_docs:,} chunks ({words / n_docs:.0f} words avg) in {t:.1f} s")
    queries = text.queries(args.queries)
    stop = set(STOPWORDS)
    no_stop = [[w for w in q if w not in stop] or q for q in queries]
    new_docs, _ = text.make(100)

    # detail=column/none rank slowly (see the table), so they get a slice of the queries.
    few = max(6, min(len(queries), 60))
    variants = [("full", "", len(queries), args.repeats),
                ("column", ", detail=column", few, 1),
                ("none", ", detail=none", few, 1),
                ("full, contentless", ", content=''", few * 3, 1)]  # fmt: skip
    build_rows, query_rows, results = [], [], {}
    for name, options, n_q, repeats in variants:
        path = tmp / f"fts_{name.replace(', ', '_')}.db"
        info = fts_build(path, text.docs, options)
        build_rows.append([f"FTS5 {name}", info["build"], info["optimize"], info["size"],
                           info["size_opt"]])  # fmt: skip
        con = fts_connect(path)
        sets = [("", queries[:n_q], fts_match)]
        if name == "full":
            sets.append((", stopwords dropped", no_stop, fts_match))
            for max_df in (0.5, 0.1, 0.02):
                pruner = DfPruner(con, max_df)
                sets.append((f", df>{max_df:.0%} terms dropped", queries, pruner.match))
        for label, qs, to_match in sets:
            p50, p95, lat, res = fts_queries(con, qs, repeats, to_match)
            results[name + label] = res
            qps = 1e3 / float(np.mean(lat))
            query_rows.append([f"FTS5 {name}{label} ({len(qs)} q)", qps, p50, p95,
                               *by_terms(qs, lat)])  # fmt: skip
        con.close()

    # bm25s ------------------------------------------------------------------------
    def tokenize(texts, ids=True):
        return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=ids, show_progress=False)

    t_tok, corpus_tokens = timed(tokenize, text.docs)
    retriever = bm25s.BM25()
    t_idx, _ = timed(retriever.index, corpus_tokens, show_progress=False)
    bdir = tmp / "bm25s"
    t_save, _ = timed(retriever.save, str(bdir), show_progress=False)
    build_rows.append(["bm25s (tokenize + index)", t_tok + t_idx, float("nan"), size_mb(bdir),
                       float("nan")])  # fmt: skip

    def b_query(q):
        toks = tokenize([" ".join(q)], ids=False)
        if not toks[0]:
            return []
        docs, scores = retriever.retrieve(toks, k=K, show_progress=False, n_threads=0)
        return docs[0][scores[0] > 0].tolist()  # bm25s pads with zero-score documents

    b_res = [b_query(q) for q in queries]
    p50, p95, lat = time_each(b_query, queries, args.repeats)
    query_rows.append([f"bm25s, stopwords dropped ({len(queries)} q)",
                       1e3 / float(np.mean(lat)), p50, p95, *by_terms(queries, lat)])  # fmt: skip
    q_tok = [t or ["the"] for t in tokenize([" ".join(q) for q in queries], ids=False)]
    t_batch, _ = timed(retriever.retrieve, q_tok, k=K, show_progress=False, n_threads=0)
    query_rows.append(["bm25s, all queries in one batch call", len(queries) / t_batch,
                       float("nan"), float("nan"), *[float("nan")] * 6])  # fmt: skip

    table(f"BM25 build ({n_docs:,} chunks; s and MiB)",
          ["index", "build s", "optimize s", "size MiB", "size after optimize MiB"],
          build_rows)  # fmt: skip
    table("BM25 queries, one at a time, k=10 (ms; p50 per term count)",
          ["index", "q/s", "p50", "p95", "1 term", "2", "3", "4", "5", "6"],
          query_rows)  # fmt: skip
    agree = [[name, overlap(results["full"], res)] for name, res in results.items()]
    agree = [row for row in agree if row[0] != "full"]
    agree.append(["bm25s (no stemming, stopwords dropped)", overlap(results["full"], b_res)])
    table("top-10 agreement with FTS5 detail=full (mean overlap)", ["variant", "overlap@10"], agree)

    # incremental updates and persistence ----------------------------------------------
    rows = []
    path = tmp / "fts_full.db"
    con = fts_connect(path)
    t, _ = timed(lambda: (con.execute("BEGIN"), con.executemany(
        "INSERT INTO docs(rowid, body) VALUES (?, ?)",
        [(n_docs + i, d) for i, d in enumerate(new_docs)]), con.execute("COMMIT")))  # fmt: skip
    rows.append(["FTS5 full", "add 100 docs, one transaction", t * 1e3])
    p50, _, _ = time_each(
        lambda i: con.execute("INSERT INTO docs(rowid, body) VALUES (?, ?)",
                              (n_docs + 1_000 + i, new_docs[i % 100])), range(100), 1)  # fmt: skip
    rows.append(["FTS5 full", "add 1 doc, own transaction (p50 of 100)", p50])
    upd = [(d, n_docs + i) for i, d in enumerate(reversed(new_docs))]
    t, _ = timed(lambda: (con.execute("BEGIN"), con.executemany(
        "UPDATE docs SET body = ? WHERE rowid = ?", upd), con.execute("COMMIT")))  # fmt: skip
    rows.append(["FTS5 full", "replace 100 docs (UPDATE), one transaction", t * 1e3])
    t, _ = timed(lambda: (con.execute("BEGIN"), con.executemany(
        "DELETE FROM docs WHERE rowid = ?", [(n_docs + 1_000 + i,) for i in range(100)]),
        con.execute("COMMIT")))  # fmt: skip
    rows.append(["FTS5 full", "delete 100 docs by rowid, one transaction", t * 1e3])
    p50, _, _ = time_each(lambda m: con.execute(FTS_SQL, (m,)).fetchall(),
                          [fts_match(q) for q in queries], 1)  # fmt: skip
    rows.append(["FTS5 full", "query p50 after those 200 small writes", p50])
    con.close()
    for name in ("full", "none"):
        p = tmp / f"fts_{name}.db"
        t0 = time.perf_counter()
        con = fts_connect(p)
        con.execute(FTS_SQL, (fts_match(queries[0]),)).fetchall()
        rows.append([f"FTS5 {name}", "reopen + first query (page cache warm)",
                     (time.perf_counter() - t0) * 1e3])  # fmt: skip
        con.close()

    all_docs = text.docs + new_docs

    def bm25s_rebuild():
        r = bm25s.BM25()
        r.index(tokenize(all_docs), show_progress=False)
        r.save(str(tmp / "bm25s_2"), show_progress=False)

    t, _ = timed(bm25s_rebuild)
    rows.append(["bm25s", "add 100 docs = re-tokenize + re-index + save all", t * 1e3])
    rows.append(["bm25s", "save (index only, no corpus)", t_save * 1e3])
    for mmap in (False, True):
        t0 = time.perf_counter()
        loaded = bm25s.BM25.load(str(bdir), mmap=mmap, show_progress=False)
        t_load = time.perf_counter() - t0
        loaded.retrieve(tokenize([" ".join(queries[0])], ids=False), k=K, show_progress=False)
        rows.append(["bm25s", f"load (mmap={mmap}) / + first query",
                     f"{t_load * 1e3:.0f} / {(time.perf_counter() - t0) * 1e3:.0f}"])  # fmt: skip
    table("BM25 updates and persistence (ms)", ["index", "operation", "ms"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="vectors (and chunks)")
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--docs", type=int, default=0, help="BM25 chunks (default: --n)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per latency measurement")
    ap.add_argument("--part", choices=("all", "vectors", "bm25", "exact"), default="all")
    ap.add_argument("--quick", action="store_true", help="fewer HNSW configurations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not PEERS.exists():
        sys.exit(f"missing {PEERS}; see the module docstring for the pip command")
    if args.part == "exact":
        run_exact(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="kb-index-"))
    try:
        if args.part in ("all", "vectors"):
            run_vectors(args, tmp)
        if args.part in ("all", "bm25"):
            run_bm25(args, tmp)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
