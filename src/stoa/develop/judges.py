"""Judges: score one answer for relevance, groundedness and (given a reference) correctness.

Two kinds share one interface. ``EmbeddingJudge`` is an offline heuristic over MiniLM
cosines and word overlap: cheap, deterministic, blind to reasoning, and weak on
contradiction that keeps the same words. ``LLMJudge`` asks any provider to grade
against a rubric and parses a JSON verdict; it is as good as the model behind it (a
135M local model is not a judge to trust alone). ``evaluate_outputs`` averages a set of
answers' scores with bootstrap intervals, with the latency and cost of the answers.

Every score is in [0, 1], higher is better. An answer that says "I don't know" claims
nothing: it is grounded (1.0) but neither relevant nor correct (0.0), labelled
``abstained``, so abstaining is never mistaken for hallucinating, nor for answering.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.extractive import UNKNOWN_ANSWER, split_sentences, terms
from stoa.develop.llm.provider import GenerationParams, Message, Provider, Usage

CRITERIA = ("relevance", "groundedness", "correctness")
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ABSTAIN = re.compile(
    r"^\s*i\s+(?:do\s+not|don't|don\u2019t|cannot|can't)\s+(?:know|answer|tell)", re.I
)


@dataclass(frozen=True)
class JudgeScore:
    """One criterion's verdict: ``score`` in [0, 1] (NaN when the judge failed)."""

    score: float
    label: str
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return {"score": None if math.isnan(self.score) else round(self.score, 4),
                "label": self.label, "rationale": self.rationale}  # fmt: skip


class Judge(Protocol):
    name: str

    def score(
        self, input: str, context: Sequence[str], output: str, reference: str | None = None
    ) -> dict[str, JudgeScore]: ...


def abstains(output: str) -> bool:
    """An answer that declines to answer ("I don't know…")."""
    return output.strip() == UNKNOWN_ANSWER or bool(_ABSTAIN.match(output))


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text)


# --- the embedding heuristic ----------------------------------------------------------------

#: MiniLM cosine calibration, a linear map from [LOW, HIGH] to [0, 1]. LOW is about
#: where unrelated English texts sit under MiniLM, HIGH where a sentence and its close
#: paraphrase do; the range was set by hand, not fitted (docs: "Judges", limits).
COSINE_LOW = 0.15
COSINE_HIGH = 0.75
#: Labels per criterion: score >= first bound, >= second bound, else the third label.
LABELS = {
    "relevance": ((0.6, 0.3), ("relevant", "partly", "irrelevant")),
    "groundedness": ((0.7, 0.4), ("grounded", "partly", "ungrounded")),
    "correctness": ((0.7, 0.4), ("correct", "partly", "incorrect")),
}


def calibrate(cosine: float) -> float:
    return float(min(1.0, max(0.0, (cosine - COSINE_LOW) / (COSINE_HIGH - COSINE_LOW))))


def label_for(criterion: str, score: float) -> str:
    (high, mid), (good, partly, bad) = LABELS[criterion]
    return good if score >= high else partly if score >= mid else bad


