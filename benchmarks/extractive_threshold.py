"""How well the extractive provider's best-sentence score tells answerable from not.

For every question of a corpus (``benchmarks/kb_corpora.py``'s questions), two cases:

- *answerable*: the three chunks of its relevant documents (or section) closest to it
  by MiniLM cosine, i.e. what a retriever that found the right document passes on;
- *unrelated*: a question of another corpus, given the three chunks of this corpus
  closest to it: the best a retriever can do for a question the corpus cannot answer.

Each passage sentence gets MiniLM cosine and the lexical score the provider computes;
the case's score is the best sentence's blend. The script prints, per lexical weight,
the ROC AUC of that score (answerable vs unrelated) per corpus, then, for the chosen
weight, the threshold with the best balanced accuracy (corpora weighted equally) and
the precision and recall of "I don't know" (positive: unrelated) at that threshold and
at the shipped default, per corpus.

    .venv/bin/python benchmarks/extractive_threshold.py [--only stoa-guide linux-syscalls]

Corpora whose Debian package is missing are skipped, with the install command.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kb_corpora

from stoa.develop.llm import extractive
from stoa.develop.rag.chunk import chunk_text
from stoa.develop.rag.embed import EmbedderSpec, load_embedder
from stoa.develop.rag.load import load_bytes

TOP = 3
#: Chunks preselected by the lexical score before MiniLM ranks them: embedding every
#: chunk of the Python reference pages takes minutes on two cores.
SHORTLIST = 12
WEIGHTS = (0.0, 0.15, 0.3, 0.45, 0.6)


@dataclass
class Case:
    corpus: str
    answerable: bool
    cosine: np.ndarray  # per sentence
    lexical: np.ndarray

    def best(self, weight: float) -> float:
        if not len(self.cosine):
            return -1.0
        return float(np.max((1 - weight) * self.cosine + weight * self.lexical))


def questions(name: str) -> list[dict]:
    path = kb_corpora.QUESTION_FILES.get(name, kb_corpora.QUESTIONS / f"{name}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def raw_document(name: str, doc: str) -> tuple[str, bytes] | None:
    """A relevant document's bytes, built the way kb_corpora.py builds the corpus."""
    if name == "stoa-guide":
        path = kb_corpora.DEMO / "docs" / doc
        return (doc, path.read_bytes()) if path.exists() else None
    if name == "python-library":
        path = kb_corpora.PYTHON_DOC / doc
        return (doc, path.read_bytes()) if path.exists() else None
    if name == "linux-syscalls":
        page = kb_corpora.MAN2 / (doc.removesuffix(".md") + ".gz")
        if not page.exists() or not kb_corpora.is_man_page(page):
            return None
        stem, section = doc.removesuffix(".md").rsplit(".", 1)
        text = kb_corpora.man_to_markdown(f"{stem}({section})", kb_corpora.render_man(page))
        return doc, text.encode()
    raise SystemExit(f"no documents for {name} here")


def available(name: str) -> bool:
    probe = {"python-library": kb_corpora.PYTHON_DOC / "functools.html",
             "linux-syscalls": kb_corpora.MAN2 / "open.2.gz"}.get(name)  # fmt: skip
    if probe is not None and not probe.exists():
        package = "python3.11-doc" if name == "python-library" else "manpages-dev"
        print(f"skipping {name}: apt-get install {package}", file=sys.stderr)
        return False
    if name == "linux-syscalls" and shutil.which("man") is None:
        print("skipping linux-syscalls: apt-get install man-db", file=sys.stderr)
        return False
    return True


def chunks_of(name: str, qs: list[dict]) -> dict[str, list[tuple[str, str]]]:
    """doc id -> [(heading path text, chunk text)] for every relevant document."""
    out: dict[str, list[tuple[str, str]]] = {}
    for doc in sorted({r.split("#")[0] for q in qs for r in q["relevant"]}):
        raw = raw_document(name, doc)
        if raw is None:
            continue
        document = load_bytes(*raw)
        chunks = chunk_text(document.text, title=document.title)
        out[doc] = [(" > ".join(c.heading_path), c.text) for c in chunks]
    return out


def case(corpus: str, answerable: bool, question: str, qvec: np.ndarray,
         passages: list[str], embedder) -> Case:  # fmt: skip
    sentences = [s for p in passages for s in extractive.split_sentences(p)
                 if len(extractive.terms(s)) >= 2]  # fmt: skip
    if not sentences:
        return Case(corpus, answerable, np.zeros(0), np.zeros(0))
    vectors = embedder.embed(sentences)
    cosine = vectors @ qvec
    lexical = extractive.lexical_scores(question, sentences)
    return Case(corpus, answerable, cosine, lexical)


