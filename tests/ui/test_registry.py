"""Registry pages: series, versions, scan reports, lineage, prompt diffs and the review queue."""

from __future__ import annotations

import hashlib

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("ui")


def _session(visitor) -> dict[str, str]:
    cookie = next(c for c in visitor.context.cookies() if c["name"] == "stoa_session")
    return {"stoa_session": cookie["value"]}


def _post(stoa, visitor, path: str, note: str = "") -> httpx.Response:
    """A POST as the browser would send it: its session cookie and our own origin."""
    return httpx.post(
        stoa.url + path,
        data={"note": note, "back": "version"},
        cookies=_session(visitor),
        headers={"origin": stoa.url},
    )


def test_each_kind_lists_its_series_filterable_by_name(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/models", "registry-models")
    table = page.locator("table.registry-series").inner_text()
    for name in ("churn", "churn-selected", "evil", "vendor-model", "research-model"):
        assert name in table
    assert "champion → 1" in table and "challenger → 2" in table
    assert page.locator("nav a[aria-current=page]").inner_text() == "Models"
    page.fill("#q", "selected")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/ui/models?q=selected")
    rows = page.locator("table.registry-series tbody tr")
    assert rows.count() == 1 and "churn-selected" in rows.inner_text()
    assert "greeting" in reader.visit("/ui/prompts", "registry-prompts").inner_text("main")
    page = reader.visit("/ui/datasets", "registry-datasets")
    page.click("text=churn-data")
    page.wait_for_url("**/ui/datasets/churn-data")
    empty = reader.visit("/ui/models?q=no-such-thing", "registry-models-empty")
    assert "No model name contains “no-such-thing”" in empty.inner_text(".empty")
    assert "stoa models list" in empty.inner_text(".empty")


def test_a_series_shows_its_versions_and_alias_moves(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/models/churn", "registry-series")
    versions = page.locator("table.registry-versions tbody tr")
    assert [versions.nth(i).locator("td").first.inner_text() for i in range(2)] == ["2", "1"]
    row = versions.nth(1).inner_text()
    assert "allowed" in row and "skops / sklearn" in row and "MIT" in row
    assert "team=growth" in row and "champion" in row
    moves = page.locator("table.alias-moves tbody tr")
    assert moves.count() == 3
    # Newest first: challenger set on 2, then champion moved from 2 to 1.
    assert moves.nth(0).locator("td").nth(1).inner_text() == "challenger"
    champion_move = [moves.nth(1).locator("td").nth(i).inner_text() for i in (1, 2, 3)]
    assert champion_move == ["champion", "2", "1"]
    older = reader.visit("/ui/models/churn?before=2", "registry-series-older")
    assert older.locator("table.registry-versions tbody tr").count() == 1
    assert "Newest" in older.inner_text(".reg-pager")


def test_versions_and_lineage_come_in_pages_over_rest_too(stoa) -> None:
    """The pages read a page at a time; the operations they call do the same for REST."""
    from stoa.client import HttpClient

    with HttpClient(stoa.url, token=stoa.tokens["read"]) as api:
        assert [v.ref for v in api.models.versions("churn", limit=1)] == ["churn@2"]
        assert [v.ref for v in api.models.versions("churn", before=2, limit=5)] == ["churn@1"]
        assert [v.version for v in api.models.versions("churn")] == [1, 2]
        assert len(api.datasets.lineage(stoa.refs["dataset"]).downstream) >= 3
        assert len(api.datasets.lineage(stoa.refs["dataset"], limit=1).downstream) == 1


def test_a_version_page_shows_facts_tags_scan_and_downloads(visitor, stoa) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/models/churn/1", "registry-version")
    facts = page.inner_text("dl.facts")
    assert "skops" in facts and "sklearn" in facts and "MIT" in facts and "seed 1" in facts
    sha = page.locator("dl.facts dt:text-is('sha256') + dd").inner_text()
    assert "team=growth" in page.inner_text("code.tag")
    scan = page.inner_text("section[aria-labelledby=scan]")
    assert "stoa-default/" in scan and "declared" in scan and "no findings" in scan
    href = page.get_attribute("a:text('Download')", "href")
    answer = httpx.get(stoa.url + href, cookies=_session(reader))
    assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == sha
    assert "churn-1.skops" in answer.headers["content-disposition"]
    # A blocked model: its findings by severity, and no download.
    page = reader.visit(f"/ui/models/{stoa.refs['blocked'].replace('@', '/')}", "registry-blocked")
    report = page.locator("section[aria-labelledby=scan]").inner_text()
    assert "1 critical" in report and "pickle-global" in report and "posix.system" in report
    assert page.locator("a:text('Download')").count() == 0
    refused = httpx.get(f"{stoa.url}/ui/models/evil/1/download", cookies=_session(reader))
    assert refused.status_code == 409
    # A folder lists its files, each downloadable.
    page = reader.visit("/ui/models/churn-selected/1", "registry-folder")
    files = page.locator("table.files a")
    assert files.count() >= 1
    one = httpx.get(stoa.url + files.first.get_attribute("href"), cookies=_session(reader))
    assert one.status_code == 200 and one.content
    assert "leaderboard_row.metrics.roc_auc_ovr" in page.inner_text("table.pairs >> nth=0")


def test_the_lineage_graph_shows_the_run_and_dataset_behind_a_model(visitor, stoa) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/models/churn-selected/1", "registry-lineage")
    svg = page.locator("svg.lineage")
    labels = svg.locator("text.label").all_text_contents()
    assert "churn-selected@1" in labels and "churn-data@1" in labels
    runs = svg.locator("a.node.run")
    assert runs.count() == 1
    assert runs.get_attribute("href").startswith("/ui/runs/")
    listed = page.inner_text(".lineage-list")
    assert "dataset churn-data@1" in listed and "upstream" in listed
    svg.locator("a.node.dataset").click()
    page.wait_for_url("**/ui/datasets/churn-data/1")
    page = reader.visit("/ui/datasets/churn-data/1", "registry-dataset")
    downstream = page.inner_text(".lineage-list")
    assert "downstream, 1 step: model churn-selected@1" in downstream
    assert "train-lr-0.1" in downstream, "the runs that read it, by name"
    assert "churned" in page.inner_text("table.schema")


def test_a_prompt_version_shows_its_template_and_a_diff(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/prompts/greeting/2", "registry-prompt-diff")
    assert "{{ topic }}" in page.inner_text("pre.template")
    added = page.locator("pre.diff .add").all_inner_texts()
    removed = page.locator("pre.diff .del").all_inner_texts()
    assert added == ["+Hello {{ name }}!", "+How can I help you with {{ topic }}?"]
    assert removed == ["-Hello {{ name }}, how can I help?"]
    page = reader.visit("/ui/prompts/greeting/1", "registry-prompt-first")
    assert "first version" in page.inner_text("section[aria-labelledby=template]")
    page.fill("#against", "2")
    page.click("section[aria-labelledby=template] button[type=submit]")
    page.wait_for_url("**/ui/prompts/greeting/1?against=2*")
    assert page.locator("pre.diff .add").count() == 2
    page = reader.visit("/ui/prompts/greeting/2?against=2")
    assert "the same" in page.inner_text("section[aria-labelledby=template]")


def test_an_admin_approves_a_pending_model_in_the_browser(visitor, stoa) -> None:
    admin = visitor("admin")
    ref = stoa.refs["vendor-model"]
    path = f"/ui/models/{ref.replace('@', '/')}"
    assert admin.visit(path, "registry-pending").inner_text(".version-status") == "pending"
    page = admin.visit("/ui/review", "registry-review")
    item = page.locator(".review-item", has=page.locator(f"h2 a:text-is('{ref}')"))
    assert "CC-BY-NC-4.0" in item.inner_text()
    item.locator("input[name=note]").fill("vendor licence checked")
    item.locator("button.approve").click()
    page.wait_for_url("**/ui/review?approved=*")
    assert f"{ref} was approved" in page.inner_text("[role=status]")
    assert page.locator(f".review-item h2 a:text-is('{ref}')").count() == 0
    page = admin.visit(path, "registry-approved")
    assert page.inner_text(".version-status") == "allowed"
    assert "vendor licence checked" in page.inner_text("section[aria-labelledby=scan]")
    assert page.locator("button.approve").count() == 0
    assert "research-model@1" in admin.visit("/ui/review").inner_text(".review-list")


def test_readers_and_writers_cannot_decide(visitor, stoa) -> None:
    ref = stoa.refs["research-model"]
    path = f"/ui/models/{ref.replace('@', '/')}"
    admin = visitor("admin")
    seen = admin.visit(path)
    assert seen.locator("button.approve").count() == 1
    assert seen.locator('nav >> text="Review"').count() == 1  # the approvals link, exactly
    reader = visitor("read")
    page = reader.visit(path, "registry-pending-reader")
    assert page.inner_text(".version-status") == "pending"
    assert page.locator("button.approve, button.reject, form.decide").count() == 0
    assert page.locator('nav >> text="Review"').count() == 0
    denied = reader.visit("/ui/review", "registry-review-denied", expect_errors=True)
    assert "admin" in denied.inner_text("[role=alert]")
    for scope in ("read", "write"):
        who = reader if scope == "read" else visitor("write")
        for action in ("approve", "reject"):
            forged = _post(stoa, who, f"{path}/{action}")
            assert forged.status_code == 403, (scope, action, forged.text[:300])
            assert "admin" in forged.text
    assert reader.visit(path).inner_text(".version-status") == "pending"


def test_unknown_names_and_bad_versions_get_error_pages(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/models/no-such-model", "registry-unknown", expect_errors=True)
    assert "no model named 'no-such-model'" in page.inner_text("[role=alert]")
    answer = page.request.get(page.url)
    assert answer.status == 404
    page = reader.visit("/ui/models/churn/9", expect_errors=True)
    assert "churn has no version 9" in page.inner_text("[role=alert]")
    page = reader.visit("/ui/models/churn/abc", "registry-bad-version", expect_errors=True)
    assert page.request.get(page.url).status == 422
    assert "version" in page.inner_text("[role=alert]") and "integer" in page.inner_text(
        "[role=alert]"
    )
    page = reader.visit("/ui/prompts/greeting/2?against=x", expect_errors=True)
    assert "against" in page.inner_text("[role=alert]")


def test_a_decision_other_than_approve_or_reject_is_refused_and_changes_nothing(
    visitor, stoa
) -> None:
    admin = visitor("admin")
    ref = stoa.refs["research-model"]
    name, version = ref.split("@")
    answer = _post(stoa, admin, f"/ui/models/{name}/{version}/publish")
    assert answer.status_code == 422
    assert "approve" in answer.text and "reject" in answer.text  # names the choices
    assert "pending" in admin.visit(f"/ui/models/{name}/{version}").inner_text("main")
