"""Chunking: exact offsets, heading paths, sizes, overlap, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.chunk import ChunkConfig, chunk_text, context_header, minilm_token_counter

DOC = """Intro line before any heading.

# Install

Run `pip install stoa`. It needs Python 3.11.

## From source

Clone the repository. Then run make install.

```python
# not a heading: a comment in code
print("hi")
```

# Use

""" + " ".join(f"Sentence number {i} explains one more detail of usage." for i in range(60))


def words(text: str) -> int:
    return len(text.split())


def test_chunks_are_exact_slices_with_heading_paths():
    chunks = chunk_text(DOC, ChunkConfig(target_tokens=40, overlap_tokens=10), words)
    for chunk in chunks:
        assert DOC[chunk.start : chunk.end] == chunk.text
        assert chunk.tokens <= 40
    paths = [c.heading_path for c in chunks]
    assert paths[0] == ()
    assert ("Install", "From source") in paths
    assert all(p != ("not a heading: a comment in code",) for p in paths)
    code = next(c for c in chunks if "print(" in c.text)
    assert code.heading_path == ("Install", "From source")
    usage = [c for c in chunks if c.heading_path == ("Use",)]
    assert len(usage) > 5
    # consecutive chunks of one section overlap by whole sentences
    assert usage[1].start < usage[0].end
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_deterministic_and_real_tokenizer():
    first = chunk_text(DOC, ChunkConfig(target_tokens=64, overlap_tokens=16))
    second = chunk_text(DOC, ChunkConfig(target_tokens=64, overlap_tokens=16))
    assert first == second
    count = minilm_token_counter()
    assert all(count(c.text) == c.tokens <= 64 for c in first)


def test_an_oversized_sentence_is_cut_between_words_and_empty_text_gives_nothing():
    long = "word " * 500
    chunks = chunk_text(long, ChunkConfig(target_tokens=50, overlap_tokens=0), words)
    assert all(c.tokens <= 50 for c in chunks) and len(chunks) == 10
    assert chunk_text("   \n\n  ", ChunkConfig(), words) == []


@pytest.mark.parametrize(("target", "overlap"), [(8, 0), (100, 60), (100, -1), (10_000, 0)])
def test_bad_sizes_are_refused(target, overlap):
    with pytest.raises(InvalidInputError) as err:
        ChunkConfig(target_tokens=target, overlap_tokens=overlap)
    assert err.value.field == "chunking"


@pytest.mark.parametrize(("target", "overlap"), [(64, 8), (192, 32)])
def test_summed_token_counts_equal_counting_the_chunk(target, overlap):
    """Counts are summed per unit and gap; on real Markdown they must equal a recount."""
    count = minilm_token_counter()
    docs = Path(__file__).resolve().parents[3] / "docs"
    config = ChunkConfig(target_tokens=target, overlap_tokens=overlap)
    chunks = [c for page in sorted(docs.glob("*.md")) for c in chunk_text(page.read_text(), config)]
    assert len(chunks) > 50
    assert all(c.tokens == count(c.text) for c in chunks)
    assert all(c.tokens <= target for c in chunks if " " in c.text)  # one huge word may exceed


def test_the_header_carries_title_and_heading_path_without_repeats():
    chunks = chunk_text(DOC, ChunkConfig(target_tokens=40, overlap_tokens=10), words,
                        title="Stoa guide")  # fmt: skip
    by_path = {c.heading_path: c.header for c in chunks}
    assert by_path[("Install", "From source")] == "Stoa guide > Install > From source"
    assert by_path[()] == "Stoa guide"
    source = next(c for c in chunks if c.heading_path == ("Install", "From source"))
    assert source.embedded_text == "Stoa guide > Install > From source\n\n" + source.text
    assert DOC[source.start : source.end] == source.text  # the display text is untouched
    # A page whose first heading is its title says it once; a longer heading replaces it.
    assert context_header("functools", ("functools — higher-order functions", "lru_cache"),
                          words) == "functools — higher-order functions > lru_cache"  # fmt: skip
    assert context_header("open(2)", ("open(2)", "Description"), words) == "open(2) > Description"
    # Too long: the outer parts go first, the nearest heading stays.
    assert context_header("a " * 30, ("b " * 30, "Nearest"), words, limit=10) == "Nearest"


def test_context_off_embeds_the_body_alone():
    chunks = chunk_text(DOC, ChunkConfig(40, 10, context=False), words, title="Stoa guide")
    assert all(c.header == "" and c.embedded_text == c.text for c in chunks)


def test_header_and_body_stay_inside_the_embedders_window():
    """MiniLM reads 256 word pieces: a chunk whose header pushes it past them would be cut."""
    count = minilm_token_counter()
    title = "A rather long document title about configuration of the system"
    chunks = chunk_text(DOC, ChunkConfig(target_tokens=250, overlap_tokens=10), count,
                        title=title, window=254)  # fmt: skip
    assert chunks and all(count(c.embedded_text) <= 254 for c in chunks)
    assert max(count(c.embedded_text) for c in chunks) > 200  # the window is used, not wasted
    unbounded = chunk_text(DOC, ChunkConfig(target_tokens=250, overlap_tokens=10), count,
                           title=title, window=None)  # fmt: skip
    assert max(count(c.embedded_text) for c in unbounded) > 254