class EmbeddingJudge:
    """Offline: relevance is the calibrated cosine of question and answer; groundedness
    averages, over answer sentences, the calibrated best cosine to a context sentence
    and the share of the sentence's words found in the context (words catch a changed
    number or name that cosine misses); correctness averages the calibrated cosine to
    the reference and the word F1 with it."""

    name = "embedding"

    def __init__(self, embedder: Any = None):
        self._embedder = embedder

    def score(
        self, input: str, context: Sequence[str], output: str, reference: str | None = None
    ) -> dict[str, JudgeScore]:
        if abstains(output):
            return self._abstained(reference)
        answer = strip_citations(output).strip()
        sentences = [s for s in split_sentences(answer) if terms(s)] or [answer]
        context_sentences = [s for c in context for s in split_sentences(c) if terms(s)]
        texts = [input, answer, *sentences, *context_sentences]
        if reference is not None:
            texts.append(reference)
        vectors = self._embed(texts)
        q, a = vectors[0], vectors[1]
        out_vecs = vectors[2 : 2 + len(sentences)]
        ctx_vecs = vectors[2 + len(sentences) : 2 + len(sentences) + len(context_sentences)]
        relevance = calibrate(float(q @ a))
        scores = {"relevance": (relevance, f"cosine(question, answer) = {float(q @ a):.2f}")}
        scores["groundedness"] = self._grounded(sentences, out_vecs, context_sentences, ctx_vecs)
        if reference is not None:
            cosine = float(a @ vectors[-1])
            f1 = token_f1(answer, reference)
            why = f"cosine to reference {cosine:.2f}, word F1 {f1:.2f}"
            scores["correctness"] = ((calibrate(cosine) + f1) / 2, why)
        return {k: JudgeScore(s, label_for(k, s), why) for k, (s, why) in scores.items()}

    def _grounded(self, sentences: list[str], out_vecs: np.ndarray, context: list[str],
                  ctx_vecs: np.ndarray) -> tuple[float, str]:  # fmt: skip
        if not context:
            return 0.0, "no context to ground the answer in"
        context_terms = {t for s in context for t in terms(s)}
        best = (out_vecs @ ctx_vecs.T).max(axis=1)
        per_sentence = []
        for sentence, cosine in zip(sentences, best, strict=True):
            words = terms(sentence)
            support = sum(w in context_terms for w in words) / len(words) if words else 1.0
            per_sentence.append((calibrate(float(cosine)) + support) / 2)
        worst = int(np.argmin(per_sentence))
        return float(np.mean(per_sentence)), (
            f"{len(sentences)} sentence(s); least supported: {sentences[worst][:80]!r}"
        )

    def _abstained(self, reference: str | None) -> dict[str, JudgeScore]:
        why = "the answer declines to answer: it claims nothing"
        out = {"relevance": JudgeScore(0.0, "abstained", why),
               "groundedness": JudgeScore(1.0, "abstained", why)}  # fmt: skip
        if reference is not None:
            out["correctness"] = JudgeScore(0.0, "abstained", why)
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from stoa.develop.rag.embed import EmbedderSpec, load_embedder

            self._embedder = load_embedder(EmbedderSpec())
        return self._embedder.embed(texts)


def token_f1(prediction: str, reference: str) -> float:
    """F1 of content words, as SQuAD scores answers (with our word normalisation)."""
    p, r = terms(prediction), terms(reference)
    if not p or not r:
        return float(p == r)
    common = sum(min(p.count(t), r.count(t)) for t in set(p) & set(r))
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


# --- the LLM judge -------------------------------------------------------------------------

RUBRICS = {
    "relevance": "Does the ANSWER address the QUESTION? 5: fully answers it; 3: partly or "
    "vaguely; 1: off-topic. An answer that says it does not know scores 1.",
    "groundedness": "Is every claim in the ANSWER supported by the CONTEXT? 5: all claims "
    "supported; 3: some unsupported; 1: contradicts the context or invents facts. An answer "
    "that says it does not know claims nothing and scores 5.",
    "correctness": "Does the ANSWER agree with the REFERENCE answer? 5: same facts; 3: partly "
    "right; 1: wrong or missing.",
}
_FORMAT = ('Reply with only a JSON object: {"score": an integer 1-5, "label": one word, '
           '"rationale": one sentence}.')  # fmt: skip
_REMINDER = "That was not a valid JSON object. " + _FORMAT + " No other text."
_DIGITS = ("1", "2", "3", "4", "5")
_SCALE_FORMAT = "Reply with one digit from 1 to 5 and nothing else."
_SCALE_REMINDER = "That was not one digit from 1 to 5. " + _SCALE_FORMAT
MODES = ("json", "scale")


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: float = Field(ge=1, le=5)
    label: str = Field(min_length=1, max_length=40)
    rationale: str = ""


