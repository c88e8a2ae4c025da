"""Facts read from a logged prediction: its predicted label and confidence, its tags,
the passages it retrieved and the ones its answer cited.

A solution's trace keeps each step's outputs on its span (``stoa.outputs``), so a
classify step's confidence is found there even when a later step wrote the answer; a
model endpoint's answer is ``{"prediction": value}``. Span attributes longer than the
trace's limit are stored cut, as text, and are then skipped here rather than guessed.
"""

from __future__ import annotations

import re
from typing import Any

_CITE = re.compile(r"\[(\d{1,3})\]")
_TAG_DECISION = re.compile(r"→ tag (\S+)")


def step_outputs(trace: Any, kind: str) -> list[dict[str, Any]]:
    """The outputs of every ``kind`` step in a trace, in the order they ran."""
    spans = trace.get("spans") if isinstance(trace, dict) else None
    found = []
    for span in spans or []:
        attributes = span.get("attributes") or {}
        outputs = attributes.get("stoa.outputs")
        if attributes.get("stoa.step.kind") == kind and isinstance(outputs, dict):
            found.append(outputs)
    return found


def predicted_label(output: Any, trace: Any) -> tuple[Any, float | None]:
    """The label a prediction gave and its confidence (None when it had none): the
    answer's own ``label``, else the last classify step's, else a model's prediction."""
    if isinstance(output, dict) and isinstance(output.get("label"), str | int | bool):
        return output["label"], _confidence(output.get("confidence"))
    classified = step_outputs(trace, "classify")
    if classified:
        last = classified[-1]
        return last.get("label"), _confidence(last.get("confidence"))
    if isinstance(output, dict) and isinstance(output.get("prediction"), str | int | bool):
        return output["prediction"], None
    return None, None


def lowest_confidence(output: Any, trace: Any) -> float | None:
    """The smallest confidence any classify step (or the answer itself) reported."""
    values = [_confidence(o.get("confidence")) for o in step_outputs(trace, "classify")]
    if isinstance(output, dict):
        values.append(_confidence(output.get("confidence")))
    present = [v for v in values if v is not None]
    return min(present) if present else None


def tags_of(value: Any, output: Any, trace: Any) -> set[str]:
    """Tags from the request (``input.tags``), the answer (``output.tags``), rules steps
    and classify thresholds that tagged the run."""
    tags: set[str] = set()
    for holder in (value, output):
        if isinstance(holder, dict) and isinstance(holder.get("tags"), list):
            tags.update(t for t in holder["tags"] if isinstance(t, str))
    for outputs in step_outputs(trace, "rules"):
        tags.update(t for t in outputs.get("tags") or [] if isinstance(t, str))
    spans = trace.get("spans") if isinstance(trace, dict) else None
    for span in spans or []:
        decision = (span.get("attributes") or {}).get("stoa.decision")
        if isinstance(decision, str):
            tags.update(_TAG_DECISION.findall(decision))
    return tags


def context_of(output: Any, trace: Any) -> list[dict[str, Any]]:
    """The passages the prediction retrieved, each marked ``cited`` when the answer
    cites it (a generate step's citations or an ``[n]`` marker in the answer)."""
    passages: list[dict[str, Any]] = []
    for outputs in step_outputs(trace, "retrieve"):
        passages.extend(p for p in outputs.get("passages") or [] if isinstance(p, dict))
    if not passages and isinstance(output, dict) and isinstance(output.get("passages"), list):
        passages = [p for p in output["passages"] if isinstance(p, dict)]
    cited: set[int] = set()
    for outputs in step_outputs(trace, "generate"):
        cited.update(n for n in outputs.get("citations") or [] if isinstance(n, int))
    text = output.get("text") if isinstance(output, dict) else output
    if isinstance(text, str):
        cited.update(int(n) for n in _CITE.findall(text))
    return [{**p, "cited": p.get("n") in cited} for p in passages]


def _confidence(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None
