"""Find one request in the frames by request id or trace id (exact, or a unique prefix).

`find_request` returns the request's `(request_id, trace_id)` or raises `NotFoundError` (exit 1):
for an id nothing starts with (saying how many events were searched) and for an ambiguous prefix
(listing the candidates). `rows_of_request` selects the request's rows from each frame.
"""

from __future__ import annotations

import pandas as pd

from mlobs_cli.errors import NotFoundError

MAX_CANDIDATES_SHOWN = 10
Ident = tuple["str | None", "str | None"]


def _ids(frames: list[pd.DataFrame], column: str) -> pd.Series:
    parts = [f[column].astype(object).dropna() for f in frames if column in f and not f.empty]
    if not parts:
        return pd.Series([], dtype=object)
    return pd.Series(pd.unique(pd.concat(parts, ignore_index=True).astype(str)), dtype=object)


def _pairs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Distinct (request_id, trace_id) pairs logged together."""
    parts = [
        f[["request_id", "trace_id"]].astype(object)
        for f in frames
        if not f.empty and "request_id" in f and "trace_id" in f
    ]
    if not parts:
        return pd.DataFrame({"request_id": [], "trace_id": []}, dtype=object)
    pairs = pd.concat(parts, ignore_index=True).dropna()
    return pairs.drop_duplicates()


def find_request(
    requests: pd.DataFrame, milestones: pd.DataFrame, spans: pd.DataFrame, query: str
) -> tuple[str | None, str | None]:
    """Resolve `query` to `(request_id, trace_id)`; either may be None when never logged."""
    frames = [requests, milestones, spans]
    q = query.strip()
    tq = q.lower().removeprefix("0x")
    rids, tids = _ids(frames, "request_id"), _ids(frames, "trace_id")
    pairs = _pairs(frames)
    trace_of = pairs.drop_duplicates("request_id").set_index("request_id")["trace_id"]
    rid_of = pairs.drop_duplicates("trace_id").set_index("trace_id")["request_id"]

    def resolve(rid_hits: list[str], tid_hits: list[str]) -> dict[str, Ident]:
        found: dict[str, Ident] = {}
        for rid in rid_hits:
            found[rid] = (rid, trace_of.get(rid))
        for tid in tid_hits:
            rid = rid_of.get(tid)
            found.setdefault(rid if rid is not None else tid, (rid, tid))
        return found

    exact = resolve([r for r in rids[rids == q]], [t for t in tids[tids == tq]])
    if len(exact) == 1:
        return next(iter(exact.values()))
    if not exact and q:
        matches = resolve(
            list(rids[rids.str.startswith(q)]), list(tids[tids.str.startswith(tq)]) if tq else []
        )
    else:
        matches = exact
    if len(matches) == 1:
        return next(iter(matches.values()))
    searched = sum(len(f) for f in frames)
    if not matches:
        raise NotFoundError(
            f"no request or trace id starts with {q!r} in {searched:,} events searched",
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
        traces = set(spans.loc[_match(spans, request_id, trace_id), "trace_id"].dropna())
        sp = spans[spans["trace_id"].astype(object).isin(traces)]
    return req, ms, sp
