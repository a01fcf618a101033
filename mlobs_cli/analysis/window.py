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

KEEP = ["ts", "request_id", "trace_id", "model_version", "latency_ms", "status", "error", "source", "line"]
TREND_POINTS = 10  # closed trend buckets kept per version (bucket = the window length)
STAGE_MEMORY = 50_000  # request ids whose dominant stage is remembered
MIN_SPAN_S = 1.0  # a rate is never computed over less than this (the first instants are noise)
MAX_CHUNKS = 512  # added batches kept apart before the older half is merged
SLOWEST = 5  # slowest requests listed in a snapshot


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
    trend: dict[str, list[float]]  # version -> p99 per closed bucket, oldest first, then the window
    slowest: pd.DataFrame  # the slowest requests in the window (KEEP columns + stage, stage_ms)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)  # version -> requests, errors
    percentiles: list[float] = field(default_factory=list)

    @property
    def requests_total(self) -> int:
        return sum(r for r, _ in self.totals.values())


def _ns(wall_s: float) -> int:
    return int(round(wall_s * 1e9))


@dataclass
class _Chunk:
    """One added batch: its rows (for the slowest list) and the columns statistics need."""

    low: int
    high: int
    rows: pd.DataFrame
    ts: np.ndarray  # int64 ns
    codes: np.ndarray  # model_version as an index into RollingWindow._versions
    latency: np.ndarray
    error: np.ndarray


