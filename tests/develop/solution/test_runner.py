"""Running solutions: paths, early ends, routes, overrides, call, traces and errors,
the same in process and over HTTP."""

from __future__ import annotations

import pytest

from stoa.core.errors import InvalidInputError, NotFoundError
from stoa.develop.solution.spec import SpecError
from tests.artifacts import SUPPORT_SPEC, ticket_classifier

SUPPORT = SUPPORT_SPEC


@pytest.fixture
def stores(both, sk_text_model):
    local, remote, _ = both
    local.models.log("tickets", sk_text_model)
    local.models.set_alias("tickets", 1, "champion")
    local.solutions.register(SUPPORT)
    return local, remote


@pytest.fixture(scope="module")
def sk_text_model():
    return ticket_classifier()


@pytest.mark.parametrize("side", ["local", "http"])
@pytest.mark.parametrize(
    ("text", "status", "path", "answer"),
    [
        ("please send me your password", "rejected", ["policy"], "We never ask for your password."),
        ("hi", "ok", ["policy"], "Hello hi! How can I help?"),
        ("I forgot my password", "ok", ["policy", "intent", "canned"], "Reset it under Settings"),
        ("I was charged twice for my order", "ok", ["policy", "intent", "final"], "your billing"),
        ("zebra quantum", "handoff", ["policy", "intent", "human"], "A colleague"),
    ],
)
def test_each_request_takes_its_path(stores, side, text, status, path, answer):
    client = stores[0] if side == "local" else stores[1]
    result = client.solutions.run("support", {"text": text})
    assert result["status"] == status
    assert result["path"] == path
    assert result["output"]["text"].startswith(answer) or answer in result["output"]["text"]
    assert result["ended_by"] == path[-1]
    spans = result["trace"]["spans"]
    assert spans[0]["name"] == "solution support@1" and spans[0]["parent_id"] is None
    assert [s["name"].split()[1] for s in spans[1:]] == path
    assert all(s["parent_id"] == spans[0]["span_id"] for s in spans[1:])
    assert all(s["trace_id"] == result["trace"]["trace_id"] for s in spans)
    assert all(s["end_ns"] >= s["start_ns"] > 0 for s in spans)


def test_the_trace_records_decisions_and_outputs(stores):
    local, _ = stores
    result = local.solutions.run("support", "I forgot my password " + "x" * 60)
    policy, intent = result["trace"]["spans"][1:3]
    assert policy["attributes"]["stoa.decision"] == "1 tag rule(s) matched"
    assert result["tags"] == ["long"]
    assert intent["attributes"]["stoa.outputs"]["label"] == "account"
    assert intent["attributes"]["stoa.outputs"]["model"] == "tickets@1"
    assert "account at" in intent["attributes"]["stoa.decision"]


def test_data_fields_are_cel_values(stores):
    result = stores[0].solutions.run("support", {"text": "the app crashes when saving " + "y" * 50})
    assert result["output"]["label"] == "bug"
    assert result["output"]["tags"] == ["long"]


def test_overrides_vary_one_step_without_a_new_version(stores):
    local, remote = stores
    changed = {"canned": {"template": "Changed answer."}}
    for client in (local, remote):
        result = client.solutions.run("support", "I forgot my password", overrides=changed)
        assert result["output"]["text"] == "Changed answer."
        assert result["solution"] == "support@1"
    with pytest.raises(SpecError, match="overrides name step 'nope'"):
        local.solutions.run("support", "x", overrides={"nope": {"k": 1}})
    with pytest.raises(
        InvalidInputError, match=r"invalid: steps\[2\].temperature: step 'canned': unknown field"
    ):
        remote.solutions.run("support", "x", overrides={"canned": {"temperature": 1}})


def test_a_moved_alias_takes_effect(stores, sk_text_model):
    local, _ = stores
    import numpy as np
    from sklearn.dummy import DummyClassifier

    always_bug = DummyClassifier(strategy="constant", constant="bug").fit(
        np.zeros((3, 1)), ["bug", "account", "billing"]
    )
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.pipeline import make_pipeline

    local.models.log(
        "tickets",
        make_pipeline(HashingVectorizer(n_features=8), always_bug).fit(
            ["a", "b", "c"], ["bug", "account", "billing"]
        ),
    )
    local.models.set_alias("tickets", 2, "champion")
    local._transport.solutions.forget()
    result = local.solutions.run("support", "I forgot my password")
    assert result["trace"]["spans"][2]["attributes"]["stoa.outputs"]["model"] == "tickets@2"


def test_call_runs_another_solution_inside_the_trace(stores):
    local, _ = stores
    local.solutions.register(
        "name: outer\nsteps:\n  - id: inner\n    kind: call\n    solution: support@1\n"
        "  - id: wrap\n    kind: respond\n    template: 'outer: {{ inner.output.text }}'\n"
    )
    result = local.solutions.run("outer", "I forgot my password")
    assert result["output"]["text"] == "outer: Reset it under Settings > Security."
    names = [s["name"] for s in result["trace"]["spans"]]
    assert names[:3] == ["solution outer@1", "call inner", "solution support@1"]
    call_span, inner_root = result["trace"]["spans"][1:3]
    assert inner_root["parent_id"] == call_span["span_id"]


