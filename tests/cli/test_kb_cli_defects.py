"""`stoa kb`: delete-docs takes paths as ingest does; a folder matching nothing is an error."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import ok_json, one_line_error, stoa  # noqa: F401 - the fixture


@pytest.mark.slow  # the ingest loads the real MiniLM
def test_delete_docs_takes_relative_paths_gone_files_and_folders(stoa, tmp_path):  # noqa: F811
    docs = tmp_path / "docs"
    (docs / "faq").mkdir(parents=True)
    (docs / "shipping.md").write_text("# Shipping\n\nWe ship worldwide.\n")
    (docs / "returns.md").write_text("# Returns\n\nReturns take thirty days.\n")
    (docs / "faq" / "a.md").write_text("# A\n\nAnswers.\n")
    ok_json(stoa("kb", "create", "docs", "--json"))
    assert ok_json(stoa("kb", "ingest", "docs", "docs", "--json"))["documents"]["added"] == 3

    done = stoa("kb", "delete-docs", "docs", "docs/shipping.md")  # relative to the cwd
    assert done.returncode == 0 and done.stdout.strip() == "removed 1 -> version 2", done.stderr
    (docs / "returns.md").unlink()
    removed = ok_json(stoa("kb", "delete-docs", "docs", str(docs / "returns.md"), "--json"))
    assert removed == {"version": 3, "removed": [(docs / "returns.md").resolve().as_uri()]}
    one_line_error(
        stoa("kb", "delete-docs", "docs", "docs/faq", "docs/nowhere.md"), 2,
        f"uris: not in knowledge base 'docs': {(docs / 'nowhere.md').resolve().as_uri()}",
        "nothing was deleted",
    )  # fmt: skip
    removed = ok_json(stoa("kb", "delete-docs", "docs", "docs/faq", "--json"))
    assert removed["removed"] == [(docs / "faq" / "a.md").resolve().as_uri()]
    one_line_error(
        stoa("kb", "delete-docs", "docs", "docs"), 2,
        f"not in knowledge base 'docs': {docs.resolve().as_uri()}",
    )  # fmt: skip
    assert json.loads(stoa("kb", "show", "docs", "--json").stdout)["documents"] == 0


def test_ingesting_a_folder_that_matches_nothing_exits_2(stoa, tmp_path):  # noqa: F811
    (tmp_path / "empty").mkdir()
    (tmp_path / "rst").mkdir()
    (tmp_path / "rst" / "index.rst").write_text("Title\n=====\n")
    ok_json(stoa("kb", "create", "docs", "--json"))
    one_line_error(
        stoa("kb", "ingest", "docs", "empty"), 2,
        "paths: no files under empty match **/*.md, **/*.markdown, **/*.rst, **/*.txt, **/*.html, "
        "**/*.htm, **/*.pdf", "--pattern",
    )  # fmt: skip
    one_line_error(
        stoa("kb", "ingest", "docs", "rst", "--pattern", "*.md", "--pattern", "*.txt"), 2,
        "paths: no files under rst match *.md, *.txt (", "--pattern '**/*.rst'",
    )  # fmt: skip
    assert ok_json(stoa("kb", "show", "docs", "--json"))["versions"] == []
