"""The requests inside spike windows: the slowest (rank in their version, dominant stage) and the
attribute values over-represented inside a window, both from `analysis.slow` (pure, vectorized).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlobs_cli.analysis.spikes import SpikeReport, SpikeWindow


def window_keys(report: SpikeReport, requests: pd.DataFrame, top: int) -> set[str]:
    """The request keys (request id, else trace id) of each window's `top` slowest requests."""
    from mlobs_cli.analysis.timeline import request_key

    keys: set[str] = set()
    for w in report.windows:
        sub = requests[_in_window(requests, w)].nlargest(top, "latency_ms")
        keys.update(k for k in request_key(sub) if isinstance(k, str))
    return keys


def describe_windows(
    report: SpikeReport, requests: pd.DataFrame, stages: pd.DataFrame | None, *, top: int = 5,
    max_attributes: int = 5, min_lift: float = 1.5,
) -> None:  # fmt: skip
    """Fill each window's slowest requests (with rank in their version and dominant stage, from
    `analysis.slow`) and the attribute values over-represented among the requests that made the
    window (BubbleUp-style lift from `analysis.slow.attribute_lift`, kept from `min_lift` up).

    The requests that made a window (`affected`): for a latency metric those inside it slower than
    the baseline value, for error_rate its errors, for rate all of its requests; they are compared
    with every other request of the series (the version, or all versions when pooled)."""
    from mlobs_cli.analysis.slow import attribute_lift, dominant_stages, rank_within_version
    from mlobs_cli.analysis.timeline import request_key

    timed = requests[requests["ts"].notna()]
    if not report.windows or timed.empty:
        return
    ranks = rank_within_version(timed)
    for w in report.windows:
        scope = timed if w.pooled else timed[timed["model_version"].astype("object") == w.model_version]
        inside = _in_window(scope, w)
        sub = (
            scope[inside].sort_values(["latency_ms", "ts"], ascending=[False, True], kind="stable").head(top)
        )
        keys = request_key(sub)
        dominant = dominant_stages(stages, keys) if stages is not None and len(stages) else None
        w.top_requests = [
            {
                "ts": ts,
                "request_id": rid if isinstance(rid, str) else None,
                "trace_id": tid if isinstance(tid, str) else None,
                "model_version": str(ver),
                "latency_ms": float(lat),
                "percentile_rank": float(ranks.loc[idx]),
                "status": None if pd.isna(status) else int(status),
                "dominant_stage": None if dominant is None else _opt_str(dominant.get(key)),
            }
            for idx, ts, rid, tid, ver, lat, status, key in zip(
                sub.index, sub["ts"], sub["request_id"], sub["trace_id"], sub["model_version"],
                sub["latency_ms"], sub["status"], keys, strict=True,
            )
        ]  # fmt: skip
        affected = _affected(report, w, scope, inside)
        lift = attribute_lift(scope, affected)
        lift = lift[lift["lift"] >= min_lift].head(max_attributes)
        w.attributes = [
            {
                "field": str(row["field"]),
                "value": row["value"],
                "affected": int(row["slow_count"]),
                "rest": int(row["rest_count"]),
                "affected_pct": float(row["slow_pct"]),
                "rest_pct": float(row["rest_pct"]),
                "lift": float(row["lift"]),
            }
            for row in lift.to_dict("records")
        ]


def _affected(report: SpikeReport, window: SpikeWindow, scope: pd.DataFrame, inside: pd.Series) -> pd.Series:
    name = report.metric.name
    if name == "error_rate":
        return inside & scope["error"].astype(bool)
    if name == "rate":
        return inside
    return inside & (scope["latency_ms"] > window.baseline)


def _in_window(frame: pd.DataFrame, window: SpikeWindow) -> pd.Series:
    mask = (frame["ts"] >= window.start) & (frame["ts"] < window.end)
    if not window.pooled:
        mask &= frame["model_version"].astype("object") == window.model_version
    return mask


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
