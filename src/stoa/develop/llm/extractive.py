"""The extractive provider: answers with sentences quoted from the passages, each cited.

It is a sentence selector, not a generator: it never paraphrases, joins or reasons, so
it cannot invent a fact, and it cannot answer what no single passage sentence says.
Each passage sentence is scored against the question (the last user message) by a
blend of MiniLM cosine and a lexical score (the idf-weighted share of the question's
words the sentence contains, idf taken over the passage sentences); sentences under
``min_score`` are dropped, the best are picked greedily, skipping one too similar to a
sentence already picked, within ``max_sentences`` and ``params.max_tokens``. When no
sentence reaches ``min_score`` the answer is :data:`UNKNOWN_ANSWER`, with no citation.

Tokens are counted with MiniLM's own WordPiece tokenizer: it is the only model this
provider runs, so it is its "real" tokenizer. The defaults come from
``benchmarks/extractive_threshold.py`` (docs: "Extractive answers").
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.cost import cpu_cost
from stoa.develop.llm.provider import (
    Chunk,
    Generation,
    GenerationParams,
    Message,
    Passage,
    Usage,
    stream_from_generate,
)

#: The whole answer when no passage sentence is relevant enough (or there are none).
UNKNOWN_ANSWER = "I don't know: the passages I was given do not answer this question."

#: Measured by benchmarks/extractive_threshold.py over three corpora (see the docs).
DEFAULT_MIN_SCORE = 0.37
DEFAULT_LEXICAL_WEIGHT = 0.3
DEFAULT_MAX_SENTENCES = 3
#: Two sentences at this MiniLM cosine or above say the same thing: the second is skipped.
DEFAULT_REDUNDANCY = 0.9
DEFAULT_CPU_HOUR_USD = 0.05

_OPTIONS = ("min_score", "lexical_weight", "max_sentences", "redundancy", "cpu_hour_usd")


@dataclass(frozen=True)
class ExtractiveOptions:
    """Checked options; every bound is the range in which the option means something."""

    min_score: float = DEFAULT_MIN_SCORE
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT
    max_sentences: int = DEFAULT_MAX_SENTENCES
    redundancy: float = DEFAULT_REDUNDANCY
    cpu_hour_usd: float = DEFAULT_CPU_HOUR_USD


def parse_options(options: Mapping[str, Any]) -> ExtractiveOptions:
    """Options from a spec; an unknown key or a value out of range is the caller's error."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidInputError(
            f"unknown extractive option(s) {', '.join(unknown)}",
            field="options",
            fix=f"use {', '.join(_OPTIONS)}",
        )
    bounds = {"min_score": (0.0, 1.0), "lexical_weight": (0.0, 1.0), "redundancy": (0.0, 1.0),
              "cpu_hour_usd": (0.0, 1000.0), "max_sentences": (1, 50)}  # fmt: skip
    values: dict[str, Any] = {}
    for key, value in options.items():
        low, high = bounds[key]
        integer = key == "max_sentences"
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise InvalidInputError(
                f"{key} must be {kind} in {low}..{high}, not {value!r}", field=f"options.{key}"
            )
        values[key] = int(value) if integer else float(value)
    return ExtractiveOptions(**values)


