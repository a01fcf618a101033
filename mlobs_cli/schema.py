"""Canonical fields, their alias tables, units, and user overrides of the mapping.

A log key maps to a canonical field by its normalized name (lowercase, letters and digits only), so
`requestId`, `request.id` and `request_id` are one alias. Durations carry their unit in the key suffix
(`_ms`, `Ms`, `_us`, `_ns`, `_s`, `_seconds`); a duration key without a unit gets its unit from the data
at frame time (`guess_duration_unit`), and `mlobs schema` says so out loud.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlobs_cli.errors import UsageError

# The canonical fields, in the order `mlobs schema` lists them.
CANONICAL_FIELDS = (
    "ts",
    "request_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "model_version",
    "event",
    "stage",
    "latency_ms",
    "inference_ms",
    "status",
    "error",
    "level",
)

# Aliases by canonical field, highest priority first. Matching is on `normalize_key`.
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": (
        "ts",
        "timestamp",
        "@timestamp",
        "time",
        "asctime",
        "datetime",
        "date",
        "eventtime",
        "logtime",
        "created",
    ),
    "request_id": (
        "request_id",
        "requestId",
        "request.id",
        "req_id",
        "x_request_id",
        "http.request_id",
        "correlation_id",
        "rid",
    ),
    "trace_id": (
        "trace_id",
        "traceId",
        "trace.id",
        "otelTraceID",
        "dd.trace_id",
        "logging.googleapis.com/trace",
    ),
    "span_id": ("span_id", "spanId", "span.id", "otelSpanID", "dd.span_id"),
    "parent_span_id": ("parent_span_id", "parentSpanId", "parent_id", "parent.id"),
    "model_version": (
        "model_version",
        "modelVersion",
        "model.version",
        "ml.model.version",
        "model_ver",
        "model_revision",
    ),
    "event": ("event", "event_name", "eventName", "message", "msg"),
    "stage": ("stage", "stage_name", "step", "phase"),
    "status": (
        "status",
        "status_code",
        "statusCode",
        "http_status",
        "http.status_code",
        "http.response.status_code",
        "response.status",
        "response.status_code",
    ),
    "error": ("error", "err", "exception", "exc_info", "error.type", "error_type"),
    "level": ("level", "levelname", "severity", "log.level", "lvl", "severity_text"),
}
# Duration fields: matched on the key with its unit suffix removed.
DURATION_ALIASES: dict[str, tuple[str, ...]] = {
    "latency_ms": (
        "latency",
        "total_latency",
        "duration",
        "elapsed",
        "response_time",
        "request_duration",
        "request_latency",
        "took",
        "total_time",
        "total",
    ),
    "inference_ms": (
        "inference",
        "inference_latency",
        "inference_time",
        "inference_duration",
        "model_latency",
        "prediction_latency",
        "predict_latency",
        "predict_time",
        "model_time",
    ),
}

# Unit suffixes (normalized, longest first) and their factor to milliseconds.
UNIT_FACTORS_MS = {"ms": 1.0, "us": 1e-3, "ns": 1e-6, "s": 1000.0}
_SUFFIX_UNITS = (
    ("milliseconds", "ms"),
    ("millis", "ms"),
    ("msec", "ms"),
    ("ms", "ms"),
    ("microseconds", "us"),
    ("micros", "us"),
    ("usec", "us"),
    ("us", "us"),
    ("µs", "us"),
    ("nanoseconds", "ns"),
    ("nanos", "ns"),
    ("nsec", "ns"),
    ("ns", "ns"),
    ("seconds", "s"),
    ("secs", "s"),
    ("sec", "s"),
    ("s", "s"),
)
_UNIT_NAMES = {
    "ms": "ms",
    "msec": "ms",
    "millis": "ms",
    "milliseconds": "ms",
    "us": "us",
    "µs": "us",
    "usec": "us",
    "micros": "us",
    "microseconds": "us",
    "ns": "ns",
    "nsec": "ns",
    "nanos": "ns",
    "nanoseconds": "ns",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "seconds": "s",
}
_NON_WORD = re.compile(r"[^a-z0-9@µ]")


def normalize_key(key: str) -> str:
    """`requestId`, `request.id`, `request_id` -> `requestid`."""
    return _NON_WORD.sub("", key.lower())


_CANON_BY_NORM: dict[str, tuple[str, int]] = {}
for _canon, _aliases in ALIASES.items():
    for _i, _alias in enumerate(_aliases):
        _CANON_BY_NORM.setdefault(normalize_key(_alias), (_canon, _i))
_DURATION_BY_NORM: dict[str, tuple[str, int]] = {}
for _canon, _aliases in DURATION_ALIASES.items():
    for _i, _alias in enumerate(_aliases):
        _DURATION_BY_NORM.setdefault(normalize_key(_alias), (_canon, _i))


def canonical_for_key(key: str) -> tuple[str, int, str | None] | None:
    """Map a log key to `(canonical field, priority, unit)`; unit only for durations, None if unknown.

    Lower priority numbers win when several keys of one line map to the same field.
    """
    norm = normalize_key(key)
    hit = _CANON_BY_NORM.get(norm)
    if hit is not None:
        return hit[0], hit[1], None
    hit = _DURATION_BY_NORM.get(norm)
    if hit is not None:
        return hit[0], 100 + hit[1], None  # unitless durations rank below suffixed ones
    for suffix, unit in _SUFFIX_UNITS:
        if norm.endswith(suffix) and len(norm) > len(suffix):
            hit = _DURATION_BY_NORM.get(norm[: -len(suffix)])
            if hit is not None:
                return hit[0], hit[1], unit
    return None


def unit_name(text: str) -> str:
    """Normalize a unit given by a user: `ms`, `s`, `seconds`, `us`, `µs`, `ns` -> ms|s|us|ns."""
    unit = _UNIT_NAMES.get(text.strip().lower())
    if unit is None:
        raise UsageError(f"unknown unit {text!r}", "use one of s, ms, us, ns")
    return unit


_VALUE_WITH_UNIT = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zµ]*)\s*$", re.IGNORECASE
)


def duration_from_text(text: str) -> tuple[float, str | None] | None:
    """`"17.4"` -> (17.4, None); `"357.8ms"` -> (357.8, "ms"); `"0.36s"` -> (0.36, "s"); junk -> None."""
    match = _VALUE_WITH_UNIT.match(text)
    if not match:
        return None
    value = float(match.group(1))
    suffix = match.group(2).lower()
    if not suffix:
        return value, None
    unit = _UNIT_NAMES.get(suffix)
    if unit is None:
        return None
    return value, unit


def guess_duration_unit(values: list[float]) -> tuple[str, str]:
    """Guess the unit of a duration key that names none, from its values: `(unit, reason)`.

    Rule (stated by `mlobs schema`): all whole numbers -> ms; otherwise a median below 10 -> seconds
    (python-json-logger and most Python code log `time.time()` differences); else ms.
    """
    finite = sorted(v for v in values if v == v)
    if not finite:
        return "ms", "no values"
    median = finite[len(finite) // 2]
    if all(float(v).is_integer() for v in finite[:1000]):
        return "ms", "whole numbers, read as ms"
    if median < 10:
        return "s", f"median {median:g} < 10, read as seconds"
    return "ms", f"median {median:g} >= 10, read as ms"


@dataclass(frozen=True)
class FieldOverride:
    """A user mapping: canonical field <- key path (dotted for nested), optional unit."""

    canon: str
    key: str
    unit: str | None = None


def parse_field_override(text: str) -> FieldOverride:
    """Parse `latency_ms=resp.duration:s` (also from mlobs.toml `[fields]`)."""
    if "=" not in text:
        raise UsageError(
            f"--field {text!r}: expected CANON=KEY[:UNIT]",
            "e.g. --field latency_ms=resp.duration:s",
        )
    canon, _, rhs = text.partition("=")
    canon = canon.strip()
    if canon not in CANONICAL_FIELDS:
        raise UsageError(
            f"--field {text!r}: unknown field {canon!r}",
            "known fields: " + ", ".join(CANONICAL_FIELDS),
        )
    key, unit = rhs.strip(), None
    if ":" in key:
        key, _, unit_text = key.rpartition(":")
        unit = unit_name(unit_text)
    if not key:
        raise UsageError(f"--field {text!r}: the key is empty")
    if unit is not None and canon not in ("latency_ms", "inference_ms", "ts"):
        raise UsageError(f"--field {text!r}: only durations and ts take a unit")
    return FieldOverride(canon, key, unit)
