"""Traces: one span per step, in OpenTelemetry's model, exported over OTLP when asked.

A span has a 128-bit trace id, a 64-bit span id, its parent, a name, start and end
times in Unix nanoseconds, attributes and a status (``OK`` or ``ERROR`` with a
message), so any OTel backend (Jaeger, Tempo, Langfuse, Phoenix) shows a Stoa run
as it shows any other trace. The runner keeps the spans itself, because the trace is
also part of the answer and of the prediction log; when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``…_TRACES_ENDPOINT``) is set, finished traces are also handed to the OTel SDK's
OTLP/HTTP exporter in a background batch, with the same ids.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: Text longer than this is cut: a trace carries facts, not documents.
MAX_ATTRIBUTE = 2000
#: Lists and mappings inside an attribute keep at most this many items.
MAX_ITEMS = 50


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "OK"
    message: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "message": self.message,
            "attributes": self.attributes,
        }


class Trace:
    """The spans of one run, in the order they started."""

    def __init__(self, trace_id: str | None = None):
        self.trace_id = trace_id or secrets.token_hex(16)
        self.spans: list[Span] = []

    def start(self, name: str, parent: Span | None = None, **attributes: Any) -> Span:
        span = Span(
            name=name,
            trace_id=self.trace_id,
            span_id=secrets.token_hex(8),
            parent_id=parent.span_id if parent else None,
            start_ns=time.time_ns(),
            attributes={k: _attribute(v) for k, v in attributes.items()},
        )
        self.spans.append(span)
        return span

    @staticmethod
    def end(span: Span, *, error: str | None = None, **attributes: Any) -> None:
        span.end_ns = time.time_ns()
        span.attributes.update({k: _attribute(v) for k, v in attributes.items()})
        if error is not None:
            span.status, span.message = "ERROR", error

    def to_dict(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "spans": [s.to_dict() for s in self.spans]}


def _attribute(value: Any) -> Any:
    """A JSON-safe attribute. Text is cut to ``MAX_ATTRIBUTE`` characters and lists to
    ``MAX_ITEMS`` items, inside structures too, so a step's outputs (the passages a
    retrieve step found) stay structured: reviewers and judges read them back."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_ATTRIBUTE else value[:MAX_ATTRIBUTE] + "…"
    try:
        plain = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return _attribute(repr(value))
    return _shrunk(plain)


def _shrunk(value: Any) -> Any:
    if isinstance(value, str):
        return _attribute(value)
    if isinstance(value, list):
        return [_shrunk(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {k: _shrunk(v) for k, v in list(value.items())[:MAX_ITEMS]}
    return value


# --- OTLP export ---------------------------------------------------------------------

_EXPORT: list[Any] = []
_EXPORT_LOCK = threading.Lock()


def otlp_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def export(trace: Trace) -> None:
    """Hand a finished trace to the OTLP exporter when one is configured; never raises
    into the run (a collector that is down costs a log line, not an answer)."""
    if not otlp_configured():
        return
    processor = _processor()
    for span in trace.spans:
        processor.on_end(_readable(span))


def flush(timeout_ms: int = 10_000) -> None:
    """Send what is queued (tests, and a server shutting down)."""
    with _EXPORT_LOCK:
        if _EXPORT:
            _EXPORT[0].force_flush(timeout_ms)


def _processor() -> Any:
    with _EXPORT_LOCK:
        if not _EXPORT:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            _EXPORT.append(BatchSpanProcessor(OTLPSpanExporter()))
        return _EXPORT[0]


def _readable(span: Span) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    trace_id, span_id = int(span.trace_id, 16), int(span.span_id, 16)
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
    parent = (
        SpanContext(trace_id, int(span.parent_id, 16), is_remote=False, trace_flags=flags)
        if span.parent_id
        else None
    )
    status = (
        Status(StatusCode.ERROR, span.message) if span.status == "ERROR" else Status(StatusCode.OK)
    )
    attributes = {
        k: v if isinstance(v, str | bool | int | float) else json.dumps(v)
        for k, v in span.attributes.items()
        if v is not None
    }
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "stoa")}),
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        status=status,
        start_time=span.start_ns,
        end_time=span.end_ns,
    )
