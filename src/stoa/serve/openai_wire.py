"""The OpenAI Chat Completions wire format over an endpoint: ``model`` names the
endpoint, the response ``id`` is the prediction id, so feedback can be attached to it.

The solution gets ``{"text": <the last user message>, "messages": [...], "params":
{...}}``: sampling parameters a client sends (temperature, max_tokens, …) reach the
solution as data, and its own generate steps decide what to do with them. Streaming
sends the answer as server-sent events once the solution has run (a solution's steps
run to the end before its answer exists), then ``[DONE]``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stoa.core.errors import InvalidInputError

#: Sampling parameters passed through to the solution as ``input.params``.
PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    n: int = 1


def parse_chat(body: Any) -> ChatRequest:
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(
            f"{first['msg']}",
            field=where,
            fix='send {"model": ENDPOINT, "messages": [{"role": "user", "content": "…"}]}',
        ) from None
    if request.n != 1:
        raise InvalidInputError(
            f"n={request.n} is not supported: an endpoint gives one answer per request",
            field="n",
            fix="leave n out, or send several requests",
        )
    if not any(m.role == "user" and text_of(m.content) for m in request.messages):
        raise InvalidInputError(
            "no user message with text",
            field="messages",
            fix='add {"role": "user", "content": "…"}',
        )
    return request


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def solution_input(request: ChatRequest) -> dict[str, Any]:
    messages = [{"role": m.role, "content": text_of(m.content)} for m in request.messages]
    last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    extra = request.model_extra or {}
    params = {k: extra[k] for k in PARAMS if k in extra}
    return {"text": last_user, "messages": messages, "params": params}


def answer_text(output: Any) -> str:
    """The text of a solution's answer: its ``text`` or ``answer``, else its JSON."""
    if isinstance(output, dict):
        for key in ("text", "answer", "label"):
            if isinstance(output.get(key), str):
                return output[key]
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, default=str)


def finish_reason(status: str) -> str:
    return "content_filter" if status == "rejected" else "stop"


def completion(
    prediction_id: str, endpoint: str, variant: str, status: str, text: str, usage: dict
) -> dict[str, Any]:
    return {
        "id": prediction_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": endpoint,
        "system_fingerprint": f"{endpoint}/{variant}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason(status),
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def chunks(
    prediction_id: str,
    endpoint: str,
    variant: str,
    status: str,
    text: str,
    usage: dict[str, int],
    include_usage: bool,
) -> Iterator[str]:
    """Server-sent events: a role chunk, the text in word-sized pieces, the finish
    chunk, the usage chunk when asked for, then ``[DONE]``."""
    created = int(time.time())

    def event(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
        body = {
            "id": prediction_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": endpoint,
            "system_fingerprint": f"{endpoint}/{variant}",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for piece in re.findall(r"\s*\S+", text) or [text]:
        yield event({"content": piece})
    yield event({}, finish_reason(status))
    if include_usage:
        body = {
            "id": prediction_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": endpoint,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def usage_of(trace: dict[str, Any] | None, total: int) -> dict[str, int]:
    """Prompt and completion tokens from the generate spans of a trace."""
    prompt = completion_tokens = 0
    for span in (trace or {}).get("spans", []):
        attributes = span.get("attributes", {})
        prompt += int(attributes.get("gen_ai.usage.input_tokens") or 0)
        completion_tokens += int(attributes.get("gen_ai.usage.output_tokens") or 0)
    if not prompt and not completion_tokens:
        completion_tokens = total
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