def parse_verdict(text: str) -> Verdict | None:
    """The first JSON object in ``text``, checked; None when there is none or it is wrong."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return Verdict.model_validate(value)
        except (ValueError, ValidationError):
            start = text.find("{", start + 1)
    return None


def _parse_digit(text: str) -> Verdict | None:
    """A reply of one digit 1-5 (surrounding spaces and a full stop allowed)."""
    bare = text.strip().rstrip(".")
    return Verdict(score=int(bare), label=bare) if bare in _DIGITS else None


class LLMJudge:
    """Grades with a provider, one rubric prompt per criterion. A reply that is not the
    JSON asked for is asked again once, with a stricter reminder; a second bad reply
    gives that criterion ``score=NaN, label="error"`` (counted, never averaged), so one
    bad reply never aborts an evaluation. ``usage`` totals every call.

    ``mode="scale"`` asks for one digit 1-5 instead, with ``choices`` so that a provider
    that constrains decoding (the local one) always answers on the scale: a model too
    small to write JSON (SmolLM2-135M never did) can still grade, without a rationale.
    With a provider that scores choices, the grade is the expected digit under the
    model's probabilities rather than its single most likely digit.
    """

    def __init__(self, provider: Provider, *, criteria: Sequence[str] = CRITERIA,
                 params: GenerationParams | None = None, mode: str = "json"):  # fmt: skip
        unknown = sorted(set(criteria) - set(CRITERIA))
        if unknown or not criteria:
            raise InvalidInputError(
                f"unknown judge criteria {', '.join(unknown) or '(none given)'}",
                field="criteria",
                fix=f"use some of {', '.join(CRITERIA)}",
            )
        if mode not in MODES:
            raise InvalidInputError(
                f"unknown judge mode {mode!r}", field="mode", fix="use json or scale"
            )
        self.provider = provider
        self.criteria = tuple(criteria)
        self.mode = mode
        if params is None:
            params = (GenerationParams(max_tokens=160, json_mode=True) if mode == "json"
                      else GenerationParams(max_tokens=2, choices=_DIGITS))  # fmt: skip
        self.params = params
        self.name = f"llm:{provider.kind}:{provider.model}"
        self.usage = Usage()
        self.calls = 0

    def score(
        self, input: str, context: Sequence[str], output: str, reference: str | None = None
    ) -> dict[str, JudgeScore]:
        out = {}
        for criterion in self.criteria:
            if criterion == "correctness" and reference is None:
                continue
            out[criterion] = self._grade(criterion, input, context, output, reference)
        return out

    def _grade(self, criterion: str, input: str, context: Sequence[str], output: str,
               reference: str | None) -> JudgeScore:  # fmt: skip
        parts = [f"QUESTION:\n{input}"]
        if criterion == "groundedness":
            parts.append("CONTEXT:\n" + "\n\n".join(context or ["(none)"]))
        if criterion == "correctness":
            parts.append(f"REFERENCE:\n{reference}")
        parts.append(f"ANSWER:\n{output}")
        scale = self.mode == "scale"
        form, reminder = (_SCALE_FORMAT, _SCALE_REMINDER) if scale else (_FORMAT, _REMINDER)
        parse = _parse_digit if scale else parse_verdict
        messages = [
            Message(role="system", content=f"You grade answers. {RUBRICS[criterion]} {form}"),
            Message(role="user", content="\n\n".join(parts)),
        ]
        if scale and callable(getattr(self.provider, "score_choices", None)):
            return self._expected(criterion, messages)
        reply = self._call(messages)
        verdict = parse(reply)
        if verdict is None:
            messages += [Message(role="assistant", content=reply),
                         Message(role="user", content=reminder)]  # fmt: skip
            reply = self._call(messages)
            verdict = parse(reply)
        if verdict is None:
            what = "digit" if scale else "JSON verdict"
            why = f"no valid {what} after one retry: {reply[:120]!r}"
            return JudgeScore(math.nan, "error", why)
        score = (verdict.score - 1) / 4
        if scale:
            return JudgeScore(score, label_for(criterion, score), f"graded {verdict.label}/5")
        return JudgeScore(score, verdict.label, verdict.rationale)

    def _expected(self, criterion: str, messages: list[Message]) -> JudgeScore:
        """The probability-weighted grade (as G-Eval does): a small model's most likely
        digit barely moves, but how its probability shifts between 1 and 5 still ranks
        answers."""
        probabilities = self.provider.score_choices(messages, _DIGITS)  # type: ignore[attr-defined]
        self.calls += 1
        self.usage.prompt_tokens += sum(self.provider.count_tokens(m.content) for m in messages)
        expected = sum(p * (i + 1) for i, p in enumerate(probabilities))
        score = (expected - 1) / 4
        shown = ", ".join(f"{d}: {p:.2f}" for d, p in zip(_DIGITS, probabilities, strict=True))
        return JudgeScore(
            score, label_for(criterion, score), f"expected {expected:.2f}/5 ({shown})"
        )

    def _call(self, messages: list[Message]) -> str:
        generation = self.provider.generate(messages, self.params)
        u = generation.usage
        self.calls += 1
        self.usage.prompt_tokens += u.prompt_tokens
        self.usage.completion_tokens += u.completion_tokens
        self.usage.latency_ms += u.latency_ms
        self.usage.cost_usd += u.cost_usd
        if u.cpu_seconds is not None:
            self.usage.cpu_seconds = (self.usage.cpu_seconds or 0.0) + u.cpu_seconds
        return generation.text


# --- evaluating a set of answers -----------------------------------------------------------


@dataclass(frozen=True)
class EvalRow:
    input: str
    context: Sequence[str]
    output: str
    reference: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None


@dataclass
class Summary:
    """One judge's criterion over the rows: mean and bootstrap 95 % interval."""

    mean: float
    low: float
    high: float
    n: int
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mean": round(self.mean, 4), "ci95": [round(self.low, 4), round(self.high, 4)],
                "n": self.n, "errors": self.errors}  # fmt: skip


