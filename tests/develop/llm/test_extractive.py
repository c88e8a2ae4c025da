"""The extractive provider against the real MiniLM: it quotes, cites, and abstains."""

from __future__ import annotations

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.cost import cpu_cost
from stoa.develop.llm.extractive import (
    UNKNOWN_ANSWER,
    ExtractiveProvider,
    parse_options,
    split_sentences,
)
from stoa.develop.llm.provider import GenerationParams, Message, Passage, collect

PASSAGES = [
    Passage(1, "The office cafeteria opens at 8 am. It serves vegetarian lunches on Fridays."),
    Passage(
        2,
        "To rotate an API token, run stoa tokens rotate with the token's name. "
        "The old token stops working after a grace period of ten minutes. "
        "Rotation is recorded in the audit log.",
    ),
    Passage(3, "Backups of the database run every night at 2 am and are kept for 30 days."),
]


def ask(provider: ExtractiveProvider, question: str, passages=PASSAGES, **params):
    messages = [Message(role="system", content="be brief"), Message(role="user", content=question)]
    return provider.generate(messages, GenerationParams(**params), passages=passages)


@pytest.fixture(scope="module")
def provider() -> ExtractiveProvider:
    return ExtractiveProvider({})


@pytest.mark.slow
def test_cites_the_passage_that_answers(provider: ExtractiveProvider) -> None:
    answer = ask(provider, "How do I rotate an API token?")
    assert answer.citations == [2]
    assert "run stoa tokens rotate with the token's name. [2]" in answer.text
    assert "cafeteria" not in answer.text and "Backups" not in answer.text
    assert answer.provider == "extractive" and answer.finish_reason == "stop"


@pytest.mark.slow
def test_unrelated_question_and_no_passages_say_unknown(provider: ExtractiveProvider) -> None:
    unrelated = ask(provider, "Who painted the ceiling of the Sistine Chapel?")
    assert unrelated.text == UNKNOWN_ANSWER and unrelated.citations == []
    empty = ask(provider, "How do I rotate an API token?", passages=[])
    assert empty.text == UNKNOWN_ANSWER and empty.citations == []


@pytest.mark.slow
def test_respects_max_tokens(provider: ExtractiveProvider) -> None:
    question = "What happens when I rotate an API token, and where is rotation recorded?"
    roomy = ask(provider, question, max_tokens=200)
    tight = ask(provider, question, max_tokens=24)
    assert roomy.text.count("[2]") >= 2
    assert tight.usage.completion_tokens <= 24 < roomy.usage.completion_tokens
    tiny = ask(provider, question, max_tokens=6)
    assert tiny.usage.completion_tokens <= 6 and tiny.finish_reason == "length"


@pytest.mark.slow
def test_a_repeated_sentence_is_quoted_once(provider: ExtractiveProvider) -> None:
    repeated = "To rotate an API token, run stoa tokens rotate with the token's name."
    passages = [Passage(1, repeated + " It takes a second."), Passage(2, "Note. " + repeated)]
    answer = ask(provider, "How do I rotate an API token?", passages=passages)
    assert answer.text.count("run stoa tokens rotate") == 1
    assert answer.citations == [1]


@pytest.mark.slow
def test_usage_counts_real_tokens_and_cpu_cost(provider: ExtractiveProvider) -> None:
    answer = ask(provider, "How do I rotate an API token?")
    usage = answer.usage
    question_tokens = provider.count_tokens("How do I rotate an API token?")
    passage_tokens = sum(provider.count_tokens(p.text) for p in PASSAGES)
    assert usage.prompt_tokens == question_tokens + passage_tokens
    assert usage.completion_tokens == provider.count_tokens(answer.text)
    assert usage.cpu_seconds is not None and usage.cpu_seconds > 0
    assert usage.cost_usd == pytest.approx(cpu_cost(usage.cpu_seconds, 0.05))
    turn = [Message(role="user", content="How do I rotate an API token?")]
    streamed = collect(provider.stream(turn, GenerationParams(), passages=PASSAGES))
    assert streamed.text == answer.text


@pytest.mark.slow
def test_a_higher_threshold_abstains(provider: ExtractiveProvider) -> None:
    strict = ExtractiveProvider({"min_score": 0.99})
    assert ask(strict, "How do I rotate an API token?").text == UNKNOWN_ANSWER


def test_bad_options_and_messages_are_the_callers_error() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown extractive option\(s\) temperature"):
        parse_options({"temperature": 0.2})
    with pytest.raises(InvalidInputError, match=r"min_score must be a number in 0\.0\.\.1\.0"):
        parse_options({"min_score": 2})
    with pytest.raises(InvalidInputError, match="max_sentences must be an integer"):
        parse_options({"max_sentences": 2.5})
    with pytest.raises(InvalidInputError, match="needs a user message"):
        ExtractiveProvider({}).generate(
            [Message(role="system", content="hi")], GenerationParams(), passages=PASSAGES
        )
    assert parse_options({"max_sentences": 5}).max_sentences == 5


def test_sentences_survive_abbreviations_decimals_and_markdown() -> None:
    text = (
        "# Setup\n"
        "Dr. Smith paid 3.5 USD, e.g. for tea. Then he left!\n"
        "Lines wrap\nacross the paragraph. See Fig. 2 for more.\n\n"
        "- a first bullet\n"
        "- a second bullet. With two sentences.\n"
        "```\nignored. Code\n```\n"
    )
    assert split_sentences(text) == [
        "Dr. Smith paid 3.5 USD, e.g. for tea.",
        "Then he left!",
        "Lines wrap across the paragraph.",
        "See Fig. 2 for more.",
        "a first bullet",
        "a second bullet.",
        "With two sentences.",
    ]
