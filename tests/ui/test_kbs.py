"""The knowledge-base pages: the list, documents with PII, the ingest history's diffs,
the evaluation runs, and the query box (htmx and plain form) with highlighted results."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("ui")

MODES = ("vector", "lexical", "hybrid")
SCRIPT = "<script>alert('x')</script> refund"


def _marks_in_every_column(page, word: str) -> None:
    for mode in MODES:
        column = page.locator(f"#query-results [data-mode={mode}]")
        assert column.count() == 1, f"no {mode} column"
        marks = column.locator("mark", has_text=re.compile(word, re.IGNORECASE))
        assert marks.count() >= 1, f"no highlighted {word!r} in the {mode} column"


def test_the_list_shows_each_knowledge_base_with_its_counts(visitor) -> None:
    page = visitor("read").visit("/ui/kbs", "kbs")
    row = page.locator("tr", has=page.locator("a[href='/ui/kbs/handbook']"))
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "handbook" and cells[1] == "support handbook"
    assert "minilm" in cells[2].lower()
    assert cells[3:5] == ["2", "2"], "latest version 2, two documents"
    assert int(cells[5]) >= 2


def test_the_page_shows_pii_per_document_the_changed_document_and_eval_runs(
    visitor,
) -> None:
    page = visitor("read").visit("/ui/kbs/handbook", "kb")
    documents = page.locator("section[aria-labelledby=documents] tbody tr")
    assert documents.count() == 2
    refunds = documents.filter(has_text="refunds.md")
    assert "email 1" in refunds.locator("td.pii").inner_text()
    assert "none" in documents.filter(has_text="shipping.md").locator("td.pii").inner_text()
    shipping = documents.filter(has_text="shipping.md").locator("td").all_inner_texts()
    assert shipping[3:5] == ["v1", "v2"], "added in version 1, changed in version 2"
    history = page.locator("table.history tbody tr")
    assert history.nth(0).locator("td").nth(0).inner_text() == "v2"
    assert "shipping.md" in history.nth(0).locator("td.diff-changed").inner_text()
    assert "refunds.md" not in history.nth(0).inner_text()
    assert "refunds.md" in history.nth(1).locator("td.diff-added").inner_text()
    evals = page.locator("section[aria-labelledby=evals]")
    link = evals.locator("a", has_text="kb-eval-handbook")
    assert link.count() == 1 and re.fullmatch(r"/ui/runs/\w+", link.get_attribute("href"))
    assert evals.locator("tbody tr").count() == 3, "a row per mode"


def test_the_query_box_shows_three_highlighted_columns_without_reloading(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/kbs/handbook")
    page.evaluate("window.stillHere = true")
    page.fill("#q", "refund")
    page.click("form.kb-query button[type=submit]")
    page.wait_for_selector("#query-results [data-mode=hybrid] mark")
    _marks_in_every_column(page, "refund")
    assert page.evaluate("window.stillHere === true"), "htmx swapped the results in place"
    assert "/ui/kbs/handbook/query?q=refund" in page.url
    hit = page.locator("#query-results [data-mode=lexical] li").first.inner_text()
    assert "refunds.md" in hit and "score" in hit
    assert not reader.errors


def test_the_query_works_without_javascript(browser, stoa) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{stoa.url}/ui/login")
    page.fill("#token", stoa.tokens["read"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{stoa.url}/ui")
    page.goto(f"{stoa.url}/ui/kbs/handbook")
    page.fill("#q", "refund")
    page.click("form.kb-query button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/kbs/handbook/query\?q=refund$"))
    _marks_in_every_column(page, "refund")
    assert page.locator("section[aria-labelledby=documents] tbody tr").count() == 2
    context.close()


def test_the_query_page_renders_whole_and_htmx_gets_only_the_results(visitor, stoa) -> None:
    reader = visitor("read")
    reader.visit("/ui/kbs/handbook/query?q=refund", "kb-query")
    _marks_in_every_column(reader.page, "refund")
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    url = f"{stoa.url}/ui/kbs/handbook/query?q=refund"
    whole = httpx.get(url, cookies={"stoa_session": secret})
    part = httpx.get(url, cookies={"stoa_session": secret}, headers={"HX-Request": "true"})
    assert whole.status_code == part.status_code == 200
    assert "<html" in whole.text and "<html" not in part.text
    assert part.text.count("data-mode=") == 3 and "<mark>refund" in part.text.lower()


def test_a_query_with_markup_is_shown_escaped(visitor) -> None:
    reader = visitor("read")
    dialogs: list[str] = []
    reader.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page = reader.visit(f"/ui/kbs/handbook/query?q={quote(SCRIPT)}", "kb-query-escaped")
    results = page.locator("#query-results")
    assert SCRIPT in results.locator(".results-for").inner_text()
    assert results.locator("script").count() == 0
    assert page.locator("#q").input_value() == SCRIPT
    _marks_in_every_column(page, "refund")
    # And through the htmx form:
    page.goto(page.url.split("/query")[0])
    page.fill("#q", SCRIPT)
    page.click("form.kb-query button[type=submit]")
    page.wait_for_selector("#query-results .results-for")
    assert SCRIPT in page.locator("#query-results .results-for").inner_text()
    assert page.locator("#query-results script").count() == 0 and not dialogs


def test_an_empty_query_asks_for_words(visitor) -> None:
    page = visitor("read").visit("/ui/kbs/handbook/query?q=", expect_errors=True)
    assert "Type a question" in page.locator("#query-results").inner_text()


def test_documents_and_versions_are_operations_over_rest(stoa) -> None:
    from stoa.client import HttpClient

    api = HttpClient(stoa.url, token=stoa.tokens["read"])
    page = api.kbs.documents("handbook", limit=1)
    assert page["documents"] == 2 and len(page["items"]) == 1
    assert page["items"][0]["uri"].endswith("refunds.md")
    assert page["items"][0]["pii"].get("email") == 1 and page["items"][0]["added_in"] == 1
    second = api.kbs.documents("handbook", limit=1, offset=1)["items"][0]
    assert second["uri"].endswith("shipping.md") and second["changed_in"] == 2
    versions = api.kbs.versions("handbook")
    assert [v["version"] for v in versions] == [2, 1]
    assert [u.rsplit("/", 1)[-1] for u in versions[0]["diff"]["changed"]] == ["shipping.md"]
    assert api.kbs.versions("handbook", limit=1, offset=1)[0]["version"] == 1
    listed = next(k for k in api.kbs.list() if k["name"] == "handbook")
    assert listed["documents"] == 2 and listed["chunks"] >= 2
    api.close()


def test_unknown_names_and_bad_parameters_are_error_pages(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/kbs/no-such-kb", "kb-missing", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    assert "no knowledge base named 'no-such-kb'" in page.locator("[role=alert]").inner_text()
    page = reader.visit("/ui/kbs/handbook?page=0", expect_errors=True)
    assert "422" in " ".join(reader.errors)
    assert "page" in page.locator("[role=alert]").inner_text()
