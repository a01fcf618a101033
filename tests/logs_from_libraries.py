"""Log files written by the real libraries whose formats mlobs reads (not typed by hand).

structlog (JSONRenderer + ISO TimeStamper), python-json-logger (stdlib logging, `asctime`, seconds),
and the OpenTelemetry SDK (ConsoleSpanExporter pretty JSON; OTLP JSON through the SDK's own protobuf
encoder and protobuf's JSON mapping).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path


def write_structlog(path: Path, requests: list[dict]) -> Path:
    """Each request: milestones and a prediction summary, through structlog's JSONRenderer."""
    import structlog

    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(file=out),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
    for req in requests:
        log = logger.bind(request_id=req["request_id"], model_version=req["model_version"])
        for name in ("request_received", "features_fetched", "inference_done", "response_sent"):
            log.info(name)
        log.info(
            "prediction",
            user_id=req.get("user_id", "user_1"),
            latency_ms=req["latency_ms"],
            inference_ms=req.get("inference_ms"),
            status=req.get("status", 200),
        )
    path.write_text(out.getvalue())
    return path


def write_python_json_logger(path: Path, requests: list[dict]) -> Path:
    """stdlib logging + python-json-logger: `asctime`, `levelname`, camelCase extras, seconds."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # python-json-logger < 3
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

    logger = logging.getLogger(f"mlobs-test-{path.name}")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode="w")
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(message)s")
    formatter.converter = time.gmtime  # UTC asctime
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    try:
        for req in requests:
            logger.info(
                "prediction served",
                extra={
                    "requestId": req["request_id"],
                    "modelVersion": req["model_version"],
                    "latencySeconds": req["latency_ms"] / 1000.0,
                    "statusCode": req.get("status", 200),
                },
            )
    finally:
        handler.close()
        logger.removeHandler(handler)
    return path


def make_tracer_provider(exporter):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "predict", "model.version": "v2.1"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def record_predict_traces(provider, n: int = 3, sleep_s: float = 0.002) -> None:
    """Spans of a /predict request: server root, feature fetch, inference (with nested work)."""
    tracer = provider.get_tracer("mlobs-tests")
    for i in range(n):
        with tracer.start_as_current_span("POST /predict", kind=_server_kind()) as root:
            root.set_attribute("request_id", f"req-otel-{i}")
            root.set_attribute("http.response.status_code", 200)
            with tracer.start_as_current_span("features.fetch"):
                time.sleep(sleep_s)
            with tracer.start_as_current_span("model.inference"):
                time.sleep(sleep_s * 2)


def _server_kind():
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


def write_console_spans(path: Path, n: int = 3) -> Path:
    """The SDK's ConsoleSpanExporter output: pretty multi-line JSON objects written back to back."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    out = io.StringIO()
    provider = make_tracer_provider(ConsoleSpanExporter(out=out))
    record_predict_traces(provider, n)
    provider.shutdown()
    path.write_text(out.getvalue())
    return path


def write_otlp_json(path: Path, n: int = 3, *, hex_ids: bool = True) -> Path:
    """One OTLP JSON batch per line, as the Collector's file exporter writes.

    Encoded by the SDK's OTLP protobuf encoder and protobuf's JSON mapping (ids come out base64);
    with `hex_ids` the ids are rewritten to hex as the OTLP/JSON spec (and the Collector) writes them.
    """
    import base64

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = make_tracer_provider(exporter)
    record_predict_traces(provider, n)
    provider.shutdown()
    doc = MessageToDict(encode_spans(exporter.get_finished_spans()))
    if hex_ids:
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = base64.b64decode(span[key]).hex()
    path.write_text(json.dumps(doc) + "\n")
    return path
