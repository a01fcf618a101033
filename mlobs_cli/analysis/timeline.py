"""Where a request's time went: stages from milestone pairs and from spans.

`stage_durations(milestones, spans)` gives every request's stages at once (vectorized: one row per
stage occurrence with `duration_ms` and `self_ms`); `timeline_for(...)` builds one request's
waterfall with self time and the critical path computed as the Jaeger UI does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.critical_path import SpanNode, critical_path

# The documented names of the gap between two consecutive milestones; other pairs: "a -> b".
MILESTONE_STAGES: dict[tuple[str, str], str] = {
    ("request_received", "features_fetched"): "feature fetch",
    ("features_fetched", "inference_done"): "inference",
    ("features_fetched", "inference_failed"): "inference",
    ("inference_done", "response_sent"): "response",
    ("inference_failed", "response_sent"): "response",
}
# A stage that ends at one of these milestones failed.
ERROR_MILESTONES = frozenset({"inference_failed"})
_PAIR_NAMES = {f"{a} -> {b}": name for (a, b), name in MILESTONE_STAGES.items()}
_MS = 1_000_000  # nanoseconds per millisecond
_NAT = np.iinfo(np.int64).min
UNKNOWN = "unknown"

STAGE_COLUMNS = [
    "request_id", "trace_id", "model_version", "stage", "origin", "start", "duration_ms",
    "self_ms", "error",
]  # fmt: skip


def stage_name(first: str, second: str) -> str:
    """The stage between two consecutive milestones: the documented name, else `first -> second`."""
    return MILESTONE_STAGES.get((first, second), f"{first} -> {second}")


def request_key(frame: pd.DataFrame) -> pd.Series:
    """The identity of a request in any frame: its request id, else its trace id (object dtype)."""
    rid = frame["request_id"].astype(object)
    tid = frame["trace_id"].astype(object) if "trace_id" in frame else pd.Series(None, frame.index)
    return rid.where(rid.notna(), tid)


def _ns(series: pd.Series) -> np.ndarray:
    """UTC datetimes as int64 nanoseconds since the epoch (NaT -> int64 min)."""
    return series.dt.as_unit("ns").array.asi8


def _empty_stages() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": pd.Series(dtype=object),
            "trace_id": pd.Series(dtype=object),
            "model_version": pd.Series(dtype="category"),
            "stage": pd.Series(dtype=object),
            "origin": pd.Series(dtype=object),
            "start": pd.Series(dtype="datetime64[ns, UTC]"),
            "duration_ms": pd.Series(dtype="float64"),
            "self_ms": pd.Series(dtype="float64"),
            "error": pd.Series(dtype=bool),
        }
    )


def milestone_stages(milestones: pd.DataFrame) -> pd.DataFrame:
    """One row per gap between consecutive milestones of a request (vectorized, no Python loop).

    `request_id` is the request id, or the trace id when the milestone carried none. Self time
    equals the duration: milestone stages do not overlap. Works on integer codes: one lexsort by
    (request, time, source, line), and stage names resolved once per distinct event pair.
    """
    if milestones.empty:
        return _empty_stages()
    keys = request_key(milestones).to_numpy(dtype=object)
    ts = _ns(milestones["ts"])
    key_codes, key_values = pd.factorize(keys)
    usable = (key_codes >= 0) & (ts != _NAT)
    tiebreak = [milestones["line"].to_numpy()] if "line" in milestones else []
    if "source" in milestones:
        tiebreak.append(pd.factorize(milestones["source"].astype(object))[0])
    order = np.lexsort((*tiebreak, ts, key_codes))
    order = order[usable[order]]
    k, t = key_codes[order], ts[order]
    ev_codes, ev_values = pd.factorize(milestones["event"].astype(object).to_numpy()[order])
    has_next = np.zeros(len(order), dtype=bool)
    has_next[:-1] = (k[1:] == k[:-1]) & (ev_codes[1:] >= 0) & (ev_codes[:-1] >= 0)
    here = np.flatnonzero(has_next)
    n_ev = len(ev_values)
    pair = ev_codes[here] * n_ev + ev_codes[here + 1]
    pair_codes, pair_values = pd.factorize(pair)
    names = np.array(
        [stage_name(str(ev_values[p // n_ev]), str(ev_values[p % n_ev])) for p in pair_values],
        dtype=object,
    )
    failing = np.isin(ev_values.astype(object), list(ERROR_MILESTONES))
    v_codes, v_values = _version_codes(milestones["model_version"])
    version = _first_known(k, v_codes[order], v_values)
    duration = (t[here + 1] - t[here]) / _MS
    return pd.DataFrame(
        {
            "request_id": key_values.astype(object)[k[here]],
            "trace_id": milestones["trace_id"].to_numpy(dtype=object)[order][here],
            "model_version": pd.Categorical(version[here]),
            "stage": names[pair_codes] if len(names) else np.array([], dtype=object),
            "origin": "milestone",
            "start": pd.DatetimeIndex(t[here].view("datetime64[ns]"), tz="UTC"),
            "duration_ms": duration,
            "self_ms": duration,
            "error": failing[ev_codes[here + 1]],
        }
    )


def _version_codes(versions: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = missing) and values of a version column, categorical or not."""
    if isinstance(versions.dtype, pd.CategoricalDtype):
        return versions.cat.codes.to_numpy(), np.asarray(versions.cat.categories, dtype=object)
    codes, values = pd.factorize(versions.to_numpy(dtype=object))
    return codes, np.asarray(values, dtype=object)


