"""Embedders: length-sorted batching keeps order, the OpenAI wire format against a real
uvicorn server on loopback, and the refusals of each embedder kind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stoa.core.errors import InvalidInputError, RefusedError
from stoa.develop.rag.embed import (
    EmbedderSpec,
    in_length_order,
    load_embedder,
    parse_embedder,
)
from tests.servers import serve_in_thread

pytestmark = pytest.mark.slow  # loads the real MiniLM


def test_length_sorted_batches_come_back_in_the_callers_order():
    seen: list[list[str]] = []

    def encode(batch: list[str]) -> np.ndarray:
        seen.append(batch)
        return np.array([[len(t), 1.0] for t in batch], dtype=np.float32)

    texts = ["aaaa", "a", "aaaaaaaa", "aa", "aaaaaaa"]
    out = in_length_order(texts, 2, encode)
    assert [len(b) for b in seen] == [2, 2, 1]
    assert [len(t) for t in seen[0]] == [8, 7]  # the longest together, not mixed with "a"
    expected = np.array([[len(t), 1.0] for t in texts])
    assert np.allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True))


@contextlib.contextmanager
def embeddings_server(status: int = 200) -> Iterator[tuple[str, list[str | None]]]:
    """An OpenAI-compatible /v1/embeddings server backed by the real MiniLM, on loopback."""
    model = load_embedder(EmbedderSpec())
    app = FastAPI()
    app.state.auth = []

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        app.state.auth.append(request.headers.get("authorization"))
        if status != 200:
            return JSONResponse({"error": {"message": "quota exceeded"}}, status_code=status)
        vectors = model.embed(body["input"])
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)]  # fmt: skip
        data.reverse()  # servers may answer out of order; the index is what counts
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})

    with serve_in_thread(app) as url:
        yield f"{url}/v1", app.state.auth


def test_openai_compatible_embedder_matches_the_local_model(monkeypatch):
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test")
    texts = ["refunds take five days", "deploy behind a canary", "x"]
    with embeddings_server() as (url, auth):
        configured = {"remote": {"kind": "openai", "model": "minilm-remote", "url": url,
                                 "api_key_env": "TEST_EMBED_KEY"}}  # fmt: skip
        spec = parse_embedder("remote", configured=configured)
        remote = load_embedder(spec)
        assert remote.dimension == 384 and remote.name == "openai:minilm-remote"
        got = remote.embed(texts)
    assert set(auth) == {"Bearer sk-test"}  # the key is sent, and never stored in the spec
    assert "sk-test" not in repr(spec.to_dict())
    local = load_embedder(EmbedderSpec()).embed(texts)
    assert np.allclose(got, local, atol=1e-5)


def test_an_endpoint_named_ad_hoc_never_gets_a_configured_key(monkeypatch):
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test")
    monkeypatch.setenv("STOA_EMBEDDINGS_API_KEY", "sk-old")  # 0.1's global key: never sent
    with embeddings_server() as (url, auth):
        load_embedder(parse_embedder("openai:minilm-ad-hoc", url=url)).embed(["x"])
    assert auth and set(auth) == {None}


def test_openai_embedder_errors_name_the_status_and_never_echo_the_body():
    with (
        embeddings_server(status=429) as (url, _),
        pytest.raises(RefusedError, match="answered HTTP 429") as refused,
    ):
        _ = load_embedder(parse_embedder("openai:m-429", url=url)).dimension  # asked when needed
    assert "quota" not in str(refused.value)
    with pytest.raises(RefusedError, match="could not be reached"):
        _ = load_embedder(parse_embedder("openai:m-down", url="http://127.0.0.1:9/v1")).dimension


@pytest.mark.parametrize(
    ("text", "options", "field", "message"),
    [
        ("openai:m", {}, "embedder_url", "needs its base URL"),
        ("openai:m", {"url": "ftp://x"}, "embedder_url", "needs its base URL"),
        ("/no/such/model", {}, "embedder", "not a sentence-transformers folder"),
        ({"kind": "cohere"}, {}, "embedder", "unknown embedder kind"),
        ({"batch_size": 0}, {}, "embedder", "batch_size must be 1..1024"),
        ({"backend": "tensorrt"}, {}, "embedder", "unknown backend"),
        ({"dims": 3}, {}, "embedder", "unknown embedder setting"),
        ({"api_key_env": "HOME"}, {}, "embedder", "unknown embedder setting"),
    ],
)
def test_bad_embedder_settings_are_refused(text, options, field, message):
    with pytest.raises(InvalidInputError) as err:
        parse_embedder(text, **options)
    assert err.value.field == field and message in str(err.value)
