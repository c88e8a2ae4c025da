"""The openai provider against a real HTTP server on loopback speaking the wire format."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stoa.core.errors import ConfigurationError, InvalidInputError, RefusedError, UnreachableError
from stoa.develop.llm.openai_compat import OpenAIProvider, approximate_tokens, snap_to_choices
from stoa.develop.llm.provider import GenerationParams, Message, collect
from tests.develop.llm.openai_server import Step, scripted_openai_app, words
from tests.servers import serve_in_thread

KEY = "sk-test-4f9b2c7d1e"
MESSAGES = [Message(role="system", content="Be brief."), Message(role="user", content="Say hi")]
PARAMS = GenerationParams(max_tokens=16)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = scripted_openai_app([Step()])
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def scripted(server, monkeypatch):
    """Set the server's script and build a provider for it; returns (make, requests)."""
    url, app = server
    monkeypatch.setenv("STOA_TEST_OPENAI_KEY", KEY)

    def make(*steps: Step, **settings: Any) -> OpenAIProvider:
        app.state.script = list(steps) or [Step()]
        app.state.requests.clear()
        values = {
            "url": f"{url}/v1",
            "api_key_env": "STOA_TEST_OPENAI_KEY",
            "backoff_s": 0.01,
            **settings,
        }
        return OpenAIProvider.from_settings("gpu", values, "tiny-chat", {})

    return make, app.state.requests


def test_generate_returns_the_answer_and_the_servers_usage(scripted):
    make, requests = scripted
    provider = make(Step(reply="Hi! How can I help?"), prices={"tiny-chat": {
        "prompt": 1.0, "completion": 2.0}})  # fmt: skip
    answer = provider.generate(MESSAGES, PARAMS)
    assert answer.text == "Hi! How can I help?"
    assert (answer.provider, answer.model, answer.finish_reason) == ("gpu", "tiny-chat", "stop")
    assert answer.usage.prompt_tokens == words("Be brief.") + words("Say hi") == 4
    assert answer.usage.completion_tokens == 5
    assert not answer.usage.tokens_estimated
    assert answer.usage.cost_usd == pytest.approx((4 * 1.0 + 5 * 2.0) / 1e6)
    assert answer.usage.latency_ms > 0
    body = requests[0]["body"]
    assert body["model"] == "tiny-chat"
    assert body["messages"] == [m.model_dump() for m in MESSAGES]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (16, 0.0, 1.0)
    assert "stop" not in body and "seed" not in body and "response_format" not in body
    assert requests[0]["headers"]["authorization"] == f"Bearer {KEY}"


def test_stream_yields_deltas_then_the_generation_with_usage(scripted):
    make, requests = scripted
    provider = make(Step(reply="one two three four"))
    chunks = list(provider.stream(MESSAGES, PARAMS))
    assert [c.text for c in chunks[:-1]] == ["one", " two", " three", " four"]
    final = chunks[-1].final
    assert final is not None and final.text == "one two three four"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (4, 4)
    assert not final.usage.tokens_estimated
    assert 0 < final.usage.first_token_ms <= final.usage.latency_ms
    assert requests[0]["body"]["stream"] is True
    assert requests[0]["body"]["stream_options"] == {"include_usage": True}


def test_a_missing_usage_is_estimated_and_marked(scripted):
    make, _ = scripted
    provider = make(Step(reply="twelve chars", usage=False))
    answer = provider.generate(MESSAGES, PARAMS)
    assert answer.usage.tokens_estimated
    assert answer.usage.completion_tokens == approximate_tokens("twelve chars") == 3
    assert answer.usage.prompt_tokens == approximate_tokens("Be brief.") + approximate_tokens(
        "Say hi"
    )
    streamed = collect(provider.stream(MESSAGES, PARAMS))
    assert streamed.usage.tokens_estimated and streamed.usage.completion_tokens == 3


def test_429_with_retry_after_is_waited_for_then_retried(scripted):
    make, requests = scripted
    provider = make(Step(status=429, headers={"Retry-After": "1"}), Step(reply="ok"))
    started = time.monotonic()
    answer = provider.generate(MESSAGES, PARAMS)
    assert answer.text == "ok"
    assert len(requests) == 2
    assert time.monotonic() - started >= 1.0  # the server's wait, not the 10 ms backoff


def test_a_stream_is_retried_before_its_first_byte(scripted):
    make, requests = scripted
    provider = make(Step(status=503), Step(reply="back again"))
    assert collect(provider.stream(MESSAGES, PARAMS)).text == "back again"
    assert len(requests) == 2


