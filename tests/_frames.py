"""Frames with the exact docs/DESIGN.md dtypes, to test analysis functions without the parser."""

from __future__ import annotations

from typing import Any

import pandas as pd

T0 = pd.Timestamp("2026-11-26T10:00:00Z")


def at(ms: float) -> pd.Timestamp:
    """T0 plus `ms` milliseconds."""
    return T0 + pd.Timedelta(microseconds=round(ms * 1000))


def _ts(values: list[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True)).dt.as_unit("ns")


def requests_frame(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "ts": _ts([r.get("ts") for r in rows]),
            "request_id": pd.Series([r.get("request_id") for r in rows], dtype=object),
            "trace_id": pd.Series([r.get("trace_id") for r in rows], dtype=object),
            "model_version": pd.Series([r.get("model_version", "unknown") for r in rows], dtype="category"),
            "latency_ms": pd.Series([r["latency_ms"] for r in rows], dtype="float64"),
            "inference_ms": pd.Series([r.get("inference_ms") for r in rows], dtype="float64"),
            "status": pd.Series([r.get("status") for r in rows], dtype="Int64"),
            "error": pd.Series([bool(r.get("error", False)) for r in rows], dtype=bool),
            "source": pd.Series([r.get("source", "app.log") for r in rows], dtype="category"),
            "line": pd.Series([r.get("line", i + 1) for i, r in enumerate(rows)], dtype="int64"),
        }
    )
    for name in extra:
        out[name] = pd.Series([r.get(name) for r in rows], dtype=object)
        if all(isinstance(v, (int, float)) for v in out[name]):
            out[name] = pd.to_numeric(out[name])
    return out


def milestones_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": _ts([r["ts"] for r in rows]),
            "request_id": pd.Series([r.get("request_id") for r in rows], dtype=object),
            "trace_id": pd.Series([r.get("trace_id") for r in rows], dtype=object),
            "event": pd.Series([r["event"] for r in rows], dtype=object),
            "model_version": pd.Series([r.get("model_version", "unknown") for r in rows], dtype="category"),
            "source": pd.Series([r.get("source", "app.log") for r in rows], dtype="category"),
            "line": pd.Series([r.get("line", i + 1) for i, r in enumerate(rows)], dtype="int64"),
        }
    )


def spans_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    start = _ts([r["start"] for r in rows])
    end = _ts([r["end"] for r in rows])
    return pd.DataFrame(
        {
            "trace_id": pd.Series([r["trace_id"] for r in rows], dtype=object),
            "span_id": pd.Series([r["span_id"] for r in rows], dtype=object),
            "parent_span_id": pd.Series([r.get("parent_span_id") for r in rows], dtype=object),
            "request_id": pd.Series([r.get("request_id") for r in rows], dtype=object),
            "name": pd.Series([r["name"] for r in rows], dtype=object),
            "kind": pd.Series([r.get("kind", "internal") for r in rows], dtype=object),
            "start": start,
            "end": end,
            "duration_ms": (end - start) / pd.Timedelta(milliseconds=1),
            "error": pd.Series([bool(r.get("error", False)) for r in rows], dtype=bool),
            "model_version": pd.Series([r.get("model_version", "unknown") for r in rows], dtype="category"),
            "attrs": pd.Series([r.get("attrs", {}) for r in rows], dtype=object),
            "source": pd.Series([r.get("source", "spans.json") for r in rows], dtype="category"),
            "line": pd.Series([r.get("line", i + 1) for i, r in enumerate(rows)], dtype="int64"),
        }
    )


def empty_requests() -> pd.DataFrame:
    return requests_frame([])


def empty_milestones() -> pd.DataFrame:
    return milestones_frame([])


def empty_spans() -> pd.DataFrame:
    return spans_frame([])
