"""What a logged prediction said, in the terms judges and reviewers use: the question,
the passages retrieved for it (``outputs.context_of``), the answer and which passages
it cited.

A prediction stores its request's ``input``, its ``output`` and (when the endpoint logs
traces) every step's outputs. The question is the input's one text field (or the field
named ``question``, ``query``, ``text``, ``input``, ``prompt`` or ``message``), and the
answer is the output's ``text`` (or ``answer``); a model endpoint's prediction is shown
as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stoa.measure.outputs import context_of

_QUESTION_KEYS = ("question", "query", "text", "input", "prompt", "message")
_ANSWER_KEYS = ("text", "answer", "content", "output")


@dataclass
class Exchange:
    question: str
    answer: str
    #: Each retrieved passage, with ``cited`` when the answer cites it.
    passages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cited(self) -> list[int]:
        return [p["n"] for p in self.passages if p.get("cited")]

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer,
                "passages": self.passages, "cited": self.cited}  # fmt: skip


def exchange(row: Mapping[str, Any]) -> Exchange:
    """The question, answer and retrieved passages of one logged prediction."""
    output = row.get("output")
    return Exchange(
        _text(row.get("input"), _QUESTION_KEYS),
        _text(output, _ANSWER_KEYS),
        context_of(output, row.get("trace")),
    )


def _text(value: Any, keys: tuple[str, ...]) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in keys:
            if isinstance(value.get(key), str):
                return value[key]
        texts = [v for v in value.values() if isinstance(v, str)]
        if len(texts) == 1:
            return texts[0]
        if isinstance(value.get("messages"), list) and value["messages"]:
            last = value["messages"][-1]
            if isinstance(last, Mapping) and isinstance(last.get("content"), str):
                return last["content"]
    return json.dumps(value, default=str, ensure_ascii=False)
