"""Generate steps against real OpenAI-compatible servers on loopback: prompts rendered,
fallbacks on errors and timeouts, usage and cost in the trace, and the cache."""

from __future__ import annotations

import pytest

from stoa.client import LocalClient
from stoa.core.settings import Settings
from tests.develop.llm.openai_server import Step, scripted_openai_app
from tests.servers import serve_in_thread

SPEC = """\
name: writer
steps:
  - id: answer
    kind: generate
    provider: primary
    model: big-model
    system: style@1
    prompt: ask@1
    vars: {question: input.text, tone: '"friendly"'}
    params: {max_tokens: 32}
    fallbacks:
      - provider: backup
        model: small-model
  - id: final
    kind: respond
    data: {provider: answer.provider, cached: answer.cached}
    template: "{{ answer.text }}"
"""


@pytest.fixture
def servers():
    primary = scripted_openai_app([Step(reply="from the primary")])
    backup = scripted_openai_app([Step(reply="from the backup")])
    with serve_in_thread(primary) as a, serve_in_thread(backup) as b:
        yield primary, backup, a, b


@pytest.fixture
def client(servers, tmp_path):
    _, _, a, b = servers
    providers = {
        "primary": {"kind": "openai", "url": f"{a}/v1", "max_retries": 1, "backoff_s": 0.01,
                    "timeout_s": 5, "prices": {"big-model": {"prompt": 1.0, "completion": 2.0}}},
        "backup": {"kind": "openai", "url": f"{b}/v1", "max_retries": 0},
    }  # fmt: skip
    c = LocalClient(settings=Settings(home=tmp_path / "home", providers=providers), actor="me")
    c.prompts.register("style", "Answer in a {{ tone }} tone.")
    c.prompts.register("ask", "Question: {{ question }}")
    c.solutions.register(SPEC)
    yield c
    c.close()


def test_the_prompts_are_rendered_into_the_messages(client, servers):
    primary = servers[0]
    result = client.solutions.run("writer", "where is my order?")
    assert result["output"] == {"text": "from the primary", "provider": "primary", "cached": False}
    sent = primary.state.requests[-1]["body"]
    assert sent["model"] == "big-model" and sent["max_tokens"] == 32
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in a friendly tone."},
        {"role": "user", "content": "Question: where is my order?"},
    ]
    span = result["trace"]["spans"][1]["attributes"]
    assert span["gen_ai.usage.input_tokens"] == 10 and span["gen_ai.usage.output_tokens"] == 3
    assert result["tokens"] == 13
    assert result["cost_usd"] == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)


def test_a_failing_provider_falls_back_and_the_trace_says_why(client, servers):
    primary, backup = servers[0], servers[1]
    primary.state.script = [Step(status=500)]
    result = client.solutions.run("writer", "hello")
    assert result["output"]["text"] == "from the backup"
    assert len(primary.state.requests) == 2  # the first try and one retry
    assert backup.state.requests[-1]["body"]["model"] == "small-model"
    span = result["trace"]["spans"][1]
    assert (
        span["attributes"]["stoa.decision"] == "answered by backup:small-model after 1 failure(s)"
    )
    assert "HTTP 500" in span["attributes"]["stoa.fallback_failures"][0]


def test_a_slow_provider_times_out_into_the_fallback(client, servers):
    primary = servers[0]
    primary.state.script = [Step(reply="too late", delay_s=3)]
    result = client.solutions.run("writer", "hello", overrides={"answer": {"timeout_s": 0.3}})
    assert result["output"]["text"] == "from the backup"
    assert result["trace"]["spans"][1]["attributes"]["stoa.fallback_failures"] == [
        "primary:big-model: timed out"
    ]
    assert result["latency_ms"] < 2500


def test_when_every_provider_fails_the_run_reports_each(client, servers):
    servers[0].state.script = [Step(status=503)]
    servers[1].state.script = [Step(status=400, error="bad request")]
    result = client.solutions.run("writer", "hello")
    assert result["status"] == "error" and result["error"]["step"] == "answer"
    message = result["error"]["message"]
    assert message.startswith("steps.answer.provider: every provider failed: primary:big-model:")
    assert "backup:small-model:" in message and "HTTP 503" in message


def test_the_cache_answers_a_repeated_request_once(client, servers):
    primary = servers[0]
    overrides = {"answer": {"cache": True}}
    first = client.solutions.run("writer", "same question", overrides=overrides)
    second = client.solutions.run("writer", "same question", overrides=overrides)
    other = client.solutions.run("writer", "another question", overrides=overrides)
    assert [first["output"]["cached"], second["output"]["cached"]] == [False, True]
    assert second["output"]["text"] == first["output"]["text"]
    assert other["output"]["cached"] is False
    assert len(primary.state.requests) == 2
    assert second["cost_usd"] == 0


def test_unknown_providers_are_refused_at_registration(client):
    with pytest.raises(Exception, match=r"line 12: step 'answer': unknown provider 'bakup'"):
        client.solutions.register(SPEC.replace("provider: backup", "provider: bakup"))
