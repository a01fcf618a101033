"""Where requests' time went, for all requests at once: stages from milestone pairs and spans.

`stage_durations(milestones, spans)` gives every request's stages (vectorized: one row per stage
occurrence with `duration_ms` and `self_ms`, self time = duration minus the union of the children);
`stage_medians` the per-version medians. One request's waterfall is in `waterfall`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

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
NS_PER_MS = 1_000_000  # nanoseconds per millisecond
_NAT = np.iinfo(np.int64).min
UNKNOWN = "unknown"
OUTLIER_RATIO = 1.5  # a stage this many times its version's median self time is an outlier

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


def as_ns(series: pd.Series) -> np.ndarray:
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
    ts = as_ns(milestones["ts"])
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
    duration = (t[here + 1] - t[here]) / NS_PER_MS
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
    start, end = as_ns(spans["start"]), as_ns(spans["end"])
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
    return np.clip(self_ns, 0, None) / NS_PER_MS


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


def per_request_stages(stages: pd.DataFrame) -> pd.DataFrame:
    """Stage times summed per (request, model version, stage): a repeated stage counts once, with
    its durations and self times added (integer-coded groupby). Needs `request_id`, `stage` and
    `self_ms`; a missing `model_version` counts as "unknown", a missing `duration_ms` as self time."""
    r_codes, r_values = pd.factorize(stages["request_id"].to_numpy(dtype=object))
    s_codes, s_values = pd.factorize(stages["stage"].to_numpy(dtype=object))
    if "model_version" in stages:
        v_codes, v_values = _version_codes(stages["model_version"])
    else:  # a minimal frame (request_id, stage, self_ms) from another module
        v_codes, v_values = np.full(len(stages), -1), np.array([], dtype=object)
    v_values = np.append(v_values, UNKNOWN).astype(object)  # code -1 (missing) -> "unknown"
    self_ms = stages["self_ms"].to_numpy()
    duration = stages["duration_ms"].to_numpy() if "duration_ms" in stages else self_ms
    frame = pd.DataFrame(
        {"r": r_codes, "s": s_codes, "v": v_codes, "duration_ms": duration, "self_ms": self_ms}
    )
    sums = frame.groupby(["r", "s", "v"], sort=False)[["duration_ms", "self_ms"]].sum().reset_index()
    return pd.DataFrame(
        {
            "request_id": np.asarray(r_values, dtype=object)[sums["r"].to_numpy()],
            "model_version": v_values[sums["v"].to_numpy()],
            "stage": np.asarray(s_values, dtype=object)[sums["s"].to_numpy()],
            "duration_ms": sums["duration_ms"].to_numpy(),
            "self_ms": sums["self_ms"].to_numpy(),
        }
    )


def stage_medians(stages: pd.DataFrame, *, per_request: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (model_version, stage) over requests (repeats summed first): the median duration
    (`median_ms`), the median self time (`self_median_ms`) and how many requests had the stage.
    Pass `per_request` (from `per_request_stages(stages)`) when it is already at hand."""
    per = per_request if per_request is not None else per_request_stages(stages)
    return (
        per.groupby(["model_version", "stage"], sort=True)
        .agg(
            median_ms=("duration_ms", "median"),
            self_median_ms=("self_ms", "median"),
            requests=("duration_ms", "size"),
        )
        .reset_index()
    )


def is_outlier(self_ms: Any, self_median_ms: Any) -> Any:
    """A stage is an outlier when its self time exceeds its version's median self time by at least
    OUTLIER_RATIO times (works on scalars and arrays)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (self_ms > self_median_ms) & (
            (self_median_ms <= 0) | (self_ms >= OUTLIER_RATIO * self_median_ms)
        )


def percentile_rank(values: Iterable[float], value: float) -> float:
    """Percent of `values` at or below `value` (0-100); NaN when there are none."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0 or value != value:
        return float("nan")
    return float((arr <= value).sum() / arr.size * 100.0)
