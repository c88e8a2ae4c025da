"""`stoa kb`: create, ingest with its JSON summary, query, show, eval, and bad input."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import one_line_error, stoa  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow  # each command loads the real MiniLM


def test_kb_commands_end_to_end(stoa, tmp_path):  # noqa: F811
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Deploy\n\nDeploy the service with a canary first.\n")
    (docs / "b.md").write_text("# Billing\n\nInvoices go out monthly.\n")
    (docs / "empty.md").write_text("")
    created = json.loads(stoa("kb", "create", "docs", "--pii", "redact", "--json").stdout)
    assert created["pii_policy"] == "redact"
    first = json.loads(stoa("kb", "ingest", "docs", str(docs), "--json").stdout)
    assert first["version"] == 1
    assert first["documents"] == {"added": 2, "changed": 0, "unchanged": 0, "removed": 0,
                                  "failed": 1}  # fmt: skip
    assert first["chunks"] == {"embedded": 2, "reused": 0}
    again = json.loads(stoa("kb", "ingest", "docs", str(docs), "--json").stdout)
    assert again["chunks"] == {"embedded": 0, "reused": 0} and again["version"] == 1
    hits = json.loads(stoa("kb", "query", "docs", "canary deploy", "--k", "1", "--json").stdout)
    assert hits[0]["uri"].endswith("a.md") and hits[0]["heading_path"] == ["Deploy"]
    shown = json.loads(stoa("kb", "show", "docs", "--json").stdout)
    assert shown["documents"] == 2 and shown["versions"][0]["version"] == 1
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"query": "how are invoices sent", "relevant": ["b.md"]}) + "\n")
    report = json.loads(stoa("kb", "eval", "docs", str(qa), "--k", "2", "--json").stdout)
    assert set(report["modes"]) == {"vector", "lexical", "hybrid"} and report["run_id"]
    assert report["modes"]["lexical"]["hit_at_k"] == 1.0
    table = stoa("kb", "eval", "docs", str(qa))
    assert table.returncode == 0 and "nDCG@5" in table.stdout and "hybrid" in table.stdout
    listed = stoa("kb", "list")
    assert listed.returncode == 0 and "docs" in listed.stdout

    one_line_error(stoa("kb", "create", "docs"), 1, "already exists")
    one_line_error(stoa("kb", "query", "nope", "x"), 2, "no knowledge base named 'nope'")
    one_line_error(stoa("kb", "query", "docs", "x", "--mode", "fuzzy"), 2, "mode", "fuzzy")
    one_line_error(stoa("kb", "query", "docs", "x", "--where", "{bad"), 2, "where", "JSON")
    one_line_error(stoa("kb", "eval", "docs", str(tmp_path / "none.jsonl")), 2, "not a file")
    qa.write_text("{not json}\n")
    one_line_error(stoa("kb", "eval", "docs", str(qa)), 2, "line 1 is not JSON")
    one_line_error(stoa("kb", "ingest", "docs", str(tmp_path / "gone")), 2, "does not exist")
    one_line_error(stoa("kb", "create", "x", "--chunking", '{"target_tokens": 2}'), 2,
                   "target_tokens")  # fmt: skip
