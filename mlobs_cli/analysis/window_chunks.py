"""The batches a `RollingWindow` holds, grouped by model version once, and the statistics read from them.

A `Chunk` is one added batch. Its numeric columns are stored grouped by version code (rows of one
version contiguous, in arrival order), so a snapshot gathers each version's latencies by slicing,
never by a pass over every row of the window per version. `version_stats` then gives exactly what
`latency_table(by=["model_version"])` gives on the same rows: counts, errors, the mean as the same
sequential sum in arrival order, and percentiles and max from the batches' sorted runs (each batch
sorted once; `sorted_runs`), numpy's linear method bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlobs_cli.analysis.latency import percentile_key
from mlobs_cli.analysis.sorted_runs import quantiles_of_runs


@dataclass
class Chunk:
    """One added batch: its rows (for the slowest list) and its columns grouped by version code."""

    low: int  # earliest and latest ts (ns)
    high: int
    rows: pd.DataFrame  # arrival order
    order: np.ndarray  # grouped position -> row index in `rows`
    spans: dict[int, tuple[int, int]]  # version code -> [start, end) in the grouped columns
    ts: np.ndarray  # int64 ns, grouped
    latency: np.ndarray  # float64 ms (NaN: missing), grouped
    error: np.ndarray  # bool, grouped
    counts: dict[int, tuple[int, int]]  # version code -> (errors, missing latencies)
    _top: dict[int, np.ndarray] = field(default_factory=dict)  # k -> grouped positions, slowest first
    _runs: dict[int, np.ndarray] = field(default_factory=dict)  # version code -> sorted latencies

    @classmethod
    def build(
        cls, rows: pd.DataFrame, ts: np.ndarray, codes: np.ndarray, latency: np.ndarray, error: np.ndarray
    ) -> Chunk:
        """A chunk from arrival-order columns (`codes`: version codes)."""
        order = np.argsort(codes, kind="stable")
        grouped = codes[order]
        present = np.flatnonzero(np.bincount(grouped)) if len(grouped) else np.empty(0, np.int64)
        starts = np.searchsorted(grouped, present, side="left")
        ends = np.searchsorted(grouped, present, side="right")
        spans = {int(c): (int(a), int(b)) for c, a, b in zip(present, starts, ends, strict=True)}
        lat, err = latency[order], error[order]
        err_at, nan_at = np.r_[0, np.cumsum(err)], np.r_[0, np.cumsum(np.isnan(lat))]
        counts = {c: (int(err_at[b] - err_at[a]), int(nan_at[b] - nan_at[a])) for c, (a, b) in spans.items()}
        return cls(int(ts.min()), int(ts.max()), rows, order, spans, ts[order], lat, err, counts)

    def arrival(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ts, codes, latency, error) back in arrival order."""
        n = len(self.order)
        codes = np.empty(n, dtype=np.int64)
        for code, (a, b) in self.spans.items():
            codes[a:b] = code
        out = []
        for grouped in (self.ts, codes, self.latency, self.error):
            arr = np.empty_like(grouped)
            arr[self.order] = grouped
            out.append(arr)
        return out[0], out[1], out[2], out[3]

    def inside(self, start: int, end: int) -> np.ndarray | None:
        """Mask (grouped order) of rows with start < ts <= end; None when all are inside."""
        if self.low > start and self.high <= end:
            return None
        return (self.ts > start) & (self.ts <= end)

    def sorted_run(self, code: int, mask: np.ndarray | None) -> np.ndarray:
        """The latencies of one version (within `mask`), sorted, without NaN (cached when whole)."""
        if mask is None and code in self._runs:
            return self._runs[code]
        a, b = self.spans[code]
        lat = self.latency[a:b]
        if mask is not None:
            lat = lat[mask[a:b]]
        run = np.sort(lat)  # NaN sorts last
        if self.counts[code][1]:
            run = run[: len(run) - int(np.count_nonzero(np.isnan(run)))]
        if mask is None:
            self._runs[code] = run
        return run

    def top(self, k: int, mask: np.ndarray | None) -> np.ndarray:
        """Grouped positions of the `k` slowest rows (within `mask`), slowest first, ties by arrival."""
        if mask is None and k in self._top:
            return self._top[k]
        keep = ~np.isnan(self.latency)
        if mask is not None:
            keep &= mask
        cand = np.flatnonzero(keep)
        if len(cand) > k:
            lat = self.latency[cand]
            kth = np.partition(lat, len(lat) - k)[len(lat) - k]
            cand = cand[lat >= kth]  # every row that can be among the k (ties at the edge included)
        picked = cand[np.lexsort((self.order[cand], -self.latency[cand]))][:k]
        if mask is None:
            self._top[k] = picked
        return picked


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    """One chunk holding the rows of `chunks`, in order (their categories must be the same)."""
    cols = [c.arrival() for c in chunks]
    rows = pd.concat([c.rows for c in chunks], ignore_index=True)
    ts, codes, latency, error = (np.concatenate([col[i] for col in cols]) for i in range(4))
    return Chunk.build(rows, ts, codes, latency, error)


