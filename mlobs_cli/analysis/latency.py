"""Exact latency percentiles, request rates and error rates per group (version, field, bucket).

`latency_table(requests, by=..., percentiles=...)` returns one row per group with the columns of the
contract in docs/DESIGN.md. Percentiles are numpy's default linear interpolation, bit for bit: every
group's values are sorted once and all requested quantiles are read from the sorted segment by index
arithmetic (vectorized over groups and quantiles). Pure functions on frames: no printing, no I/O.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from mlobs_cli.durations import parse_duration
from mlobs_cli.errors import UsageError

if TYPE_CHECKING:  # imported in the functions that use it: parse_percentiles is needed before loading,
    import pandas as pd  # and a reader worker forked then must not inherit pandas' import cost

STATUSES = ("all", "ok", "error")
MAX_GROUP_SORTS = 50_000  # above this many groups, one lexsort beats a sort per group
DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
BUCKET = "bucket_start"
# Columns of the table after the group keys (DESIGN.md), then `samples` (how many values fed the
# latency columns: differs from `requests` under --status ok|error or when the metric is missing).
STAT_COLUMNS = ("requests", "errors", "error_rate", "rate_per_s", "mean_ms")


def percentile_key(q: float) -> str:
    """The column name of a percentile: 50 -> `p50_ms`, 99.9 -> `p99.9_ms`."""
    text = f"{float(q):.6f}".rstrip("0").rstrip(".")
    return f"p{text}_ms"


def parse_percentiles(text: str) -> list[float]:
    """`"50,90,99.9"` (or `p50,p99`) -> sorted unique floats in [0, 100]; UsageError otherwise."""
    values: list[float] = []
    for part in str(text).split(","):
        item = part.strip().lower().removeprefix("p")
        if not item:
            continue
        try:
            q = float(item)
        except ValueError:
            raise UsageError(
                f"invalid percentile {part.strip()!r}", "use numbers 0-100 like -p 50,95,99,99.9"
            ) from None
        if not 0.0 <= q <= 100.0:
            raise UsageError(f"percentile {part.strip()!r} is outside 0-100", "e.g. -p 50,99")
        values.append(q)
    if not values:
        raise UsageError("no percentiles given", "use e.g. -p 50,90,95,99")
    return sorted(set(values))


def min_samples(q: float) -> int:
    """Fewest values for which the q-th percentile has at least one value above it (p99 -> 100).

    Below this a high percentile is just the maximum (or an interpolation toward it): flag it.
    """
    frac = Fraction(str(float(q)))
    if frac >= 100 or frac <= 0:
        return 1
    return max(1, ceil(Fraction(100) / (100 - frac)))


def numpy_linear_quantiles(
    sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, percentiles: list[float]
) -> np.ndarray:
    """Quantiles of many sorted segments at once, exactly as `np.percentile(seg, percentiles)`.

    `sorted_values[starts[i]:starts[i]+counts[i]]` is segment i, sorted ascending. Returns a
    (len(starts), len(percentiles)) float64 array; NaN where a segment is empty. Mirrors numpy's
    `method="linear"`: virtual index (n-1)*q, and `_lerp`'s two-sided formula for bitwise equality.
    """
    q = np.true_divide(np.asarray(percentiles, dtype=np.float64), 100)
    out = np.full((len(starts), len(q)), np.nan)
    nonempty = counts > 0
    if not nonempty.any() or len(q) == 0:
        return out
    n = counts[nonempty].astype(np.int64)
    base = starts[nonempty].astype(np.int64)
    virtual = (n - 1).astype(np.float64)[:, None] * q[None, :]
    prev = np.floor(virtual)
    gamma = virtual - prev
    prev_i = prev.astype(np.int64)
    next_i = prev_i + 1
    last = (n - 1)[:, None]
    above = virtual >= last
    prev_i = np.where(above, last, prev_i)
    next_i = np.where(above, last, next_i)
    a = sorted_values[base[:, None] + prev_i]
    b = sorted_values[base[:, None] + next_i]
    diff = b - a
    lerp = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    out[nonempty] = np.where(above, a, lerp)
    return out


def _sorted_codes(series: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes ordered as the sorted values (missing last), and how many codes there are."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int64)
        uniques = pd.Index(series.cat.categories)
    else:
        try:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
        except TypeError:  # unhashable values (lists, dicts): group by their text
            codes, uniques = pd.factorize(series.map(lambda v: None if v is None else repr(v)))
        codes = codes.astype(np.int64)
    try:
        rank_order = np.argsort(np.asarray(uniques), kind="stable")
    except TypeError:  # mixed types in an object column
        keys = [(type(u).__name__, str(u)) for u in uniques]
        rank_order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    rank = np.empty(len(uniques) + 1, dtype=np.int64)
    rank[rank_order] = np.arange(len(uniques))
    rank[len(uniques)] = len(uniques)  # missing (-1) sorts last
    return rank[np.where(codes < 0, len(uniques), codes)], len(uniques) + 1


def _group_codes(parts: list[tuple[np.ndarray, int]], n_rows: int) -> tuple[np.ndarray, int]:
    """Combine per-key codes into dense group codes 0..G-1 ordered lexicographically by key."""
    if not parts:
        return np.zeros(n_rows, dtype=np.int64), 1 if n_rows else 0
    combined = np.zeros(n_rows, dtype=np.int64)
    space = 1
    for codes, size in parts:
        space *= size
        if space > 4_000_000:
            break
        combined = combined * size + codes
    else:
        occupied = np.bincount(combined, minlength=space) > 0
        remap = np.cumsum(occupied) - 1
        return remap[combined], int(occupied.sum())
    stacked = np.stack([c for c, _ in parts], axis=1)
    _, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse.astype(np.int64), int(inverse.max()) + 1 if n_rows else 0


def _starts(counts: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive segments of the given lengths."""
    return (np.cumsum(counts) - counts).astype(np.int64)


