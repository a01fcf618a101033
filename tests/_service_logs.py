"""Logs of a simulated `/predict` service, written by the real libraries: structlog (milestones and
request summaries) and the OpenTelemetry SDK (spans, ConsoleSpanExporter and OTLP JSON)."""

from __future__ import annotations

import datetime as dt
import json
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import structlog

T0 = dt.datetime(2026, 11, 26, 10, 0, 0, 123, tzinfo=dt.timezone.utc)


class _Clock(dt.datetime):
    """A datetime whose `now()` is the simulated service's clock."""

    current = T0

    @classmethod
    def now(cls, tz: Any = None) -> dt.datetime:  # type: ignore[override]
        return cls.current


def structlog_service(
    path: Path, monkeypatch: pytest.MonkeyPatch, requests: Iterable[dict[str, Any]]
) -> None:
    """Write milestone events and a summary per request with structlog's JSONRenderer and
    TimeStamper(fmt="iso", utc=True); the stamper reads a simulated clock, so stage durations are
    exactly those asked for. Each request: {"id", "version", "fetch", "infer", "respond", ...extra}
    (milliseconds); "failed": True logs inference_failed and status 500."""
    monkeypatch.setattr(structlog.processors, "datetime", types.SimpleNamespace(
        datetime=_Clock, timezone=dt.timezone))  # fmt: skip
    with path.open("w") as out:
        structlog.configure(
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.PrintLoggerFactory(file=out),
            cache_logger_on_first_use=False,
        )
        try:
            clock = T0
            for req in requests:
                extra = {k: v for k, v in req.items()
                         if k not in {"id", "version", "fetch", "infer", "respond", "failed"}}  # fmt: skip
                log = structlog.get_logger().bind(request_id=req["id"],
                                                  model_version=req["version"])  # fmt: skip
                start = clock
                steps = [("request_received", 0.0), ("features_fetched", req["fetch"]),
                         ("inference_failed" if req.get("failed") else "inference_done",
                          req["infer"]), ("response_sent", req["respond"])]  # fmt: skip
                for event, ms in steps:
                    clock += dt.timedelta(microseconds=round(ms * 1000))
                    _Clock.current = clock
                    log.info(event)
                latency = (clock - start) / dt.timedelta(milliseconds=1)
                log.info("request", latency_ms=latency, inference_ms=req["infer"],
                         status=500 if req.get("failed") else 200, **extra)  # fmt: skip
                clock += dt.timedelta(milliseconds=7)
        finally:
            structlog.reset_defaults()


MS = 1_000_000
OTEL_T0 = 1_795_000_000_000_000_000


def otel_spans(tree: list[tuple[str, str | None, float, float, dict]]):
    """Finished SDK spans of one trace: (name, parent name, start ms, end ms, attributes)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("recsys")
    live: dict[str, Any] = {}
    for name, parent, start, _end, attrs in tree:
        ctx = trace.set_span_in_context(live[parent]) if parent else None
        kind = trace.SpanKind.SERVER if parent is None else trace.SpanKind.INTERNAL
        live[name] = tracer.start_span(name, context=ctx, kind=kind, attributes=attrs,
                                       start_time=OTEL_T0 + int(start * MS))  # fmt: skip
    for name, _parent, _start, end, attrs in sorted(tree, key=lambda t: t[3]):
        if attrs.get("error"):
            live[name].set_status(trace.Status(trace.StatusCode.ERROR))
        live[name].end(end_time=OTEL_T0 + int(end * MS))
    provider.shutdown()
    return memory.get_finished_spans()


def write_console(path: Path, spans) -> None:
    """What the SDK's ConsoleSpanExporter writes (pretty-printed JSON objects back to back)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    with path.open("w") as out:
        ConsoleSpanExporter(out=out).export(spans)


def write_otlp_json(path: Path, spans) -> None:
    """OTLP JSON of the spans, encoded by the SDK's own OTLP encoder, one request per line (as the
    Collector's file exporter writes). Trace and span ids come out base64, as protobuf JSON has it."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    doc = MessageToDict(encode_spans(spans))
    path.write_text(json.dumps(doc) + "\n")
