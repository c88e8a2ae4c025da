"""The selections pages: the list, the leaderboard, and both scatter charts with the
Pareto front, the recommendation and each constraint's line."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.xdist_group("ui")


def _recommendation(stoa) -> str | None:
    from stoa.client import HttpClient

    with HttpClient(stoa.url, token=stoa.tokens["read"]) as api:
        pick = api.runs.get(stoa.refs["selection"]).tags["recommendation"]
    return None if pick == "none" else pick


def _legend(page, chart: str) -> list[str]:
    return page.locator(f"#{chart} .u-legend .u-series .u-label").all_inner_texts()


def test_the_list_shows_each_selection_with_its_recommendation(visitor, stoa) -> None:
    page = visitor("read").visit("/ui/selections", "selections")
    run_id = stoa.refs["selection"]
    row = page.locator("tr", has=page.locator(f"a[href='/ui/selections/{run_id}']"))
    assert row.count() == 1
    text = row.inner_text()
    assert "select-churn" in text and "roc_auc_ovr" in text
    assert "logreg" in text or "forest" in text or "none qualifies" in text


def test_the_leaderboard_links_every_candidate_to_its_child_run(visitor, stoa) -> None:
    from stoa.client import HttpClient

    run_id = stoa.refs["selection"]
    page = visitor("read").visit(f"/ui/selections/{run_id}", "selection")
    api = HttpClient(stoa.url, token=stoa.tokens["read"])
    children = api.runs.search(parent_id=run_id)
    api.close()
    assert {c.info.name for c in children} == {"logreg", "forest"}
    board = page.locator("table.leaderboard")
    for child in children:
        row = board.locator("tr", has_text=child.info.name)
        assert row.locator(f"a[href='/ui/runs/{child.info.id}']").count() == 1
        assert "meets all" in row.inner_text() or "rejected" in row.inner_text()
    recommended = page.locator("table.leaderboard tr.best")
    pick = _recommendation(stoa)
    assert pick is not None, "the fixture's constraints leave room for a recommendation"
    assert recommended.count() == 1 and pick in recommended.inner_text()
    assert "recommended" in recommended.inner_text()


def test_both_charts_mark_the_front_the_recommendation_and_each_constraint(visitor, stoa) -> None:
    page = visitor("read").visit(f"/ui/selections/{stoa.refs['selection']}", "selection-charts")
    for chart in ("chart-latency", "chart-cost"):
        assert page.locator(f"#{chart} canvas").count() == 1, f"{chart} was not drawn"
        legend = _legend(page, chart)
        assert "Pareto front" in legend
        pick = _recommendation(stoa)
        assert f"recommendation: {pick}" in legend, legend
        assert "min_roc_auc_ovr = 0.6" in legend
        assert {"logreg", "forest"} <= set(legend), "each candidate has a legend entry"
    assert "max_p95_ms = 1000" in _legend(page, "chart-latency")
    assert "max_p95_ms = 50" not in _legend(page, "chart-cost")
    # uPlot paints axis labels on the canvas: check the spec it drew them from.
    latency = json.loads(page.locator("#chart-latency-data").text_content())
    cost = json.loads(page.locator("#chart-cost-data").text_content())
    assert latency["x"] == {"label": "latency p95", "unit": "ms"}
    assert cost["x"]["unit"] == "USD" and latency["y"]["label"] == "roc_auc_ovr"
    front = next(s for s in latency["series"] if s["label"] == "Pareto front")
    assert front["x"] == sorted(front["x"]) and not front.get("points")
    mark = next(s for s in latency["series"] if s["label"].startswith("recommendation"))
    assert mark["mark"] and mark["points"]
    if _recommendation(stoa) is not None:
        row = page.locator("table.leaderboard tr.best td").all_inner_texts()
        assert mark["x"] == [
            pytest.approx(float(row[5]), rel=1e-2)
        ]  # its p95 latency, as the table rounds it
        assert mark["y"] == [pytest.approx(float(row[2]), rel=1e-2)]  # its quality
    limit = next(s for s in latency["series"] if s["label"].startswith("max_p95_ms"))
    assert limit["dash"] and limit["x"] == [1000, 1000]


def test_a_run_without_a_logged_result_says_what_to_do(visitor, stoa) -> None:
    run_id = stoa.refs["runs"][0]
    page = visitor("read").visit(f"/ui/selections/{run_id}", "selection-empty")
    text = page.locator("main").inner_text()
    assert "no selection.json" in text and "stoa select config.yaml" in text
    assert page.locator(".chart").count() == 0


def test_unknown_runs_and_bad_parameters_are_error_pages(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/selections/0123456789abcdef0123456789abcdef", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    assert "no run" in page.locator("[role=alert]").inner_text().lower()
    page = reader.visit("/ui/selections?limit=lots", expect_errors=True)
    assert "422" in " ".join(reader.errors)
    assert "limit" in page.locator("[role=alert]").inner_text()
