"""One request's waterfall: its stages (milestone pairs and spans) on one time axis, with self
time, the critical path as Jaeger computes it, and context from its model version (percentile rank,
per-stage medians, the dominant stage). The all-requests, vectorized stage maths is in `timeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.critical_path import SpanNode, critical_path
from mlobs_cli.analysis.lookup import rows_of_request
from mlobs_cli.analysis.timeline import (
    NS_PER_MS,
    as_ns,
    is_outlier,
    milestone_stages,
    percentile_rank,
    span_self_ms,
    stage_durations,
    stage_medians,
)


@dataclass
class Stage:
    """One bar of the waterfall; times in ns since the epoch, durations in ms."""

    name: str
    origin: str  # "milestone" or "span"
    start_ns: int
    end_ns: int
    duration_ms: float
    self_ms: float
    on_critical_path: bool
    error: bool
    depth: int = 0
    span_id: str | None = None
    parent_span_id: str | None = None
    version_median_ms: float | None = None
    version_self_median_ms: float | None = None


@dataclass
class Timeline:
    """One request: its summary, stages ordered by start, and the events they came from."""

    request_id: str | None
    trace_id: str | None
    model_version: str
    origin_ns: int
    end_ns: int
    latency_ms: float | None = None
    inference_ms: float | None = None
    status: int | None = None
    error: bool = False
    ts: Any = None
    summary: dict[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    percentile_rank: float | None = None

    def offset_ms(self, ns: int) -> float:
        return (ns - self.origin_ns) / NS_PER_MS

    @property
    def dominant(self) -> Stage | None:
        """The stage that made this request slow, among those on the critical path (all stages
        when none is on it): the outlier (see `is_outlier`) with the most self time over its
        version's median; when no stage is an outlier, the stage with the most self time. The
        first one wins ties."""
        on_path = [s for s in self.stages if s.on_critical_path] or self.stages
        outliers = [
            s for s in on_path
            if s.version_self_median_ms is not None and is_outlier(s.self_ms, s.version_self_median_ms)
        ]  # fmt: skip
        if outliers:
            return max(outliers, key=lambda s: s.self_ms - (s.version_self_median_ms or 0.0))
        return max(on_path, key=lambda s: s.self_ms, default=None)

    def dominant_is_outlier(self) -> bool:
        stage = self.dominant
        return bool(
            stage is not None
            and stage.version_self_median_ms is not None
            and is_outlier(stage.self_ms, stage.version_self_median_ms)
        )


def _milestone_timeline_stages(ms: pd.DataFrame) -> list[Stage]:
    rows = milestone_stages(ms)
    out = []
    for row in rows.itertuples(index=False):  # one request: a handful of rows
        start = int(pd.Timestamp(row.start).as_unit("ns").value)
        end = start + int(round(row.duration_ms * NS_PER_MS))
        out.append(Stage(row.stage, "milestone", start, end, float(row.duration_ms),
                         float(row.self_ms), True, bool(row.error)))  # fmt: skip
    return out


def _span_timeline_stages(sp: pd.DataFrame) -> list[Stage]:
    self_ms = span_self_ms(sp)
    start, end = as_ns(sp["start"]), as_ns(sp["end"])
    ids: list[str] = []
    nodes: dict[str, SpanNode] = {}
    for i, row in enumerate(sp.itertuples(index=False)):  # one request: a handful of spans
        trace = row.trace_id if isinstance(row.trace_id, str) else ""
        # spans are keyed within their trace; a stage line (no span id) is a span of its own
        sid = f"{trace}/{row.span_id}" if isinstance(row.span_id, str) else f"#{i}"
        parent = f"{trace}/{row.parent_span_id}" if isinstance(row.parent_span_id, str) else None
        ids.append(sid)
        nodes[sid] = SpanNode(sid, parent, int(start[i]), int(end[i]), str(row.kind or ""))
    on_path = {s.span_id for s in critical_path(nodes.values())}

    def depth_of(span_id: str) -> int:
        depth, seen, parent = 0, {span_id}, nodes[span_id].parent_id
        while parent in nodes and parent not in seen:
            seen.add(parent)
            depth, parent = depth + 1, nodes[parent].parent_id
        return depth

    out = []
    for i, row in enumerate(sp.itertuples(index=False)):
        sid = ids[i]
        parent = row.parent_span_id if isinstance(row.parent_span_id, str) else None
        out.append(
            Stage(
                str(row.name),
                "span",
                int(start[i]),
                int(end[i]),
                float(row.duration_ms),
                float(self_ms[i]),
                sid in on_path,
                bool(row.error),
                depth_of(sid),
                row.span_id if isinstance(row.span_id, str) else None,
                parent,
            )  # fmt: skip
        )
    return out


def _events(ms: pd.DataFrame, sp: pd.DataFrame, req: pd.DataFrame) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for row in ms.itertuples(index=False):
        events.append({"kind": "milestone", "name": row.event, "ts": row.ts,
                       "source": row.source, "line": int(row.line)})  # fmt: skip
    for row in sp.itertuples(index=False):
        events.append({"kind": "span", "name": row.name, "ts": row.start,
                       "source": row.source, "line": int(row.line)})  # fmt: skip
    for row in req.itertuples(index=False):
        events.append({"kind": "summary", "name": "request", "ts": row.ts,
                       "source": row.source, "line": int(row.line)})  # fmt: skip
    events.sort(key=lambda e: (pd.isna(e["ts"]), e["ts"] if not pd.isna(e["ts"]) else 0))
    return events


_SUMMARY_CORE = {"ts", "request_id", "trace_id", "model_version", "latency_ms", "inference_ms",
                 "status", "error", "source", "line"}  # fmt: skip


def _scalar(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, tuple)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def timeline_for(
    requests: pd.DataFrame,
    milestones: pd.DataFrame,
    spans: pd.DataFrame,
    request_id: str | None,
    trace_id: str | None,
) -> Timeline:
    """Everything the logs hold for one request, as a `Timeline` (stages ordered by start)."""

    req, ms, sp = rows_of_request(requests, milestones, spans, request_id, trace_id)
    stages = _milestone_timeline_stages(ms) + _span_timeline_stages(sp)
    stages.sort(key=lambda s: (s.start_ns, s.depth))
    summary_row = req.iloc[-1] if not req.empty else None
    starts = [s.start_ns for s in stages]
    ends = [s.end_ns for s in stages]
    latency = _scalar(summary_row["latency_ms"]) if summary_row is not None else None
    if summary_row is not None and not pd.isna(summary_row["ts"]):
        end_ns = int(pd.Timestamp(summary_row["ts"]).as_unit("ns").value)
        ends.append(end_ns)
        if latency is not None:
            starts.append(end_ns - int(round(float(latency) * NS_PER_MS)))
    origin = min(starts) if starts else 0
    end = max(ends) if ends else origin
    version = "unknown"
    for frame in (req, ms, sp):
        known = [v for v in frame["model_version"].astype(object) if v and v != "unknown"]
        if known:
            version = str(known[-1])
            break
    tl = Timeline(
        request_id=request_id if request_id is not None else _first(req, ms, sp, "request_id"),
        trace_id=trace_id if trace_id is not None else _first(req, ms, sp, "trace_id"),
        model_version=version,
        origin_ns=origin,
        end_ns=end,
        latency_ms=float(latency) if latency is not None else (end - origin) / NS_PER_MS,
        stages=stages,
        events=_events(ms, sp, req),
    )
    if summary_row is not None:
        tl.inference_ms = _scalar(summary_row["inference_ms"])
        tl.status = _scalar(summary_row["status"])
        tl.error = bool(summary_row["error"])
        tl.ts = summary_row["ts"]
        tl.summary = {k: _scalar(v) for k, v in summary_row.items() if k not in _SUMMARY_CORE}
    else:
        tl.error = any(s.error for s in stages)
    return tl


def _first(req: pd.DataFrame, ms: pd.DataFrame, sp: pd.DataFrame, col: str) -> str | None:
    for frame in (req, ms, sp):
        values = frame[col].dropna()
        if not values.empty:
            return str(values.iloc[0])
    return None


@dataclass
class VersionContext:
    """What a request of `version` is compared with: the version's request count, the latencies of
    its summaries (frame order) and, per stage, the median duration and median self time (ms)."""

    version: str
    requests: int
    latencies: np.ndarray
    medians: dict[str, tuple[float, float]] = field(default_factory=dict)


def version_context(
    requests: pd.DataFrame, milestones: pd.DataFrame, spans: pd.DataFrame, version: str
) -> VersionContext:
    """The context of `version`: only that version's rows are framed into stages (milestones
    without a known version too, as their request may be of this version)."""
    same = requests[requests["model_version"] == version]
    context = VersionContext(version, len(same), same["latency_ms"].to_numpy())
    ms = milestones[milestones["model_version"].isin([version, "unknown"])]
    sp = spans
    if not spans.empty:
        traces = set(spans.loc[spans["model_version"] == version, "trace_id"])
        traces |= set(same["trace_id"].dropna())
        sp = spans[spans["trace_id"].isin(traces)]
    stages = stage_durations(ms, sp, same)
    stages = stages[stages["model_version"] == version]
    if not stages.empty:
        medians = stage_medians(stages)
        context.medians = {
            str(name): (float(med), float(self_med))
            for name, med, self_med in zip(medians["stage"], medians["median_ms"], medians["self_median_ms"])
        }
    return context


def apply_version_context(tl: Timeline, context: VersionContext) -> None:
    """Set the request's latency percentile rank within its version and each stage's medians."""
    if tl.latency_ms is not None and context.requests:
        tl.percentile_rank = percentile_rank(context.latencies, tl.latency_ms)
    for stage in tl.stages:
        medians = context.medians.get(stage.name)
        stage.version_median_ms = medians[0] if medians is not None else None
        stage.version_self_median_ms = medians[1] if medians is not None else None


def add_version_context(
    tl: Timeline, requests: pd.DataFrame, milestones: pd.DataFrame, spans: pd.DataFrame
) -> None:
    """Set the request's latency percentile rank within its model version, and each stage's median
    duration over that version's requests (see `version_context`)."""
    apply_version_context(tl, version_context(requests, milestones, spans, tl.model_version))