def _check_inputs(requests: pd.DataFrame, by: list[str], metric: str, status: str) -> None:
    import pandas as pd

    missing = [f for f in by if f not in requests.columns]
    if missing:
        known = ", ".join(str(c) for c in requests.columns)
        raise UsageError(f"unknown field {missing[0]!r} to group by", f"known fields: {known}")
    if status not in STATUSES:
        raise UsageError(f"invalid status {status!r}", "use all, ok or error")
    if metric not in requests.columns or not pd.api.types.is_numeric_dtype(requests[metric]):
        numeric = [
            str(c)
            for c in requests.columns
            if pd.api.types.is_numeric_dtype(requests[c]) and c not in ("status", "line", "error")
        ]
        raise UsageError(
            f"unknown metric {metric!r}", f"numeric fields of these requests: {', '.join(numeric)}"
        )


def latency_table(
    requests: pd.DataFrame,
    *,
    by: list[str],
    percentiles: list[float],
    metric: str = "latency_ms",
    every: str | None = None,
    status: str = "all",
) -> pd.DataFrame:
    """One row per group: keys, requests, errors, error_rate, rate_per_s, mean_ms, pNN_ms, max_ms.

    - `by`: group keys (field names); `every`: also bucket by `ts` floored to the duration (epoch
      aligned), as a first column `bucket_start`. Requests without a timestamp cannot be bucketed
      and are left out with `every`; their number is in `table.attrs["unbucketed"]`.
    - `status`: which requests feed mean/percentiles/max (all, ok = not error, error); `requests`,
      `errors` and `error_rate` always count every request of the group. Requests whose metric is
      missing (NaN) feed no latency column. The trailing `samples` column counts those that did.
    - `rate_per_s`: requests / the observed time span. Without `every` the span is the group's first
      to last timestamp; with `every` it is the part of the bucket that the logs cover (the bucket
      clipped to the first..last timestamp of the whole input). Null when the span is zero (one
      request, or all at one instant): a rate needs a window.
    - Rows are ordered by bucket, then the keys in order (categories and values sorted).
    """
    import pandas as pd

    by = list(by)
    _check_inputs(requests, by, metric, status)
    qs = [float(q) for q in percentiles]
    pcols = [percentile_key(q) for q in qs]
    frame = requests
    unbucketed = 0
    if every is not None:
        every_ns = int(round(parse_duration(every) * 1e9))
        if every_ns <= 0:
            raise UsageError(f"bucket width {every!r} is below a nanosecond", "use e.g. 1m")
        has_ts = requests["ts"].notna().to_numpy()
        unbucketed = int((~has_ts).sum())
        frame = requests[has_ts] if unbucketed else requests
    n_rows = len(frame)
    ts_ns = frame["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    nat = np.iinfo(np.int64).min
    parts: list[tuple[np.ndarray, int]] = []
    if every is not None:
        bucket_idx = np.floor_divide(ts_ns, every_ns)
        lo = int(bucket_idx.min()) if n_rows else 0
        parts.append((bucket_idx - lo, int(bucket_idx.max()) - lo + 1 if n_rows else 1))
    parts.extend(_sorted_codes(frame[key]) for key in by)
    codes, n_groups = _group_codes(parts, n_rows)
    if n_rows == 0:
        n_groups = 0

    counts = np.bincount(codes, minlength=n_groups)
    errors_arr = frame["error"].to_numpy(dtype=bool, na_value=False)
    errors = np.bincount(codes, weights=errors_arr, minlength=n_groups).astype(np.int64)

    # Order rows by group once (a stable radix sort on small ints), for representatives and spans.
    small = codes.astype(np.int16 if n_groups < 32_000 else np.int64)
    order = np.argsort(small, kind="stable")
    starts = _starts(counts)
    rep = order[starts] if n_groups else np.array([], dtype=np.int64)

    # Time span per group (NaT ignored).
    ts_sorted = ts_ns[order]
    valid = ts_sorted != nat
    if n_groups:
        first = np.minimum.reduceat(np.where(valid, ts_sorted, np.iinfo(np.int64).max), starts)
        last = np.maximum.reduceat(np.where(valid, ts_sorted, nat), starts)
        timed = np.add.reduceat(valid.astype(np.int64), starts)
    else:
        first = last = timed = np.array([], dtype=np.int64)
    if every is not None and n_groups:
        bucket_start = np.floor_divide(first, every_ns) * every_ns
        lo_all, hi_all = int(ts_ns.min()), int(ts_ns.max())
        span_ns = np.minimum(bucket_start + every_ns, hi_all) - np.maximum(bucket_start, lo_all)
    else:
        span_ns = np.where(timed > 0, last - first, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(span_ns > 0, timed / (span_ns / 1e9), np.nan)

    # Latency columns from the selected values, sorted within each group.
    values = frame[metric].to_numpy(dtype=np.float64, na_value=np.nan)
    select = ~np.isnan(values)
    if status == "ok":
        select &= ~errors_arr
    elif status == "error":
        select &= errors_arr
    sel_codes = codes[select]
    sel_values = values[select]
    samples = np.bincount(sel_codes, minlength=n_groups)
    sel_starts = _starts(samples)
    multi = np.flatnonzero(samples > 1)
    if len(multi) <= MAX_GROUP_SORTS:
        sel_sorted = sel_values[np.argsort(small[select], kind="stable")]
        for g in multi:  # one C sort per group, not per row
            s = sel_starts[g]
            sel_sorted[s : s + samples[g]].sort()
    else:  # very many groups (e.g. --by request_id): one vectorized sort by (group, value)
        sel_sorted = sel_values[np.lexsort((sel_values, sel_codes))]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.bincount(sel_codes, weights=sel_values, minlength=n_groups) / samples
        error_rate = errors / counts
    quant = numpy_linear_quantiles(sel_sorted, sel_starts, samples, qs)
    maxes = numpy_linear_quantiles(sel_sorted, sel_starts, samples, [100.0])[:, 0]

    out: dict[str, object] = {}
    if every is not None:
        out[BUCKET] = pd.to_datetime(np.floor_divide(first, every_ns) * every_ns, unit="ns", utc=True)
    for key in by:
        out[key] = frame[key].iloc[rep].reset_index(drop=True)
    out["requests"] = counts.astype(np.int64)
    out["errors"] = errors
    out["error_rate"] = error_rate
    out["rate_per_s"] = rate
    out["mean_ms"] = means
    for i, col in enumerate(pcols):
        out[col] = quant[:, i]
    out["max_ms"] = maxes
    out["samples"] = samples.astype(np.int64)
    table = pd.DataFrame(out)
    if every is not None and n_groups == 0:
        table[BUCKET] = pd.Series([], dtype="datetime64[ns, UTC]")
    table.attrs["unbucketed"] = unbucketed
    table.attrs["percentiles"] = qs
    table.attrs["metric"] = metric
    table.attrs["status"] = status
    return table


def low_sample(table: pd.DataFrame, percentiles: list[float]) -> pd.DataFrame:
    """Booleans per percentile column: True where the row's sample is too small for it.

    Too small = fewer than `min_samples(q)` values (p99 from fewer than 100, p99.9 from fewer
    than 1,000): such a percentile is (an interpolation toward) the maximum: flagged, not hidden.
    """
    import pandas as pd

    samples = table["samples"].to_numpy()
    return pd.DataFrame({percentile_key(q): samples < min_samples(q) for q in percentiles}, index=table.index)


def histogram(
    requests: pd.DataFrame, *, by: str, metric: str = "latency_ms", bins: int = 40
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Latency histogram per value of `by` on shared, log-spaced bin edges (ms).

    Returns `(edges, {group: counts})`; edges span the positive values of all groups, so versions
    can be compared bin for bin. Values <= 0 fall in the first bin; NaN values are left out.
    """

    values = requests[metric].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = ~np.isnan(values)
    positive = values[ok & (values > 0)]
    if positive.size == 0:
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        lo, hi = float(positive.min()), float(positive.max())
        if hi <= lo:
            lo, hi = lo * 0.9, hi * 1.1
        edges = np.geomspace(lo, hi, bins + 1)
    codes, _ = _sorted_codes(requests[by])
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    result: dict[str, np.ndarray] = {}
    labels = requests[by].astype(str).to_numpy()
    for code in np.unique(codes[ok]):
        rows = ok & (codes == code)
        label = labels[np.flatnonzero(rows)[0]]
        result[label] = np.bincount(idx[rows], minlength=bins)
    return edges, result


def stage_metric(
    requests: pd.DataFrame, stages: pd.DataFrame, stage: str, *, name_col: str = "name"
) -> pd.Series:
    """Per request: the summed duration (ms) of its stages named `stage`; NaN when it has none.

    `stages` has `request_id`, `trace_id`, `duration_ms` and the stage name in `name_col`: the spans
    frame (`name`) or the timeline's `stage_durations` (`stage`). Stages are matched to requests by
    `request_id`, else by `trace_id`. Raises UsageError listing the stage names when none matches.
    """
    import pandas as pd

    named = stages[stages[name_col] == stage] if len(stages) else stages
    if not len(named):
        names = sorted({str(n) for n in stages[name_col].dropna().unique()}) if len(stages) else []
        raise UsageError(
            f"unknown metric or stage {stage!r}",
            "metrics: latency_ms, inference_ms; stages in these logs: "
            + (", ".join(names) if names else "none"),
        )
    result = pd.Series(np.nan, index=requests.index, dtype=np.float64)
    for key in ("request_id", "trace_id"):
        have = named[named[key].notna()]
        if not len(have):
            continue
        sums = have.groupby(key, sort=False)["duration_ms"].sum()
        mapped = requests[key].astype(object).map(sums).astype(np.float64)
        result = result.fillna(mapped)
    return result
