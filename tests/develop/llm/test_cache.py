"""The generation cache on SQLite and PostgreSQL, in front of a real provider."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stoa.core.db import Database
from stoa.develop.llm.cache import GenerationCache, cache_key, cached_generate
from stoa.develop.llm.openai_compat import OpenAIProvider
from stoa.develop.llm.provider import Generation, GenerationParams, Message, Passage, Usage
from tests.develop.llm.openai_server import Step, scripted_openai_app
from tests.servers import serve_in_thread

MESSAGES = [Message(role="user", content="What is the refund window?")]
PARAMS = GenerationParams(max_tokens=32)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = scripted_openai_app([Step(reply="Thirty days.")])
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def cache(db_url: str) -> Iterator[GenerationCache]:
    db = Database(db_url)
    yield GenerationCache(db)
    db.dispose()


def _provider(url: str, model: str = "tiny-chat") -> OpenAIProvider:
    prices = {"*": {"prompt": 1.0, "completion": 1.0}}
    return OpenAIProvider.from_settings("gpu", {"url": f"{url}/v1", "prices": prices}, model, {})


def test_a_hit_replays_the_answer_without_calling_the_provider(cache, server):
    url, app = server
    app.state.requests.clear()
    provider = _provider(url)
    first = cached_generate(provider, MESSAGES, PARAMS, cache=cache)
    assert not first.cached and first.usage.cost_usd > 0
    second = cached_generate(provider, MESSAGES, PARAMS, cache=cache)
    assert len(app.state.requests) == 1
    assert second.cached
    assert (second.text, second.provider, second.model) == ("Thirty days.", "gpu", "tiny-chat")
    assert second.usage.completion_tokens == first.usage.completion_tokens == 2
    assert second.usage.cost_usd == 0.0
    assert second.usage.latency_ms >= 0
    cached_generate(provider, MESSAGES, PARAMS, cache=cache)
    assert cache.stats() == {"entries": 1, "hits": 2}


def test_anything_that_changes_the_answer_changes_the_key(cache, server):
    url, app = server
    app.state.requests.clear()
    cached_generate(_provider(url), MESSAGES, PARAMS, cache=cache)
    cached_generate(_provider(url, "other-model"), MESSAGES, PARAMS, cache=cache)
    cached_generate(_provider(url), MESSAGES, GenerationParams(max_tokens=33), cache=cache)
    passages = [Passage(n=1, text="Refunds within 30 days.")]
    cached_generate(_provider(url), MESSAGES, PARAMS, cache=cache, passages=passages)
    cached_generate(_provider(url), MESSAGES, PARAMS, cache=cache, identity="weights:abc")
    assert len(app.state.requests) == 5
    assert cache.stats() == {"entries": 5, "hits": 0}
    assert cached_generate(_provider(url), MESSAGES, PARAMS, cache=None).cached is False
    assert len(app.state.requests) == 6


def test_cache_key_is_canonical_sha256():
    key = cache_key("openai", "m", MESSAGES, PARAMS)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key("openai", "m", list(MESSAGES), GenerationParams(max_tokens=32))
    assert key != cache_key("openai", "m", MESSAGES, PARAMS, [Passage(n=1, text="x")])
    assert key != cache_key("local", "m", MESSAGES, PARAMS)
    swapped = [Message(role="assistant", content="What is the refund window?")]
    assert key != cache_key("openai", "m", swapped, PARAMS)


def test_a_stored_generation_round_trips(cache):
    stored = Generation(
        text="Thirty days [1].",
        usage=Usage(prompt_tokens=9, completion_tokens=4, latency_ms=812.0, cost_usd=0.02,
                    cpu_seconds=1.5, tokens_estimated=True),
        provider="extractive",
        model="",
        finish_reason="length",
        citations=[1],
    )  # fmt: skip
    cache.put("a" * 64, stored)
    hit = cache.get("a" * 64)
    assert hit is not None and hit.cached
    assert (hit.text, hit.finish_reason, hit.citations) == ("Thirty days [1].", "length", [1])
    assert (hit.usage.prompt_tokens, hit.usage.completion_tokens) == (9, 4)
    assert hit.usage.tokens_estimated
    assert (hit.usage.cost_usd, hit.usage.cpu_seconds) == (0.0, None)
    assert hit.usage.latency_ms < 812.0
    assert cache.get("b" * 64) is None


def test_concurrent_puts_of_one_key_keep_the_first_and_do_not_fail(cache):
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def put(i: int) -> None:
        try:
            barrier.wait()
            cache.put(
                "c" * 64, Generation(text=f"answer {i}", usage=Usage(), provider="p", model="m")
            )
        except BaseException as exc:  # the test reports whatever a thread hit
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    hit = cache.get("c" * 64)
    assert hit is not None and hit.text.startswith("answer ")
    cache.put("c" * 64, Generation(text="later", usage=Usage(), provider="p", model="m"))
    assert cache.get("c" * 64).text == hit.text
    assert cache.stats()["entries"] == 1


def test_a_name_pointed_at_another_server_does_not_replay_old_answers(cache, server):
    import socket

    from stoa.core.errors import UnreachableError

    url, _ = server
    identity = "gpu:tiny-chat"  # what a caller passes: the same name and model both times
    cached_generate(_provider(url), MESSAGES, PARAMS, cache=cache, identity=identity)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    moved = OpenAIProvider.from_settings(
        "gpu", {"url": f"{closed}/v1", "max_retries": 0}, "tiny-chat", {}
    )
    with pytest.raises(UnreachableError):
        cached_generate(moved, MESSAGES, PARAMS, cache=cache, identity=identity)
