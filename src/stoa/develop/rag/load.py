"""Load documents: text, Markdown, HTML (main text only) and PDF, from paths, globs or URLs.

A document's identity is its source URI, and its content hash decides whether an
ingest has anything to redo. An unreadable or empty document becomes a ``LoadFailure``
with its name and reason; it never aborts the rest of the load.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from stoa.core.errors import InvalidInputError

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
DEFAULT_PATTERNS = (
    "**/*.md", "**/*.markdown", "**/*.rst", "**/*.txt", "**/*.html", "**/*.htm", "**/*.pdf",
)  # fmt: skip
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_H1 = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_KINDS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".rest": "rst",
          ".txt": "text", ".html": "html",
          ".htm": "html", ".pdf": "pdf"}  # fmt: skip


@dataclass(frozen=True)
class Document:
    uri: str
    text: str  # what is chunked; chunk offsets point into this text
    format: str  # markdown, rst, text, html or pdf
    sha256: str  # of the raw bytes: unchanged bytes mean nothing to redo
    title: str
    modified: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Document:
        return self


@dataclass(frozen=True)
class RawSource:
    """A document's bytes and hash, not yet parsed: an ingest parses only what changed."""

    uri: str
    raw: bytes
    modified: datetime | None
    metadata: dict[str, Any]
    sha256: str

    def load(self) -> Document:
        return load_bytes(self.uri, self.raw, self.modified, self.metadata, sha256=self.sha256)


