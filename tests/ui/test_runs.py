"""The runs pages: the searchable table, one run with its curves, and runs compared."""

from __future__ import annotations

import math

import pytest

from stoa.core.errors import StoaError
from stoa.develop.tracking import CURVE_POINTS, parse_condition, thin

pytestmark = pytest.mark.xdist_group("ui")


def _names(page) -> list[str]:
    return page.locator(".runs-table tbody tr td:nth-child(2)").all_inner_texts()


def _headers(page) -> list[str]:
    cells = page.locator(".runs-table thead th").all_inner_texts()
    return [c.strip(" ↑↓") for c in cells[1:]]  # the first is the selection column


def test_the_table_lists_runs_newest_first_with_default_columns(visitor) -> None:
    page = visitor("read").visit("/ui/runs", "runs")
    names = _names(page)
    assert {"train-lr-0.1", "train-lr-0.03", "train-broken", "train-still-going"} <= set(names)
    assert names.index("train-still-going") < names.index("train-lr-0.1"), "newest first"
    headers = _headers(page)
    assert headers[:3] == ["name", "status", "created"]
    assert any(h.startswith("metrics.") for h in headers), "a few metrics by default"


def test_filters_by_param_and_metric_condition_narrow_the_table(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/runs?param=lr%3D0.1", "runs-param")
    assert _names(page) == ["train-lr-0.1"]
    # The same search language through the form: a metric condition on the latest value.
    page = reader.visit("/ui/runs")
    everything = len(_names(page))
    page.fill("#f-metric-1", "accuracy>0.8")
    page.fill("#f-name", "")
    page.click("form.runs-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    names = _names(page)
    assert "train-lr-0.1" in names and "train-lr-0.03" not in names
    assert len(names) < everything
    assert "metric=accuracy%3E0.8" in page.url
    assert page.input_value("#f-metric-1") == "accuracy>0.8", "the form keeps the search"
    assert _headers(page)[3] == "metrics.accuracy", "the metric searched on comes first"


def test_a_bad_condition_is_a_422_page_with_the_message(visitor, stoa) -> None:
    reader = visitor("read")
    path = "/ui/runs?metric=accuracy%3E%3E1"
    page = reader.visit(path, "runs-bad-filter", expect_errors=True)
    assert any(e.startswith("422") for e in reader.errors), reader.errors
    alert = page.locator("#search-error").inner_text()
    with pytest.raises(StoaError) as refused:  # what the operation itself says
        parse_condition("accuracy>>1")
    assert refused.value.message in alert and "accuracy>>1" in alert
    assert "Traceback" not in page.content()
    assert page.input_value("#f-metric-1") == "accuracy>>1", "the form keeps what was typed"
    assert page.request.get(stoa.url + path).status == 422
    for bad in ("param=lr", "order_by=sideways", "status=asleep", "limit=0"):
        assert page.request.get(f"{stoa.url}/ui/runs?{bad}").status == 422, bad


def test_choosing_columns_changes_the_header(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/runs?columns=name&columns=params.lr&columns=params.optimizer",
                        "runs-columns")  # fmt: skip
    assert _headers(page) == ["name", "params.lr", "params.optimizer"]
    assert "sgd" in page.locator(".runs-table").inner_text()
    # Through the form: tick one more column and search again.
    page.click(".run-columns summary")
    page.check("input[name=columns][value='params.epochs']")
    page.click("form.runs-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert _headers(page) == ["name", "params.epochs", "params.lr", "params.optimizer"]


def test_the_table_pages_with_a_limit(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/runs?limit=2&columns=name", "runs-page1")
    first = _names(page)
    assert len(first) == 2
    page.click("a[rel=next]")
    page.wait_for_load_state("networkidle")
    second = _names(page)
    assert len(second) == 2 and not set(first) & set(second)
    assert "page=2" in page.url and page.locator("a[rel=prev]").count() == 1


def test_the_run_page_draws_the_loss_curve_and_downloads_artifacts(visitor, stoa) -> None:
    reader = visitor("read")
    run_id = stoa.refs["runs"][0]
    page = reader.visit(f"/ui/runs/{run_id[:8]}", "run")  # a short prefix, as the CLI takes
    main = page.locator("main")
    assert "train-lr-0.1" in main.locator("h1").inner_text()
    assert run_id in main.inner_text()
    loss = page.locator("figure", has=page.locator(".chart-title", has_text="loss by step"))
    assert loss.locator(".uplot canvas").count() >= 1, "uPlot drew the curve"
    assert "loss" in loss.locator(".u-legend").inner_text()
    assert "step" in loss.inner_text(), "the x axis is labelled"
    text = main.inner_text()
    assert "optimizer" in text and "sgd" in text, "params"
    assert "stage" in text and "train" in text, "tags"
    assert stoa.refs["dataset"] in text, "its input dataset"
    link = page.locator(f"a[href='/ui/datasets/churn-data/{stoa.refs['dataset'].split('@')[1]}']")
    assert link.count() == 1
    assert page.locator("details >> text=What the run captured").count() in (0, 1)
    href = page.locator("a[download]", has_text="report.txt").get_attribute("href")
    assert href == f"/ui/runs/{run_id}/artifacts/report.txt"
    answer = page.request.get(stoa.url + href)
    assert answer.status == 200
    expected = f"final accuracy {0.95 - 0.45 * math.exp(-0.1 * 29):.3f}\n"
    assert answer.body() == expected.encode()
    assert "attachment" in answer.headers["content-disposition"]
    assert page.request.get(f"{stoa.url}/ui/runs/{run_id}/artifacts/nope.txt").status == 404


def test_artifacts_need_a_session(visitor, stoa) -> None:
    anonymous = visitor(None)
    run_id = stoa.refs["runs"][0]
    answer = anonymous.page.request.get(
        f"{stoa.url}/ui/runs/{run_id}/artifacts/report.txt", max_redirects=0
    )
    assert answer.status == 303 and "/ui/login" in answer.headers["location"]


def test_a_run_with_children_and_the_model_registered_from_one(visitor, stoa) -> None:
    reader = visitor("read")
    parent = stoa.refs["selection"]
    page = reader.visit(f"/ui/runs/{parent}", "run-parent")
    children = page.locator("dd", has=page.locator(f"a[href='/ui/runs?parent={parent}']"))
    assert children.locator("a", has_text="logreg").count() == 1
    assert children.locator("a", has_text="forest").count() == 1
    # The recommended candidate is the one registered as churn-selected@1.
    tags = page.locator("section", has=page.locator("h2#tags"))
    winner = tags.locator("tr", has_text="recommendation").locator("td").nth(1).inner_text()
    children.locator("a", has_text=winner).click()
    page = reader.visit(page.url.removeprefix(stoa.url), "run-child")
    assert page.locator(f"dd a[href='/ui/runs/{parent}']").count() == 1, "its parent"
    assert page.locator("a[href='/ui/models/churn-selected/1']").count() == 1, "its output"
    # Metrics logged once are in the table, not drawn as one-point charts.
    assert page.locator("[data-chart]").count() == 0
    assert "Logged at a single step" in page.locator("section#curves, main").first.inner_text()
    page = reader.visit(f"/ui/runs?parent={parent}")
    assert sorted(_names(page)) == ["forest", "logreg"]


def test_comparing_two_runs_overlays_curves_and_highlights_differences(visitor, stoa) -> None:
    reader = visitor("read")
    first, second = stoa.refs["runs"]
    page = reader.visit(f"/ui/runs/compare?ids={first}&ids={second[:8]}", "runs-compare")
    loss = page.locator("figure", has=page.locator(".chart-title", has_text="loss by step"))
    assert loss.locator(".uplot canvas").count() >= 1
    legend = loss.locator(".u-legend").inner_text()
    assert "train-lr-0.1" in legend and "train-lr-0.03" in legend
    params = page.locator("section", has=page.locator("h2#params"))
    differing = params.locator("tr.diff th").all_inner_texts()
    assert {t.split()[0] for t in differing} == {"lr", "optimizer"}
    assert params.locator("tr:not(.diff) th", has_text="epochs").count() == 1
    metrics = page.locator("section", has=page.locator("h2#metrics"))
    best_loss = metrics.locator("tr", has_text="loss").locator("td.best")
    assert best_loss.count() == 1 and best_loss.inner_text().endswith("0.105"), "lr 0.1 wins"


def test_compare_from_the_table(visitor, stoa) -> None:
    page = visitor("read").visit("/ui/runs")
    for run_id in stoa.refs["runs"]:
        page.check(f"input[name=ids][value='{run_id}']")
    page.click("text=Compare selected")
    page.wait_for_load_state("networkidle")
    assert "/ui/runs/compare?" in page.url
    assert page.locator("h1").inner_text() == "Compare 2 runs"


@pytest.mark.parametrize("count", [1, 11])
def test_compare_needs_two_to_ten_runs(visitor, stoa, count) -> None:
    reader = visitor("read")
    ids = "&".join(f"ids={i:032x}" for i in range(count))
    path = f"/ui/runs/compare?{ids}"
    page = reader.visit(path, f"runs-compare-{count}", expect_errors=True)
    assert f"compare 2 to 10 runs; {count} were chosen" in page.locator("main").inner_text()
    assert page.request.get(stoa.url + path).status == 422


def test_an_unknown_run_is_a_404_page_naming_it(visitor, stoa) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/runs/no-such-run", "run-missing", expect_errors=True)
    assert "no run 'no-such-run'" in page.locator("main").inner_text()
    assert page.request.get(stoa.url + "/ui/runs/no-such-run").status == 404


def test_thinning_keeps_ends_and_extremes_within_the_budget() -> None:
    steps = list(range(100_000))
    values = [math.sin(s / 500) for s in steps]
    values[41_234] = 50.0  # a spike
    values[77_777] = -50.0  # a dip
    xs, ys = thin(steps, values)
    assert len(xs) <= CURVE_POINTS and xs == sorted(xs)
    assert xs[0] == 0 and xs[-1] == steps[-1]
    assert 50.0 in ys and -50.0 in ys
    assert thin([1, 2, 3], [0.1, 0.2, 0.3]) == ([1, 2, 3], [0.1, 0.2, 0.3])


def test_metric_curve_thins_over_rest_as_in_process(stoa) -> None:
    from stoa.client import HttpClient

    api = HttpClient(stoa.url, token=stoa.tokens["read"])
    try:
        run_id = stoa.refs["runs"][0]
        whole = api.runs.metric_curve(run_id[:8], "loss")
        assert whole.total == 30 and whole.steps == list(range(30)) and not whole.thinned
        assert whole.values == [p.value for p in api.runs.metric_history(run_id, "loss")]
        small = api.runs.metric_curve(run_id, "loss", max_points=10)
        assert small.thinned and len(small.steps) <= 10 and small.total == 30
        assert small.steps[0] == 0 and small.steps[-1] == 29
        assert (small.steps, small.values) == thin(whole.steps, whole.values, 10)
    finally:
        api.close()


def test_a_long_curve_is_drawn_thinned_and_says_so(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    client = LocalClient(settings=Settings(home=tmp_path / "home"))
    run = client.runs.create("long", status="running")
    points = [{"key": "loss", "value": 1 / (1 + s), "step": s} for s in range(5_000)]
    points[2_345]["value"] = 9.0  # a spike the thinning must keep
    client.runs.log_batch(run.id, metrics=points)
    client.runs.log_batch(run.id, metrics=[{"key": "loss", "value": 0.5, "step": 4_999}])
    client.runs.finish(run.id)
    curve = client.runs.metric_curve(run.id, "loss")
    assert curve.total == 5_000 and len(curve.steps) <= CURVE_POINTS
    assert 9.0 in curve.values and curve.values[-1] == 0.5, "the last value at a step wins"
    with TestClient(create_app(client=client), base_url="http://127.0.0.1") as browser:
        text = browser.get(f"/ui/runs/{run.id}").text
    assert "5,000 steps; drawn from 1,000 points" in text
    client.close()
