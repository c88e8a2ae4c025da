"""What a logged prediction said, in the terms judges and reviewers use: the question,
the passages retrieved for it, the answer and the passages it cited.

A prediction stores its request's ``input``, its ``output`` and (when the endpoint logs
traces) every step's outputs. The question is the input's one text field (or the field
named ``question``, ``query``, ``text``, ``input``, ``prompt`` or ``message``), the
passages are the last retrieve step's, and the answer is the output's ``text`` (or
``answer``); a model endpoint's prediction is shown as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_QUESTION_KEYS = ("question", "query", "text", "input", "prompt", "message")
_ANSWER_KEYS = ("text", "answer", "content", "output")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass
class Exchange:
    question: str
    answer: str
    passages: list[dict[str, Any]] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "passages": [{**p, "cited": p.get("n") in self.cited} for p in self.passages],
            "cited": self.cited,
        }


def exchange(row: Mapping[str, Any]) -> Exchange:
    """The question, answer and retrieved passages of one logged prediction."""
    passages = _passages(row.get("trace"))
    answer = _text(row.get("output"), _ANSWER_KEYS)
    cited = _cited(row.get("output"), answer, {p.get("n") for p in passages})
    return Exchange(_text(row.get("input"), _QUESTION_KEYS), answer, passages, cited)


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


def _passages(trace: Any) -> list[dict[str, Any]]:
    """The passages of the last span whose outputs carry them (a retrieve step)."""
    if not isinstance(trace, Mapping):
        return []
    found: list[dict[str, Any]] = []
    for span in trace.get("spans") or []:
        outputs = (span.get("attributes") or {}).get("stoa.outputs")
        if isinstance(outputs, Mapping) and isinstance(outputs.get("passages"), list):
            found = [
                {
                    "n": p.get("n", i),
                    "text": str(p.get("text", "")),
                    "source": str(p.get("source", "")),
                    "score": p.get("score"),
                }
                for i, p in enumerate(outputs["passages"], start=1)
                if isinstance(p, Mapping)
            ]
    return found


def _cited(output: Any, answer: str, known: set[Any]) -> list[int]:
    """Citation numbers from the output's ``citations`` or the answer's ``[n]`` marks."""
    numbers: set[int] = set()
    if isinstance(output, Mapping) and isinstance(output.get("citations"), list):
        for c in output["citations"]:
            n = c.get("n") if isinstance(c, Mapping) else c
            if isinstance(n, int):
                numbers.add(n)
    for group in _CITATION.findall(answer):
        numbers.update(int(n) for n in group.split(","))
    return sorted(n for n in numbers if not known or n in known)
