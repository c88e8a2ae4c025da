"""Traces leave over OTLP/HTTP to a real receiver on loopback, with Stoa's own ids."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request, Response

from stoa.develop.solution import trace as tracing
from tests.servers import serve_in_thread


def _receiver() -> FastAPI:
    app = FastAPI()
    app.state.spans = []

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        message = ExportTraceServiceRequest.FromString(await request.body())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                app.state.spans.extend(scope.spans)
        return Response(b"", media_type="application/x-protobuf")

    return app


@pytest.fixture
def collector(monkeypatch):
    app = _receiver()
    with serve_in_thread(app) as url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/v1/traces")
        monkeypatch.setattr(tracing, "_EXPORT", [])  # a processor for this endpoint
        yield app
    tracing._EXPORT.clear()


def test_a_run_is_exported_with_its_ids_parents_and_status(collector, sqlite_client):
    sqlite_client.solutions.register(
        "name: t\nsteps:\n  - id: a\n    kind: respond\n    when: input.n > 0\n"
        '    template: "yes"\n'
    )
    ok = sqlite_client.solutions.run("t", {"n": 1})
    failed = sqlite_client.solutions.run("t", {"text": "no n"})
    tracing.flush()
    spans = {s.span_id.hex(): s for s in collector.state.spans}
    for result in (ok, failed):
        for mine in result["trace"]["spans"]:
            theirs = spans[mine["span_id"]]
            assert theirs.trace_id.hex() == result["trace"]["trace_id"]
            assert theirs.name == mine["name"]
            assert (theirs.parent_span_id.hex() or None) == mine["parent_id"]
            assert theirs.start_time_unix_nano == mine["start_ns"]
            assert theirs.end_time_unix_nano == mine["end_ns"]
    root = spans[failed["trace"]["spans"][0]["span_id"]]
    assert root.status.code == 2 and "input.n > 0" in root.status.message  # STATUS_CODE_ERROR
    step = spans[ok["trace"]["spans"][1]["span_id"]]
    attributes = {a.key: a.value.string_value for a in step.attributes}
    assert attributes["stoa.step.kind"] == "respond"


def test_no_endpoint_means_nothing_is_exported(monkeypatch, sqlite_client):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setattr(tracing, "_EXPORT", [])
    sqlite_client.solutions.register(
        "name: t\nsteps:\n  - id: a\n    kind: respond\n    template: x\n"
    )
    sqlite_client.solutions.run("t", "x")
    assert tracing._EXPORT == []


def test_long_outputs_stay_structured_with_each_text_cut() -> None:
    from stoa.develop.solution.trace import MAX_ATTRIBUTE, MAX_ITEMS, Trace

    trace = Trace()
    span = trace.start("retrieve")
    passages = [{"n": n, "text": "x" * 5000} for n in range(MAX_ITEMS + 5)]
    Trace.end(span, **{"stoa.outputs": {"passages": passages, "count": len(passages)}})
    kept = trace.to_dict()["spans"][0]["attributes"]["stoa.outputs"]
    assert kept["count"] == MAX_ITEMS + 5
    assert len(kept["passages"]) == MAX_ITEMS
    assert kept["passages"][3]["n"] == 3
    assert kept["passages"][3]["text"] == "x" * MAX_ATTRIBUTE + "…"
