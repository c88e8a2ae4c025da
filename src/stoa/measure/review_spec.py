"""A review queue's spec: the rules that pick predictions, and the labels reviewers give.

rules:            # the first rule that matches is the item's reason
  - random: 0.05                      # a share of live predictions, fixed per id
  - low_confidence: 0.6               # a classify step below this confidence
  - low_judge_score: {criterion: correctness, below: 0.5}
  - judged: correctness               # every prediction a judge scored on it: the
                                      # sample that measures judge-human agreement
  - thumbs_down: true                 # a thumb of -1 from anyone
  - tags: [escalate, refund]          # request, rules or threshold tags
labels: [correct, partially, wrong]   # or {correct: 1, partially: 0.5, wrong: 0}
criterion: correctness                # the judge criterion the labels answer
corrections: true                     # reviewers may add a free-text correction
claim_timeout_s: 600                  # a claim lapses after this long
"""

from __future__ import annotations

import hashlib
from typing import Any

from stoa.core.errors import InvalidInputError

RULES = ("random", "low_confidence", "low_judge_score", "judged", "thumbs_down", "tags")
DEFAULT_LABELS = {"correct": 1.0, "partially": 0.5, "wrong": 0.0}
MAX_LABELS = 20
MAX_CLAIM_S = 7 * 24 * 3600
_FIELDS = ("rules", "labels", "criterion", "corrections", "claim_timeout_s")


def _bad(message: str, field: str, fix: str) -> InvalidInputError:
    return InvalidInputError(message, field=f"spec.{field}", fix=fix)


def _share(value: Any, field: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise _bad(f"{what} must be a number in (0, 1], not {value!r}", field, f"e.g. {field}: 0.1")
    return float(value)


def _rule(index: int, rule: Any) -> dict[str, Any]:
    where = f"rules[{index}]"
    if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in RULES:
        raise _bad(
            f"rule {index} must be one of {', '.join(RULES)} (one key per rule), not {rule!r}",
            where,
            "write e.g. {random: 0.05} or {low_confidence: 0.6}",
        )
    kind, value = next(iter(rule.items()))
    if kind == "random":
        return {"random": _share(value, f"{where}.random", "a random rate")}
    if kind == "low_confidence":
        return {"low_confidence": _share(value, f"{where}.low_confidence", "a confidence")}
    if kind == "thumbs_down":
        if value is not True:
            raise _bad("thumbs_down takes true", f"{where}.thumbs_down", "write thumbs_down: true")
        return {"thumbs_down": True}
    if kind == "judged":
        if not isinstance(value, str) or not value.strip():
            raise _bad(
                "judged takes a criterion name", f"{where}.judged", "e.g. judged: correctness"
            )
        return {"judged": value}
    if kind == "tags":
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise _bad("tags takes a list of tag names", f"{where}.tags", "e.g. tags: [escalate]")
        return {"tags": sorted(set(value))}
    judge = value if isinstance(value, dict) else {}
    criterion, below = judge.get("criterion"), judge.get("below")
    if set(judge) != {"criterion", "below"} or not isinstance(criterion, str) or not criterion:
        raise _bad(
            "low_judge_score takes {criterion: NAME, below: SCORE}",
            f"{where}.low_judge_score",
            "e.g. low_judge_score: {criterion: correctness, below: 0.5}",
        )
    return {
        "low_judge_score": {
            "criterion": criterion,
            "below": _share(below, f"{where}.low_judge_score.below", "a judge score threshold"),
        }
    }


def _labels(value: Any) -> list[dict[str, Any]]:
    """``[{"name", "score"}]`` in the order given. Names alone take the default scores
    of correct/partially/wrong, or scores spread evenly from 1 down to 0."""
    fix = "write labels: [correct, partially, wrong] or {correct: 1, partially: 0.5, wrong: 0}"
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        known = all(v in DEFAULT_LABELS for v in value)
        step = 1 / (len(value) - 1) if len(value) > 1 else 0.0
        pairs = [(v, DEFAULT_LABELS[v] if known else 1 - i * step) for i, v in enumerate(value)]
    else:
        raise _bad(f"labels must be a list of names or a name: score mapping, not {value!r}",
                   "labels", fix)  # fmt: skip
    if not 2 <= len(pairs) <= MAX_LABELS:
        raise _bad(f"give 2 to {MAX_LABELS} labels, not {len(pairs)}", "labels", fix)
    out = []
    for name, score in pairs:
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise _bad(f"a label name is 1 to 64 characters, not {name!r}", "labels", fix)
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise _bad(f"label {name!r} needs a score in [0, 1], not {score!r}", "labels", fix)
        out.append({"name": name, "score": float(score)})
    if len({p["name"] for p in out}) != len(out):
        raise _bad("label names must be distinct", "labels", fix)
    return out


def parse_spec(spec: Any) -> dict[str, Any]:
    """The spec checked and filled with defaults; every error names its field."""
    if not isinstance(spec, dict):
        raise InvalidInputError(
            "a queue spec is a mapping", field="spec", fix="give at least {rules: [...]}"
        )
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}", unknown[0], f"use {', '.join(_FIELDS)}")
    rules = spec.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _bad("a queue needs at least one rule", "rules", "e.g. rules: [{random: 0.05}]")
    criterion = spec.get("criterion", "correctness")
    if not isinstance(criterion, str) or not 0 < len(criterion) <= 48:
        raise _bad("criterion is a name of 1 to 48 characters", "criterion", "e.g. correctness")
    corrections = spec.get("corrections", True)
    if not isinstance(corrections, bool):
        raise _bad("corrections is true or false", "corrections", "write corrections: true")
    timeout = spec.get("claim_timeout_s", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        timeout = -1
    if not 0 < timeout <= MAX_CLAIM_S:
        raise _bad(
            f"claim_timeout_s must be in (0, {MAX_CLAIM_S}] seconds",
            "claim_timeout_s",
            "e.g. claim_timeout_s: 600",
        )
    return {
        "rules": [_rule(i, r) for i, r in enumerate(rules)],
        "labels": _labels(spec.get("labels", list(DEFAULT_LABELS))),
        "criterion": criterion,
        "corrections": corrections,
        "claim_timeout_s": float(timeout),
    }


def sampled(prediction_id: str, rate: float) -> bool:
    """Whether the random rule takes this prediction: a hash of its id, so every fill
    (and every process) decides the same way."""
    digest = hashlib.sha256(prediction_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def reason_for_prediction(
    rules: list[dict[str, Any]], prediction_id: str, confidence: float | None, tags: set[str]
) -> str | None:
    """The first rule a newly logged prediction matches (feedback rules wait for their
    feedback)."""
    for rule in rules:
        if "random" in rule and sampled(prediction_id, rule["random"]):
            return "random"
        low = rule.get("low_confidence")
        if low is not None and confidence is not None and confidence < low:
            return "low_confidence"
        if "tags" in rule and tags.intersection(rule["tags"]):
            return "tags"
    return None


def reason_for_feedback(rules: list[dict[str, Any]], kind: str, value: Any) -> str | None:
    """The first rule a feedback event matches: a thumbs-down, any judge score on a
    ``judged`` criterion, or one below a rule's threshold for its criterion."""
    for rule in rules:
        if "thumbs_down" in rule and kind == "thumb" and value == -1:
            return "thumbs_down"
        if "judged" in rule and kind == f"judge.{rule['judged']}":
            return "judged"
        judge = rule.get("low_judge_score")
        if (
            judge
            and kind == f"judge.{judge['criterion']}"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and value < judge["below"]
        ):
            return "low_judge_score"
    return None