def version_stats(
    chunks: list[Chunk], masks: list[np.ndarray | None], versions: list[str], qs: list[float]
) -> pd.DataFrame:
    """`latency_table(rows, by=["model_version"], percentiles=qs)` of the rows `masks` select.

    Same columns, dtypes and row order (by version name); `rate_per_s` is left NaN for the caller.
    """
    pieces: dict[int, list[np.ndarray]] = {}
    runs: dict[int, list[np.ndarray]] = {}
    errors: dict[int, int] = {}
    with_nan: set[int] = set()
    for chunk, mask in zip(chunks, masks, strict=True):
        for code, (a, b) in chunk.spans.items():
            lat = chunk.latency[a:b]
            n_err, n_nan = chunk.counts[code]
            if mask is not None:
                sel = mask[a:b]
                lat = lat[sel]
                n_err = int(np.count_nonzero(chunk.error[a:b][sel])) if n_err else 0
            if len(lat):
                pieces.setdefault(code, []).append(lat)
                runs.setdefault(code, []).append(chunk.sorted_run(code, mask))
                errors[code] = errors.get(code, 0) + n_err
                if n_nan:
                    with_nan.add(code)
    codes = sorted(pieces, key=lambda c: versions[c])
    # Scratch space shared by the versions: each one's values are copied there once (for the sum).
    size = max((sum(map(len, p)) for p in pieces.values()), default=0)
    scratch, sums_scratch = np.empty(size), np.empty(size)
    n = len(codes)
    requests = np.zeros(n, dtype=np.int64)
    samples = np.zeros(n, dtype=np.int64)
    sums = np.zeros(n, dtype=np.float64)
    quant = np.full((n, len(qs)), np.nan)
    maxes = np.full(n, np.nan)
    for i, code in enumerate(codes):
        parts = pieces[code]
        values = scratch[: sum(map(len, parts))]
        np.concatenate(parts, out=values)
        requests[i] = len(values)
        if code in with_nan:
            values = values[~np.isnan(values)]
        samples[i] = len(values)
        if not len(values):
            continue
        # latency_table's mean is np.bincount's sequential sum from 0.0, in arrival order: so is
        # cumsum's, but from the first value (differs only for -0.0 sums: `+ 0.0` makes them +0.0).
        sums[i] = float(np.cumsum(values, out=sums_scratch[: len(values)])[-1]) + 0.0
        quant[i], maxes[i] = quantiles_of_runs(runs[code], qs, scratch)
    errs = np.array([errors[c] for c in codes], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / samples
        error_rate = errs / requests
    out: dict[str, object] = {
        "model_version": pd.Categorical.from_codes(
            np.asarray(codes, dtype=np.int64), dtype=pd.CategoricalDtype(list(versions)), validate=False
        ),
        "requests": requests,
        "errors": errs,
        "error_rate": error_rate,
        "rate_per_s": np.full(n, np.nan),
        "mean_ms": means,
    }
    for j, q in enumerate(qs):
        out[percentile_key(q)] = quant[:, j]
    out["max_ms"] = maxes
    out["samples"] = samples
    table = pd.DataFrame(out)
    table.attrs.update(unbucketed=0, percentiles=list(qs), metric="latency_ms", status="all")
    return table


def bucket_p99(chunks: list[Chunk], first: int, current: int, width: int, versions: list[str]) -> dict:
    """Bucket start -> {version: p99 ms} over rows with first <= ts < current, buckets `width` long.

    Each bucket's p99 is read from the batches' sorted runs (`quantiles_of_runs`): no sort of the
    bucket, which holds a whole window's worth of requests.
    """
    out: dict[int, dict[str, float]] = {}
    for b in range(first, current, width):
        runs: dict[int, list[np.ndarray]] = {}
        for chunk in chunks:
            if chunk.high < b or chunk.low >= b + width:
                continue
            mask = chunk.inside(b - 1, b + width - 1)  # b <= ts < b + width, in ns
            for code in chunk.spans:
                run = chunk.sorted_run(code, mask)
                if len(run):
                    runs.setdefault(code, []).append(run)
        for code, parts in runs.items():
            out.setdefault(b, {})[versions[code]] = float(quantiles_of_runs(parts, [99.0])[0][0])
    return out
