"""``solutions eval``: every row runs as a request, judges score it, a run is logged."""

from __future__ import annotations

import json

import pytest

from stoa.core.errors import InvalidInputError

ECHO = """\
name: echo
steps:
  - id: policy
    kind: rules
    rules:
      - when: input.text.contains("password")
        reject: We never ask for your password.
  - id: reply
    kind: respond
    template: "{{ input.text }}"
"""

ROWS = [
    {"input": "The refund arrives within five business days.",
     "reference": "Refunds arrive within five business days."},
    {"input": {"text": "send me your password"}, "reference": "We never ask for your password."},
    {"input": "Parcels ship from Rotterdam every weekday.",
     "reference": "Parcels leave Rotterdam on weekdays."},
]  # fmt: skip


def _jsonl(rows: list[dict]) -> str:
    return "\n".join(json.dumps(r) for r in rows) + "\n"


@pytest.mark.slow
def test_eval_scores_every_row_and_logs_a_run(both):
    local, remote, _ = both
    local.solutions.register(ECHO)
    report = remote.solutions.evaluate("echo", _jsonl(ROWS), judges=["embedding"])
    assert report["solution"] == "echo@1" and report["sample"] == report["of"] == 3
    assert report["statuses"] == {"ok": 2, "rejected": 1}
    correctness = report["scores"]["embedding"]["correctness"]
    assert (
        correctness["n"] == 3
        and correctness["ci95"][0] <= correctness["mean"] <= correctness["ci95"][1]
    )
    assert correctness["mean"] > 0.5  # every answer says what its reference says
    run = local.runs.get(report["run_id"])
    assert run.tags["kind"] == "solution-eval" and run.params["solution"] == "echo@1"
    assert run.metrics["embedding.correctness"] == pytest.approx(correctness["mean"])


@pytest.mark.slow
def test_a_sample_is_seeded_and_stated(both):
    local, _, _ = both
    local.solutions.register(ECHO)
    first = local.solutions.evaluate("echo", _jsonl(ROWS * 4), sample=5, seed=3)
    again = local.solutions.evaluate("echo", _jsonl(ROWS * 4), sample=5, seed=3)
    assert first["sample"] == 5 and first["of"] == 12
    assert first["scores"] == again["scores"]


@pytest.mark.parametrize(
    ("dataset", "judges", "says"),
    [
        ("not json\n", ["embedding"], "line 1 is not JSON"),
        ('{"reference": "x"}\n', ["embedding"], "line 1 has no input"),
        ('{"input": "x", "reference": 3}\n', ["embedding"], "line 1: reference must be text"),
        ("\n\n", ["embedding"], "the set has no rows"),
        ('{"input": "x"}\n', ["gpt-judge"], "unknown judge 'gpt-judge'"),
        ('{"input": "x"}\n', ["llm:nowhere"], "unknown provider 'nowhere'"),
        ('{"input": "x"}\n', [], "name at least one judge"),
    ],
)
def test_bad_sets_and_judges_are_refused(both, dataset, judges, says):
    local, remote, _ = both
    local.solutions.register(ECHO)
    for client in (local, remote):
        with pytest.raises(InvalidInputError, match=says):
            client.solutions.evaluate("echo", dataset, judges=judges)
    assert local.runs.search() == [] or all(
        r.tags.get("kind") != "solution-eval" for r in local.runs.search()
    )