class RollingWindow:
    """Requests of the last `window_s` seconds (event clock), with running totals and a p99 trend.

    Batches are kept as added; whole batches are forgotten once they are out of the window, and a
    snapshot concatenates only the four numeric columns it needs, so the cost per snapshot is
    one pass and one sort over the window, with no copy of the per-request strings.
    """

    def __init__(self, window_s: float, *, trend_points: int = TREND_POINTS) -> None:
        self.window_ns = max(1, _ns(window_s))
        self.window_s = window_s
        self.clock = EventClock()
        self._chunks: list[_Chunk] = []
        self._versions: list[str] = []  # categories of model_version, in order of first sight
        self._version_code: dict[str, int] = {}
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
        uniques, inverse = np.unique(rows["model_version"].astype(str).to_numpy(), return_inverse=True)
        for v in uniques:
            if v not in self._version_code:
                self._version_code[str(v)] = len(self._versions)
                self._versions.append(str(v))
        codes = np.array([self._version_code[str(v)] for v in uniques], dtype=np.int32)[inverse]
        rows["model_version"] = pd.Categorical.from_codes(codes, categories=list(self._versions))
        ts = rows["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
        nat = np.iinfo(np.int64).min
        timed = ts != nat
        if timed.any():
            self.clock.observe(int(ts[timed].max()), wall)
            self._first_ns = min(self._first_ns, int(ts[timed].min()))
        if not timed.all():
            ts = np.where(timed, ts, self.clock.now(wall))
            rows["ts"] = pd.to_datetime(ts, unit="ns", utc=True)
        low, high = int(ts.min()), int(ts.max())
        if self._next_bucket is None:
            self._next_bucket = low - low % self.window_ns
        latency = rows["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
        error = rows["error"].to_numpy(dtype=bool, na_value=False)
        n_by = np.bincount(codes, minlength=len(self._versions))
        err_by = np.bincount(codes, weights=error, minlength=len(self._versions))
        for code in np.flatnonzero(n_by):
            tot = self._totals.setdefault(self._versions[code], [0, 0])
            tot[0] += int(n_by[code])
            tot[1] += int(err_by[code])
        self._chunks.append(_Chunk(low, high, rows, ts, codes, latency, error))
        if len(self._chunks) > MAX_CHUNKS:
            self._compact()
        self.advance(wall_s)
        return rows

    def add_stages(self, stages: dict[str, tuple[str, float]]) -> None:
        """Remember the dominant stage of recent requests (request id -> (stage, ms))."""
        self._stages.update(stages)
        while len(self._stages) > STAGE_MEMORY:
            self._stages.popitem(last=False)

    # ---- upkeep --------------------------------------------------------------------------
    def _compact(self) -> None:
        """Merge the older half of the batches into one (bounds the number of batches kept)."""
        half = len(self._chunks) // 2
        old, self._chunks = self._chunks[:half], self._chunks[half:]
        frames = []
        for c in old:
            c.rows["model_version"] = c.rows["model_version"].cat.set_categories(self._versions)
            frames.append(c.rows)
        merged = _Chunk(
            min(c.low for c in old),
            max(c.high for c in old),
            pd.concat(frames, ignore_index=True),
            *(np.concatenate([getattr(c, a) for c in old]) for a in ("ts", "codes", "latency", "error")),
        )
        self._chunks.insert(0, merged)

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self._chunks:
            return (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0), np.empty(0, bool))
        return tuple(  # type: ignore[return-value]
            np.concatenate([getattr(c, a) for c in self._chunks]) for a in ("ts", "codes", "latency", "error")
        )

    def _frame(
        self, ts: np.ndarray, codes: np.ndarray, latency: np.ndarray, error: np.ndarray
    ) -> pd.DataFrame:
        """The columns `latency_table` reads, as a frame (`ts` as UTC nanoseconds, zero-copy)."""
        return pd.DataFrame(
            {
                "ts": ts.view("datetime64[ns]"),
                "model_version": pd.Categorical.from_codes(
                    codes, dtype=pd.CategoricalDtype(list(self._versions)), validate=False
                ),
                "latency_ms": latency,
                "error": error,
            }
        )

    def _keep_from(self, now: int) -> int:
        return min(now - self.window_ns + 1, self._next_bucket if self._next_bucket is not None else now)

    def advance(self, wall_s: float) -> int:
        """Close finished trend buckets and forget batches no longer needed; return the clock (ns)."""
        now = self.clock.now(_ns(wall_s))
        if self._next_bucket is None or not self._chunks:
            return now
        current = now - now % self.window_ns
        if current > self._next_bucket:
            self._close_buckets(*self._columns(), current)
        keep_from = self._keep_from(now)
        self._chunks = [c for c in self._chunks if c.high >= keep_from]
        return now

    def _close_buckets(
        self, ts: np.ndarray, codes: np.ndarray, latency: np.ndarray, error: np.ndarray, current: int
    ) -> None:
        w = self.window_ns
        maxlen = self._trend.maxlen or TREND_POINTS
        first = max(self._next_bucket, current - maxlen * w)
        sel = (ts >= first) & (ts < current)
        by_bucket: dict[int, dict[str, float]] = {}
        if sel.any():
            sub = self._frame(ts[sel], codes[sel], latency[sel], error[sel])
            sub["_bucket"] = ts[sel] - ts[sel] % w
            table = latency_table(sub, by=["_bucket", "model_version"], percentiles=[99.0])
            for b, v, p in zip(table["_bucket"], table["model_version"], table["p99_ms"], strict=True):
                by_bucket.setdefault(int(b), {})[str(v)] = float(p)
        for b in range(first, current, w):
            self._trend.append((b, by_bucket.get(b, {})))
        self._next_bucket = current

    # ---- output --------------------------------------------------------------------------
    def snapshot(
        self, wall_s: float, *, percentiles: list[float] | None = None, slowest: int = SLOWEST
    ) -> Snapshot:
        """The statistics of the window (clock - W, clock] at wall time `wall_s`."""
        qs = [float(q) for q in (percentiles or [50.0, 95.0, 99.0])]
        qs_all = qs if 99.0 in qs else sorted({*qs, 99.0})
        now = self.advance(wall_s)
        start = now - self.window_ns
        ts, codes, latency, error = self._columns()
        inside = (ts > start) & (ts <= now)
        everything = bool(inside.all())
        frame = self._frame(*(a if everything else a[inside] for a in (ts, codes, latency, error)))
        covered_from = max(start, self._first_ns if self._first_ns is not None else now)
        span_s = max(MIN_SPAN_S, (now - covered_from) / 1e9)
        table = _version_table(frame, qs_all)
        table["rate_per_s"] = table["requests"] / span_s
        present = {str(v) for v in table["model_version"]}
        missing = [v for v in sorted(self._totals) if v not in present]
        if missing:
            empty = pd.DataFrame({"model_version": missing})
            empty["requests"] = 0
            empty["errors"] = 0
            empty["rate_per_s"] = 0.0
            empty["samples"] = 0
            table["model_version"] = table["model_version"].astype(object)
            table = pd.concat([table, empty], ignore_index=True)
            table = table.sort_values("model_version", kind="stable").reset_index(drop=True)
        for col in ("requests", "errors", "samples"):
            table[col] = table[col].astype(np.int64)
        # The trend: p99 of each closed window-long bucket, then the current window's p99.
        now_p99 = dict(zip(table["model_version"].astype(str), table[percentile_key(99.0)], strict=True))
        trend = {
            v: [b.get(v, float("nan")) for _, b in self._trend] + [float(now_p99.get(v, float("nan")))]
            for v in table["model_version"].astype(str)
        }
        if qs_all != qs:
            table = table.drop(columns=[percentile_key(99.0)])
        return Snapshot(
            window_start=pd.Timestamp(start, unit="ns", tz="UTC"),
            window_end=pd.Timestamp(now, unit="ns", tz="UTC"),
            window_s=self.window_s,
            span_s=span_s,
            table=table,
            trend=trend,
            slowest=self._slowest(latency, inside, slowest),
            totals={v: (t[0], t[1]) for v, t in sorted(self._totals.items())},
            percentiles=qs,
        )

    def _stage_of(self, request_id: object, trace_id: object) -> tuple[str, float] | None:
        for key in (request_id, trace_id):
            if isinstance(key, str) and key in self._stages:
                return self._stages[key]
        return None

    def _slowest(self, latency: np.ndarray, inside: np.ndarray, k: int) -> pd.DataFrame:
        """The `k` slowest requests in the window, with their dominant stage when known."""
        candidates = np.flatnonzero(inside & ~np.isnan(latency))
        if k and len(candidates) > k:
            part = np.argpartition(-latency[candidates], k - 1)[:k]
            candidates = candidates[part]
        order = candidates[np.argsort(-latency[candidates], kind="stable")][:k] if k else candidates[:0]
        offsets = np.cumsum([0] + [len(c.ts) for c in self._chunks])
        picked = []
        for idx in order:
            ci = int(np.searchsorted(offsets, idx, side="right") - 1)
            row = self._chunks[ci].rows.iloc[[int(idx - offsets[ci])]].copy()
            row["model_version"] = row["model_version"].astype(str).astype(object)
            picked.append(row)
        top = pd.concat(picked, ignore_index=True) if picked else pd.DataFrame(columns=KEEP)
        found = [
            self._stage_of(rid, tid)
            for rid, tid in zip(
                top.get("request_id", []), top.get("trace_id", [None] * len(top)), strict=True
            )
        ]
        top["stage"] = pd.Series([f[0] if f else None for f in found], index=top.index, dtype=object)
        top["stage_ms"] = pd.Series([f[1] if f else np.nan for f in found], index=top.index, dtype="float64")
        return top


def _version_table(rows: pd.DataFrame, qs: list[float]) -> pd.DataFrame:
    """`latency_table` by model version; its columns, with no rows, when `rows` is empty."""
    if len(rows):
        return latency_table(rows, by=["model_version"], percentiles=qs)
    cols = ["requests", "errors", "error_rate", "rate_per_s", "mean_ms"]
    cols += [percentile_key(q) for q in qs] + ["max_ms", "samples"]
    empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols})
    empty.insert(0, "model_version", pd.Series([], dtype=object))
    return empty