def test_a_server_that_always_fails_is_unreachable_after_every_attempt(scripted, server):
    make, requests = scripted
    provider = make(Step(status=500, error="boom"), max_retries=2)
    with pytest.raises(UnreachableError) as caught:
        provider.generate(MESSAGES, PARAMS)
    assert len(requests) == 3
    message = caught.value.message
    assert f"{server[0]}/v1/chat/completions" in message
    assert "failed after 3 attempt(s)" in message
    assert "the last: HTTP 500" in message and "boom" not in message
    assert caught.value.field == "STOA_PROVIDERS.gpu.url"


def test_a_slow_server_times_out_quickly_and_the_timeout_is_retried(scripted):
    make, requests = scripted
    provider = make(Step(delay_s=3), max_retries=0, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(UnreachableError, match=r"no answer within timeout_s=0.3 s"):
        provider.generate(MESSAGES, PARAMS)
    assert time.monotonic() - started < 2
    provider = make(Step(delay_s=3), Step(reply="fast now"), max_retries=1, timeout_s=0.3)
    assert provider.generate(MESSAGES, PARAMS).text == "fast now"
    assert len(requests) == 2


def test_a_closed_port_is_unreachable_naming_the_endpoint(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    provider = OpenAIProvider.from_settings(
        "down", {"url": url, "max_retries": 1, "backoff_s": 0.01}, "m", {}
    )
    with pytest.raises(UnreachableError) as caught:
        provider.generate(MESSAGES, PARAMS)
    assert f"provider 'down' at {url}/chat/completions failed after 2 attempt(s)" in str(
        caught.value
    )
    assert "the connection failed (ConnectError)" in caught.value.message


def test_a_400_is_not_retried_and_never_echoes_the_answer(scripted):
    make, requests = scripted
    said = f"context too long for key {KEY}\n\x1b[31m" + "x" * 500
    provider = make(Step(status=400, error=said))
    with pytest.raises(RefusedError) as caught:
        provider.generate(MESSAGES, PARAMS)
    assert len(requests) == 1
    text = str(caught.value)
    assert text.startswith("params: provider 'gpu' at ") and "refused the request" in text
    assert "HTTP 400" in text and "context too long" not in text
    assert KEY not in text and "\x1b" not in text
    assert "not retried" in caught.value.fix


def test_a_refused_key_is_a_configuration_error_without_the_key(scripted):
    make, requests = scripted
    provider = make(Step(status=401, error=f"bad key {KEY}"))
    with pytest.raises(ConfigurationError) as caught:
        provider.generate(MESSAGES, PARAMS)
    assert len(requests) == 1
    assert caught.value.field == "STOA_PROVIDERS.gpu.api_key_env"
    assert "refused the key: HTTP 401" in caught.value.message
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("raw", ["{not json", '{"choices": []}', '{"choices": [{"message": {}}]}'])
def test_a_malformed_body_is_a_clear_error(scripted, raw):
    make, requests = scripted
    provider = make(Step(raw=raw))
    with pytest.raises(UnreachableError, match="answered with something that is not a chat"):
        provider.generate(MESSAGES, PARAMS)
    assert len(requests) == 1  # the same server would answer the same way


def test_an_error_event_mid_stream_is_not_retried(scripted):
    make, requests = scripted
    provider = make(Step(reply="half an answer", break_stream=True, error="out of memory"))
    received = []
    with pytest.raises(UnreachableError, match=r"error in its stream after 1 piece\(s\)") as caught:
        for chunk in provider.stream(MESSAGES, PARAMS):
            received.append(chunk.text)
    assert "out of memory" not in str(caught.value)  # the server's words are never echoed
    assert received == ["half"]
    assert len(requests) == 1


def test_a_stream_that_is_not_server_sent_events_is_a_clear_error(scripted):
    make, _ = scripted
    provider = make(Step(raw='{"choices": [{"message": {"content": "whole"}}]}'))
    with pytest.raises(UnreachableError, match="not a chat completion"):
        collect(provider.stream(MESSAGES, PARAMS))


def test_json_mode_stop_and_seed_go_on_the_wire(scripted):
    make, requests = scripted
    provider = make(Step(reply='{"score": 1}'))
    params = GenerationParams(json_mode=True, stop=("\n\n",), seed=7, temperature=0.5)
    provider.generate(MESSAGES, params)
    body = requests[0]["body"]
    assert body["response_format"] == {"type": "json_object"}
    assert (body["stop"], body["seed"], body["temperature"]) == (["\n\n"], 7, 0.5)


def test_choices_snap_the_answer_to_a_label(scripted):
    make, requests = scripted
    provider = make(Step(reply="The intent is Billing, not refund."))
    params = GenerationParams(choices=("refund", "billing", "other"))
    assert provider.generate(MESSAGES, params).text == "billing"
    assert "choices" not in requests[0]["body"]  # nothing extra on the wire
    assert collect(provider.stream(MESSAGES, params)).text == "billing"


def test_snap_to_choices_rules():
    labels = ("refund", "billing", "other")
    assert snap_to_choices(" Refund. ", labels) == "refund"
    assert snap_to_choices("billing or refund", labels) == "billing"  # the first in the text
    assert snap_to_choices("it is otherwise", labels) == "it is otherwise"  # whole words only
    assert snap_to_choices("no idea", labels) == "no idea"
    assert snap_to_choices("anything", ()) == "anything"
    assert snap_to_choices("a", ("a b", "a")) == "a"


def test_extra_body_options_are_sent_but_cannot_replace_stoas_keys(scripted, server):
    make, requests = scripted
    make()
    provider = OpenAIProvider.from_settings(
        "gpu", {"url": f"{server[0]}/v1"}, "m", {"extra_body": {"guided_choice": ["a", "b"]}}
    )
    provider.generate(MESSAGES, PARAMS)
    assert requests[0]["body"]["guided_choice"] == ["a", "b"]
    assert "authorization" not in requests[0]["headers"]  # no api_key_env, no key
    with pytest.raises(InvalidInputError, match="cannot set messages, model") as caught:
        OpenAIProvider.from_settings(
            "gpu", {"url": "http://h/v1"}, "m", {"extra_body": {"model": "x", "messages": []}}
        )
    assert caught.value.field == "options.extra_body"
    with pytest.raises(InvalidInputError, match=r"unknown option\(s\) url") as caught:
        OpenAIProvider.from_settings("gpu", {"url": "http://h/v1"}, "m", {"url": "http://evil"})
    assert caught.value.field == "options"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({}, "STOA_PROVIDERS.p.url", "needs the base URL"),
        ({"url": "ftp://h/v1"}, "STOA_PROVIDERS.p.url", "needs the base URL"),
        ({"url": "http://h/v1", "api_key_env": "STOA_UNSET_VAR_9"},
         "STOA_PROVIDERS.p.api_key_env", "STOA_UNSET_VAR_9 is not set"),
        ({"url": "http://h/v1", "timeout": 5}, "STOA_PROVIDERS.p", "unknown setting(s) timeout"),
        ({"url": "http://h/v1", "max_retries": 2.5}, "STOA_PROVIDERS.p.max_retries",
         "must be a whole number from 0 to 10"),
        ({"url": "http://h/v1", "timeout_s": 0}, "STOA_PROVIDERS.p.timeout_s", "must be a number"),
        ({"url": "http://h/v1", "prices": {"m": {"prompt": 1}}}, "STOA_PROVIDERS.p.prices.m",
         "is not {prompt, completion}"),
        ({"url": "http://h/v1", "headers": {"Authorization": "Bearer x"}},
         "STOA_PROVIDERS.p.headers", "must not carry the Authorization header"),
    ],
)  # fmt: skip
def test_bad_settings_are_configuration_errors(monkeypatch, values, field, message):
    monkeypatch.delenv("STOA_UNSET_VAR_9", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        OpenAIProvider.from_settings("p", values, "m", {})
    assert caught.value.field == field
    assert message in caught.value.message


def test_unknown_settings_list_the_known_ones():
    with pytest.raises(ConfigurationError) as caught:
        OpenAIProvider.from_settings("p", {"url": "http://h/v1", "key": "x"}, "m", {})
    assert "url" in caught.value.fix and "api_key_env" in caught.value.fix


def test_a_model_comes_from_the_spec_or_the_settings():
    from_settings = OpenAIProvider.from_settings("p", {"url": "http://h/v1", "model": "d"}, "", {})
    assert from_settings.model == "d"
    assert (
        OpenAIProvider.from_settings("p", {"url": "http://h/v1", "model": "d"}, "s", {}).model
        == "s"
    )
    with pytest.raises(InvalidInputError, match="needs a model") as caught:
        OpenAIProvider.from_settings("p", {"url": "http://h/v1"}, "", {})
    assert caught.value.field == "model"


def test_count_tokens_is_the_documented_approximation():
    provider = OpenAIProvider.from_settings("p", {"url": "http://h/v1"}, "m", {})
    assert provider.count_tokens("") == 0
    assert provider.count_tokens("abcd") == 1
    assert provider.count_tokens("abcde") == 2