class Ranker:
    """The TOP chunks for a question: a lexical shortlist, ranked by MiniLM cosine."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def top(self, question: str, qvec: np.ndarray, texts: list[str]) -> list[str]:
        lexical = extractive.lexical_scores(question, texts)
        shortlist = [texts[i] for i in np.argsort(-lexical, kind="stable")[:SHORTLIST]]
        missing = [t for t in dict.fromkeys(shortlist) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.embedder.embed(missing), strict=True))
        cosine = np.array([self.cache[t] @ qvec for t in shortlist])
        return [shortlist[i] for i in np.argsort(-cosine)[:TOP]]


def measure(names: list[str], limit: int) -> list[Case]:
    embedder = load_embedder(EmbedderSpec())
    ranker = Ranker(embedder)
    data = {}
    for name in names:
        qs = questions(name)[:limit]
        docs = chunks_of(name, qs)
        pool = [(doc, head, text) for doc, rows in docs.items() for head, text in rows]
        qvecs = embedder.embed([q["query"] for q in qs])
        data[name] = qs, pool, None, qvecs
        print(f"{name}: {len(qs)} questions, {len(docs)} documents, {len(pool)} chunks",
              file=sys.stderr)  # fmt: skip
    cases: list[Case] = []
    for k, name in enumerate(names):
        qs, pool, _, qvecs = data[name]
        texts = [text for _, _, text in pool]
        for q, qvec in zip(qs, qvecs, strict=True):
            keep = [i for i, (doc, head, _) in enumerate(pool) if _relevant(q, doc, head)]
            if not keep:
                continue
            chosen = ranker.top(q["query"], qvec, [texts[i] for i in keep])
            cases.append(case(name, True, q["query"], qvec, chosen, embedder))
        other = names[(k + 1) % len(names)]
        oqs, _, _, oqvecs = data[other]
        for q, qvec in zip(oqs, oqvecs, strict=True):
            chosen = ranker.top(q["query"], qvec, texts)
            cases.append(case(name, False, q["query"], qvec, chosen, embedder))
    return cases


def _relevant(q: dict, doc: str, head: str) -> bool:
    for ref in q["relevant"]:
        ref_doc, _, section = ref.partition("#")
        if ref_doc == doc and (not section or section in head):
            return True
    return False


def auc(pos: list[float], neg: list[float]) -> float:
    """P(an answerable case outscores an unrelated one), ties counting half."""
    p, n = np.array(pos)[:, None], np.array(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def idk_rates(cases: list[Case], weight: float, threshold: float) -> tuple[float, float, float]:
    """Precision and recall of "I don't know" (positive: unrelated), and the share of
    answerable cases answered."""
    idk = [c.best(weight) < threshold for c in cases]
    tp = sum(i and not c.answerable for i, c in zip(idk, cases, strict=True))
    said = sum(idk)
    unrelated = sum(not c.answerable for c in cases)
    answerable = [not i for i, c in zip(idk, cases, strict=True) if c.answerable]
    return (tp / said if said else 1.0, tp / unrelated if unrelated else 1.0,
            sum(answerable) / len(answerable) if answerable else 0.0)  # fmt: skip


def balanced(cases_by: dict[str, list[Case]], weight: float, threshold: float) -> float:
    scores = []
    for cases in cases_by.values():
        _, recall, answered = idk_rates(cases, weight, threshold)
        scores.append((recall + answered) / 2)
    return float(np.mean(scores))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*",
                        default=["stoa-guide", "linux-syscalls", "python-library"])  # fmt: skip
    parser.add_argument("--questions", type=int, default=30,
                        help="the first N questions of each corpus")  # fmt: skip
    args = parser.parse_args()
    names = [n for n in args.only if available(n)]
    if len(names) < 2:
        print("need at least two corpora", file=sys.stderr)
        return 2
    cases = measure(names, args.questions)
    by = {n: [c for c in cases if c.corpus == n] for n in names}
    print(f"ROC AUC of the best-sentence score, answerable vs unrelated (n per corpus: "
          f"{', '.join(f'{n} {sum(c.answerable for c in by[n])}/{sum(not c.answerable for c in by[n])}' for n in names)})")  # noqa: E501  # fmt: skip
    print(f"{'lexical weight':>14}  " + "  ".join(f"{n[:14]:>14}" for n in names) + "    mean")
    best_weight, best_auc = 0.0, -1.0
    for w in WEIGHTS:
        values = [auc([c.best(w) for c in by[n] if c.answerable],
                      [c.best(w) for c in by[n] if not c.answerable]) for n in names]  # fmt: skip
        mean = float(np.mean(values))
        print(f"{w:>14.2f}  " + "  ".join(f"{v:>14.3f}" for v in values) + f"  {mean:6.3f}")
        if mean > best_auc + 1e-9:
            best_weight, best_auc = w, mean
    grid = np.round(np.arange(0.10, 0.70, 0.01), 2)
    threshold = max(grid, key=lambda t: balanced(by, best_weight, float(t)))
    print(f"\nbest weight {best_weight}; threshold with the best balanced accuracy: "
          f"{threshold:.2f}; shipped default: weight {extractive.DEFAULT_LEXICAL_WEIGHT}, "
          f"threshold {extractive.DEFAULT_MIN_SCORE}")  # fmt: skip
    for label, w, t in (("best", best_weight, float(threshold)),
                        ("default", extractive.DEFAULT_LEXICAL_WEIGHT,
                         extractive.DEFAULT_MIN_SCORE)):  # fmt: skip
        print(f"\n{label}: weight {w}, threshold {t:.2f}")
        print(f"{'corpus':<16}{'IDK precision':>14}{'IDK recall':>12}{'answered':>10}")
        for n in names:
            precision, recall, answered = idk_rates(by[n], w, t)
            print(f"{n:<16}{precision:>14.2f}{recall:>12.2f}{answered:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
