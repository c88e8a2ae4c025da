"""Judges: the embedding heuristic ranks good answers first; the LLM judge parses,
retries once, and reports failure; evaluate_outputs summarises with intervals."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.judges import (
    EmbeddingJudge,
    EvalRow,
    LLMJudge,
    bootstrap_mean,
    evaluate_outputs,
    parse_verdict,
)
from stoa.develop.llm.extractive import UNKNOWN_ANSWER
from stoa.develop.llm.openai_compat import OpenAIProvider
from tests.develop.llm.openai_server import Step, scripted_openai_app
from tests.servers import serve_in_thread

#: (question, context, reference, good, off-topic, contradicting, hallucinated)
CASES = [
    (
        "How long are database backups kept?",
        ["Backups of the database run every night at 2 am.", "Each backup is kept for 30 days."],
        "Backups are kept for 30 days.",
        "Each backup is kept for 30 days [1].",
        "The cafeteria serves vegetarian lunches on Fridays.",
        "Each backup is deleted after 2 hours.",
        "Backups are kept for 30 days and copied to a bunker in Zurich by Swiss monks.",
    ),
    (
        "Which port does the server listen on by default?",
        ["The server listens on port 8765 by default.", "Set STOA_PORT to change it."],
        "It listens on port 8765 unless STOA_PORT is set.",
        "The server listens on port 8765 by default; set STOA_PORT to change it.",
        "Paris is the capital of France and has many museums.",
        "The server never listens on a port; it reads files only.",
        "It listens on port 8765, and port 9999 streams telemetry to the vendor hourly.",
    ),
    (
        "How do I rotate an API token?",
        [
            "To rotate an API token, run stoa tokens rotate with its name.",
            "The old token stops working after ten minutes.",
        ],
        "Run stoa tokens rotate NAME; the old token expires after ten minutes.",
        "Run stoa tokens rotate with the token's name; the old one stops after ten minutes.",
        "Our quarterly revenue grew by twelve percent thanks to new customers.",
        "Tokens cannot be rotated; delete the account and make a new one.",
        "Email the security team a photo of your badge and they rotate it within a week.",
    ),
]


@pytest.fixture(scope="module")
def judge() -> EmbeddingJudge:
    return EmbeddingJudge()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=["backups", "port", "token"])
def test_embedding_judge_ranks_good_answers_first(judge: EmbeddingJudge, case: tuple) -> None:
    question, context, reference, good, off_topic, contradicting, invented = case
    scores = {name: judge.score(question, context, answer, reference)
              for name, answer in [("good", good), ("off", off_topic),
                                   ("contra", contradicting), ("invented", invented)]}  # fmt: skip
    good_scores = scores["good"]
    assert good_scores["relevance"].score > scores["off"]["relevance"].score
    for bad in ("off", "contra", "invented"):
        for criterion in ("groundedness", "correctness"):
            assert good_scores[criterion].score > scores[bad][criterion].score, (bad, criterion)
    assert good_scores["groundedness"].label == "grounded"
    assert scores["off"]["relevance"].label == "irrelevant"
    assert all(0.0 <= s.score <= 1.0 for by in scores.values() for s in by.values())


@pytest.mark.slow
def test_abstaining_is_grounded_but_not_relevant(judge: EmbeddingJudge) -> None:
    question, context, reference = CASES[0][:3]
    scores = judge.score(question, context, UNKNOWN_ANSWER, reference)
    assert scores["groundedness"].score == 1.0 and scores["groundedness"].label == "abstained"
    assert scores["relevance"].score == 0.0 and scores["correctness"].score == 0.0
    assert "correctness" not in judge.score(question, context, CASES[0][3])


# --- the LLM judge against a scripted OpenAI-compatible server ------------------------------


def verdict(score: int, label: str = "ok") -> str:
    return json.dumps({"score": score, "label": label, "rationale": "because"})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = scripted_openai_app([Step()])
    with serve_in_thread(app) as url:
        yield url, app


def scripted(server: tuple[str, Any], steps: list[Step]) -> OpenAIProvider:
    url, app = server
    app.state.requests.clear()
    app.state.script = steps
    return OpenAIProvider("judge", url=f"{url}/v1", model="grader", max_retries=0)


@pytest.mark.slow
def test_llm_judge_retries_a_malformed_reply_once(server: tuple[str, Any]) -> None:
    provider = scripted(server, [Step(reply="Sure! The answer is good."), Step(reply=verdict(4))])
    judge = LLMJudge(provider, criteria=("relevance",))
    scores = judge.score("q?", ["ctx"], "an answer")
    assert scores["relevance"].score == pytest.approx(0.75)
    assert scores["relevance"].label == "ok" and scores["relevance"].rationale == "because"
    requests = server[1].state.requests
    assert len(requests) == 2 and judge.calls == 2
    retry = requests[1]["body"]["messages"]
    assert retry[-2]["content"] == "Sure! The answer is good."
    assert "not a valid JSON object" in retry[-1]["content"]
    assert requests[0]["body"]["response_format"] == {"type": "json_object"}
    assert judge.usage.prompt_tokens > 0 and judge.usage.completion_tokens > 0


@pytest.mark.slow
def test_llm_judge_twice_malformed_is_an_error_score(server: tuple[str, Any]) -> None:
    provider = scripted(server, [Step(reply='{"score": 9}'), Step(reply="still no json")])
    judge = LLMJudge(provider, criteria=("groundedness",))
    scores = judge.score("q?", ["ctx"], "an answer")
    assert math.isnan(scores["groundedness"].score)
    assert scores["groundedness"].label == "error"
    assert (
        "no valid JSON verdict after one retry: 'still no json'" in scores["groundedness"].rationale
    )
    assert judge.calls == 2


@pytest.mark.slow
def test_llm_judge_skips_correctness_without_reference(server: tuple[str, Any]) -> None:
    judge = LLMJudge(scripted(server, [Step(reply=verdict(5))]))
    assert set(judge.score("q?", ["ctx"], "a")) == {"relevance", "groundedness"}
    with_reference = judge.score("q?", ["ctx"], "a", "the reference")
    assert with_reference["correctness"].score == 1.0
    prompts = [r["body"]["messages"][1]["content"] for r in server[1].state.requests]
    assert "REFERENCE:\nthe reference" in prompts[-1] and "CONTEXT:\nctx" in prompts[-2]


@pytest.mark.slow
def test_evaluate_outputs_summarises_scores_latency_and_cost(server: tuple[str, Any]) -> None:
    replies = [Step(reply=verdict(s)) for s in (5, 1, 3)] + [Step(reply="junk")]
    judge = LLMJudge(scripted(server, replies), criteria=("relevance",))
    rows = [EvalRow("q", ["c"], "a", latency_ms=float(ms), cost_usd=0.01) for ms in (10, 20, 30)]
    rows += [{"input": "q", "context": ["c"], "output": "a", "latency_ms": 40.0}]
    report = evaluate_outputs(rows, [judge], resamples=500).to_dict()
    relevance = report["scores"][judge.name]["relevance"]
    assert relevance["n"] == 3 and relevance["errors"] == 1  # the 4th row's replies are junk
    assert relevance["mean"] == pytest.approx(0.5)
    low, high = relevance["ci95"]
    assert low <= 0.5 <= high
    assert report["latency_ms"] == {"p50": 25.0, "p95": pytest.approx(38.5), "n": 4}
    assert report["cost_usd"]["total"] == pytest.approx(0.03) and report["cost_usd"]["n"] == 3
    assert report["judge_usage"][judge.name]["calls"] == 5


@pytest.mark.slow
def test_scale_mode_asks_for_one_digit_with_choices(server: tuple[str, Any]) -> None:
    provider = scripted(server, [Step(reply="four"), Step(reply=" 2.")])
    judge = LLMJudge(provider, criteria=("relevance",), mode="scale")
    verdict_ = judge.score("q?", ["ctx"], "a")["relevance"]
    assert verdict_.score == pytest.approx(0.25) and verdict_.label == "irrelevant"
    first, retry = (r["body"] for r in server[1].state.requests)
    assert "Reply with one digit from 1 to 5" in first["messages"][0]["content"]
    assert "That was not one digit" in retry["messages"][-1]["content"]
    assert "response_format" not in first
    server[1].state.script = [Step(reply="6")]
    failed = judge.score("q?", ["ctx"], "a")["relevance"]
    assert math.isnan(failed.score) and failed.rationale.startswith(
        "no valid digit after one retry"
    )


def test_bootstrap_interval_contains_the_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        values = rng.uniform(0, 1, n)
        low, high = bootstrap_mean(values, resamples=1000, seed=0)
        assert low <= values.mean() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert bootstrap_mean([0.4]) == (0.4, 0.4)


def test_bad_inputs_are_the_callers_error() -> None:
    with pytest.raises(InvalidInputError, match="there are no rows to evaluate"):
        evaluate_outputs([], [])
    with pytest.raises(InvalidInputError, match=r"row 0 is not \{input, context, output"):
        evaluate_outputs([{"question": "q"}], [])
    provider = OpenAIProvider("judge", url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(InvalidInputError, match="unknown judge criteria fluency"):
        LLMJudge(provider, criteria=("relevance", "fluency"))
    with pytest.raises(InvalidInputError, match="unknown judge mode 'yaml'"):
        LLMJudge(provider, mode="yaml")


def test_parse_verdict_finds_the_json_object_in_chatter() -> None:
    parsed = parse_verdict('Here: {"score": 2, "label": "weak", "rationale": "x"} done')
    assert parsed is not None and parsed.score == 2 and parsed.label == "weak"
    assert parse_verdict('{"score": 0, "label": "x"}') is None  # out of the 1-5 scale
    assert parse_verdict("no object") is None
