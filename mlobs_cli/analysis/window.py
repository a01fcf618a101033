"""Rolling per-model-version statistics over a sliding window, for `mlobs tail`.

The clock is event time: the window is (clock - W, clock], where the clock is the newest event
timestamp seen, advanced by the wall time elapsed since that event arrived. A live log therefore
slides in real time (a service that goes quiet decays to zero requests/s instead of freezing), and a
replayed log with old timestamps gives the numbers of its own last W. A line without a timestamp is
stamped with the clock at its arrival (with no timestamps at all, this is arrival time).
Statistics come from `latency_table` (exact numpy percentiles); rates are requests / covered span.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlobs_cli.analysis.latency import latency_table, percentile_key

KEEP = ["ts", "request_id", "model_version", "latency_ms", "status", "error", "source", "line"]
TREND_POINTS = 10  # closed trend buckets kept per version (bucket = the window length)
STAGE_MEMORY = 50_000  # request ids whose dominant stage is remembered
MIN_SPAN_S = 1.0  # a rate is never computed over less than this (the first instants are noise)


class EventClock:
    """Event time, advanced by wall time between events; monotonic once anchored. Times in ns."""

    def __init__(self) -> None:
        self.anchor_ts: int | None = None
        self.anchor_wall = 0

    def now(self, wall_ns: int) -> int:
        if self.anchor_ts is None:
            return wall_ns
        return self.anchor_ts + (wall_ns - self.anchor_wall)

    def observe(self, newest_ns: int, wall_ns: int) -> None:
        """An event with timestamp `newest_ns` arrived at `wall_ns`."""
        if self.anchor_ts is None or newest_ns > self.now(wall_ns):
            self.anchor_ts = newest_ns
            self.anchor_wall = wall_ns


@dataclass
class Snapshot:
    """What the window holds at one instant."""

    window_start: pd.Timestamp
    window_end: pd.Timestamp
    window_s: float
    span_s: float  # the part of the window the input covers (rates divide by this)
    table: pd.DataFrame  # latency_table columns, one row per version seen so far, rate over span
    trend: dict[str, list[float]]  # version -> p99 per trend bucket, oldest first, last one open
    slowest: pd.DataFrame  # the slowest requests in the window (KEEP columns + stage, stage_ms)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)  # version -> requests, errors
    percentiles: list[float] = field(default_factory=list)

    @property
    def requests_total(self) -> int:
        return sum(r for r, _ in self.totals.values())


def _ns(wall_s: float) -> int:
    return int(round(wall_s * 1e9))


class RollingWindow:
    """Requests of the last `window_s` seconds (event clock), with running totals and a p99 trend."""

    def __init__(self, window_s: float, *, trend_points: int = TREND_POINTS) -> None:
        self.window_ns = max(1, _ns(window_s))
        self.window_s = window_s
        self.clock = EventClock()
        self._chunks: list[pd.DataFrame] = []
        self._first_ns: int | None = None  # the earliest time the input covers
        self._next_bucket: int | None = None  # start of the oldest trend bucket not yet closed
        self._trend: deque[tuple[int, dict[str, float]]] = deque(maxlen=trend_points)
        self._totals: dict[str, list[int]] = {}
        self._stages: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # ---- input ---------------------------------------------------------------------------
    def add(self, requests: pd.DataFrame, wall_s: float) -> pd.DataFrame:
        """Add a batch of request rows (frame contract); return them as kept, with `ts` filled."""
        wall = _ns(wall_s)
        if self._first_ns is None:
            self._first_ns = wall
        cols = [c for c in KEEP if c in requests.columns]
        rows = requests[cols].copy()
        if rows.empty:
            self.advance(wall_s)
            return rows
        rows["model_version"] = rows["model_version"].astype(str)
        ts = rows["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        nat = np.iinfo(np.int64).min
        timed = ts != nat
        if timed.any():
            self.clock.observe(int(ts[timed].max()), wall)
            self._first_ns = min(self._first_ns, int(ts[timed].min()))
        if not timed.all():
            stamped = np.where(timed, ts, self.clock.now(wall))
            rows["ts"] = pd.to_datetime(stamped, unit="ns", utc=True)
        if self._next_bucket is None:
            low = int(rows["ts"].min().value)
            self._next_bucket = low - low % self.window_ns
        counts = rows.groupby("model_version", sort=False, observed=True)["error"].agg(["size", "sum"])
        for version, n, errs in zip(counts.index, counts["size"], counts["sum"], strict=True):
            tot = self._totals.setdefault(str(version), [0, 0])
            tot[0] += int(n)
            tot[1] += int(errs)
        self._chunks.append(rows)
        self.advance(wall_s)
        return rows

    def add_stages(self, stages: dict[str, tuple[str, float]]) -> None:
        """Remember the dominant stage of recent requests (request id -> (stage, ms))."""
        self._stages.update(stages)
        while len(self._stages) > STAGE_MEMORY:
            self._stages.popitem(last=False)

    # ---- upkeep --------------------------------------------------------------------------
    def _rows(self) -> pd.DataFrame:
        if not self._chunks:
            return pd.DataFrame(
                {
                    "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "model_version": pd.Series([], dtype=object),
                    "latency_ms": pd.Series([], dtype="float64"),
                    "error": pd.Series([], dtype=bool),
                }
            )
        if len(self._chunks) > 1:
            self._chunks = [pd.concat(self._chunks, ignore_index=True)]
        return self._chunks[0]

    def advance(self, wall_s: float) -> int:
        """Close finished trend buckets and forget rows no longer needed; return the clock (ns)."""
        now = self.clock.now(_ns(wall_s))
        if self._next_bucket is None or not self._chunks:
            return now
        current = now - now % self.window_ns
        rows = self._rows()
        ts = rows["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        if current > self._next_bucket:
            self._close_buckets(rows, ts, current)
        keep_from = min(now - self.window_ns + 1, self._next_bucket)
        if len(ts) and ts.min() < keep_from:
            self._chunks = [rows[ts >= keep_from].reset_index(drop=True)]
        return now

    def _close_buckets(self, rows: pd.DataFrame, ts: np.ndarray, current: int) -> None:
        w = self.window_ns
        maxlen = self._trend.maxlen or TREND_POINTS
        first = max(self._next_bucket, current - maxlen * w)
        sel = (ts >= first) & (ts < current)
        by_bucket: dict[int, dict[str, float]] = {}
        if sel.any():
            sub = rows.loc[sel, ["model_version", "latency_ms", "error", "ts"]].copy()
            sub["_bucket"] = ts[sel] - ts[sel] % w
            table = latency_table(sub, by=["_bucket", "model_version"], percentiles=[99.0])
            for b, v, p in zip(table["_bucket"], table["model_version"], table["p99_ms"], strict=True):
                by_bucket.setdefault(int(b), {})[str(v)] = float(p)
        for b in range(first, current, w):
            self._trend.append((b, by_bucket.get(b, {})))
        self._next_bucket = current

    # ---- output --------------------------------------------------------------------------
    def snapshot(
        self, wall_s: float, *, percentiles: list[float] | None = None, slowest: int = 5
    ) -> Snapshot:
        """The statistics of the window (clock - W, clock] at wall time `wall_s`."""
        qs = [float(q) for q in (percentiles or [50.0, 95.0, 99.0])]
        if 99.0 not in qs:
            qs_all = sorted({*qs, 99.0})
        else:
            qs_all = qs
        now = self.advance(wall_s)
        start = now - self.window_ns
        rows = self._rows()
        ts = rows["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        inside = rows[(ts > start) & (ts <= now)]
        covered_from = max(start, self._first_ns if self._first_ns is not None else now)
        span_s = max(MIN_SPAN_S, (now - covered_from) / 1e9)
        table = _version_table(inside, qs_all)
        table["rate_per_s"] = table["requests"] / span_s
        missing = [v for v in sorted(self._totals) if v not in set(table["model_version"])]
        if missing:
            empty = pd.DataFrame({"model_version": missing})
            empty["requests"] = 0
            empty["errors"] = 0
            empty["rate_per_s"] = 0.0
            empty["samples"] = 0
            table = pd.concat([table, empty], ignore_index=True)
            table = table.sort_values("model_version", kind="stable").reset_index(drop=True)
        table["requests"] = table["requests"].astype(np.int64)
        table["errors"] = table["errors"].astype(np.int64)
        table["samples"] = table["samples"].astype(np.int64)
        open_p99 = self._open_bucket_p99(rows, ts, now)
        trend = {
            v: [b.get(v, float("nan")) for _, b in self._trend] + [open_p99.get(v, float("nan"))]
            for v in table["model_version"]
        }
        if qs_all != qs:
            table = table.drop(columns=[percentile_key(99.0)])
        top = inside.nlargest(slowest, "latency_ms") if slowest else inside.iloc[:0]
        top = top.copy()
        found = [self._stages.get(str(r)) if r is not None else None for r in top.get("request_id", [])]
        top["stage"] = pd.Series([f[0] if f else None for f in found], index=top.index, dtype=object)
        top["stage_ms"] = pd.Series([f[1] if f else np.nan for f in found], index=top.index, dtype="float64")
        return Snapshot(
            window_start=pd.Timestamp(start, unit="ns", tz="UTC"),
            window_end=pd.Timestamp(now, unit="ns", tz="UTC"),
            window_s=self.window_s,
            span_s=span_s,
            table=table,
            trend=trend,
            slowest=top.reset_index(drop=True),
            totals={v: (t[0], t[1]) for v, t in sorted(self._totals.items())},
            percentiles=qs,
        )

    def _open_bucket_p99(self, rows: pd.DataFrame, ts: np.ndarray, now: int) -> dict[str, float]:
        current = now - now % self.window_ns
        sub = rows[(ts >= current) & (ts <= now)]
        if sub.empty:
            return {}
        t = _version_table(sub, [99.0])
        return {str(v): float(p) for v, p in zip(t["model_version"], t["p99_ms"], strict=True)}


def _version_table(rows: pd.DataFrame, qs: list[float]) -> pd.DataFrame:
    """`latency_table` by model version; its columns, with no rows, when `rows` is empty."""
    if len(rows):
        return latency_table(rows, by=["model_version"], percentiles=qs)
    cols = ["requests", "errors", "error_rate", "rate_per_s", "mean_ms"]
    cols += [percentile_key(q) for q in qs] + ["max_ms", "samples"]
    empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols})
    empty.insert(0, "model_version", pd.Series([], dtype=object))
    return empty


def dominant_stages(spans: pd.DataFrame, milestones: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """Request id -> (stage, ms) of its longest stage.

    A stage is a span that is not a request's root (a child span, or a stage-with-duration line),
    or, from milestones, the gap between two consecutive events of a request, named after the event
    that ends it (`features_fetched` covers the time until the features were fetched).
    """
    out: dict[str, tuple[str, float]] = {}
    if milestones is not None and len(milestones) > 1:
        m = milestones[milestones["request_id"].notna() & milestones["ts"].notna()]
        m = m.sort_values(["request_id", "ts"], kind="stable")
        rid = m["request_id"].to_numpy()
        ts = m["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        same = np.zeros(len(m), dtype=bool)
        same[1:] = rid[1:] == rid[:-1]
        gaps = pd.DataFrame(
            {
                "request_id": rid[same],
                "stage": m["event"].to_numpy()[same],
                "ms": (ts[same] - np.roll(ts, 1)[same]) / 1e6,
            }
        )
        if len(gaps):
            best = gaps.loc[gaps.groupby("request_id", sort=False)["ms"].idxmax()]
            out.update(zip(best["request_id"], zip(best["stage"], best["ms"], strict=True), strict=True))
    if spans is not None and len(spans):
        s = spans[spans["parent_span_id"].notna() | (spans["kind"] == "stage")]
        key = s["request_id"].where(s["request_id"].notna(), s["trace_id"])
        s = s.assign(_key=key)[key.notna()]
        if len(s):
            best = s.loc[s.groupby("_key", sort=False)["duration_ms"].idxmax()]
            out.update(zip(best["_key"], zip(best["name"], best["duration_ms"], strict=True), strict=True))
    return out
