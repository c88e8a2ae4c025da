"""The solutions pages: the list, the steps drawn as a flow with their routes, the diff
between two versions, the YAML, and the try-it box with its answer, path and trace
waterfall; bad inputs and unknown names as messages and error pages.

The data is made with a real ``LocalClient`` on its own home and server (a small
sklearn text classifier and two versions of a support solution), so these tests do not
change what the other UI tests count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.servers import serve_in_thread
from tests.ui.conftest import Stoa

pytestmark = pytest.mark.xdist_group("ui")

SUPPORT = SUPPORT_SPEC.replace(
    "name: support\n", "name: support\ndescription: answers support tickets\n"
)
#: Version 2: a new canned answer and a rule that routes straight to a human.
SUPPORT_V2 = SUPPORT.replace(
    'template: "Reset it under Settings > Security."',
    'template: "Reset it under Settings > Security > Password."',
).replace(
    '        respond: "Hello {{ input.text }}! How can I help?"\n',
    '        respond: "Hello {{ input.text }}! How can I help?"\n'
    '      - when: input.text.contains("lawyer")\n'
    "        route: human\n",
)
STEPS = ["policy", "intent", "canned", "final", "human"]


@pytest.fixture(scope="module")
def stoa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stoa]:
    """A server over its own home: a classifier, and two versions of ``support``."""
    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    local = LocalClient(settings=Settings(home=tmp_path_factory.mktemp("ui-solutions")))
    tokens = {scope: local.tokens.create(f"ui-{scope}", [scope]).token
              for scope in ("admin", "read")}  # fmt: skip
    local.models.log("tickets", ticket_classifier())
    local.models.set_alias("tickets", 1, "champion")
    local.solutions.register(SUPPORT)
    local.solutions.register(SUPPORT_V2, description="a lawyer goes to a human")
    with serve_in_thread(create_app(client=local)) as url:
        yield Stoa(url, tokens)
    local.close()


def _run(page: Any, text: str) -> Any:
    page.fill("#run-input", text)
    with page.expect_response(re.compile(r"/ui/solutions/support/run$")) as answered:
        page.click("form.try-it button[type=submit]")
    assert answered.value.status == 200
    page.wait_for_selector("#run-result .run-result, #run-result .run-error")
    return page.locator("#run-result")


def test_the_list_shows_the_solution_and_filters_by_name(visitor) -> None:
    reader = visitor()
    page = reader.visit("/ui/solutions", "solutions")
    row = page.locator("tr", has=page.locator("a[href='/ui/solutions/support']"))
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "support" and cells[1] == "2", "latest version 2"
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", cells[3])
    assert page.locator("nav a[aria-current=page]").inner_text() == "Solutions"
    page = reader.visit("/ui/solutions?q=zzz")
    assert page.locator("table.solutions").count() == 0
    assert "No solution name contains “zzz”" in page.locator("main").inner_text()
    page = reader.visit("/ui/solutions?q=SUPP")
    assert page.locator("table.solutions tbody tr").count() == 1


def test_the_overview_counts_solutions(visitor) -> None:
    page = visitor().visit("/ui")
    card = page.locator("a.card[href='/ui/solutions']")
    assert card.locator(".n").inner_text() == "1"


def test_the_steps_are_boxes_in_order_with_their_routes(visitor) -> None:
    page = visitor().visit("/ui/solutions/support", "solution")
    boxes = page.locator("ol.flow > li.step")
    assert [boxes.nth(i).get_attribute("data-step") for i in range(boxes.count())] == STEPS
    kinds = page.locator("ol.flow > li.step .step-head .badge").all_inner_texts()
    assert kinds == ["rules", "classify", "respond", "respond", "respond"]
    policy = page.locator("#step-policy")
    rules = policy.locator("ol.step-rules > li")
    assert rules.count() == 4, "version 2 has four rules"
    assert "reject" in rules.nth(0).inner_text() and "We never ask" in rules.nth(0).inner_text()
    assert rules.nth(3).locator("a.route").inner_text() == "→ human"
    intent = page.locator("#step-intent")
    assert "tickets@champion" in intent.locator("dl.step-fields").inner_text()
    assert "below 0.45" in intent.locator("ul.step-routes").inner_text()
    assert intent.locator("a.route").get_attribute("href") == "#step-human"
    assert 'intent.label == "account"' in page.locator("#step-canned .step-when").inner_text()
    assert "handoff" in page.locator("#step-human dl.step-fields").inner_text()
    jumps = page.locator("#step-human .step-from a").all_inner_texts()
    assert jumps == ["policy", "intent"]
    assert "Security > Password" in page.locator("pre.spec-yaml").inner_text()
    # An older version shows its own steps and YAML:
    page = visitor().visit("/ui/solutions/support?version=1")
    assert page.locator("#step-policy ol.step-rules > li").count() == 3
    assert "Password." not in page.locator("pre.spec-yaml").inner_text()
    assert page.locator("tr.current a").inner_text() == "v1"


def test_choosing_two_versions_shows_their_diff(visitor) -> None:
    reader = visitor()
    page = reader.visit("/ui/solutions/support")
    page.evaluate("window.stillHere = true")
    assert page.locator("#diff-old").input_value() == "1", "the previous version by default"
    page.select_option("#diff-old", "2")
    page.select_option("#diff-new", "2")
    page.click("form.solution-diff button[type=submit]")
    page.wait_for_selector("#diff-result .hint")
    assert "same version twice" in page.locator("#diff-result").inner_text()
    page.select_option("#diff-old", "1")
    page.click("form.solution-diff button[type=submit]")
    page.wait_for_selector("#diff-result pre.diff")
    added = page.locator("#diff-result pre.diff .add").all_inner_texts()
    removed = page.locator("#diff-result pre.diff .del").all_inner_texts()
    assert any("Security > Password" in line for line in added)
    assert any("lawyer" in line for line in added)
    assert any(line.startswith("-") and 'Security."' in line for line in removed)
    assert page.locator("#diff-result .file").first.inner_text().startswith("--- support@1")
    assert page.evaluate("window.stillHere === true"), "htmx swapped the diff in place"
    assert not reader.errors
    reader.shoot("solution-diff")


def test_running_an_input_shows_the_answer_path_and_a_waterfall(visitor) -> None:
    reader = visitor()
    page = reader.visit("/ui/solutions/support")
    result = _run(page, "I forgot my password")
    assert (
        "Reset it under Settings > Security > Password." in result.locator("p.answer").inner_text()
    )
    facts = result.locator("dl.facts").inner_text()
    assert "policy → intent → canned" in facts
    assert result.locator(".run-head .badge").inner_text() == "ok"
    rows = result.locator("ol.waterfall > li.span-row")
    names = rows.locator(".span-name").all_inner_texts()
    assert names == ["solution support@2", "rules policy", "classify intent", "respond canned"]
    for i in range(rows.count()):
        box = rows.nth(i).locator(".span-bar").bounding_box()
        assert box is not None and box["width"] > 0, f"span {names[i]} has no bar"
    track = rows.nth(0).locator(".span-track").bounding_box()
    root = rows.nth(0).locator(".span-bar").bounding_box()
    assert root["width"] >= track["width"] * 0.99, "the root span spans the run"
    bars = [rows.nth(i).locator(".span-bar").bounding_box() for i in range(1, 4)]
    assert bars[0]["x"] <= bars[1]["x"] <= bars[2]["x"], "bars start in order"
    root_indent = rows.nth(0).locator(".span-name").bounding_box()["x"]
    assert rows.nth(1).locator(".span-name").bounding_box()["x"] > root_indent, "indented"
    assert "account at" in rows.nth(2).locator(".span-decision").inner_text()
    assert re.fullmatch(r"[\d.,]+ ms", rows.nth(2).locator(".span-ms").inner_text())
    attributes = rows.nth(2).locator("details.span-attrs")
    assert not attributes.locator("pre").is_visible()
    attributes.locator("summary").click()
    assert '"model": "tickets@1"' in attributes.locator("pre").inner_text()
    reader.check_accessibility("/ui/solutions/support (after a run)")
    assert not reader.errors
    reader.shoot("solution-run")


def test_a_json_object_runs_and_a_routed_request_skips_steps(visitor) -> None:
    page = visitor().visit("/ui/solutions/support")
    result = _run(page, '{"text": "my lawyer will call"}')
    assert result.locator(".run-head .badge").inner_text() == "handoff"
    assert "policy → human" in result.locator("dl.facts").inner_text()
    assert result.locator("li.span-row").count() == 3


def test_an_older_version_runs_as_itself(visitor) -> None:
    page = visitor().visit("/ui/solutions/support?version=1")
    result = _run(page, "I forgot my password")
    assert result.locator("p.answer").inner_text() == "Reset it under Settings > Security."
    assert result.locator(".span-name").first.inner_text() == "solution support@1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "the input is list; it must be a JSON object or a string"),
        ('{"text": ', "the input starts like JSON but does not parse"),
        ("   ", "type an input to run"),
    ],
)
def test_a_bad_input_is_a_message_in_the_page(visitor, text, message) -> None:
    reader = visitor()
    page = reader.visit("/ui/solutions/support")
    page.evaluate("window.stillHere = true")
    page.fill("#run-input", text)
    page.evaluate("document.querySelector('#run-input').required = false")
    page.click("form.try-it button[type=submit]")
    page.wait_for_selector("#run-result .run-error")
    alert = page.locator("#run-result [role=alert]").inner_text()
    assert message in alert and "Fix:" in alert
    assert page.evaluate("window.stillHere === true")
    assert page.locator("ol.flow > li.step").count() == len(STEPS), "the page is intact"
    if text == "[1]":
        reader.shoot("solution-bad-input")


def test_the_try_it_box_works_without_javascript(browser, stoa) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{stoa.url}/ui/login")
    page.fill("#token", stoa.tokens["read"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{stoa.url}/ui")
    page.goto(f"{stoa.url}/ui/solutions/support")
    page.fill("#run-input", "I was charged twice for my order")
    page.click("form.try-it button[type=submit]")
    page.wait_for_selector("#run-result .run-result")
    assert "policy → intent → final" in page.locator("#run-result dl.facts").inner_text()
    assert page.locator("ol.flow > li.step").count() == len(STEPS)
    page.goto(f"{stoa.url}/ui/solutions/support/diff?old=1&new=2")
    assert page.locator("#diff-result pre.diff .add").count() >= 2
    context.close()


def test_a_post_from_another_site_is_refused(visitor, stoa) -> None:
    reader = visitor()
    reader.visit("/ui/solutions/support")
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    url = f"{stoa.url}/ui/solutions/support/run"
    refused = httpx.post(url, data={"input": "hi"}, cookies={"stoa_session": secret},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert refused.status_code == 403
    assert "must be sent from the dashboard" in refused.text
    same = httpx.post(url, data={"input": "hi", "version": "2"},
                      cookies={"stoa_session": secret},
                      headers={"Origin": stoa.url, "HX-Request": "true"})  # fmt: skip
    assert same.status_code == 200 and "<html" not in same.text
    assert "Hello hi! How can I help?" in same.text


def test_unknown_names_and_versions_are_error_pages(visitor) -> None:
    reader = visitor()
    page = reader.visit("/ui/solutions/no-such", "solution-missing", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    assert "no solution named 'no-such'" in page.locator("[role=alert]").inner_text()
    page = reader.visit("/ui/solutions/support?version=9", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    assert "support" in page.locator("[role=alert]").inner_text()
    page = reader.visit("/ui/solutions/support/diff?old=1&new=7", expect_errors=True)
    assert "404" in " ".join(reader.errors)
    page = reader.visit("/ui/solutions/support?version=0", expect_errors=True)
    assert "422" in " ".join(reader.errors)
    assert "version" in page.locator("[role=alert]").inner_text()


def _span(name: str, span_id: str, parent: str | None, start: int, end: int) -> dict[str, Any]:
    return {"name": name, "span_id": span_id, "parent_id": parent, "start_ns": start,
            "end_ns": end, "status": "OK", "message": "", "attributes": {}}  # fmt: skip


def test_the_waterfall_places_nests_and_never_hides_a_span() -> None:
    from stoa.ui.pages.solutions import MIN_BAR_PCT, waterfall

    rows = waterfall([
        _span("root", "r", None, 1_000, 2_000),
        _span("late", "b", "r", 1_500, 2_000),
        _span("early", "a", "r", 1_000, 1_250),
        _span("instant", "c", "b", 2_000, 2_000),
        _span("unfinished", "d", "r", 1_900, 0),
        _span("orphan", "o", "gone", 1_100, 1_200),
    ])  # fmt: skip
    by = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == [
        "root",
        "early",
        "late",
        "instant",
        "unfinished",
        "orphan",
    ], "children under their parent, in start order; an orphan is a root"
    assert (by["root"]["offset"], by["root"]["width"]) == (0, 100)
    assert (by["early"]["offset"], by["early"]["width"]) == (0, 25)
    assert (by["late"]["offset"], by["late"]["width"]) == (50, 50)
    assert [by[n]["depth"] for n in ("root", "late", "instant", "orphan")] == [0, 1, 2, 0]
    assert by["instant"]["width"] == MIN_BAR_PCT, "a zero-length span still shows"
    assert by["instant"]["offset"] + by["instant"]["width"] <= 100
    assert by["unfinished"]["width"] == 10 and by["unfinished"]["ms"] == 100 / 1e6
    assert waterfall([]) == []


def test_typed_input_is_text_or_json() -> None:
    from stoa.core.errors import InvalidInputError
    from stoa.ui.pages.solutions import parse_input

    assert parse_input("hi there") == "hi there"
    assert parse_input(' {"text": "hi"} ') == {"text": "hi"}
    assert parse_input("[1]") == [1], "the runner refuses it, with its own message"
    with pytest.raises(InvalidInputError, match="starts like JSON but does not parse") as bad:
        parse_input("{oops")
    assert bad.value.field == "input" and "JSON object" in bad.value.fix
    with pytest.raises(InvalidInputError, match="type an input to run"):
        parse_input(" \n ")


def test_every_step_kind_shows_its_key_fields() -> None:
    from stoa.ui.pages.solutions import flow

    boxes = flow("""\
