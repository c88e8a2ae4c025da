"""Data-plane routes, whose wire formats are fixed by their clients rather than derived
from a client method: ``/v1/endpoints/{name}/predict``, OpenAI's
``/v1/chat/completions`` and ``/v1/models``, MLflow's ``/invocations``,
``/v1/feedback``, ``/metrics`` and ``/readyz``.

Each route is a thin shell over ``stoa.serve.serving.Serving``, the same object the
Python client and the CLI call in process.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from starlette.routing import compile_path

from stoa.core.errors import InvalidInputError, NotFoundError, OverloadedError
from stoa.serve import metrics
from stoa.serve.mlflow_wire import parse_scoring_request
from stoa.serve.openai_wire import (
    answer_text,
    chunks,
    completion,
    parse_chat,
    solution_input,
    usage_of,
)
from stoa.serve.runtime import Outcome, PredictionFailed
from stoa.serve.server.gatekeeper import authenticate

PREDICTION_HEADER = "X-Stoa-Prediction-Id"
VARIANT_HEADER = "X-Stoa-Variant"
UNIT_HEADER = "X-Stoa-Unit-Id"

#: (method, path, scope) of every data-plane route, for the gatekeeper.
SCOPES = [
    ("POST", "/v1/endpoints/{name}/predict", "read"),
    ("POST", "/v1/endpoints/{name}/invocations", "read"),
    ("POST", "/invocations", "read"),
    ("POST", "/v1/chat/completions", "read"),
    ("GET", "/v1/models", "read"),
    ("POST", "/v1/feedback", "read"),
]


def scopes() -> list[tuple[str, re.Pattern[str], str]]:
    return [(method, compile_path(path)[0], scope) for method, path, scope in SCOPES]


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Any = Field(description="A JSON object (or a string, taken as {'text': …}).")
    unit_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The user, session or account the request is for: it keeps its variant.",
    )
    variant: str | None = Field(
        default=None, description="Force this variant (needs the write scope); for tests."
    )


class PredictOut(BaseModel):
    prediction_id: str
    endpoint: str
    variant: str
    status: str
    output: Any
    latency_ms: float
    tokens: int
    cost_usd: float


def build_dataplane_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/endpoints/{name}/predict",
        response_model=PredictOut,
        tags=["data plane"],
        summary="Predict with an endpoint; the answer carries the prediction id.",
    )
    async def predict(name: str, body: PredictIn, request: Request) -> JSONResponse:
        serving = _serving(request)
        _limit(request, serving, name)
        if body.variant is not None:
            _need_write(request)
        if "input" not in body.model_fields_set:
            raise InvalidInputError(
                "input is required", field="input", fix='send {"input": {…}} or {"input": "text"}'
            )
        unit = body.unit_id or request.headers.get(UNIT_HEADER)
        outcome = await serving.plane.apredict(name, body.input, unit_id=unit, variant=body.variant)
        if outcome.status == "error":
            raise PredictionFailed(outcome)
        return JSONResponse(outcome.to_dict(), headers=_headers(outcome))

    @router.post(
        "/v1/endpoints/{name}/invocations",
        tags=["data plane"],
        summary="MLflow's scoring protocol on a named endpoint.",
    )
    async def invocations_named(name: str, request: Request) -> JSONResponse:
        return await _invocations(request, name)

    @router.post(
        "/invocations",
        tags=["data plane"],
        summary="MLflow's scoring protocol on the endpoint `stoa serve` started.",
    )
    async def invocations(request: Request) -> JSONResponse:
        name = request.app.state.default_endpoint
        if name is None:
            raise NotFoundError(
                "this server has no default endpoint for /invocations",
                field="url",
                fix="start it with `stoa serve MODEL@ALIAS`, or POST to "
                "/v1/endpoints/NAME/invocations",
            )
        return await _invocations(request, name)

    @router.post(
        "/v1/chat/completions",
        tags=["data plane"],
        summary="OpenAI Chat Completions; model is the endpoint's name.",
    )
    async def chat(request: Request) -> Response:
        serving = _serving(request)
        chat_request = parse_chat(await _json(request))
        name = chat_request.model
        _limit(request, serving, name)
        forced = request.headers.get(VARIANT_HEADER)
        if forced:
            _need_write(request)
        unit = chat_request.user or request.headers.get(UNIT_HEADER)
        outcome = await serving.plane.apredict(
            name, solution_input(chat_request), unit_id=unit, variant=forced or None
        )
        if outcome.status == "error":
            raise PredictionFailed(outcome)
        reply = answer_text(outcome.output)
        usage = usage_of(outcome.extra.get("trace"), outcome.tokens)
        args = (outcome.prediction_id, name, outcome.variant, outcome.status, reply, usage)
        if chat_request.stream:
            include = bool(
                chat_request.stream_options and chat_request.stream_options.include_usage
            )
            return StreamingResponse(
                chunks(*args, include_usage=include),
                media_type="text/event-stream",
                headers={**_headers(outcome), "Cache-Control": "no-cache"},
            )
        return JSONResponse(completion(*args), headers=_headers(outcome))

    @router.get("/v1/models", tags=["data plane"], summary="The endpoints, as OpenAI's model list.")
    async def models(request: Request) -> dict[str, Any]:
        endpoints = await asyncio.to_thread(_serving(request).plane.endpoints.list)
        return {
            "object": "list",
            "data": [
                {
                    "id": e.name,
                    "object": "model",
                    "created": int(e.created_at.timestamp()),
                    "owned_by": e.created_by or "stoa",
                }
                for e in endpoints
            ],
        }

    @router.post(
        "/v1/feedback",
        status_code=201,
        tags=["data plane"],
        summary="Attach user actions or judgements to predictions; durable on 201.",
    )
    async def feedback(request: Request) -> dict[str, Any]:
        serving = _serving(request)
        _limit(request, serving, "feedback")
        payload = await _json(request)
        # The plane's pool: every waiting caller joins the next group commit, and asyncio's
        # default pool (6 threads here) would cap a group at 6 callers.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(serving.plane.pool, serving.add_feedback, payload)

    @router.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:  # in a thread: it may read files or ask Ray
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        serving = _serving(request)
        problems = await asyncio.to_thread(_readiness, request.app.state.client, serving)
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)

    return router


async def _invocations(request: Request, name: str) -> JSONResponse:
    serving = _serving(request)
    _limit(request, serving, name)
    body, kind = await request.body(), request.headers.get("content-type", "")
    unit = request.headers.get(UNIT_HEADER)

    def score() -> Outcome:  # parsing too runs on the plane's pool, off the event loop
        frame, logged = parse_scoring_request(body, kind)
        return serving.plane.model_frame(name, frame, unit_id=unit, logged_input=logged)

    # The plane's own pool, as /predict: asyncio's default pool has min(32, CPUs + 4)
    # threads, which would cap how many requests can wait in one adaptive batch.
    outcome = await asyncio.get_running_loop().run_in_executor(serving.plane.pool, score)
    if outcome.status == "error":
        raise PredictionFailed(outcome)
    return JSONResponse({"predictions": outcome.output}, headers=_headers(outcome))


def _serving(request: Request) -> Any:
    return request.app.state.client.stores.serving


def _headers(outcome: Outcome) -> dict[str, str]:
    return {PREDICTION_HEADER: outcome.prediction_id, VARIANT_HEADER: outcome.variant}


def _caller(request: Request) -> str:
    caller = request.scope.get("state", {}).get("stoa_caller")
    actor = getattr(caller, "actor", None) if caller is not None else None
    if actor and actor != "anonymous":
        return actor
    client = request.client
    return f"address:{client.host}" if client else "address:unknown"


def _limit(request: Request, serving: Any, name: str) -> None:
    if serving.limiter is None:
        return
    try:
        serving.limiter.take(_caller(request))
    except OverloadedError:
        metrics.RATE_LIMITED.labels(name).inc()
        raise


def _need_write(request: Request) -> None:
    """Forcing a variant bypasses the split: only callers who may change things may."""
    app = request.app
    authenticate(
        app.state.client, request.headers.get("authorization", ""), app.state.loopback, "write"
    )


async def _json(request: Request) -> Any:
    import json

    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(
            "the body is not valid JSON", field="body", fix="send a JSON body"
        ) from None


def _readiness(client: Any, serving: Any) -> list[str]:
    problems = []
    try:
        with client.stores.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if serving.closed:
        problems.append("shutting down")
    if serving.warming:
        problems.append("warming up: loading the endpoints' models")
    if not serving.logbook.alive:
        problems.append("logbook writer stopped")
    elif serving.logbook.depth >= serving.logbook.max_queue:
        problems.append("logbook queue full")
    return problems
