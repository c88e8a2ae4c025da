"""Loading: formats, front-matter, main text of HTML, PDF, failures that don't abort."""

from __future__ import annotations

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.load import load_bytes, load_paths


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of Helvetica text, written by hand for the test."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_a_folder_of_mixed_documents(tmp_path):
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "guide" / "install.md").write_text(
        "---\ntitle: Installing\nteam: platform\ntags: [setup]\n---\n# Install\n\nRun pip.\n"
    )
    (docs / "notes.txt").write_text("Plain notes about the release.\n")
    (docs / "page.html").write_text(
        "<html><head><title>Guide</title></head><body><nav>Home Docs Pricing Blog</nav>"
        "<main><h1>Configure</h1><p>Set STOA_HOME to choose where the stores live; the "
        "default is a folder in the working directory.</p></main>"
        "<footer>Copyright 2026</footer></body></html>"
    )
    (docs / "manual.pdf").write_bytes(tiny_pdf("Hello from the PDF manual"))
    (docs / "empty.md").write_text("  \n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage that is no PDF")
    (docs / "image.png").write_bytes(b"\x89PNG not matched by the patterns")
    documents, failures = load_paths([docs], metadata={"source": "handbook"})
    by_name = {d.uri.rsplit("/", 1)[-1]: d for d in documents}
    assert sorted(by_name) == ["install.md", "manual.pdf", "notes.txt", "page.html"]
    md = by_name["install.md"]
    assert md.text.startswith("# Install") and md.title == "Installing"
    assert md.metadata["team"] == "platform" and md.metadata["source"] == "handbook"
    assert md.modified is not None and len(md.sha256) == 64
    html = by_name["page.html"]
    assert "STOA_HOME" in html.text and "Pricing" not in html.text and "Copyright" not in html.text
    assert "# Configure" in html.text
    assert "Hello from the PDF manual" in by_name["manual.pdf"].text
    assert by_name["manual.pdf"].metadata["pages"] == 1
    reasons = {f.uri.rsplit("/", 1)[-1]: f.reason for f in failures}
    assert reasons["empty.md"] == "empty"
    assert reasons["broken.pdf"].startswith("not a readable PDF")


def test_identity_is_the_uri_and_the_hash_follows_the_bytes(tmp_path):
    path = tmp_path / "a.md"
    path.write_text("# A\n\none\n")
    [first], _ = load_paths([path])
    path.write_text("# A\n\ntwo\n")
    [second], _ = load_paths([path])
    assert first.uri == second.uri == path.resolve().as_uri()
    assert first.sha256 != second.sha256


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist") as err:
        load_paths([tmp_path / "nowhere"])
    assert err.value.field == "paths"


def test_html_titles_come_from_the_page_heading_and_permalinks_are_dropped():
    """Sphinx and MkDocs end each heading with a permalink glyph; it would lead every
    chunk's header. The <title> often carries the site's name, the h1 does not."""
    page = (
        "<html><head><title>functools — Python 3.11 documentation</title></head><body>"
        '<h1>functools — higher-order functions<a class="headerlink" href="#functools">¶</a>'
        "</h1><p>Tools for functions that act on other functions and return them.</p>"
        '<h2>lru_cache<a class="headerlink" href="#lru">¶</a></h2><p>A decorator that '
        "wraps a function with a memoizing callable that saves recent calls.</p>"
        '<p>See <a href="#top">the top</a> of the page.</p></body></html>'
    )
    doc = load_bytes("file:///docs/functools.html", page.encode())
    assert doc.title == "functools — higher-order functions"
    assert "# functools — higher-order functions" in doc.text and "## lru_cache" in doc.text
    assert "¶" not in doc.text and "the top" in doc.text  # only permalinks go
    og = '<html><head><meta property="og:title" content="Guide"></head><body><p>x y</p></body>'
    assert load_bytes("file:///g.html", (og + "</html>").encode()).title == "Guide"


def test_restructuredtext_headings_become_sections():
    """Sphinx guides underline their headings; read as plain text they would be one long
    section with no heading path to cite or to lead each chunk."""
    page = (
        "=======\nModels\n=======\n\n.. _intro:\n\nA model is the source of truth about "
        "your data.\n\nFields\n======\n\nUse :class:`~django.db.models.CharField` for "
        "short text and :doc:`the field reference </ref/models/fields>` for the rest.\n\n"
        "Options\n-------\n\nSet ``max_length``.\n"
    )
    doc = load_bytes("file:///docs/models.rst", page.encode())
    assert doc.format == "rst" and doc.title == "Models"
    assert "# Models" in doc.text and "\n## Fields" in doc.text and "\n### Options" in doc.text
    assert "`django.db.models.CharField`" in doc.text and "`the field reference`" in doc.text
    assert ".. _intro:" not in doc.text and "=====" not in doc.text
