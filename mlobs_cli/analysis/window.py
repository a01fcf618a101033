"""Rolling per-model-version statistics over a sliding window, for `mlobs tail`.

The clock is event time: the window is (clock - W, clock], where the clock is the newest event
timestamp seen, advanced by the wall time elapsed since that event arrived. A live log therefore
slides in real time (a service that goes quiet decays to zero requests/s instead of freezing), and a
replayed log with old timestamps gives the numbers of its own last W. A line without a timestamp is
stamped with the clock at its arrival (with no timestamps at all, this is arrival time).
Statistics are `latency_table`'s on the rows inside (exact numpy percentiles, the same bits; see
`window_chunks`); rates are requests / covered span.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlobs_cli.analysis.latency import percentile_key
from mlobs_cli.analysis.window_chunks import Chunk, bucket_p99, merge_chunks, version_stats

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


class RollingWindow:
    """Requests of the last `window_s` seconds (event clock), with running totals and a p99 trend.

    Batches are kept as added (`Chunk`: columns grouped by version, latencies sorted once per
    version), whole batches are forgotten once they are out of the window, and a snapshot reads
    each version's ranks from those sorted runs: no sort of the window, and no copy of the
    per-request strings.
    """

    def __init__(self, window_s: float, *, trend_points: int = TREND_POINTS) -> None:
        self.window_ns = max(1, _ns(window_s))
        self.window_s = window_s
        self.clock = EventClock()
        self._chunks: list[Chunk] = []
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
        rows = requests[cols]  # copy-on-write (pandas 3): our column changes never reach `requests`
        if rows.empty:
            self.advance(wall_s)
            return rows
        codes = self._codes(rows["model_version"])
        rows["model_version"] = pd.Categorical.from_codes(
            codes, dtype=pd.CategoricalDtype(list(self._versions)), validate=False
        )
        ts = rows["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
        nat = np.iinfo(np.int64).min
        timed = ts != nat
        if timed.any():
            self.clock.observe(int(ts[timed].max()), wall)
            self._first_ns = min(self._first_ns, int(ts[timed].min()))
        if not timed.all():
            ts = np.where(timed, ts, self.clock.now(wall))
            rows["ts"] = pd.to_datetime(ts, unit="ns", utc=True)
        chunk = Chunk.build(
            rows,
            ts,
            codes,
            rows["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan),
            rows["error"].to_numpy(dtype=bool, na_value=False),
        )
        if self._next_bucket is None:
            self._next_bucket = chunk.low - chunk.low % self.window_ns
        for code, (a, b) in chunk.spans.items():
            tot = self._totals.setdefault(self._versions[code], [0, 0])
            tot[0] += b - a
            tot[1] += int(np.count_nonzero(chunk.error[a:b]))
        self._chunks.append(chunk)
        if len(self._chunks) > MAX_CHUNKS:
            self._compact()
        self.advance(wall_s)
        return rows

    def _codes(self, versions: pd.Series) -> np.ndarray:
        """Version codes of a column (new versions registered in name order, as first seen)."""
        if isinstance(versions.dtype, pd.CategoricalDtype):
            cats = versions.cat.categories.astype(str)
            inverse = versions.cat.codes.to_numpy().astype(np.int64)
            if (inverse < 0).any():
                cats = cats.append(pd.Index(["nan"]))
                inverse = np.where(inverse < 0, len(cats) - 1, inverse)
            used = np.bincount(inverse, minlength=len(cats)) > 0
            if not used.all() or not cats.is_unique:
                uniques, inverse = np.unique(cats.to_numpy(dtype=object)[inverse], return_inverse=True)
            else:
                uniques = cats.to_numpy(dtype=object)
        else:
            uniques, inverse = np.unique(versions.astype(str).to_numpy(), return_inverse=True)
        for v in sorted(str(u) for u in uniques):
            if v not in self._version_code:
                self._version_code[v] = len(self._versions)
                self._versions.append(v)
        lookup = np.array([self._version_code[str(v)] for v in uniques], dtype=np.int64)
        return lookup[inverse.reshape(-1)]

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
        for c in old:
            c.rows["model_version"] = c.rows["model_version"].cat.set_categories(self._versions)
        self._chunks.insert(0, merge_chunks(old))

    def _keep_from(self, now: int) -> int:
        return min(now - self.window_ns + 1, self._next_bucket if self._next_bucket is not None else now)

    def advance(self, wall_s: float) -> int:
        """Close finished trend buckets and forget batches no longer needed; return the clock (ns)."""
        now = self.clock.now(_ns(wall_s))
        if self._next_bucket is None or not self._chunks:
            return now
        current = now - now % self.window_ns
        if current > self._next_bucket:
            self._close_buckets(current)
        keep_from = self._keep_from(now)
        self._chunks = [c for c in self._chunks if c.high >= keep_from]
        return now

    def _close_buckets(self, current: int) -> None:
        w = self.window_ns
        maxlen = self._trend.maxlen or TREND_POINTS
        first = max(self._next_bucket, current - maxlen * w)
        by_bucket = bucket_p99(self._chunks, first, current, w, self._versions)
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
        masks = [c.inside(start, now) for c in self._chunks]
        covered_from = max(start, self._first_ns if self._first_ns is not None else now)
        span_s = max(MIN_SPAN_S, (now - covered_from) / 1e9)
        table = _version_table(version_stats(self._chunks, masks, self._versions, qs_all))
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
            slowest=self._slowest(masks, slowest),
            totals={v: (t[0], t[1]) for v, t in sorted(self._totals.items())},
            percentiles=qs,
        )

    def _stage_of(self, request_id: object, trace_id: object) -> tuple[str, float] | None:
        for key in (request_id, trace_id):
            if isinstance(key, str) and key in self._stages:
                return self._stages[key]
        return None

    def _slowest(self, masks: list[np.ndarray | None], k: int) -> pd.DataFrame:
        """The `k` slowest requests in the window (ties: the earlier first), with their dominant
        stage when known."""
        cands: list[tuple[float, int, int]] = []  # (-latency, chunk, row)
        if k:
            for ci, (chunk, mask) in enumerate(zip(self._chunks, masks, strict=True)):
                for pos in chunk.top(k, mask):
                    cands.append((-float(chunk.latency[pos]), ci, int(chunk.order[pos])))
        picked = []
        for _, ci, row_idx in sorted(cands)[:k]:
            row = self._chunks[ci].rows.iloc[[row_idx]].copy()
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


def _version_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-version table; `latency_table`'s columns with object versions when it has no rows."""
    if len(table):
        return table
    qs = table.attrs["percentiles"]
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
