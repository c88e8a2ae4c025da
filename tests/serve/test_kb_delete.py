"""A knowledge base deleted for good (issue 12, item 11): definition, versions, vectors
and files go; its evaluation runs stay as records; the name can be used again."""

from __future__ import annotations

import pytest

from stoa.core.errors import NotFoundError

pytestmark = pytest.mark.slow  # loads the real MiniLM


def test_a_knowledge_base_is_deleted_for_good(sqlite_client, tmp_path) -> None:
    doc = tmp_path / "docs" / "a.md"
    doc.parent.mkdir()
    doc.write_text("# Deploy\n\nDeploy with a canary first.\n")
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [doc.parent])
    report = sqlite_client.kbs.eval("docs", '{"query": "canary", "relevant": ["a.md"]}')
    folder = sqlite_client.stores.kbs.folder(sqlite_client.stores.kbs.get("docs"))
    assert folder.is_dir()
    assert sqlite_client.kbs.delete("docs") == {"name": "docs", "deleted": True}
    assert sqlite_client.kbs.list() == [] and not folder.exists()
    with pytest.raises(NotFoundError, match="no knowledge base named 'docs'"):
        sqlite_client.kbs.query("docs", "canary")
    assert sqlite_client.runs.get(report["run_id"])  # what was measured stays on record
    sqlite_client.kbs.create("docs")  # the name is free again, and starts empty
    assert sqlite_client.kbs.show("docs")["documents"] == 0


def test_deleting_over_rest_needs_admin(api) -> None:
    from tests.serve.test_api import API, bearer, check_error

    admin = api.post(f"{API}/tokens", json={"name": "root", "scopes": ["admin"]}).json()
    writer = api.post(f"{API}/tokens", json={"name": "rw", "scopes": ["write"]},
                      headers=bearer(admin["token"])).json()  # fmt: skip
    api.post(f"{API}/kbs", json={"name": "k"}, headers=bearer(writer["token"]))
    check_error(api.delete(f"{API}/kbs/k", headers=bearer(writer["token"])), 403, "scope")
    assert api.delete(f"{API}/kbs/k", headers=bearer(admin["token"])).status_code == 200
    check_error(api.delete(f"{API}/kbs/k", headers=bearer(admin["token"])), 404, "name")
