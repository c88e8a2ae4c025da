"""A small OpenAI-compatible chat-completions server that answers from a script.

Each request takes the next step of the script (the last one repeats), so a test can
say "429, then an answer" or "always 500". Every request is recorded with its headers
and JSON body on ``app.state.requests``. Token counts are whitespace words, the
server's own tokenizer as far as a client can tell.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass(frozen=True)
class Step:
    """One scripted answer: an error status, a malformed body, or a reply."""

    reply: str = "hello there"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted failure"
    raw: str | None = None  # sent as the body as it is, with status 200
    usage: bool = True
    delay_s: float = 0.0
    finish: str = "stop"
    break_stream: bool = False  # a stream sends its first piece, then an error event


def words(text: str) -> int:
    return len(text.split())


def scripted_openai_app(script: Sequence[Step]) -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.script = list(script) or [Step()]  # a test may replace it between calls

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append({"headers": dict(request.headers), "body": body})
        steps = app.state.script
        step = steps[min(len(app.state.requests), len(steps)) - 1]
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.status != 200:
            payload = {"error": {"message": step.error, "type": "scripted"}}
            return JSONResponse(payload, status_code=step.status, headers=step.headers)
        if step.raw is not None:
            return Response(step.raw, media_type="application/json")
        usage = {
            "prompt_tokens": sum(words(m["content"]) for m in body["messages"]),
            "completion_tokens": words(step.reply),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            with_usage = step.usage and body.get("stream_options", {}).get("include_usage")
            events = _events(body["model"], step, usage if with_usage else None)
            return StreamingResponse(events, media_type="text/event-stream")
        answer: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": step.reply},
                    "finish_reason": step.finish,
                }
            ],
        }
        if step.usage:
            answer["usage"] = usage
        return JSONResponse(answer)

    return app


async def _events(model: str, step: Step, usage: dict[str, int] | None) -> AsyncIterator[str]:
    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
        return f"data: {json.dumps({**chunk, 'choices': choices, **extra})}\n\n"

    yield ": keep-alive\n\n"
    yield event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
    pieces = step.reply.split(" ")
    for i, piece in enumerate(pieces):
        text = piece if i == 0 else " " + piece
        yield event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        if step.break_stream:
            yield f"data: {json.dumps({'error': {'message': step.error}})}\n\n"
            return
    yield event([{"index": 0, "delta": {}, "finish_reason": step.finish}])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"