class Source(Protocol):
    """What an ingest reads: a URI, the hash of its raw bytes, and its parsed document."""

    @property
    def uri(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    def load(self) -> Document: ...


@dataclass(frozen=True)
class LoadFailure:
    uri: str
    reason: str


class LoadError(Exception):
    """One document could not be loaded; the caller records it and goes on."""


def load_paths(
    paths: Iterable[str | Path],
    *,
    patterns: Iterable[str] = DEFAULT_PATTERNS,
    metadata: dict[str, Any] | None = None,
) -> tuple[list[Document], list[LoadFailure]]:
    """Files, folders (matched against ``patterns``) and fsspec URLs, in a stable order,
    all parsed: what ``read_sources`` reads, loaded."""
    documents: list[Document] = []
    failures: list[LoadFailure] = []
    for item in read_sources(expand_sources(paths, tuple(patterns)), metadata):
        if isinstance(item, LoadFailure):
            failures.append(item)
            continue
        try:
            documents.append(item.load())
        except LoadError as exc:
            failures.append(LoadFailure(item.uri, str(exc)))
    return documents, failures


def read_sources(
    sources: Sequence[tuple[str, Any]], metadata: dict[str, Any] | None = None
) -> Iterator[RawSource | LoadFailure]:
    """Each source's bytes and hash, one at a time, in order: nothing is parsed here."""
    for uri, opener in sources:
        try:
            raw, modified = read_source(opener)
        except OSError as exc:
            yield LoadFailure(uri, f"unreadable: {exc.strerror or exc}")
            continue
        except LoadError as exc:
            yield LoadFailure(uri, str(exc))
            continue
        sha = hashlib.sha256(raw).hexdigest()
        yield RawSource(uri, raw, modified, dict(metadata or {}), sha)


def expand_sources(paths: Iterable[str | Path], patterns: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Every document URI with what opens it, in a stable order; read with ``read_source``."""
    found: dict[str, Any] = {}
    for item in paths:
        text = str(item)
        if "://" in text and not text.startswith("file://"):
            found.update(_expand_url(text, patterns))
            continue
        path = Path(text.removeprefix("file://"))
        if path.is_dir():
            matched = {
                file.resolve().as_uri(): file
                for pattern in patterns
                for file in sorted(path.glob(pattern))
                if file.is_file() and not file.is_symlink()
            }
            if not matched:
                raise _nothing_matches(text, patterns)
            found.update(matched)
        elif path.is_file():
            found[path.resolve().as_uri()] = path
        else:
            raise InvalidInputError(f"{text} does not exist", field="paths", fix="check the path")
    return sorted(found.items())


def _nothing_matches(folder: str, patterns: tuple[str, ...]) -> InvalidInputError:
    """A folder that yields no file is a mistake to say, not an empty ingest to report:
    a wrong pattern, or the wrong folder."""
    return InvalidInputError(
        f"no files under {folder} match {', '.join(patterns)}",
        field="paths",
        fix="say which files to take with --pattern, e.g. --pattern '**/*.rst'; it repeats",
    )


def _expand_url(url: str, patterns: tuple[str, ...]) -> dict[str, Any]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        if not fs.isdir(root):
            return {url: (fs, root)}
        protocol = url.split("://", 1)[0]
        out = {}
        for pattern in patterns:
            for name in fs.glob(f"{root.rstrip('/')}/{pattern}"):
                out[f"{protocol}://{name}"] = (fs, name)
        if not out:
            raise _nothing_matches(url, patterns)
        return out
    except (OSError, ValueError, ImportError) as exc:
        raise InvalidInputError(f"cannot list {url}: {exc}", field="paths") from None


def read_source(opener: Any) -> tuple[bytes, datetime | None]:
    if isinstance(opener, Path):
        stat = opener.stat()
        if stat.st_size > MAX_DOCUMENT_BYTES:
            raise LoadError(f"larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
        return opener.read_bytes(), datetime.fromtimestamp(stat.st_mtime, UTC)
    fs, name = opener
    info = fs.info(name)
    if (info.get("size") or 0) > MAX_DOCUMENT_BYTES:
        raise LoadError(f"larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    with fs.open(name, "rb") as handle:
        return handle.read(MAX_DOCUMENT_BYTES + 1), None


def load_bytes(
    uri: str,
    raw: bytes,
    modified: datetime | None = None,
    extra: dict[str, Any] | None = None,
    *,
    sha256: str | None = None,
) -> Document:
    """One document from bytes a client sent; the format comes from the content and name."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise LoadError(f"larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    extra = extra or {}
    name = uri.rsplit("/", 1)[-1]
    kind = "pdf" if raw.startswith(b"%PDF-") else _KINDS.get(Path(name).suffix.lower(), "text")
    if not raw.strip():
        raise LoadError("empty")
    text, title, metadata = _PARSERS[kind](raw)
    if not text.strip():
        raise LoadError("no text could be extracted")
    stem = Path(name).stem
    return Document(
        uri=uri, text=text, format=kind, sha256=sha256 or hashlib.sha256(raw).hexdigest(),
        title=title or stem, modified=modified,
        metadata={**metadata, **extra, "path": uri, "title": title or stem},
    )  # fmt: skip


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in raw[:4096]:
            raise LoadError("binary data, not text") from None
        return raw.decode("latin-1")


def _markdown(raw: bytes) -> tuple[str, str | None, dict[str, Any]]:
    """Front-matter becomes metadata and is cut from the text, so offsets point at the body."""
    import yaml

    text = _decode(raw)
    metadata: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict):
            metadata = {str(k): v for k, v in loaded.items() if _plain(v)}
        text = text[match.end() :]
    heading = _H1.search(text)
    title = metadata.get("title") or (heading.group(1) if heading else None)
    return text, str(title) if title else None, metadata


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, str | int | float | bool) or value is None


def _rst(raw: bytes) -> tuple[str, str | None, dict[str, Any]]:
    from stoa.develop.rag.rst import rst_to_markdown

    text = rst_to_markdown(_decode(raw))
    heading = _H1.search(text)
    return text, heading.group(1) if heading else None, {}


def _text(raw: bytes) -> tuple[str, str | None, dict[str, Any]]:
    return _decode(raw), None, {}


