"""OpenTelemetry span exports -> plain span dicts: OTLP JSON and the Python SDK's ConsoleSpanExporter.

OTLP JSON: `resourceSpans[].resource.attributes`, `.scopeSpans[].spans[]`, hex (or base64) ids,
`...UnixNano` times as strings or numbers, attributes as key/value lists. Console: `context.trace_id`
as `0x` hex, `parent_id`, ISO `start_time`/`end_time`, flat `attributes`, `resource.attributes`.
Each span comes out as a dict with: trace_id, span_id, parent_span_id, name, kind, start, end
(epoch ns ints, or ISO strings for console spans), error, attrs (span attributes over resource ones).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

OTLP_KINDS = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _hex_id(value: Any) -> str | None:
    """Normalize an id to lowercase hex: hex as is, `0x` prefix stripped, base64 decoded."""
    if value is None or value == "":
        return None
    text = str(value)
    bare = text[2:] if text.startswith(("0x", "0X")) else text
    if len(bare) in (16, 32) and _HEX.match(bare):
        return bare.lower()  # hex, as OTLP/JSON and the console exporter (0x...) write ids
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.lower()
    if len(raw) in (8, 16):
        return raw.hex()
    return text.lower()


def _any_value(value: Any) -> Any:
    """Decode an OTLP AnyValue (`{"stringValue": ...}` and friends) into a Python value."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", []) or []]
    if "kvlistValue" in value:
        return otlp_attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def otlp_attributes(items: Any) -> dict[str, Any]:
    """`[{"key": k, "value": {...}}, ...]` -> `{k: value}`; malformed entries are ignored."""
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _nanos(value: Any) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def is_otlp_traces(obj: dict[str, Any]) -> bool:
    return "resourceSpans" in obj


def is_otlp_logs(obj: dict[str, Any]) -> bool:
    return "resourceLogs" in obj


def is_console_span(obj: dict[str, Any]) -> bool:
    ctx = obj.get("context")
    return isinstance(ctx, dict) and "span_id" in ctx and "name" in obj


def spans_from_otlp(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield span dicts from one OTLP JSON traces document (`{"resourceSpans": [...]}`)."""
    for rs in obj.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        resource = otlp_attributes((rs.get("resource") or {}).get("attributes"))
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        for ss in scopes:
            if not isinstance(ss, dict):
                continue
            for span in ss.get("spans") or []:
                if not isinstance(span, dict):
                    continue
                attrs = dict(resource)
                attrs.update(otlp_attributes(span.get("attributes")))
                kind = span.get("kind", 0)
                if isinstance(kind, str):  # "SPAN_KIND_SERVER"
                    kind_name = kind.rsplit("_", 1)[-1].lower()
                else:
                    kind_name = OTLP_KINDS.get(kind if isinstance(kind, int) else 0, "unspecified")
                status = span.get("status") or {}
                code = status.get("code") if isinstance(status, dict) else None
                yield {
                    "trace_id": _hex_id(span.get("traceId")),
                    "span_id": _hex_id(span.get("spanId")),
                    "parent_span_id": _hex_id(span.get("parentSpanId")),
                    "name": span.get("name"),
                    "kind": kind_name,
                    "start": _nanos(span.get("startTimeUnixNano")),
                    "end": _nanos(span.get("endTimeUnixNano")),
                    "error": code in (2, "STATUS_CODE_ERROR"),
                    "attrs": attrs,
                }


def span_from_console(obj: dict[str, Any]) -> dict[str, Any]:
    """A span dict from one ConsoleSpanExporter object."""
    ctx = obj.get("context") or {}
    attrs: dict[str, Any] = {}
    resource = obj.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("attributes"), dict):
        attrs.update(resource["attributes"])
    if isinstance(obj.get("attributes"), dict):
        attrs.update(obj["attributes"])
    kind = str(obj.get("kind") or "SpanKind.UNSPECIFIED").rsplit(".", 1)[-1].lower()
    status = obj.get("status") or {}
    code = status.get("status_code") if isinstance(status, dict) else None
    return {
        "trace_id": _hex_id(ctx.get("trace_id")),
        "span_id": _hex_id(ctx.get("span_id")),
        "parent_span_id": _hex_id(obj.get("parent_id")),
        "name": obj.get("name"),
        "kind": kind,
        "start": obj.get("start_time"),
        "end": obj.get("end_time"),
        "error": code == "ERROR",
        "attrs": attrs,
    }


def records_from_otlp_logs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Flatten OTLP log records into plain event dicts (attributes, body, ids, time)."""
    for rl in obj.get("resourceLogs") or []:
        if not isinstance(rl, dict):
            continue
        resource = otlp_attributes((rl.get("resource") or {}).get("attributes"))
        for sl in rl.get("scopeLogs") or []:
            if not isinstance(sl, dict):
                continue
            for rec in sl.get("logRecords") or []:
                if not isinstance(rec, dict):
                    continue
                event: dict[str, Any] = dict(resource)
                body = _any_value(rec.get("body"))
                if isinstance(body, dict):
                    event.update(body)
                elif body is not None:
                    event["message"] = body
                event.update(otlp_attributes(rec.get("attributes")))
                t = _nanos(rec.get("timeUnixNano")) or _nanos(rec.get("observedTimeUnixNano"))
                if t is not None:
                    event.setdefault("ts", t)
                if rec.get("traceId"):
                    event.setdefault("trace_id", _hex_id(rec.get("traceId")))
                if rec.get("spanId"):
                    event.setdefault("span_id", _hex_id(rec.get("spanId")))
                if rec.get("severityText"):
                    event.setdefault("level", rec.get("severityText"))
                yield event
