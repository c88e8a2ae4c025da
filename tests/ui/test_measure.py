"""The measure pages: review queues with their judge-human agreement panel, the focused
reviewer page cleared with the keyboard alone, the A/B report with its interval bars and
a confirmed promote, drift per column with quality over time, and alerts with
acknowledge.

The home is filled once, through the public client for what users make (solutions,
endpoints, queues, labels, alert rules) and straight into the logbook and feedback
tables for two days of traffic (tests/measure/logbook_rows.py): endpoint ``shop`` has
variants a and b, b with a planted click-through lift, and a second day whose inputs
drift; endpoint ``support`` answers with cited passages and feeds two review queues.
Every figure a test reads off a page is computed here again with scipy or scikit-learn.
The tests share the home and run in file order (one xdist group): the keyboard test
labels the open items after the queues test counts them, and promote comes last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from stoa.client import LocalClient
from tests.measure.logbook_rows import feedback, prediction, write
from tests.servers import serve_in_thread
from tests.ui.conftest import Stoa

pytestmark = pytest.mark.xdist_group("ui")

SPEC = "name: help\nsteps:\n  - id: s\n    kind: respond\n    template: x\n"
USERS = 3000
QUESTIONS = ["where is my parcel", "refund please", "reset my password", "cancel my order"]
PASSAGES = [
    {"n": 1, "text": "Refunds are paid back to the original card within five working days.",
     "source": "refunds.md", "score": 0.82},
    {"n": 2, "text": "Parcels leave the warehouse every weekday before noon.",
     "source": "shipping.md", "score": 0.41},
    {"n": 3, "text": "A refund for a damaged parcel needs a photo of the damage.",
     "source": "refunds.md", "score": 0.37},
]  # fmt: skip
ANSWER = "Your refund reaches your card within five working days [1]; send a photo if damaged [3]."
LABELS = ["correct", "partially", "wrong"]
SCORES = {"correct": 1.0, "partially": 0.5, "wrong": 0.0}
REVIEWED, OPEN = 124, 6


def _trace(i: int) -> dict[str, Any]:
    """A solution's trace: retrieve then generate, under the run's root span."""
    t = 1_700_000_000_000_000_000 + i * 10**9
    root, retrieve, generate = f"r{i:06d}", f"q{i:06d}", f"g{i:06d}"
    return {"trace_id": f"t{i:06d}", "spans": [
        {"span_id": root, "parent_id": None, "name": "solution help@1", "start_ns": t,
         "end_ns": t + 42_000_000, "status": "OK", "attributes": {}},
        {"span_id": retrieve, "parent_id": root, "name": "retrieve docs", "start_ns": t + 10**6,
         "end_ns": t + 9_000_000, "status": "OK", "attributes": {
             "stoa.step.kind": "retrieve", "stoa.outputs": {"passages": PASSAGES}}},
        {"span_id": generate, "parent_id": root, "name": "generate answer",
         "start_ns": t + 9_000_000, "end_ns": t + 41_000_000, "status": "OK",
         "attributes": {"stoa.step.kind": "generate", "stoa.decision": "cited 2 passages"}},
    ]}  # fmt: skip


def _traffic(now: datetime) -> tuple[list[dict], list[dict]]:
    """Two days of ``shop``: a user keeps a variant; b is clicked 30 % more; on the
    second day the questions shift, baskets grow and 5 % of requests fail. No row lies
    within an hour of the 24-hour boundary, so a page computed a little later splits
    the days the same way."""
    rng = np.random.default_rng(3)
    rows, events = [], []
    for u in range(USERS):
        variant = "b" if rng.random() < 0.5 else "a"
        second = u >= USERS // 2
        propensity = 0.2 * rng.uniform(0.5, 1.5) * (1.3 if variant == "b" else 1.0)
        start = now - (timedelta(hours=23) if second else timedelta(hours=47))
        for r in range(int(rng.integers(1, 5))):
            at = start + timedelta(hours=22) * ((u % (USERS // 2)) * 4 + r) / (USERS // 2 * 4)
            question = str(rng.choice(QUESTIONS, p=[0.1, 0.2, 0.3, 0.4] if second
                                      else [0.4, 0.3, 0.2, 0.1]))  # fmt: skip
            label = "billing" if question in ("refund please", "cancel my order") else "account"
            row = prediction(
                "shop", variant, at, unit_id=f"u{u}", latency_ms=float(rng.gamma(4, 10)),
                target="solution:help@1" if variant == "a" else "solution:help@2",
                input={"question": question,
                       "basket": float(rng.lognormal(3.4 if second else 3.0, 0.5))},
                output={"text": "see [1]", "label": label,
                        "confidence": float(rng.uniform(0.5, 1.0))},
                status="error" if second and rng.random() < 0.05 else "ok",
            )  # fmt: skip
            rows.append(row)
            if rng.random() < propensity:
                events.append(feedback(row, "click", True, at + timedelta(minutes=5)))
            if rng.random() < 0.05:
                truth = label if rng.random() < 0.8 else ("account" if label == "billing"
                                                          else "billing")  # fmt: skip
                events.append(feedback(row, "label", truth, at + timedelta(minutes=1)))
    return rows, events


def _support(now: datetime) -> list[dict]:
    """``support`` answers with cited passages: 130 predictions over the last hours."""
    return [
        prediction("support", "a", now - timedelta(minutes=200 - i), target="solution:help@1",
                   unit_id=f"s{i}", input={"question": f"How long does refund {i} take?"},
                   output={"text": ANSWER}, trace=_trace(i))
        for i in range(REVIEWED + OPEN)
    ]  # fmt: skip


def _judge_score(human: str, rng: np.random.Generator) -> float:
    """Mostly the human's score give or take 0.15; one time in eight a neighbour's."""
    score = SCORES[human]
    if rng.random() < 0.125:
        score = {1.0: 0.5, 0.5: rng.choice([0.0, 1.0]), 0.0: 0.5}[score]
    return float(np.clip(score + rng.uniform(-0.15, 0.15), 0, 1))


@pytest.fixture(scope="module")
def stoa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stoa]:
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    local = LocalClient(settings=Settings(home=tmp_path_factory.mktemp("ui-measure")))
    tokens = {scope: local.tokens.create(f"ui-{scope}", [scope]).token
              for scope in ("admin", "read")}  # fmt: skip
    local.solutions.register(SPEC)
    local.solutions.register(SPEC.replace("template: x", "template: y"))
    local.endpoints.create("shop", ["a=help@1:50", "b=help@2:50"], description="the shop")
    local.endpoints.create("support", ["a=help@1:100"], description="answers with sources")
    now = datetime.now(UTC)
    rows, events = _traffic(now)
    support = _support(now)
    thumbs = [feedback(support[i], "thumb", -1, now - timedelta(minutes=5)) for i in (3, 9, 27)]
    write(local.stores.db, rows + support, events + thumbs)
    # Review: the oldest 124 answers labelled by a simulated reviewer and scored by the
    # judge; the newest 6 left open for the keyboard test.
    spec = {"rules": [{"random": 1.0}], "labels": LABELS, "criterion": "correctness"}
    local.reviews.create_queue("answers", "support", spec)
    local.reviews.create_queue("tone", "support", {"rules": [{"thumbs_down": True}],
                               "labels": ["polite", "rude"], "criterion": "tone"})  # fmt: skip
    local.reviews.fill("answers")
    local.reviews.fill("tone")
    items = local.reviews.items("answers", status="open", limit=1000)
    assert len(items) == REVIEWED + OPEN
    rng = np.random.default_rng(5)
    human, judged, judge_events = [], [], []
    by_id = {r["id"]: r for r in support}
    for item in items[:REVIEWED]:
        label = str(rng.choice(LABELS, p=[0.6, 0.25, 0.15]))
        local.reviews.label(item["id"], label, reviewer="sim-reviewer")
        score = _judge_score(label, rng)
        human.append(label)
        judged.append(score)
        judge_events.append(feedback(by_id[item["prediction_id"]], "judge.correctness", score,
                                     now, source="judge"))  # fmt: skip
    write(local.stores.db, [], judge_events)
    # Alerts: one rule that fires on the second day's errors, one that stays quiet.
    local.alerts.create_rules([
        {"name": "shop-errors", "endpoint": "shop", "signal": {"metric": "error_rate"},
         "op": ">", "threshold": 0.02, "window": "24h", "severity": "critical",
         "description": "more than 2 % of requests fail"},
        {"name": "shop-slow", "endpoint": "shop", "signal": {"metric": "latency_p95"},
         "op": ">", "threshold": 5000, "window": "24h", "for": "10m"},
    ])  # fmt: skip
    local.alerts.evaluate()
    refs = {"local": local, "rows": rows, "events": events, "human": human, "judged": judged,
            "now": now}  # fmt: skip
    with serve_in_thread(create_app(client=local)) as url:
        yield Stoa(url, tokens, refs)
    local.close()


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9eE.+-]", "", text.replace("\N{MINUS SIGN}", "-")))


# -- review queues -------------------------------------------------------------------------


def test_the_queues_show_stats_and_the_agreement_panel(visitor, stoa) -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    page = visitor("read").visit("/ui/queues", "queues")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Review queues"
    panel = page.locator("section.queue-panel[data-queue=answers]")
    assert panel.locator(".n.open").inner_text() == str(OPEN)
    assert panel.locator(".n.done").inner_text() == str(REVIEWED)
    human, judged = stoa.refs["human"], stoa.refs["judged"]
    for name in LABELS:
        count = panel.locator(f".label-count[data-label={name}]").inner_text()
        assert count == f"{name} {human.count(name)}"
    # The judge's score goes to the nearest label score; none of these lie on a tie.
    ordered = ["wrong", "partially", "correct"]
    mapped = [ordered[int(np.argmin([abs(s - x) for x in (0.0, 0.5, 1.0)]))] for s in judged]
    kappa = cohen_kappa_score(human, mapped, labels=ordered, weights="linear")
    plain = cohen_kappa_score(human, mapped, labels=ordered)
    rho = spearmanr([SCORES[h] for h in human], judged).statistic
    agreement = panel.locator(".agreement")
    shown = {key: _number(agreement.locator(f"tr[data-stat={key}] .value").inner_text())
             for key in ("weighted_kappa", "kappa", "spearman")}  # fmt: skip
    assert shown["weighted_kappa"] == pytest.approx(kappa, abs=6e-4)
    assert shown["kappa"] == pytest.approx(plain, abs=6e-4)
    assert shown["spearman"] == pytest.approx(rho, abs=6e-4)
    table = confusion_matrix(human, mapped, labels=ordered)
    for i, name in enumerate(ordered):
        cells = agreement.locator(f"table.confusion tr[data-human={name}] td").all_inner_texts()
        assert [int(c) for c in cells[:3]] == table[i].tolist()
    verdict = stoa.refs["local"].reviews.agreement("support", queue="answers")["verdict"]
    # Seeded: the judge tracks the reviewers closely enough to replace them here.
    assert verdict["replace"] is True and f"over {REVIEWED} items" in verdict["reason"]
    assert "judge can replace reviewers" in agreement.locator("p.verdict").inner_text()
    # The interval bar sits where the numbers say: its estimate tick right of zero.
    track = agreement.locator("tr[data-stat=weighted_kappa] .ci-track").bounding_box()
    tick = agreement.locator("tr[data-stat=weighted_kappa] .ci-point").bounding_box()
    assert tick["x"] - track["x"] == pytest.approx(track["width"] * (kappa + 1) / 2, abs=3)
    tone = page.locator("section.queue-panel[data-queue=tone]")
    assert tone.locator(".n.open").inner_text() == "3", "three thumbs-down answers"
    assert "too few items: 0 scored by both" in tone.locator(".verdict-reason").inner_text()


def test_a_reviewer_clears_the_queue_with_the_keyboard_alone(visitor, stoa) -> None:
    local = stoa.refs["local"]
    admin = visitor()
    page = admin.visit("/ui/queues/answers", "queue")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert "/ui/queues/answers/items/" in page.url
    admin.check_accessibility("/ui/queues/answers/items/<first>")
    passages = page.locator("ol.passages li.passage")
    assert passages.count() == 3
    cited = [p.get_attribute("id") for p in page.locator("li.passage.cited").all()]
    assert cited == ["passage-1", "passage-3"], "the answer cites [1] and [3]"
    assert page.locator("li.passage.cited mark").count() == 2
    assert page.locator(".review-answer a.cite").all_inner_texts() == ["[1]", "[3]"]
    assert page.locator("details.trace ol.waterfall .span-name").count() == 3
    buttons = page.locator(".label-button")
    assert [b.get_attribute("data-key") for b in buttons.all()] == ["1", "2", "3"]
    assert buttons.first.locator("kbd").inner_text() == "1"
    admin.shoot("review-item")
    first = int(page.url.rsplit("/", 1)[1].split("?")[0])
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") == "correction"
    page.keyboard.type("Say five working days, and cite [1] only.")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("2")
    labelled = 1
    while "queue is empty" not in page.locator("main").inner_text().lower():
        assert labelled < OPEN + 1, "the queue never emptied"
        with page.expect_navigation():
            page.keyboard.press("1")
        labelled += 1
    assert labelled == OPEN
    assert f"you labelled {OPEN} items" in page.locator(".queue-empty").inner_text()
    admin.check_accessibility("/ui/queues/answers (empty)")
    admin.shoot("queue-empty")
    assert not admin.errors
    done = [i for i in local.reviews.items("answers", status="done", limit=1000)
            if i["reviewer"] == "token:ui-admin"]  # fmt: skip
    assert len(done) == OPEN
    corrected = next(i for i in done if i["id"] == first)
    assert (corrected["label"], corrected["correction"]) == (
        "partially", "Say five working days, and cite [1] only.")  # fmt: skip
    assert sorted(i["label"] for i in done if i["id"] != first) == ["correct"] * (OPEN - 1)


def test_labels_need_write_and_the_dashboards_origin(visitor, stoa) -> None:
    reader = visitor("read")
    reader.visit("/ui/queues/answers")
    assert "Reviewing needs the write scope" in reader.page.locator("main").inner_text()
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    item = stoa.refs["local"].reviews.items("answers", limit=1)[0]["id"]
    url = f"{stoa.url}/ui/queues/answers/items/{item}/label"
    refused = httpx.post(url, data={"label": "wrong"}, cookies={"stoa_session": secret},
                         headers={"Origin": stoa.url})  # fmt: skip
    assert refused.status_code == 403 and "lacks the &#39;write&#39; scope" in refused.text
    foreign = httpx.post(url, data={"label": "wrong"}, cookies={"stoa_session": secret},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert foreign.status_code == 403
    assert stoa.refs["local"].reviews.show_item(item)["label"] != "wrong"


# -- the A/B report ------------------------------------------------------------------------


def test_the_ab_report_draws_lifts_decision_and_srm(visitor, stoa) -> None:
    from scipy.stats import chisquare

    page = visitor("read").visit("/ui/endpoints/shop/experiment", "experiment")
    rows, events = stoa.refs["rows"], stoa.refs["events"]
    units = {v: len({r["unit_id"] for r in rows if r["variant"] == v}) for v in "ab"}
    predictions = {v: sum(r["variant"] == v for r in rows) for v in "ab"}
    clicked = {v: sum(e["kind"] == "click" and e["variant"] == v for e in events) for v in "ab"}
    ctr = {v: clicked[v] / predictions[v] for v in "ab"}
    assert page.locator(".decision-label").inner_text() == "ship b"
    assert "b beats a on ctr" in page.locator(".decision-reason").inner_text()
    for v in "ab":
        assert page.locator(f"table.srm-table tr[data-variant={v}] .observed").inner_text() == (
            f"{units[v]:,}")  # fmt: skip
    p = chisquare([units["a"], units["b"]]).pvalue
    assert _number(page.locator(".srm-p").inner_text()) == pytest.approx(p, rel=1e-3)
    lift = page.locator(".lift-group[data-metric=ctr] tr[data-variant=b]")
    assert _number(lift.locator(".estimate").inner_text()) == pytest.approx(
        (ctr["b"] / ctr["a"] - 1) * 100, abs=0.051)  # fmt: skip
    assert lift.locator(".ci-bar").get_attribute("class").split() == ["ci-bar", "better"]
    track = lift.locator(".ci-track").bounding_box()
    bar = lift.locator(".ci-bar").bounding_box()
    assert bar["x"] > track["x"] + track["width"] / 2, "the whole interval lies above zero"
    guardrails = page.locator(".lift-group:has(.badge.warn)")
    assert {g.get_attribute("data-metric") for g in guardrails.all()} == {
        "latency_p95", "error_rate", "cost_per_1k"}  # fmt: skip
    assert page.locator("form.promote-buttons, .promote-buttons").count() == 0, "read scope"


def test_the_monitor_page_shows_drift_per_column_and_quality(visitor, stoa) -> None:
    from scipy.stats import wasserstein_distance

    page = visitor("read").visit("/ui/endpoints/shop/monitor?window=24h", "monitor")
    now, rows, events = stoa.refs["now"], stoa.refs["rows"], stoa.refs["events"]
    day = timedelta(hours=24)
    current = [r for r in rows if r["ts"] >= now - day]
    reference = [r for r in rows if now - 2 * day <= r["ts"] < now - day]
    assert "drifted" in page.locator("#dataset-title").inner_text()
    basket = page.locator("article.drift-column[data-column=basket]")
    ref = np.array([r["input"]["basket"] for r in reference])
    cur = np.array([r["input"]["basket"] for r in current])
    expected = wasserstein_distance(ref, cur) / np.std(ref)
    assert basket.locator(".test").inner_text() == "wasserstein"
    assert _number(basket.locator(".score").inner_text()) == pytest.approx(expected, rel=1e-3)
    assert basket.locator(".threshold").inner_text().startswith("0.1")
    assert "drifted" in basket.locator("h3").inner_text()
    assert basket.locator(".dist-bin").count() == 30
    question = page.locator("article.drift-column[data-column=question]")
    assert question.locator("table.dist-cats tbody tr").count() == len(QUESTIONS)
    latency = page.locator("article.drift-column[data-column=latency_ms]")
    assert "stable" in latency.locator("h3").inner_text()
    errors = page.locator("table.monitor-metrics tr[data-metric=error_rate]")
    failed = sum(r["status"] == "error" for r in current) / len(current)
    assert _number(errors.locator(".now").inner_text()) == pytest.approx(failed, rel=1e-3)
    assert "bad" in errors.locator(".change").get_attribute("class")
    charts = page.locator(".quality-charts .chart")
    assert charts.count() == 2 and charts.first.locator("canvas").count() == 1
    labels = sum(e["kind"] == "label" for e in events)
    shown = page.locator("table.quality tbody tr td:nth-child(3)").all_text_contents()
    assert sum(int(n.replace(",", "")) for n in shown) == labels


# -- alerts --------------------------------------------------------------------------------


def test_alerts_list_rules_and_acknowledge(visitor, stoa) -> None:
    local = stoa.refs["local"]
    admin = visitor()
    page = admin.visit("/ui/alerts", "alerts")
    [firing] = local.alerts.list()
    row = page.locator(f"table.alerts tr[data-alert='{firing['id']}']")
    assert "shop-errors" in row.inner_text() and "firing" in row.locator(".state").inner_text()
    assert page.locator("table.rules tr[data-rule=shop-errors] .condition").inner_text() == (
        "error_rate > 0.02")  # fmt: skip
    assert "ok" in page.locator("table.rules tr[data-rule=shop-slow] .state").inner_text()
    with page.expect_navigation():
        row.locator("button.ack-button").click()
    assert f"Alert {firing['id']} acknowledged" in page.locator("[role=status]").inner_text()
    assert "ui-admin" in page.locator(f"tr[data-alert='{firing['id']}'] .acked-by").inner_text()
    assert local.alerts.list()[0]["acked_by"] == "token:ui-admin"
    assert not admin.errors


# -- promote (last: it changes the endpoint's config) --------------------------------------


def test_promote_previews_then_needs_a_reason_against_the_report(visitor, stoa) -> None:
    local = stoa.refs["local"]
    admin = visitor()
    page = admin.visit("/ui/endpoints/shop/experiment")
    secret = next(c for c in admin.context.cookies() if c["name"] == "stoa_session")["value"]
    detail = httpx.get(f"{stoa.url}/ui/endpoints/shop", cookies={"stoa_session": secret}).text
    assert 'href="/ui/endpoints/shop/experiment"' in detail
    assert 'href="/ui/endpoints/shop/monitor"' in detail
    assert "(recommended)" in page.locator("button.promote-b").inner_text()
    with page.expect_navigation():
        page.click("button.promote-b")
    assert "The report recommends it" in page.locator(".confirm-promote").inner_text()
    assert page.locator("#promote-reason").count() == 0
    assert local.endpoints.show("shop").version == 1, "a preview writes nothing"
    with page.expect_navigation():
        page.click(".confirm-promote a.button.secondary")
    with page.expect_navigation():
        page.click("button.promote-a")
    assert "does not recommend a" in page.locator(".not-recommended").inner_text()
    changes = page.locator("table.promote-changes tr[data-variant=a]")
    assert changes.locator(".new").inner_text() == "100 %"
    admin.check_accessibility("/ui/endpoints/shop/promote (confirm)")
    admin.shoot("promote-confirm")
    page.evaluate("document.querySelector('#promote-reason').removeAttribute('required')")
    with page.expect_navigation():
        page.click("button.apply-promote")
    assert "needs a reason" in page.locator(".promote-error").inner_text()
    assert local.endpoints.show("shop").version == 1
    page.fill("#promote-reason", "legal asked for a")
    with page.expect_navigation():
        page.click("button.apply-promote")
    assert "/ui/endpoints/shop?changed=2" in page.url
    shown = local.endpoints.show("shop")
    assert {v.name: v.weight for v in shown.variants} == {"a": 100.0, "b": 0.0}
    assert shown.history[0].note.startswith("promoted a: ship b")
    assert shown.history[0].note.endswith("| legal asked for a")
