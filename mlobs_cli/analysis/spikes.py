"""Latency/error/traffic spikes: robust per-version anomaly windows over time buckets.

Contract: `score_buckets` flags anomalous buckets of one bucketed series (rolling median/MAD
baseline, modified z-score), `windows_from_scores` merges adjacent flags into windows, and
`find_spikes` runs both on a requests frame (bucketed by `analysis.latency.latency_table`), then
confirms each window on its requests. Pure and vectorized.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.spike_confirm import window_p_value
from mlobs_cli.errors import UsageError

# Modified z-score (Iglewicz & Hoaglin): 0.6745 * (x - median) / MAD; when MAD is 0, the IBM
# fallback (x - median) / (1.253314 * MeanAD), MeanAD = mean absolute deviation from the median.
MAD_SCALE = 0.6745
MEANAD_SCALE = 1.253314

_METRIC_RE = re.compile(r"^\s*(?:p(\d+(?:\.\d+)?)|(mean|error_rate|rate|max))\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MetricSpec:
    """A bucketed metric: its name as typed (`p99`), its latency_table column and its unit."""

    name: str
    column: str
    percentile: float | None
    unit: str  # "ms", "fraction" or "per_s"

    @property
    def direction(self) -> str:
        """Which way an anomaly goes: latency and errors spike up; traffic may also collapse."""
        return "both" if self.name == "rate" else "up"


def percentile_column(q: float) -> str:
    """latency_table's column for percentile q: 99 -> `p99_ms`, 99.9 -> `p99.9_ms`."""
    from mlobs_cli.analysis.latency import percentile_key

    return percentile_key(q)


def parse_metric(text: str) -> MetricSpec:
    """`p99`, `p99.9`, `mean`, `max`, `error_rate` or `rate` -> MetricSpec; UsageError otherwise."""
    match = _METRIC_RE.match(text or "")
    if not match:
        raise UsageError(
            f"unknown metric {text!r}",
            "use a percentile such as p50, p99 or p99.9, or mean, max, error_rate, rate",
        )
    if match.group(1) is not None:
        q = float(match.group(1))
        if not 0 <= q <= 100:
            raise UsageError(f"percentile out of range in {text!r}", "use p0 .. p100")
        name = f"p{match.group(1)}"
        return MetricSpec(name, percentile_column(q), q, "ms")
    word = match.group(2).lower()
    column = {"mean": "mean_ms", "max": "max_ms", "error_rate": "error_rate", "rate": "rate_per_s"}
    unit = {"mean": "ms", "max": "ms", "error_rate": "fraction", "rate": "per_s"}
    return MetricSpec(word, column[word], None, unit[word])


@dataclass(frozen=True)
class SpikeSettings:
    """The knobs of the spike test; defaults are the documented ones."""

    threshold: float = 3.5  # modified z-score above which a bucket is anomalous
    min_requests: int = 20  # buckets with fewer requests are never flagged nor used as baseline
    min_change: float = 0.20  # relative change vs the baseline needed as well (0.2 = 20%)
    min_delta: float = 0.0  # absolute change needed as well (in the metric's unit)
    half_window: int = 20  # baseline = the buckets up to this many on either side of the bucket
    min_baseline: int = 5  # buckets a baseline needs before any bucket is judged against it
    # Request-level confirmation of each window (pNN, error_rate, rate): the chance of seeing its
    # requests if nothing had changed, Bonferroni-corrected over the buckets judged in the series.
    confirm_alpha: float = 0.01


def bucket_grid(buckets: pd.DataFrame, every: pd.Timedelta, column: str) -> pd.DataFrame:
    """One series' buckets on a complete time grid: missing buckets get 0 requests and no value.

    `buckets` has `bucket_start`, `requests`, `errors` and `column`; for `rate_per_s` an empty
    bucket is a real 0, for every other metric it has no value (NaN).
    """
    frame = buckets.sort_values("bucket_start")
    if frame.empty:
        return frame.reset_index(drop=True)
    grid = pd.date_range(frame["bucket_start"].iloc[0], frame["bucket_start"].iloc[-1], freq=every)
    frame = frame.set_index("bucket_start").reindex(grid)
    frame.index.name = "bucket_start"
    frame["requests"] = frame["requests"].fillna(0).astype("int64")
    frame["errors"] = frame["errors"].fillna(0).astype("int64")
    if column == "rate_per_s":  # an empty bucket is a real 0; covered ones keep latency_table's rate
        frame[column] = frame[column].fillna(0.0)
    return frame.reset_index()