steps:
  - id: vec
    kind: embed
  - id: docs
    kind: retrieve
    kb: handbook
    k: 3
    mode: lexical
    min_score: 0.2
    filter: {lang: input.lang}
  - id: answer
    kind: generate
    provider: local
    model: smol@1
    prompt: answer@2
    passages: docs
    fallbacks: [{provider: extractive}]
  - id: triage
    kind: call
    when: answer.text == ""
    solution: support@2
""")
    fields = {b["id"]: dict(b["fields"]) for b in boxes}
    assert [b["kind"] for b in boxes] == ["embed", "retrieve", "generate", "call"]
    assert fields["vec"] == {"embedder": "minilm", "text": "input.text"}
    assert fields["docs"] == {"kb": "handbook", "k": "3", "mode": "lexical", "query": "input.text",
                              "min score": "0.2", "filter lang": "input.lang"}  # fmt: skip
    assert fields["answer"] == {"provider": "local", "model": "smol@1", "prompt": "answer@2",
                                "passages": "docs", "fallback": "extractive"}  # fmt: skip
    assert fields["triage"] == {"solution": "support@2", "input": "input"}
    assert boxes[3]["when"] == 'answer.text == ""' and boxes[3]["index"] == 4
    assert flow("steps: [") == [], "a spec that no longer parses draws no boxes"
