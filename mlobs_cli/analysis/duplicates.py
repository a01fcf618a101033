"""Duplicate request summaries: the same line logged twice, and one request id on different requests.

Pure functions on frames. A *true duplicate* is a summary equal to an earlier one in every canonical
field (time, ids, version, latencies, status, error) whatever file or line it came from: log shippers
and copied files repeat lines, and such a request is counted once. A *reused id* is a request id
carried by summaries that differ: different requests, kept and reported, never merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlobs_cli.records import REQUEST_FIELDS

# Columns that identify a logged summary; source and line say only where it was read.
REQUEST_KEYS = tuple(f for f in REQUEST_FIELDS if f != "level")
MILESTONE_KEYS = ("ts", "request_id", "trace_id", "event", "model_version")
SPAN_KEYS = ("trace_id", "span_id", "request_id", "name", "kind", "start", "end", "duration_ms")
MAX_EXAMPLES = 5


@dataclass
class DuplicateReport:
    """What `duplicate_report` found: counts, and a few example ids of each kind."""

    true_duplicates: int = 0  # request summaries identical to an earlier one (dropped)
    reused_ids: int = 0  # request ids carried by two or more different summaries
    reused_rows: int = 0  # summaries carrying such an id
    duplicate_events: int = 0  # identical stage events and spans (dropped)
    examples_true: list[str] = field(default_factory=list)
    examples_reused: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.true_duplicates or self.reused_ids or self.duplicate_events)

    def as_dict(self) -> dict[str, object]:
        return {
            "true_duplicates": self.true_duplicates,
            "reused_request_ids": self.reused_ids,
            "summaries_with_reused_ids": self.reused_rows,
            "duplicate_stage_events": self.duplicate_events,
            "examples": {"true_duplicates": self.examples_true, "reused_request_ids": self.examples_reused},
        }


def duplicate_rows(
    frame: pd.DataFrame, keys: tuple[str, ...], id_column: str = "request_id", time_column: str = "ts"
) -> pd.Series:
    """Bool mask: rows equal to an earlier row on `keys` (only rows with an id are judged).

    Vectorized and cheap on big frames: only rows whose time (an int64 compare) and then id occur
    more than once are compared on all the keys; at microsecond resolution that is a small set.
    """
    mask = pd.Series(False, index=frame.index)
    if frame.empty or id_column not in frame.columns:
        return mask
    candidates = frame[id_column].notna().to_numpy().copy()
    if time_column in frame.columns:
        times = frame[time_column]
        if times.dtype.kind == "M":  # datetime64, tz-aware or not: compare the int64 nanoseconds
            candidates &= _repeated(np.asarray(times.array.asi8))
    if not candidates.any():
        return mask
    ids = frame.loc[candidates, id_column]
    again = ids.duplicated(keep=False)
    if not again.any():
        return mask
    subset = frame.loc[ids.index[again.to_numpy()], [k for k in keys if k in frame.columns]]
    # Object columns may hold unhashable values (lists): compare their text.
    subset = subset.apply(lambda col: col.astype(str) if col.dtype == object else col)
    mask.loc[subset.index] = subset.duplicated(keep="first").to_numpy()
    return mask


def _repeated(values: np.ndarray) -> np.ndarray:
    """Bool per element: the value occurs more than once (a sort, no hashing: fast on int64)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    same = ordered[1:] == ordered[:-1]
    hit = np.zeros(len(values), dtype=bool)
    hit[1:] |= same
    hit[:-1] |= same
    out = np.empty(len(values), dtype=bool)
    out[order] = hit
    return out


def reused_ids(requests: pd.DataFrame, true_dups: pd.Series) -> pd.Series:
    """Counts of request ids carried by two or more summaries that are not true duplicates."""
    if requests.empty or "request_id" not in requests.columns:
        return pd.Series(dtype="int64")
    ids = requests["request_id"]
    repeated = ids.duplicated(keep=False).to_numpy() & ~true_dups.to_numpy()  # one hashing pass
    if not repeated.any():
        return pd.Series(dtype="int64")
    counts = ids[repeated].dropna().value_counts()  # only the few repeated ids are counted
    return counts[counts > 1]


def duplicate_report(
    requests: pd.DataFrame, milestones: pd.DataFrame | None = None, spans: pd.DataFrame | None = None
) -> tuple[DuplicateReport, pd.Series, pd.Series | None, pd.Series | None]:
    """Find true duplicates and reused ids. Returns the report and the drop masks of each frame."""
    report = DuplicateReport()
    req_mask = duplicate_rows(requests, REQUEST_KEYS)
    report.true_duplicates = int(req_mask.sum())
    if report.true_duplicates:
        report.examples_true = [str(v) for v in requests.loc[req_mask, "request_id"].unique()[:MAX_EXAMPLES]]
    reused = reused_ids(requests, req_mask)
    report.reused_ids = len(reused)
    report.reused_rows = int(reused.sum())
    report.examples_reused = [str(v) for v in reused.index[:MAX_EXAMPLES]]
    ms_mask = duplicate_rows(milestones, MILESTONE_KEYS) if milestones is not None else None
    sp_mask = duplicate_rows(spans, SPAN_KEYS, time_column="end") if spans is not None else None
    report.duplicate_events = sum(int(m.sum()) for m in (ms_mask, sp_mask) if m is not None)
    return report, req_mask, ms_mask, sp_mask
