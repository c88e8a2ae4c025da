"""The endpoint pages: the list with its split bar and last day's counts; one endpoint's
split, its charts, per-variant summary and history; changing the weights through the
preview-then-confirm form (and a bad weight changing nothing); the logbook's filters and
search; one prediction with its trace waterfall, feedback and shadows.

The data is made with a real ``LocalClient`` on its own home and server: a ticket
classifier, two versions of the support solution, and an endpoint ``helpdesk`` with
variants a and b and a shadow s that mirrors every request, sent 50 predictions with unit
ids through ``client.endpoints.predict`` and feedback on some of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.servers import serve_in_thread
from tests.ui.conftest import Stoa

pytestmark = pytest.mark.xdist_group("ui")

TEXTS = ["I forgot my password", "I was charged twice for my order", "the app crashes on start",
         "refund my order please", "locked out of my account"]  # fmt: skip
REQUESTS = 50


@pytest.fixture(scope="module")
def stoa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stoa]:
    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    local = LocalClient(settings=Settings(home=tmp_path_factory.mktemp("ui-endpoints")))
    tokens = {scope: local.tokens.create(f"ui-{scope}", [scope]).token
              for scope in ("admin", "read")}  # fmt: skip
    local.models.log("tickets", ticket_classifier())
    local.models.set_alias("tickets", 1, "champion")
    local.solutions.register(SUPPORT_SPEC)
    local.solutions.register(SUPPORT_SPEC.replace("Security.", "Security > Password."))
    local.endpoints.create("helpdesk", ["a=support@1:50", "b=support@2:50", "s=support@2:shadow"],
                           description="support tickets")  # fmt: skip
    ids = []
    for i in range(REQUESTS):
        text = TEXTS[i % len(TEXTS)] if i != 7 else "my zebra ate the invoice"
        ids.append(local.endpoints.predict("helpdesk", {"text": text}, unit_id=f"user-{i}"))
    events = [{"prediction_id": r["prediction_id"], "kind": "thumb", "value": i % 3 != 0,
               "source": "user"} for i, r in enumerate(ids[:12])]  # fmt: skip
    events.append({"prediction_id": ids[0]["prediction_id"], "kind": "rating", "value": 4,
                   "source": "human"})  # fmt: skip
    local.endpoints.feedback(events)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # shadows run in the background: wait for all 50
        local.stores.serving.logbook.flush()
        if len(local.predictions.list(endpoint="helpdesk", limit=1000)) == 2 * REQUESTS:
            break
        time.sleep(0.2)
    with serve_in_thread(create_app(client=local)) as url:
        yield Stoa(url, tokens, {"local": local, "first": ids[0], "zebra": ids[7]})
    local.close()


def test_the_list_shows_the_endpoint_with_its_split_and_counts(visitor, stoa) -> None:
    page = visitor("read").visit("/ui/endpoints", "endpoints")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Endpoints"
    row = page.locator("tr[data-endpoint=helpdesk]")
    assert row.locator("a[href='/ui/endpoints/helpdesk']").inner_text() == "helpdesk"
    assert row.locator(".requests").inner_text() == "50", "shadow copies are not requests"
    assert row.locator(".error-rate").inner_text() == "0 %"
    bars = row.locator(".span-bar")
    assert bars.count() == 2
    widths = [bars.nth(i).bounding_box()["width"] for i in range(2)]
    assert abs(widths[0] - widths[1]) <= 2, "a 50/50 split draws two equal segments"
    assert "mirrors 100 %" in row.locator(".split-legend").inner_text()
    label = row.locator("[role=img]").get_attribute("aria-label")
    assert label == "Traffic split: a 50 %; b 50 %; shadow s mirrors 100 %"


def test_the_detail_shows_split_charts_summary_and_history(visitor) -> None:
    page = visitor("read").visit("/ui/endpoints/helpdesk?range=1h", "endpoint")
    rows = page.locator("table.variants tbody tr")
    assert rows.count() == 3
    assert "solution:support@1" in rows.nth(0).inner_text()
    assert rows.nth(0).locator("a").get_attribute("href") == "/ui/solutions/support?version=1"
    assert rows.nth(2).locator(".share").inner_text() == "mirrors 100 %"
    charts = page.locator(".endpoint-charts .chart")
    assert charts.count() == 3
    for i in range(3):
        assert charts.nth(i).locator("canvas").count() == 1, "uPlot drew the chart"
    legend = page.locator("#chart-requests .u-legend").inner_text()
    assert "a" in legend and "s (shadow)" in legend
    drawn = page.evaluate(
        "document.getElementById('chart-requests')._plot.data.slice(1)"
        ".map(s => s.reduce((t, v) => t + (v || 0), 0))"
    )
    assert sum(drawn[:2]) == REQUESTS and drawn[2] == REQUESTS, "every request is charted"
    summary = {
        r.get_attribute("data-variant"): r for r in page.locator("table.summary tbody tr").all()
    }
    assert set(summary) == {"a", "b", "s"}
    a, b = (int(summary[v].locator(".predictions").inner_text()) for v in ("a", "b"))
    assert a + b == REQUESTS and a > 5 and b > 5
    feedback = " ".join(summary[v].locator(".feedback").inner_text() for v in ("a", "b"))
    assert "thumb" in feedback and "rating 1" in feedback
    assert page.locator("table.history tbody tr").count() >= 1
    assert "Changing traffic needs the write scope" in page.locator("#traffic-change").inner_text()
    assert page.locator("form.traffic-form").count() == 0


def test_a_negative_weight_shows_the_error_and_changes_nothing(visitor, stoa) -> None:
    local = stoa.refs["local"]
    before = local.endpoints.show("helpdesk")
    admin = visitor()
    page = admin.visit("/ui/endpoints/helpdesk")
    page.evaluate("window.stillHere = true")
    page.evaluate("document.querySelector('#weight-a').removeAttribute('min')")
    page.fill("#weight-a", "-5")
    page.click("form.traffic-form button.preview")
    page.wait_for_selector("#traffic-change .traffic-error")
    alert = page.locator("#traffic-change [role=alert]").inner_text()
    assert "Nothing changed" in alert and "negative" in alert, alert
    assert page.evaluate("window.stillHere === true"), "htmx swapped the panel in place"
    assert page.locator("#weight-a").input_value() == "-5", "the form keeps what was typed"
    admin.shoot("endpoint-bad-weight")
    page.fill("#weight-a", "50")
    page.click("form.traffic-form button.preview")
    # The first error is still on the page until htmx swaps the answer in, so
    # wait for the new words rather than for an element that already exists.
    expect(page.locator("#traffic-change [role=alert]")).to_contain_text("nothing would change")
    after = local.endpoints.show("helpdesk")
    assert after.version == before.version and len(after.history) == len(before.history)


def test_changing_weights_shows_a_confirmation_then_applies(visitor, stoa) -> None:
    local = stoa.refs["local"]
    version = local.endpoints.show("helpdesk").version
    admin = visitor()
    page = admin.visit("/ui/endpoints/helpdesk")
    page.fill("#weight-a", "90")
    page.fill("#weight-b", "10")
    page.fill("#traffic-note", "canary <b> to 10 %")
    page.click("form.traffic-form button.preview")
    page.wait_for_selector(".confirm-traffic")
    changes = page.locator("table.traffic-changes tr[data-variant=a]")
    assert changes.locator(".old").inner_text().startswith("50 %")
    assert changes.locator(".new").inner_text().startswith("90 %")
    assert "canary <b> to 10 %" in page.locator(".confirm-traffic").inner_text(), "escaped"
    assert local.endpoints.show("helpdesk").version == version, "a preview writes nothing"
    admin.check_accessibility("/ui/endpoints/helpdesk (confirm)")
    admin.shoot("endpoint-confirm")
    with page.expect_navigation():
        page.click(".confirm-traffic button.apply")
    assert f"changed={version + 1}" in page.url
    assert "Traffic changed" in page.locator("[role=status]").inner_text()
    shown = local.endpoints.show("helpdesk")
    assert shown.version == version + 1
    assert {v.name: v.weight for v in shown.variants if v.mode == "live"} == {"a": 90, "b": 10}
    assert shown.history[0].note == "canary <b> to 10 %"
    assert page.locator("table.history tbody tr").count() == len(shown.history)
    assert not admin.errors


def test_a_stale_or_unscoped_change_is_refused(visitor, stoa) -> None:
    local = stoa.refs["local"]
    reader = visitor("read")
    reader.visit("/ui/endpoints/helpdesk")
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    url = f"{stoa.url}/ui/endpoints/helpdesk/traffic"
    version = local.endpoints.show("helpdesk").version
    form = {"variant": ["a", "b", "s"], "weight": ["1", "1", "100"], "version": str(version),
            "confirm": "yes"}  # fmt: skip
    refused = httpx.post(url, data=form, cookies={"stoa_session": secret},
                         headers={"Origin": stoa.url})  # fmt: skip
    assert refused.status_code == 403 and "lacks the &#39;write&#39; scope" in refused.text
    foreign = httpx.post(url, data=form, cookies={"stoa_session": secret},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert foreign.status_code == 403
    admin = visitor()
    admin.visit("/ui/endpoints/helpdesk")
    secret = next(c for c in admin.context.cookies() if c["name"] == "stoa_session")["value"]
    stale = httpx.post(url, data={**form, "version": str(version + 1)},
                       cookies={"stoa_session": secret}, headers={"Origin": stoa.url})  # fmt: skip
    assert stale.status_code == 409 and "changed while you were editing" in stale.text
    assert local.endpoints.show("helpdesk").version == version


def test_the_logbook_filters_searches_and_pages(visitor, stoa) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/endpoints/helpdesk/predictions", "logbook")
    rows = page.locator("table.logbook tbody tr")
    assert rows.count() == 50
    ids = [rows.nth(i).get_attribute("data-id") for i in range(rows.count())]
    assert ids == sorted(ids, reverse=True), "newest first"
    older = page.locator("a.older")
    older.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("table.logbook tbody tr").count() == 50
    assert page.locator("a.older").count() == 0, "100 rows: two pages"
    page.goto(f"{stoa.url}/ui/endpoints/helpdesk/predictions")
    page.fill("#f-q", "ZEBRA")
    page.click("form.logbook-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    found = page.locator("table.logbook tbody tr")
    assert found.count() == 2, "the live prediction and its shadow copy"
    assert stoa.refs["zebra"]["prediction_id"] in [
        found.nth(i).get_attribute("data-id") for i in range(2)
    ]
    assert "zebra" in found.first.locator(".input").inner_text()
    page = reader.visit("/ui/endpoints/helpdesk/predictions?mode=shadow&q=zebra")
    assert page.locator("table.logbook tbody tr").count() == 1
    page = reader.visit("/ui/endpoints/helpdesk/predictions?variant=s&mode=live")
    assert "No prediction matches" in page.locator("main").inner_text()
    page = reader.visit("/ui/endpoints/helpdesk/predictions?status=Maybe%21", expect_errors=True)
    assert "is not a status" in page.locator("[role=alert]").inner_text()


def test_a_prediction_shows_its_trace_feedback_and_shadow(visitor, stoa) -> None:
    first = stoa.refs["first"]
    reader = visitor("read")
    page = reader.visit(f"/ui/predictions/{first['prediction_id']}", "prediction")
    assert first["variant"] in page.locator(".subtitle").inner_text()
    names = page.locator("ol.waterfall .span-name").all_inner_texts()
    assert names[0].startswith("solution support@") and "classify intent" in names
    for bar in page.locator("ol.waterfall .span-bar").all():
        assert bar.bounding_box()["width"] > 0
    feedback = page.locator("table.feedback tbody tr")
    assert feedback.count() == 2
    assert "thumb" in feedback.nth(0).inner_text() and "rating" in feedback.nth(1).inner_text()
    assert "I forgot my password" in page.locator("pre.input").inner_text()
    shadow = page.locator("a.shadow-link")
    assert shadow.count() == 1
    shadow.click()
    page.wait_for_load_state("networkidle")
    assert "shadow" in page.locator(".subtitle").inner_text()
    assert page.locator("a.parent").get_attribute("href").endswith(first["prediction_id"])
    reader.check_accessibility("/ui/predictions/<shadow>")
    reader.shoot("prediction-shadow")
    page = reader.visit("/ui/predictions/nope", expect_errors=True)
    assert "no prediction 'nope'" in page.locator("[role=alert]").inner_text()


def test_an_unknown_endpoint_is_a_404_page(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui/endpoints/no-such", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    assert "no endpoint named 'no-such'" in page.locator("[role=alert]").inner_text()