def _first_known(group_codes: np.ndarray, v_codes: np.ndarray, v_values: np.ndarray) -> np.ndarray:
    """Per row: the first known (not missing, not "unknown") version of the row's group."""
    codes = v_codes.astype("float64")
    codes[(v_codes < 0) | np.isin(v_codes, np.flatnonzero(v_values == UNKNOWN))] = np.nan
    first = pd.Series(codes).groupby(group_codes).transform("first").to_numpy()
    out = np.full(len(first), UNKNOWN, dtype=object)
    ok = ~np.isnan(first)
    out[ok] = v_values[first[ok].astype(np.int64)]
    return out


def _versions_by_key(keys: pd.Series, versions: pd.Series) -> pd.Series:
    """Per row: the first known (not "unknown") model version logged for the row's request."""
    codes = pd.factorize(keys.to_numpy(dtype=object))[0]
    return pd.Series(_first_known(codes, *_version_codes(versions)), index=keys.index)


def span_self_ms(spans: pd.DataFrame) -> np.ndarray:
    """Self time of every span: duration minus the union of its children's intervals clamped to it.

    Vectorized over all traces: children sorted by start within their parent, each adds only the
    part past the running maximum end of the earlier children, so parallel children count once.
    """
    n = len(spans)
    if n == 0:
        return np.zeros(0)
    start, end = _ns(spans["start"]), _ns(spans["end"])
    frame = pd.DataFrame(
        {
            "trace": spans["trace_id"].astype(object).to_numpy(),
            "span": spans["span_id"].astype(object).to_numpy(),
            "parent": spans["parent_span_id"].astype(object).to_numpy(),
            "start": start,
            "end": end,
            "row": np.arange(n),
        }
    )
    parents = frame[["trace", "span", "start", "end", "row"]].rename(
        columns={"span": "parent", "start": "p_start", "end": "p_end", "row": "p_row"}
    )
    parents = parents[parents["parent"].notna() & parents["trace"].notna()]
    parents = parents.drop_duplicates(["trace", "parent"])
    kids = frame[frame["parent"].notna() & frame["trace"].notna()]
    kids = kids.merge(parents, on=["trace", "parent"], how="inner")
    self_ns = (end - start).astype("float64")
    if not kids.empty:
        c_start = np.maximum(kids["start"].to_numpy(), kids["p_start"].to_numpy())
        c_end = np.minimum(kids["end"].to_numpy(), kids["p_end"].to_numpy())
        keep = c_end > c_start
        kids = pd.DataFrame({"p_row": kids["p_row"].to_numpy()[keep], "s": c_start[keep],
                             "e": c_end[keep]})  # fmt: skip
        kids = kids.sort_values(["p_row", "s"], kind="stable")
        running = kids.groupby("p_row", sort=False)["e"].cummax()
        first = np.iinfo(np.int64).min
        prev = running.groupby(kids["p_row"], sort=False).shift(1, fill_value=first)
        covered_from = np.maximum(kids["s"].to_numpy(), prev.to_numpy(dtype=np.int64))
        covered = np.clip(kids["e"].to_numpy() - covered_from, 0, None).astype("float64")
        union = pd.Series(covered).groupby(kids["p_row"].to_numpy()).sum()
        self_ns[union.index.to_numpy()] -= union.to_numpy()
    return np.clip(self_ns, 0, None) / _MS


def _trace_keys(spans: pd.DataFrame, requests: pd.DataFrame | None) -> pd.Series:
    """Per span: its request id, else the request id logged on another span of its trace, else the
    one the requests frame gives that trace, else the trace id."""
    trace = spans["trace_id"].astype(object)
    key = spans["request_id"].astype(object)
    if key.isna().any() and trace.notna().any():
        per_trace = key.groupby(trace.to_numpy(), sort=False).transform("first")
        key = key.where(key.notna(), per_trace)
        if requests is not None and not requests.empty and "trace_id" in requests:
            req = requests[["trace_id", "request_id"]].astype(object).dropna()
            lookup = req.drop_duplicates("trace_id").set_index("trace_id")["request_id"]
            key = key.where(key.notna(), trace.map(lookup))
    return key.where(key.notna(), trace)