@dataclass
class EvalReport:
    rows: int
    scores: dict[str, dict[str, Summary]] = field(default_factory=dict)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    cost_usd: dict[str, float] = field(default_factory=dict)
    judge_usage: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "scores": {j: {c: s.to_dict() for c, s in by.items()} for j, by in self.scores.items()},
            "latency_ms": self.latency_ms,
            "cost_usd": self.cost_usd,
            "judge_usage": self.judge_usage,
        }


def bootstrap_mean(values: Sequence[float], *, resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap 95 % interval of the mean (rows resampled with replacement)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1 or resamples <= 0:
        return float(data.mean()), float(data.mean())
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _row(value: EvalRow | Mapping[str, Any], index: int) -> EvalRow:
    if isinstance(value, EvalRow):
        return value
    try:
        return EvalRow(**value)
    except TypeError:
        raise InvalidInputError(
            f"row {index} is not {{input, context, output, reference, latency_ms, cost_usd}}",
            field=f"rows[{index}]",
        ) from None


#: One row's verdicts: judge name -> criterion -> score (NaN where the judge erred).
RowScores = dict[str, dict[str, float]]


def score_rows(rows: Sequence[EvalRow], judges: Sequence[Judge]) -> list[RowScores]:
    """Every judge's scores of each row; rows are independent, so a cluster can score
    them in partitions and :func:`summarize` the lot as if one process had."""
    return [
        {
            judge.name: {
                criterion: verdict.score
                for criterion, verdict in judge.score(
                    row.input, row.context, row.output, row.reference
                ).items()
            }
            for judge in judges
        }
        for row in rows
    ]


def judge_usage(judges: Sequence[Judge]) -> dict[str, dict[str, Any]]:
    """What each judge's model calls cost so far (judges that call no model: none)."""
    used = {}
    for judge in judges:
        usage = getattr(judge, "usage", None)
        if isinstance(usage, Usage):
            used[judge.name] = {**usage.to_dict(), "calls": getattr(judge, "calls", 0)}
    return used


def summarize(
    rows: Sequence[EvalRow],
    scores: Sequence[RowScores],
    judges: Sequence[str],
    usage: Mapping[str, dict[str, Any]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> EvalReport:
    """Per judge and criterion the mean with its bootstrap 95 % interval over rows (a
    criterion a row lacks, such as correctness without a reference, and a judge's errors
    are left out of that mean and counted)."""
    report = EvalReport(rows=len(rows))
    for name in judges:
        values: dict[str, list[float]] = {c: [] for c in CRITERIA}
        errors = dict.fromkeys(CRITERIA, 0)
        for row_scores in scores:
            for criterion, score in row_scores[name].items():
                if math.isnan(score):
                    errors[criterion] += 1
                else:
                    values[criterion].append(score)
        summaries = {}
        for criterion in CRITERIA:
            if values[criterion] or errors[criterion]:
                low, high = bootstrap_mean(values[criterion], resamples=resamples, seed=seed)
                mean = float(np.mean(values[criterion])) if values[criterion] else math.nan
                summaries[criterion] = Summary(mean, low, high, len(values[criterion]),
                                               errors[criterion])  # fmt: skip
        report.scores[name] = summaries
    report.judge_usage = {name: dict(used) for name, used in usage.items()}
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95])) if latencies else (None, None)
    report.latency_ms = {"p50": p50, "p95": p95, "n": len(latencies)}
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    mean_cost = float(np.mean(costs)) if costs else 0.0
    report.cost_usd = {"total": float(sum(costs)), "mean": mean_cost, "n": len(costs)}
    return report


def evaluate_outputs(rows: Iterable[EvalRow | Mapping[str, Any]], judges: Sequence[Judge], *,
                     resamples: int = 1000, seed: int = 0) -> EvalReport:  # fmt: skip
    """Every judge on every row, summarized (see :func:`summarize`)."""
    checked = [_row(r, i) for i, r in enumerate(rows)]
    if not checked:
        raise InvalidInputError("there are no rows to evaluate", field="rows")
    scores = score_rows(checked, judges)
    return summarize(checked, scores, [j.name for j in judges], judge_usage(judges),
                     resamples=resamples, seed=seed)  # fmt: skip
