"""Spec validation: every malformed spec gets the line, the field and the fix."""

from __future__ import annotations

import json

import pytest

from stoa.develop.solution.plan import compile_plan
from stoa.develop.solution.spec import SpecError, json_schema, parse_spec

GOOD = """\
name: support
steps:
  - id: policy
    kind: rules
    rules:
      - when: 'input.text.contains("password")'
        reject: We never ask for passwords.
      - when: size(input.text) < 3
        route: final
      - when: '"vip" in input.tags'
        tag: vip
  - id: intent
    kind: classify
    model: tickets@champion
    thresholds:
      - below: 0.5
        route: final
  - id: docs
    kind: retrieve
    kb: guide
    filter: {lang: input.lang}
  - id: answer
    kind: generate
    provider: extractive
    passages: docs
    params: {max_tokens: 64}
  - id: final
    kind: respond
    template: "{{ answer.text if answer is defined else 'Tell me more' }}"
"""


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        compile_plan(text)
    return caught.value


def test_a_good_spec_compiles_with_every_expression():
    plan = compile_plan(GOOD)
    assert [s.id for s in plan.steps] == ["policy", "intent", "docs", "answer", "final"]
    assert plan.steps[0].expressions["rules.2"].names == {"input"}
    assert plan.positions["final"] == 4


@pytest.mark.parametrize(
    ("change", "line", "says", "fix"),
    [
        (
            ("kind: classify", "kind: clasify"),
            13,
            "unknown kind 'clasify'",
            "did you mean 'classify'",
        ),
        (("    kind: retrieve\n", ""), 18, "has no kind", "add `kind:`"),
        (
            ("params: {max_tokens: 64}", "params: {max_tokenz: 64}"),
            26,
            "unknown field 'max_tokenz'",
            "stoa solutions schema",
        ),
        (
            ("        route: final\n      - when", "        route: polcy\n      - when"),
            9,
            "routes to 'polcy', which is no step id",
            None,
        ),
        (
            (
                "      - below: 0.5\n        route: final",
                "      - below: 0.5\n        route: policy",
            ),
            17,
            "routes back to 'policy'",
            "route to a later step",
        ),
        (("kb: guide", "kb: guide\n    k: 0"), 21, "greater than or equal to 1", None),
        (("id: answer", "id: Answer"), 22, "should match pattern", "lower-case letters"),
        (("id: docs", "id: intent"), 18, "step id 'intent' is used twice", None),
        (("passages: docs", "passages: policy"), 25, "'policy' is not a retrieve step", None),
        (
            ("reject: We never ask for passwords.", "reject: nope\n        tag: x"),
            6,
            "exactly one action of respond, reject, route or tag, not reject and tag",
            None,
        ),
        (("size(input.text) < 3", "size(input.txt) < 3 ||"), 8, "is not valid CEL", "write CEL"),
        (
            ("filter: {lang: input.lang}", "filter: {lang: answer.lang}"),
            21,
            "reads 'answer', which is neither the input nor a step that runs before it",
            None,
        ),
        (("input.tags'", "inptu.tags'"), 10, "reads 'inptu'", "did you mean 'input'"),
        (
            ("answer.text if", "answer.__class__ if"),
            29,
            "reaches for '__class__'",
            "read only the context",
        ),
        (("'Tell me more' }}", "'Tell me more' }"), 29, "template syntax error", "Jinja2 syntax"),
    ],
)
def test_malformed_specs_name_the_line_and_the_fix(change, line, says, fix):
    old, new = change
    assert old in GOOD
    error = _error(GOOD.replace(old, new, 1))
    assert error.line == line, str(error)
    assert says in error.message, str(error)
    if fix:
        assert fix in (error.fix or ""), str(error)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("steps: [", "the YAML does not parse"),
        ("- just\n- a list\n", "must be a mapping with a steps list"),
        ("steps: []\n", "List should have at least 1 item"),
        ("steps:\n  - 3\n", "step 1 is not a mapping"),
        ("steps:\n  - id: a\n    kind: respond\n    template: yes\n", "valid string"),
        ("name: x\nsteps:\n  - id: a\n    kind: respond\n", "needs a template, data, or both"),
        (b"\xff\xfe", "not UTF-8"),
        (
            "steps:\n  - id: a\n    kind: respond\n    template: x\n    status: Bad Status\n",
            "should match pattern",
        ),
    ],
)
def test_more_malformed_specs(text, says):
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert says in caught.value.message


def test_an_unsafe_expression_is_not_python():
    # CEL has no eval, no imports and no attribute walk: these are parse or name errors.
    for expression in [
        "__import__('os').system('id')",
        "input.text.system()",
        "open('/etc/passwd')",
    ]:
        spec = f'steps:\n  - id: a\n    kind: respond\n    when: "{expression}"\n    template: x\n'
        error = _error(spec)
        assert error.line == 4
        assert "is not a CEL function" in error.message or "reads" in error.message


def test_comprehension_variables_are_not_unknown_names():
    spec = ("steps:\n  - id: a\n    kind: respond\n"
            "    when: input.words.exists(w, w == 'refund')\n    template: x\n")  # fmt: skip
    assert compile_plan(spec).steps[0].when.names == {"input"}


def test_the_published_schema_matches_the_models(tmp_path):
    schema = json_schema()
    kinds = {d["properties"]["kind"]["const"] for d in schema["$defs"].values()
             if "kind" in d.get("properties", {})}  # fmt: skip
    assert kinds == {"rules", "classify", "embed", "retrieve", "generate", "respond", "call"}
    from pathlib import Path

    published = Path(__file__).parents[3] / "docs" / "solution.schema.json"
    assert json.loads(published.read_text()) == schema, (
        "docs/solution.schema.json is stale: stoa solutions schema > docs/solution.schema.json"
    )


def test_the_example_in_the_docs_compiles():
    import re
    from pathlib import Path

    page = (Path(__file__).parents[3] / "docs" / "solutions.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", page, re.S).group(1)
    plan = compile_plan(example)
    assert {s.kind for s in plan.steps} == {
        "rules",
        "classify",
        "embed",
        "retrieve",
        "generate",
        "respond",
        "call",
    }