def rolling_baseline(
    values: np.ndarray, half_window: int, min_baseline: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and MeanAD of the up-to-`half_window` values either side of each value.

    The value itself and NaNs (thin or empty buckets) are left out; fewer than `min_baseline` usable
    neighbours give NaN. Returns three arrays the length of `values`.
    """
    n = len(values)
    h = max(1, int(half_window))
    padded = np.concatenate([np.full(h, np.nan), values.astype("float64"), np.full(h, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1)[:n]
    windows = np.delete(windows, h, axis=1)  # leave the bucket itself out of its own baseline
    counts = np.sum(~np.isnan(windows), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN, handled below
        median = np.nanmedian(windows, axis=1)
        deviations = np.abs(windows - median[:, None])
        mad = np.nanmedian(deviations, axis=1)
        meanad = np.nanmean(deviations, axis=1)
    thin = counts < min_baseline
    median[thin] = mad[thin] = meanad[thin] = np.nan
    return median, mad, meanad


def modified_z(x: np.ndarray, median: np.ndarray, mad: np.ndarray, meanad: np.ndarray) -> np.ndarray:
    """0.6745*(x-median)/MAD; (x-median)/(1.253314*MeanAD) when MAD is 0; +-inf/0 if both are."""
    diff = x - median
    with np.errstate(divide="ignore", invalid="ignore"):
        z_mad = MAD_SCALE * diff / mad
        z_mean = diff / (MEANAD_SCALE * meanad)
        flat = np.where(diff == 0, 0.0, np.sign(diff) * np.inf)
    return np.where(mad > 0, z_mad, np.where(meanad > 0, z_mean, flat))


def score_buckets(
    grid: pd.DataFrame, column: str, settings: SpikeSettings, *, direction: str = "up"
) -> pd.DataFrame:
    """Add `baseline`, `mad`, `score`, `change` and `anomalous` to one series' bucket grid."""
    out = grid.copy()
    x = out[column].to_numpy(dtype="float64", na_value=np.nan)
    eligible = out["requests"].to_numpy() >= settings.min_requests
    usable = np.where(eligible, x, np.nan)
    median, mad, meanad = rolling_baseline(usable, settings.half_window, settings.min_baseline)
    score = modified_z(usable, median, mad, meanad)
    diff = usable - median
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(median != 0, diff / np.abs(median), np.sign(diff) * np.inf)
    if direction == "both":
        hit = (np.abs(score) > settings.threshold) & (np.abs(change) >= settings.min_change)
        hit &= np.abs(diff) >= settings.min_delta
    else:
        hit = (score > settings.threshold) & (change >= settings.min_change)
        hit &= diff >= settings.min_delta
    out["baseline"] = median
    out["mad"] = mad
    out["score"] = score
    out["change"] = change
    out["anomalous"] = np.nan_to_num(hit, nan=0).astype(bool) & eligible & ~np.isnan(median)
    return out


def windows_from_scores(scored: pd.DataFrame, every: pd.Timedelta) -> list[dict[str, Any]]:
    """Merge runs of adjacent anomalous buckets into windows (start, end, peak, baseline, score)."""
    flags = scored["anomalous"].to_numpy(dtype=bool)
    if not flags.any():
        return []
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # exclusive
    bucket_start = scored["bucket_start"]
    windows = []
    for a, b in zip(starts, stops, strict=True):  # one iteration per window, not per row
        part = scored.iloc[a:b]
        column_peak = part["score"].abs().idxmax()
        windows.append(
            {
                "start": bucket_start.iloc[a],
                "end": bucket_start.iloc[b - 1] + every,
                "buckets": int(b - a),
                "peak_bucket": scored.loc[column_peak, "bucket_start"],
                "baseline": float(np.median(part["baseline"].to_numpy())),
                "score": float(part["score"].abs().max()),
            }
        )
    return windows


@dataclass
class SpikeWindow:
    """One anomaly window of one version (or of all versions pooled), with its evidence."""

    start: pd.Timestamp
    end: pd.Timestamp
    model_version: str
    metric: str
    unit: str
    value: float  # the metric over all requests inside the window
    baseline: float  # median of the rolling baselines of the window's buckets
    peak: float  # the worst bucket's value
    score: float  # the largest |modified z-score| in the window
    requests: int
    errors: int
    error_rate: float
    error_rate_outside: float | None
    buckets: int
    p_value: float | None = None  # request-level confirmation (see window_p_value)
    versions: dict[str, int] = field(default_factory=dict)
    pooled: bool = False  # all versions as one series (`model_version` is then "all")
    worst_request_id: str | None = None
    top_requests: list[dict[str, Any]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "model_version": self.model_version,
            "metric": self.metric,
            "unit": self.unit,
            "value": _finite(self.value),
            "baseline": _finite(self.baseline),
            "peak": _finite(self.peak),
            "score": _finite(self.score),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": _finite(self.error_rate),
            "error_rate_outside": _finite(self.error_rate_outside),
            "buckets": self.buckets,
            "p_value": _finite(self.p_value),
            "versions": self.versions,
            "worst_request_id": self.worst_request_id,
            "top_requests": self.top_requests,
            "attributes": self.attributes,
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class SpikeReport:
    """Windows plus the per-bucket series (for `--plot`)."""

    metric: MetricSpec
    every: pd.Timedelta
    settings: SpikeSettings
    windows: list[SpikeWindow]
    series: pd.DataFrame  # bucket_start, model_version, requests, value, baseline, score, anomalous
    notes: list[str] = field(default_factory=list)  # series that could not be judged, and why


def metric_of(requests: pd.DataFrame, spec: MetricSpec, span_s: float) -> float:
    """The metric over a set of requests (all of one window), exact (numpy's linear percentiles)."""
    if requests.empty:
        return float("nan")
    if spec.name == "rate":
        return len(requests) / span_s if span_s > 0 else float("nan")
    if spec.name == "error_rate":
        return float(requests["error"].mean())
    from mlobs_cli.analysis.latency import latency_table

    pcts = [spec.percentile] if spec.percentile is not None else []
    one = requests.assign(model_version=pd.Categorical(["*"] * len(requests)))
    table = latency_table(one, by=["model_version"], percentiles=pcts)
    return float(table[spec.column].iloc[0])


def find_spikes(
    requests: pd.DataFrame,
    *,
    metric: str = "p99",
    every: str = "30s",
    by_version: bool = True,
    settings: SpikeSettings | None = None,
) -> SpikeReport:
    """Bucket `requests` per version (or pooled), score every bucket, and describe each window."""
    from mlobs_cli.analysis.latency import latency_table
    from mlobs_cli.durations import parse_duration

    spec = parse_metric(metric)
    if spec.name == "max":
        raise UsageError(
            "max is a single request per bucket, too noisy to call spikes on",
            "use p99 or p99.9 here, and `mlobs slow` for the slowest requests",
        )
    settings = settings or SpikeSettings()
    step = pd.Timedelta(seconds=parse_duration(every))
    timed = requests[requests["ts"].notna()]
    versions = timed["model_version"].astype("object")
    keyed = timed if by_version else timed.assign(model_version=pd.Categorical(["all"] * len(timed)))
    pcts = [spec.percentile] if spec.percentile is not None else []
    table = latency_table(keyed, by=["model_version"], percentiles=pcts, every=every)
    keys = keyed["model_version"].astype("object")
    series_parts, windows, notes = [], [], []
    for version, buckets in table.groupby("model_version", observed=True, sort=True):
        grid = bucket_grid(buckets, step, spec.column)
        scored = score_buckets(grid, spec.column, settings, direction=spec.direction)
        scored["model_version"] = str(version)
        series_parts.append(scored)
        in_version = keys == version
        runs = windows_from_scores(scored, step)
        judged = int(np.count_nonzero(~np.isnan(scored["score"].to_numpy(dtype="float64"))))
        if judged == 0:
            usable = int(np.count_nonzero(scored["requests"].to_numpy() >= settings.min_requests))
            notes.append(
                f"{version}: not judged: {usable} bucket(s) of {every} with >= "
                f"{settings.min_requests} requests, a baseline needs {settings.min_baseline + 1} "
                "(try a smaller --every)"
            )
        if runs and settings.confirm_alpha < 1:
            runs = _confirmed(runs, scored, keyed[in_version], spec, step * settings.half_window,
                              settings.confirm_alpha / max(judged, 1))  # fmt: skip
        inside_any = pd.Series(False, index=keyed.index)
        masks = []
        for run in runs:
            mask = in_version & (keyed["ts"] >= run["start"]) & (keyed["ts"] < run["end"])
            inside_any |= mask
            masks.append(mask)
        rest = keyed[in_version & ~inside_any]
        outside = float(rest["error"].mean()) if len(rest) else None
        for run, mask in zip(runs, masks, strict=True):
            sub = keyed[mask]
            span = (run["end"] - run["start"]).total_seconds()
            peak = scored.loc[scored["bucket_start"] == run["peak_bucket"], spec.column].iloc[0]
            worst = sub["latency_ms"].idxmax() if len(sub) else None
            windows.append(
                SpikeWindow(
                    start=run["start"],
                    end=run["end"],
                    model_version=str(version),
                    metric=spec.name,
                    unit=spec.unit,
                    value=metric_of(sub, spec, span),
                    baseline=run["baseline"],
                    peak=float(peak),
                    score=run["score"],
                    requests=int(len(sub)),
                    errors=int(sub["error"].sum()),
                    error_rate=float(sub["error"].mean()) if len(sub) else float("nan"),
                    error_rate_outside=outside,
                    buckets=run["buckets"],
                    p_value=run.get("p_value"),
                    versions={str(k): int(v) for k, v in versions[mask].value_counts().items()},
                    pooled=not by_version,
                    worst_request_id=_id_of(sub, worst),
                )
            )
    windows.sort(key=lambda w: (w.start, w.model_version))
    columns = [
        "bucket_start",
        "model_version",
        "requests",
        spec.column,
        "baseline",
        "score",
        "anomalous",
    ]
    series = (
        pd.concat(series_parts, ignore_index=True)[columns].rename(columns={spec.column: "value"})
        if series_parts
        else pd.DataFrame(columns=[c if c != spec.column else "value" for c in columns])
    )
    return SpikeReport(spec, step, settings, windows, series, notes)


def _confirmed(
    runs: list[dict[str, Any]],
    scored: pd.DataFrame,
    series: pd.DataFrame,
    spec: MetricSpec,
    reach: pd.Timedelta,
    alpha: float,
) -> list[dict[str, Any]]:
    """Keep the runs whose requests chance explains with probability below `alpha`
    (`window_p_value` against the series' requests within `reach` of the run, outside every run);
    unflag the buckets of the others in `scored` (so `--plot` agrees)."""
    ts = series["ts"]
    in_any = pd.Series(False, index=series.index)
    for run in runs:
        in_any |= (ts >= run["start"]) & (ts < run["end"])
    kept = []
    for run in runs:
        inside = (ts >= run["start"]) & (ts < run["end"])
        around = ~in_any & (ts >= run["start"] - reach) & (ts < run["end"] + reach)
        span = (run["end"] - run["start"]).total_seconds()
        run["p_value"] = window_p_value(spec, series[inside], series[around], run["baseline"], span)
        if run["p_value"] < alpha:
            kept.append(run)
        else:
            flagged = (scored["bucket_start"] >= run["start"]) & (scored["bucket_start"] < run["end"])
            scored.loc[flagged, "anomalous"] = False
    return kept


def _id_of(frame: pd.DataFrame, index: Any) -> str | None:
    if index is None:
        return None
    row = frame.loc[index]
    for key in ("request_id", "trace_id"):
        value = row.get(key)
        if isinstance(value, str) and value:
            return value
    return None