def dominant_stages(
    milestones: pd.DataFrame, spans: pd.DataFrame, requests: pd.DataFrame, *, slowest: int = SLOWEST
) -> dict[str, tuple[str, float]]:
    """Request key (request id, else trace id) -> (stage, self ms) for the `slowest` requests of a
    batch: the stage with the most self time, with stages and self times as `mlobs explain`
    computes them (`analysis/timeline.py`).

    Only a batch's slowest requests can be among the slowest of the window, so only theirs are
    computed: the cost per batch stays small however many requests it holds.
    """
    from mlobs_cli.analysis.timeline import per_request_stages, stage_durations

    if requests is None or requests.empty or (milestones.empty and spans.empty):
        return {}
    top = requests.nlargest(slowest, "latency_ms")
    rids = set(top["request_id"].dropna())
    tids = set(top["trace_id"].dropna())
    ms = milestones[milestones["request_id"].isin(rids)] if len(milestones) else milestones
    sp = spans[spans["trace_id"].isin(tids) | spans["request_id"].isin(rids)] if len(spans) else spans
    stages = stage_durations(ms, sp, top)
    if stages.empty:
        return {}
    per = per_request_stages(stages)
    best = per.loc[per.groupby("request_id", sort=False)["self_ms"].idxmax()]
    return {
        str(key): (str(stage), float(ms_))
        for key, stage, ms_ in zip(best["request_id"], best["stage"], best["self_ms"], strict=True)
    }