def _html(raw: bytes) -> tuple[str, str | None, dict[str, Any]]:
    """The main text as Markdown (headings kept for chunking), without navigation or footers.

    The page is parsed once and the tree handed to trafilatura, without its metadata pass
    (dates, authors, site names), which took about half the time on the Python library
    reference's pages. Its fallback extractors stay: without them a page whose headings
    sit outside a content container loses them.
    """
    import lxml.html
    import trafilatura

    html = _decode(raw)
    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        tree = None  # not parseable as a tree: let trafilatura try the raw page
    title = _html_title(tree) if tree is not None else None
    if tree is not None:
        # Elements that are boilerplate by definition go first; trafilatura's heuristics
        # then find the main text without mistaking a short page's menu for content.
        for node in tree.xpath(_BOILERPLATE):
            node.drop_tree()
    text = trafilatura.extract(
        tree if tree is not None else html, output_format="markdown", include_links=False,
        include_comments=False, favor_recall=True,
    )  # fmt: skip
    return (text or "").replace("\\_", "_"), title, {}


def _html_title(tree: Any) -> str | None:
    """The page's own heading (og:title, else the first h1), else its <title>: a <title>
    often carries the site's name after the page's."""
    for path in ("//meta[@property='og:title']/@content", "//h1", "//title"):
        found = tree.xpath(path)
        if found:
            node = found[0]
            text = node if isinstance(node, str) else node.text_content()
            text = " ".join(text.replace("\u00b6", " ").split())
            if text:
                return text
    return None


def _pdf(raw: bytes) -> tuple[str, str | None, dict[str, Any]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise LoadError("encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"not a readable PDF: {exc}") from None
    return "\n\n".join(p for p in pages if p), title, {"pages": len(pages)}


_BOILERPLATE = (
    "//nav|//header|//footer|//aside|//script|//style|//noscript|//form|//template"
    "|//*[@role='navigation']|//*[@role='banner']|//*[@role='contentinfo']"
    # A heading's permalink (Sphinx's "¶", MkDocs' "#"), which would end every heading.
    "|//a[starts-with(@href, '#') and (normalize-space(.)='\u00b6' or normalize-space(.)='#'"
    " or normalize-space(.)='\u00a7')]"
)
_PARSERS = {"markdown": _markdown, "rst": _rst, "text": _text, "html": _html, "pdf": _pdf}


MAX_INLINE_DOCUMENTS = 10_000


def inline_documents(
    items: Iterable[Any],
) -> tuple[list[RawSource], list[LoadFailure]]:
    """``[{"uri", "text" or "content_base64", "metadata"}]`` as sent over HTTP."""
    import base64
    import binascii

    documents: list[RawSource] = []
    failures: list[LoadFailure] = []
    items = list(items) if isinstance(items, list | tuple) else None  # type: ignore[assignment]
    if items is None or len(items) > MAX_INLINE_DOCUMENTS:
        raise InvalidInputError(
            f"must be a list of at most {MAX_INLINE_DOCUMENTS:,} documents", field="documents"
        )
    for position, item in enumerate(items):
        where = f"documents[{position}]"
        if not isinstance(item, dict) or not isinstance(item.get("uri"), str) or not item["uri"]:
            raise InvalidInputError(f"{where} needs a text 'uri'", field="documents")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidInputError(f"{where}.metadata must be an object", field="documents")
        if isinstance(item.get("error"), str):  # the client could not read it
            failures.append(LoadFailure(item["uri"], item["error"][:500]))
            continue
        if isinstance(item.get("text"), str):
            raw = item["text"].encode()
        elif isinstance(item.get("content_base64"), str):
            try:
                raw = base64.b64decode(item["content_base64"], validate=True)
            except binascii.Error:
                raise InvalidInputError(
                    f"{where}.content_base64 is not base64", field="documents"
                ) from None
        else:
            raise InvalidInputError(f"{where} needs 'text' or 'content_base64'", field="documents")
        # Parsed by the ingest only if its hash changed, like a file read from disk.
        sha = hashlib.sha256(raw).hexdigest()
        documents.append(RawSource(item["uri"], raw, None, dict(metadata), sha))
    return documents, failures
