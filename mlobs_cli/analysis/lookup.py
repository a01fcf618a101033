"""Find one request in the frames by request id or trace id (exact, or a unique prefix).

`find_request` returns the request's `(request_id, trace_id)` or raises `NotFoundError` (exit 1):
for an id nothing starts with (saying how many events were searched) and for an ambiguous prefix
(listing the candidates). `rows_of_request` selects the request's rows from each frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mlobs_cli.errors import NotFoundError

MAX_CANDIDATES_SHOWN = 10
MAX_RESOLVED = 200  # prefix matches paired up with their request/trace id when no more than this
Ident = tuple["str | None", "str | None"]


def _distinct(frames: list[pd.DataFrame], column: str) -> np.ndarray:
    parts = [pd.unique(f[column].to_numpy(dtype=object)) for f in frames if column in f and len(f)]
    if not parts:
        return np.array([], dtype=object)
    values = pd.unique(np.concatenate(parts))
    return np.array([v for v in values if isinstance(v, str)], dtype=object)


def _partner(frames: list[pd.DataFrame], column: str, value: str, other: str) -> str | None:
    """The first `other` id logged on a row whose `column` is `value` (request id <-> trace id)."""
    for f in frames:
        if column in f and other in f and len(f):
            hits = f.loc[f[column].to_numpy(dtype=object) == value, other].dropna()
            if len(hits):
                return str(hits.iloc[0])
    return None


def _has(frames: list[pd.DataFrame], column: str, value: str) -> bool:
    return any(
        bool((f[column].to_numpy(dtype=object) == value).any()) for f in frames if column in f and len(f)
    )


def find_request(
    requests: pd.DataFrame,
    milestones: pd.DataFrame,
    spans: pd.DataFrame,
    query: str,
    *,
    searched: int | None = None,
) -> tuple[str | None, str | None]:
    """Resolve `query` to `(request_id, trace_id)`; either may be None when never logged.

    An exact request id or trace id wins; otherwise ids starting with `query` are candidates (trace
    ids compared in lowercase, without a `0x` prefix). Several candidates that are the same request
    (its request id and its trace id) count once. The frames may hold only the rows that carry
    ids starting with `query` (and their partner ids); `searched` then says how many events the
    whole input has, for the not-found message.
    """
    frames = [requests, milestones, spans]
    q = query.strip()
    tq = q.lower().removeprefix("0x")

    def resolve(rid_hits: Iterable[str], tid_hits: Iterable[str]) -> dict[str, Ident]:
        found: dict[str, Ident] = {}
        for rid in rid_hits:
            found[rid] = (rid, _partner(frames, "request_id", rid, "trace_id"))
        for tid in tid_hits:
            rid = _partner(frames, "trace_id", tid, "request_id")
            found.setdefault(rid if rid is not None else tid, (rid, tid))
        return found

    matches = resolve(
        [q] if q and _has(frames, "request_id", q) else [],
        [tq] if tq and _has(frames, "trace_id", tq) else [],
    )
    if not matches and q:
        rids, tids = _distinct(frames, "request_id"), _distinct(frames, "trace_id")
        rid_hits = [r for r in rids if r.startswith(q)]
        tid_hits = [t for t in tids if tq and t.startswith(tq)]
        if len(rid_hits) + len(tid_hits) <= MAX_RESOLVED:
            matches = resolve(rid_hits, tid_hits)
        else:  # too many to pair up: name them as they are
            matches = {x: (x, None) for x in rid_hits} | {x: (None, x) for x in tid_hits}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if searched is None:
        searched = sum(len(f) for f in frames)
    if not matches:
        raise NotFoundError(
            f"no request or trace id starts with {q!r} in {searched:,} "
            f"event{'' if searched == 1 else 's'} searched",
            "check the id, or list candidates with `mlobs slow`",
        )
    names = sorted(matches)
    shown = ", ".join(names[:MAX_CANDIDATES_SHOWN])
    more = len(names) - MAX_CANDIDATES_SHOWN
    raise NotFoundError(
        f"{q!r} is ambiguous: {len(names)} requests match: {shown}"
        + (f" and {more} more" if more > 0 else ""),
        "give more characters of the id",
    )


def _match(frame: pd.DataFrame, request_id: str | None, trace_id: str | None) -> pd.Series:
    mask = pd.Series(False, index=frame.index)
    if request_id is not None and "request_id" in frame:
        mask |= frame["request_id"].astype(object) == request_id
    if trace_id is not None and "trace_id" in frame:
        mask |= frame["trace_id"].astype(object) == trace_id
    return mask


def rows_of_request(
    requests: pd.DataFrame,
    milestones: pd.DataFrame,
    spans: pd.DataFrame,
    request_id: str | None,
    trace_id: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The request's summary rows, milestones and spans (all spans of every trace it used)."""
    req = requests[_match(requests, request_id, trace_id)]
    ms = milestones[_match(milestones, request_id, trace_id)]
    sp = spans
    if not spans.empty:
        own = _match(spans, request_id, trace_id)
        traces = set(spans.loc[own, "trace_id"].dropna())
        sp = spans[own | spans["trace_id"].astype(object).isin(traces)]
    return req, ms, sp