def test_call_cycles_are_refused_at_registration(stores):
    local, _ = stores
    local.solutions.register("name: a\nsteps:\n  - id: s\n    kind: respond\n    template: x\n")
    local.solutions.register("name: b\nsteps:\n  - id: s\n    kind: call\n    solution: a\n")
    with pytest.raises(InvalidInputError, match="call steps form a cycle: a → b → a"):
        local.solutions.register("name: a\nsteps:\n  - id: s\n    kind: call\n    solution: b\n")
    assert local.solutions.show("a").version == 1  # nothing half-registered


@pytest.mark.parametrize(
    ("change", "says", "line"),
    [
        (("tickets@champion", "tickets@nope"), "tickets has no alias 'nope'", 14),
        (("tickets@champion", "ghost@1"), "no model named 'ghost'", 14),
    ],
)
def test_bad_references_are_errors_at_registration(stores, change, says, line):
    local, remote = stores
    for client in (local, remote):
        with pytest.raises(InvalidInputError) as caught:
            client.solutions.register(SUPPORT.replace(*change).replace("support", "other"))
        assert says in caught.value.message and f"line {line}" in caught.value.message
        with pytest.raises(NotFoundError):
            client.solutions.show("other")


@pytest.mark.parametrize("status", ["pending", "blocked"])
def test_a_model_the_gate_did_not_allow_is_refused_at_registration(stores, tmp_path, status):
    from tests.artifacts import malicious_pickle, write_safetensors

    local, _ = stores
    if status == "blocked":
        path = tmp_path / "model.pkl"
        path.write_bytes(malicious_pickle())
    else:  # a non-commercial licence goes to review
        path = tmp_path / "nc"
        path.mkdir()
        write_safetensors(path / "model.safetensors", 1.0)
        (path / "config.json").write_text("{}")
        (path / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# model\n")
    assert local.models.register("held", path).status == status
    with pytest.raises(SpecError, match=f"line 14: step 'intent': held@1 is {status} and will not"):
        local.solutions.register(SUPPORT.replace("tickets@champion", "held@1"))


def test_a_step_failure_returns_the_trace_up_to_it(stores):
    local, remote = stores
    local.solutions.register(
        "name: fragile\nsteps:\n  - id: a\n    kind: respond\n    when: input.n > 1\n"
        "    template: big\n  - id: b\n    kind: respond\n    template: small\n"
    )
    for client in (local, remote):
        result = client.solutions.run("fragile", {"text": "no n here"})
        assert result["status"] == "error"
        assert result["error"]["step"] == "a" and "input.n > 1" in result["error"]["message"]
        assert result["path"] == []
        assert client.solutions.run("fragile", {"n": 5})["output"]["text"] == "big"


def test_bad_inputs_are_refused_clearly(stores):
    local, remote = stores
    for client in (local, remote):
        with pytest.raises(InvalidInputError, match="must be a JSON object or a string"):
            client.solutions.run("support", [1, 2])
        with pytest.raises(NotFoundError, match="no solution named 'ghost'"):
            client.solutions.run("ghost", "x")


def test_versions_diff_and_spec(stores):
    local, remote = stores
    local.solutions.register(SUPPORT.replace("Reset it under", "Reset your password under"))
    assert remote.solutions.spec("support@1") == SUPPORT
    diff = remote.solutions.diff("support@2", against="support@1")
    assert '-    template: "Reset it under Settings > Security."' in diff
    assert '+    template: "Reset your password under Settings > Security."' in diff
    assert [v.version for v in remote.solutions.versions("support")] == [1, 2]


def test_unused_prompt_variables_are_warnings_and_missing_ones_errors(stores):
    local, _ = stores
    local.prompts.register("ask", "Answer: {{ question }}")
    spec = ("name: gen\nsteps:\n  - id: answer\n    kind: generate\n    provider: extractive\n"
            "    prompt: ask@1\n    vars: {question: input.text, extra: input.text}\n")  # fmt: skip
    result = local.solutions.register(spec)
    assert result.warnings == ["step 'answer': vars extra are not used by ask@1"]
    with pytest.raises(SpecError, match=r"line 6: step 'answer': ask@1 needs the variable\(s\) "
                                        "question, which vars does not give"):  # fmt: skip
        local.solutions.register(spec.replace("question: input.text, ", ""))


def test_reject_reasons_are_templates_and_overrides_are_checked_like_specs(stores):
    local, _ = stores
    local.solutions.register(
        "name: gate\nsteps:\n  - id: a\n    kind: rules\n    rules:\n"
        "      - when: 'true'\n        reject: 'Refused: {{ input.text | upper }}'\n"
    )
    result = local.solutions.run("gate", "spam")
    assert result["status"] == "rejected" and result["output"]["reason"] == "Refused: SPAM"
    with pytest.raises(InvalidInputError, match="the template reads nope, which is neither"):
        local.solutions.run("support", "x", overrides={"final": {"template": "{{ nope }}"}})
