"""Chunking: exact offsets, heading paths, sizes, overlap, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.chunk import ChunkConfig, chunk_text, minilm_token_counter

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
