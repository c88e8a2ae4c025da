"""Retrieval quality from a QA file: hit@k, recall@k, MRR, nDCG@k and latency per mode.

A relevant entry is a source URI, a path relative to the ingested folder (it matches
the URI's trailing path segments), or either with ``#Heading``, which also requires
that heading in the result's heading path. Each entry counts once: a second chunk of
an already-found document adds nothing to recall or nDCG, so chunk count cannot
inflate a score.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.retrieve import MODES, Result

MAX_QUESTIONS = 10_000


@dataclass(frozen=True)
class Question:
    query: str
    relevant: tuple[str, ...]


def parse_qa(text: str) -> list[Question]:
    """JSONL with ``query`` and ``relevant``; a bad line is named by its number."""
    questions = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InvalidInputError(f"line {number} is not JSON", field="qa") from None
        if not isinstance(row, dict) or not isinstance(row.get("query"), str):
            raise InvalidInputError(f"line {number} has no text 'query'", field="qa")
        relevant = row.get("relevant")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(r, str) and r for r in relevant)
        ):
            raise InvalidInputError(
                f"line {number}: 'relevant' must be a non-empty list of URIs or paths",
                field="qa",
            )
        if not row["query"].strip():
            raise InvalidInputError(f"line {number}: the query is empty", field="qa")
        questions.append(Question(row["query"], tuple(relevant)))
    if not questions:
        raise InvalidInputError("the QA file holds no questions", field="qa")
    if len(questions) > MAX_QUESTIONS:
        raise InvalidInputError(f"at most {MAX_QUESTIONS:,} questions", field="qa")
    return questions


def entry_matches(entry: str, result: Result) -> bool:
    target, _, heading = entry.partition("#")
    uri = result.uri
    if not (uri == target or uri.endswith("/" + target.lstrip("/"))):
        return False
    return not heading or heading in result.heading_path


def score_question(question: Question, results: Sequence[Result], k: int) -> dict[str, float]:
    found: set[str] = set()
    gains = []
    first = 0
    for rank, result in enumerate(results[:k], 1):
        new = [e for e in question.relevant if e not in found and entry_matches(e, result)]
        if new and not first:
            first = rank
        found.update(new)
        gains.append(1.0 if new else 0.0)
    dcg = sum(g / math.log2(r + 1) for r, g in enumerate(gains, 1))
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(question.relevant), k) + 1))
    return {
        "hit_at_k": 1.0 if first else 0.0,
        "recall_at_k": len(found) / len(question.relevant),
        "mrr": 1.0 / first if first else 0.0,
        "ndcg_at_k": dcg / ideal if ideal else 0.0,
    }


def evaluate(
    questions: Sequence[Question],
    search: Callable[[str, str], list[Result]],
    *,
    k: int,
    modes: Sequence[str] = MODES,
) -> dict[str, Any]:
    """Each mode answers every question; latency is the whole call, query embedding included."""
    out: dict[str, Any] = {}
    for mode in modes:
        search(questions[0].query, mode)  # warm: the first call loads models and pages
        scores = []
        latencies = []
        for question in questions:
            started = time.perf_counter()
            results = search(question.query, mode)
            latencies.append((time.perf_counter() - started) * 1000)
            scores.append(score_question(question, results, k))
        out[mode] = {
            metric: round(float(np.mean([s[metric] for s in scores])), 4)
            for metric in ("hit_at_k", "recall_at_k", "mrr", "ndcg_at_k")
        }
        out[mode]["latency_ms"] = {
            "p50": round(float(np.percentile(latencies, 50)), 2),
            "p95": round(float(np.percentile(latencies, 95)), 2),
        }
    return out
