"""`/api/v1/kbs`: the same operations over REST; documents travel in the body."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.slow  # loads the real MiniLM


def test_kb_routes_end_to_end_and_bad_input(api):
    created = api.post("/api/v1/kbs", json={"name": "docs", "pii": "block"})
    assert created.status_code == 201, created.text
    encoded = base64.b64encode(b"Invoices go out monthly.").decode()
    documents = [
        {"uri": "mem://docs/a.md", "text": "# Deploy\n\nDeploy with a canary first.\n",
         "metadata": {"team": "ops"}},
        {"uri": "mem://docs/b.txt", "content_base64": encoded},
        {"uri": "mem://docs/secret.md", "text": "Mail jane@example.com"},
    ]  # fmt: skip
    ingested = api.post("/api/v1/kbs/docs/ingest", json={"documents": documents})
    assert ingested.status_code == 200, ingested.text
    body = ingested.json()
    assert body["documents"]["added"] == 2 and body["documents"]["failed"] == 1
    assert "PII" in body["failures"][0]["reason"]
    hits = api.post("/api/v1/kbs/docs/query", json={"query": "canary", "k": 1,
                                                     "where": {"team": "ops"}}).json()  # fmt: skip
    assert hits[0]["uri"] == "mem://docs/a.md" and hits[0]["metadata"]["team"] == "ops"
    only_a = {"documents": documents[:1], "sync_prefixes": ["mem://docs"]}
    synced = api.post("/api/v1/kbs/docs/ingest", json=only_a)
    assert synced.json()["documents"]["removed"] == 1 and synced.json()["version"] == 2
    shown = api.get("/api/v1/kbs/docs").json()
    assert shown["documents"] == 1 and [v["version"] for v in shown["versions"]] == [1, 2]
    assert [k["name"] for k in api.get("/api/v1/kbs").json()] == ["docs"]
    qa = '{"query": "canary", "relevant": ["a.md"]}'
    report = api.post("/api/v1/kbs/docs/eval", json={"qa": qa, "k": 3}).json()
    assert report["modes"]["hybrid"]["hit_at_k"] == 1.0 and report["run_id"]
    deleted = api.post("/api/v1/kbs/docs/delete-docs", json={"uris": ["mem://docs/a.md"]})
    assert deleted.status_code == 200 and deleted.json()["version"] == 3

    bad = [
        ("post", "/api/v1/kbs", {"name": "docs"}, 409, "already exists"),
        ("post", "/api/v1/kbs", {"name": "x", "backend": "faiss"}, 422, "unknown backend"),
        ("get", "/api/v1/kbs/nope", None, 404, "no knowledge base named 'nope'"),
        ("post", "/api/v1/kbs/docs/query", {"query": ""}, 422, "non-empty"),
        ("post", "/api/v1/kbs/docs/query", {"query": "x", "mode": "bm25"}, 422, "unknown mode"),
        ("post", "/api/v1/kbs/docs/query", {"query": "x", "where": {"a": {"like": 1}}}, 422,
         "unknown operator"),
        ("post", "/api/v1/kbs/docs/ingest", {"documents": [{"text": "no uri"}]}, 422, "'uri'"),
        ("post", "/api/v1/kbs/docs/ingest", {"documents": [{"uri": "u", "content_base64": "!!"}]},
         422, "not base64"),
        ("post", "/api/v1/kbs/docs/delete-docs", {"uris": ["mem://none"]}, 404, "nothing was"),
        ("post", "/api/v1/kbs/docs/eval", {"qa": "nope"}, 422, "line 1 is not JSON"),
    ]  # fmt: skip
    for method, path, payload, status, message in bad:
        response = getattr(api, method)(path, **({"json": payload} if payload is not None else {}))
        assert response.status_code == status, (path, response.text)
        assert message in response.text, (path, response.text)
    assert api.get("/api/v1/kbs/docs").json()["versions"][-1]["version"] == 3  # nothing lost