def span_stages(spans: pd.DataFrame, requests: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per span, named by the span, with its duration and self time (vectorized)."""
    if spans.empty:
        return _empty_stages()
    keys = _trace_keys(spans, requests)
    return pd.DataFrame(
        {
            "request_id": keys.to_numpy(dtype=object),
            "trace_id": spans["trace_id"].astype(object).to_numpy(),
            "model_version": _versions_by_key(keys, spans["model_version"]).to_numpy(),
            "stage": spans["name"].astype(object).to_numpy(),
            "origin": "span",
            "start": spans["start"].dt.as_unit("ns").array,
            "duration_ms": spans["duration_ms"].to_numpy(dtype="float64"),
            "self_ms": span_self_ms(spans),
            "error": spans["error"].fillna(False).to_numpy(dtype=bool),
        }
    ).astype({"model_version": "category", "start": "datetime64[ns, UTC]"})


def stage_durations(
    milestones: pd.DataFrame, spans: pd.DataFrame, requests: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stages of ALL requests: columns `request_id, trace_id, model_version, stage, origin, start,
    duration_ms, self_ms, error`; one row per stage occurrence (a repeated span name repeats).

    `request_id` is the request key (request id, else trace id). When `requests` is given, its
    model version wins over the one logged on milestones/spans. A request with milestone stages is
    described by them alone (its spans are left out), so that stages of one request never count
    the same time twice; requests with only spans are described by their spans.
    """
    ms = milestone_stages(milestones)
    sp = span_stages(spans, requests)
    if not ms.empty and not sp.empty:
        sp = sp[~sp["request_id"].isin(pd.unique(ms["request_id"]))]
    parts = [p for p in (ms, sp) if not p.empty]
    if not parts:
        return _empty_stages()
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    if requests is not None and not requests.empty:
        req = requests.assign(_key=request_key(requests)).dropna(subset=["_key"])
        version = req.drop_duplicates("_key").set_index("_key")["model_version"].astype(object)
        mapped = out["request_id"].map(version)
        out["model_version"] = mapped.where(mapped.notna(), out["model_version"].astype(object))
    out["model_version"] = out["model_version"].astype(object).fillna("unknown").astype("category")
    return out[STAGE_COLUMNS]


def stage_medians(stages: pd.DataFrame) -> pd.DataFrame:
    """Median stage duration per (model_version, stage) over requests (repeats summed first)."""
    per_request = (
        stages.groupby(["model_version", "stage", "request_id"], observed=True, sort=False)["duration_ms"]
        .sum()
        .reset_index()
    )
    return (
        per_request.groupby(["model_version", "stage"], observed=True)["duration_ms"]
        .agg(median_ms="median", requests="size")
        .reset_index()
    )


def percentile_rank(values: Iterable[float], value: float) -> float:
    """Percent of `values` at or below `value` (0-100); NaN when there are none."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0 or value != value:
        return float("nan")
    return float((arr <= value).sum() / arr.size * 100.0)


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
        return (ns - self.origin_ns) / _MS

    @property
    def dominant(self) -> Stage | None:
        """The stage with the most self time among those on the critical path (all stages when
        none is on it); the first one on ties."""
        best = None
        on_path = [s for s in self.stages if s.on_critical_path] or self.stages
        for stage in on_path:
            if best is None or stage.self_ms > best.self_ms:
                best = stage
        return best


def _milestone_timeline_stages(ms: pd.DataFrame) -> list[Stage]:
    rows = milestone_stages(ms)
    out = []
    for row in rows.itertuples(index=False):  # one request: a handful of rows
        start = int(pd.Timestamp(row.start).as_unit("ns").value)
        end = start + int(round(row.duration_ms * _MS))
        out.append(Stage(row.stage, "milestone", start, end, float(row.duration_ms),
                         float(row.self_ms), True, bool(row.error)))  # fmt: skip
    return out


def _span_timeline_stages(sp: pd.DataFrame) -> list[Stage]:
    self_ms = span_self_ms(sp)
    start, end = _ns(sp["start"]), _ns(sp["end"])
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
    from mlobs_cli.analysis.lookup import rows_of_request

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
            starts.append(end_ns - int(round(float(latency) * _MS)))
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
        latency_ms=float(latency) if latency is not None else (end - origin) / _MS,
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


def add_version_context(
    tl: Timeline, requests: pd.DataFrame, milestones: pd.DataFrame, spans: pd.DataFrame
) -> None:
    """Set the request's latency percentile rank within its model version, and each stage's median
    duration over that version's requests (only that version's rows are framed into stages)."""
    version = tl.model_version
    same = requests[requests["model_version"].astype(object) == version]
    if tl.latency_ms is not None and not same.empty:
        tl.percentile_rank = percentile_rank(same["latency_ms"].to_numpy(), tl.latency_ms)
    ms = milestones[milestones["model_version"].astype(object).isin([version, "unknown"])]
    sp = spans
    if not spans.empty:
        traces = set(spans.loc[spans["model_version"].astype(object) == version, "trace_id"])
        traces |= set(same["trace_id"].dropna())
        sp = spans[spans["trace_id"].isin(traces)]
    stages = stage_durations(ms, sp, same)
    stages = stages[stages["model_version"].astype(object) == version]
    if stages.empty:
        return
    medians = stage_medians(stages).set_index("stage")["median_ms"].to_dict()
    for stage in tl.stages:
        stage.version_median_ms = medians.get(stage.name)