# --- sentences ---------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_TABLE = re.compile(r"^\s*\|")
_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[`*_]?[A-Z0-9])")
_LAST_WORD = re.compile(r"(\S+)$")
#: Words after which a full stop does not end a sentence.
ABBREVIATIONS = frozenset((
    "e.g", "i.e", "etc", "vs", "cf", "al", "approx", "fig", "figs", "no", "nos", "mr", "mrs",
    "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp", "eq", "sec", "ch", "vol",
    "p", "pp", "ca", "resp"
))  # fmt: skip


def split_sentences(text: str) -> list[str]:
    """Sentences of plain text or Markdown, whitespace collapsed.

    A heading, a list item and a table row are units of their own (a heading is
    dropped: it labels an answer, it is none); fenced code is dropped, since a quoted
    fragment of code without its context misleads. Within a paragraph, text breaks
    after ``.``, ``!`` or ``?`` followed by a space and a capital or digit, unless the
    word before is an abbreviation (``e.g.``, ``Dr.``) or a single initial; a decimal
    (``3.5``) has no space and never breaks.
    """
    sentences: list[str] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            sentences.extend(_split_paragraph(" ".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if not line.strip() or _HEADING.match(line):
            flush()
            continue
        if _BULLET.match(line) or _TABLE.match(line):
            flush()
            paragraph.append(_BULLET.sub("", line).strip())
            continue
        paragraph.append(line.strip())
    flush()
    return [s for s in sentences if s]


def _split_paragraph(paragraph: str) -> list[str]:
    paragraph = " ".join(paragraph.split())
    out: list[str] = []
    start = 0
    for brk in _BREAK.finditer(paragraph):
        before = paragraph[start : brk.start()]
        word = _LAST_WORD.search(before)
        stem = word.group(1).rstrip(".!?\"')]").lower().lstrip("(\"'") if word else ""
        if stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
            continue
        # closing quotes or brackets after the stop belong to the sentence
        out.append(paragraph[start : brk.start()].strip() + brk.group(0).rstrip())
        start = brk.end()
    out.append(paragraph[start:].strip())
    return [s.strip() for s in out if s.strip()]


# --- scoring -------------------------------------------------------------------------------

_TERM = re.compile(r"[a-z0-9_]+")
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "so", "than",
    "that", "the", "their", "then", "there", "these", "this", "to", "was", "what", "when",
    "where", "which", "who", "why", "will", "with", "would", "you", "your", "should", "could",
    "we", "our", "not", "no", "yes", "any", "all"
))  # fmt: skip


def terms(text: str) -> list[str]:
    """Content words, lowercased, with a plural ``s`` stripped (``files`` = ``file``)."""
    out = []
    for word in _TERM.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def lexical_scores(question: str, sentences: Sequence[str]) -> np.ndarray:
    """The idf-weighted share of the question's content words each sentence contains
    (0..1); idf over the sentences, BM25's form, so a word every sentence has weighs
    little and a question word no sentence has still counts against all of them."""
    q_terms = set(terms(question))
    if not q_terms or not sentences:
        return np.zeros(len(sentences), dtype=np.float32)
    bags = [set(terms(s)) for s in sentences]
    n = len(bags)
    idf = {t: math.log(1 + (n - (df := sum(t in b for b in bags)) + 0.5) / (df + 0.5))
           for t in q_terms}  # fmt: skip
    total = sum(idf.values())
    return np.array([sum(idf[t] for t in q_terms & b) / total for b in bags], dtype=np.float32)


@dataclass(frozen=True)
class Candidate:
    passage: int  # index in the passages given, i.e. retrieval rank
    position: int  # index of the sentence in its passage
    n: int  # the passage's citation number
    text: str
    score: float


# --- the provider --------------------------------------------------------------------------


class ExtractiveProvider:
    """Answers from ``passages`` only; needs MiniLM (packaged) and nothing else."""

    kind = "extractive"
    model = "extractive"

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = parse_options(options or {})
        self._embedder: Any = None

    def count_tokens(self, text: str) -> int:
        from stoa.develop.rag.chunk import minilm_token_counter

        return minilm_token_counter()(text)

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Generation:
        started, cpu_started = time.perf_counter(), time.process_time()
        question = _question(messages)
        chosen, truncated = self.select(question, passages, params.max_tokens)
        text = " ".join(f"{c.text} [{c.n}]" for c in chosen) if chosen else UNKNOWN_ANSWER
        if truncated is not None:
            text = truncated
        citations = list(dict.fromkeys(c.n for c in chosen))
        cpu_seconds = time.process_time() - cpu_started
        usage = Usage(
            prompt_tokens=self.count_tokens(question)
            + sum(self.count_tokens(p.text) for p in passages),
            completion_tokens=self.count_tokens(text),
            latency_ms=(time.perf_counter() - started) * 1000,
            cpu_seconds=cpu_seconds,
            cost_usd=cpu_cost(cpu_seconds, self.options.cpu_hour_usd),
        )
        return Generation(
            text=text, usage=usage, provider=self.kind, model=self.model,
            finish_reason="length" if truncated is not None else "stop", citations=citations,
        )  # fmt: skip

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]:
        return stream_from_generate(self.generate(messages, params, passages=passages))

    def score(self, question: str, passages: Sequence[Passage]) -> list[Candidate]:
        """Every passage sentence with its relevance to ``question``, in passage order."""
        return self._scored(question, passages)[0]

    def _scored(
        self, question: str, passages: Sequence[Passage]
    ) -> tuple[list[Candidate], np.ndarray]:
        units = [(i, j, p.n, s) for i, p in enumerate(passages)
                 for j, s in enumerate(split_sentences(p.text)) if len(terms(s)) >= 2]  # fmt: skip
        if not units or not question.strip():
            return [], np.zeros((0, 0), dtype=np.float32)
        texts = [u[3] for u in units]
        vectors = self._embed([question, *texts])
        cosine = vectors[1:] @ vectors[0]
        lexical = lexical_scores(question, texts)
        w = self.options.lexical_weight
        blended = (1 - w) * cosine + w * lexical
        scored = [
            Candidate(i, j, n, s, float(b)) for (i, j, n, s), b in zip(units, blended, strict=True)
        ]
        return scored, vectors[1:]

    def select(
        self, question: str, passages: Sequence[Passage], max_tokens: int
    ) -> tuple[list[Candidate], str | None]:
        """The sentences to quote, in reading order, and, when even the best one is over
        ``max_tokens``, its cut text (else None)."""
        candidates, vectors = self._scored(question, passages)
        if not candidates:
            return [], None
        # Scores equal to float32 rounding (the same sentence in two passages: BLAS rounds
        # each row of a product its own way) tie, and a tie goes to the earlier passage.
        order = sorted(range(len(candidates)), key=lambda k: -round(candidates[k].score, 5))
        chosen: list[int] = []
        budget = max_tokens
        for k in order:
            c = candidates[k]
            if c.score < self.options.min_score or len(chosen) >= self.options.max_sentences:
                break
            if any(float(vectors[k] @ vectors[m]) >= self.options.redundancy for m in chosen):
                continue
            cost = self.count_tokens(f"{c.text} [{c.n}]") + (1 if chosen else 0)
            if cost > budget:
                continue
            chosen.append(k)
            budget -= cost
        best = candidates[order[0]]
        if not chosen and best.score >= self.options.min_score:
            return [best], self._cut(f"{best.text}", f" [{best.n}]", max_tokens)
        picked = sorted((candidates[k] for k in chosen), key=lambda c: (c.passage, c.position))
        return picked, None

    def _cut(self, text: str, citation: str, max_tokens: int) -> str:
        """The best sentence cut between words to fit, still cited, marked with ``…``."""
        words = text.split()
        while words and self.count_tokens(" ".join(words) + "…" + citation) > max_tokens:
            words.pop()
        out = " ".join(words) + "…" + citation
        return out if words and self.count_tokens(out) <= max_tokens else "…"

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from stoa.develop.rag.embed import EmbedderSpec, load_embedder

            self._embedder = load_embedder(EmbedderSpec())
        return self._embedder.embed(texts)


def _question(messages: Sequence[Message]) -> str:
    """The last user turn: callers send the extractive provider the bare question."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise InvalidInputError(
        "the extractive provider needs a user message holding the question",
        field="messages",
        fix='send [{"role": "user", "content": "the question"}]',
    )
