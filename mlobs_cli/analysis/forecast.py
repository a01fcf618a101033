"""Trend forecasts per model version, SLO breach times, and multiwindow error-budget burn rates.

Contract: `theil_sen` fits a robust line with Sen's rank confidence interval; `forecast_metric`
fits it per version to the bucketed metric of a requests frame and projects it to a horizon (the
function the `check` command's `forecast(p99, 6h)` calls); `burn_rates` applies the SRE workbook's
multiwindow rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.spikes import MetricSpec, parse_metric
from mlobs_cli.errors import UsageError

METHOD = "theil-sen"
Z_90 = 1.6448536269514722  # two-sided 90% normal quantile for Sen's slope interval
MAX_BUCKETS = 2000  # pairwise slopes grow as n^2: only the newest buckets beyond this are fitted
COVER_TOLERANCE = 0.01  # a window counts as covered when the logs span 99% of it

# SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts for a 30-day SLO.
BURN_WINDOWS: tuple[tuple[str, float, str, float, float], ...] = (
    # severity, factor, label, long window (s), short window (s)
    ("page", 14.4, "1h/5m", 3600.0, 300.0),
    ("page", 6.0, "6h/30m", 6 * 3600.0, 1800.0),
    ("ticket", 3.0, "1d/2h", 86400.0, 7200.0),
    ("ticket", 1.0, "3d/6h", 3 * 86400.0, 6 * 3600.0),
)


@dataclass(frozen=True)
class Slo:
    """`p99 < 250ms` or `error_rate < 1%`: metric, comparison and threshold (ms, fraction, per s);
    `scope` limits it to one model version (`v2.1: p99 < 250ms`)."""

    text: str
    metric: MetricSpec
    op: str
    threshold: float
    scope: str | None = None

    def holds(self, value: float) -> bool:
        return {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.op]


def parse_slo(text: str) -> Slo:
    """An SLO in the `mlobs check` rule syntax (`analysis.rules.parse_assert`): `p99 < 250ms`,
    `v2.1: p95 < 0.3s`, `mean <= 80ms`, `error_rate < 1%`, `rate > 5/s`."""
    from mlobs_cli.analysis.rules import parse_assert

    rule = parse_assert(text, origin="--slo")
    forecastable = rule.kind == "stat" and (rule.field or "latency_ms") == "latency_ms"
    if not (forecastable or rule.metric in ("error_rate", "rate")):
        raise UsageError(
            f"--slo {text!r}: forecasts follow the latency (pNN, mean, max), error_rate or rate",
            'write it like "p99 < 250ms" or "error_rate < 1%"',
        )
    if rule.op not in ("<", "<=", ">", ">=") or rule.threshold is None:
        raise UsageError(f"--slo {text!r}: an SLO is a bound: use <, <=, > or >=")
    if rule.scope == "*":
        raise UsageError(f"--slo {text!r}: forecasts are per version; drop the '*' scope")
    return Slo(rule.text, parse_metric(rule.metric), rule.op, rule.threshold.value, rule.scope)


def theil_sen(x: np.ndarray, y: np.ndarray, *, z: float = Z_90) -> tuple[float, float, float, float]:
    """Theil-Sen line and Sen's (1968) confidence interval for its slope.

    Returns (slope, intercept, slope_low, slope_high): slope = median of all pairwise slopes,
    intercept = median(y - slope*x); the interval takes the pairwise slopes at ranks
    (N -/+ z*sqrt(n(n-1)(2n+5)/18)) / 2 of the N sorted slopes (Kendall's S variance, no ties).
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(x)
    if n < 2:
        raise ValueError("theil_sen needs at least two points")
    i, j = np.triu_indices(n, k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    total = len(slopes)
    slope = float(np.median(slopes))
    intercept = float(np.median(y - slope * x))
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    low_rank = max(int(round((total - z * sigma) / 2.0)), 0)
    high_rank = min(int(round((total + z * sigma) / 2.0)), total - 1)
    return slope, intercept, float(slopes[low_rank]), float(slopes[high_rank])


@dataclass
class Forecast:
    """One version's fitted trend of one metric, projected `horizon_s` past the newest event."""

    model_version: str
    metric: str
    unit: str
    method: str = METHOD
    horizon_s: float = 0.0
    every_s: float = 0.0
    history_s: float = 0.0
    buckets: int = 0
    last_value: float | None = None
    fitted_now: float | None = None
    slope_per_hour: float | None = None
    slope_low_per_hour: float | None = None
    slope_high_per_hour: float | None = None
    projected: float | None = None
    low: float | None = None
    high: float | None = None
    slo: str | None = None
    threshold: float | None = None
    breach_in_s: float | None = None
    refused: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out["method"] = None if self.refused else self.method
        out.update(self.extra)
        return out


def _bucketed(requests: pd.DataFrame, spec: MetricSpec, every: str) -> pd.DataFrame:
    from mlobs_cli.analysis.latency import latency_table

    pcts = [spec.percentile] if spec.percentile is not None else []
    timed = requests[requests["ts"].notna()]
    return latency_table(timed, by=["model_version"], percentiles=pcts, every=every)


def fit_series(
    times: pd.Series,
    values: np.ndarray,
    *,
    now: pd.Timestamp,
    horizon_s: float,
) -> dict[str, float]:
    """Fit Theil-Sen to (times, values) with x in hours before `now`; project `horizon_s` ahead.

    The band: the lines through the slope interval's ends (each with its own median intercept),
    widened by the 5th/95th percentiles of the central fit's residuals (bucket-to-bucket scatter).
    """
    x = ((times - now).dt.total_seconds() / 3600.0).to_numpy(dtype="float64")
    slope, intercept, s_low, s_high = theil_sen(x, values)
    h = horizon_s / 3600.0
    residuals = values - (intercept + slope * x)
    r_low, r_high = np.percentile(residuals, [5, 95])
    ends = [float(np.median(values - s * x)) + s * h for s in (s_low, s_high)]
    return {
        "slope": slope,
        "slope_low": s_low,
        "slope_high": s_high,
        "fitted_now": intercept,
        "projected": intercept + slope * h,
        "low": min(ends) + float(r_low),
        "high": max(ends) + float(r_high),
    }


def breach_in_s(slo: Slo, fitted_now: float, slope_per_hour: float, horizon_s: float) -> float | None:
    """Seconds from now until the fitted line stops satisfying `slo`; 0 if already; None if not
    within `horizon_s`."""
    if not slo.holds(fitted_now):
        return 0.0
    toward = slope_per_hour > 0 if slo.op in ("<", "<=") else slope_per_hour < 0
    if not toward:
        return None
    seconds = (slo.threshold - fitted_now) / slope_per_hour * 3600.0
    return seconds if seconds <= horizon_s else None


def forecast_metric(
    requests: pd.DataFrame,
    *,
    metric: str,
    horizon_s: float,
    every: str,
    history_s: float | None = None,
    slo: Slo | None = None,
    min_buckets: int = 10,
    min_requests: int = 20,
    max_ratio: float = 4.0,
) -> list[Forecast]:
    """Per-version Theil-Sen forecasts of `metric` (`p99`, `mean`, `error_rate`, ...) bucketed by
    `every`, projected `horizon_s` seconds past the newest event.

    Only buckets with at least `min_requests` requests are fitted (and only the newest `history_s`
    seconds, when given). A version is refused (`Forecast.refused` says why, numbers are None) when
    it has fewer than `min_buckets` such buckets, or when the horizon is more than `max_ratio` times
    the history they span. With `slo` (on the same metric), `breach_in_s` is filled.
    """
    from mlobs_cli.durations import parse_duration

    spec = parse_metric(metric)
    every_s = float(parse_duration(every))
    table = _bucketed(requests, spec, every)
    out: list[Forecast] = []
    if table.empty:
        return out
    now = requests["ts"].max()
    for version, part in table.groupby("model_version", observed=True, sort=True):
        part = part[part["requests"] >= min_requests].sort_values("bucket_start")
        part = part[part[spec.column].notna()]
        if history_s is not None:
            part = part[part["bucket_start"] >= now - pd.Timedelta(seconds=history_s)]
        part = part.tail(MAX_BUCKETS)
        fc = Forecast(
            str(version),
            spec.name,
            spec.unit,
            horizon_s=float(horizon_s),
            every_s=every_s,
            buckets=int(len(part)),
        )
        if slo is not None and slo.metric.name == spec.name and slo.scope in (None, str(version)):
            fc.slo, fc.threshold = slo.text, slo.threshold
        out.append(fc)
        if len(part):
            centres = part["bucket_start"] + pd.Timedelta(seconds=every_s / 2)
            fc.history_s = float(
                (part["bucket_start"].iloc[-1] - part["bucket_start"].iloc[0]).total_seconds() + every_s
            )
            fc.last_value = float(part[spec.column].iloc[-1])
        if len(part) < min_buckets:
            fc.refused = (
                f"only {len(part)} bucket(s) of {every} with >= {min_requests} requests; "
                f"need {min_buckets} to fit a trend"
            )
            continue
        if horizon_s > max_ratio * fc.history_s:
            fc.refused = (
                f"history spans {_human(fc.history_s)}; will not extrapolate "
                f"{_human(horizon_s)} ahead (more than {max_ratio:g}x the history)"
            )
            continue
        fit = fit_series(centres, part[spec.column].to_numpy(dtype="float64"), now=now, horizon_s=horizon_s)
        fc.slope_per_hour = fit["slope"]
        fc.slope_low_per_hour = fit["slope_low"]
        fc.slope_high_per_hour = fit["slope_high"]
        fc.fitted_now = fit["fitted_now"]
        # every metric here is >= 0: a line may cross 0, the metric cannot
        fc.projected, fc.low, fc.high = (max(0.0, fit[k]) for k in ("projected", "low", "high"))
        if fc.slo is not None and slo is not None:
            fc.breach_in_s = breach_in_s(slo, fit["fitted_now"], fit["slope"], horizon_s)
    return out


@dataclass
class BurnWindow:
    """One row of the multiwindow rule: both windows must burn faster than `factor` to alert."""

    severity: str
    factor: float
    windows: str
    long_s: float
    short_s: float
    long_burn: float | None
    short_burn: float | None
    long_covered: bool
    short_covered: bool

    @property
    def firing(self) -> bool | None:
        """True/False when both windows are covered by the logs, None when they are not."""
        if not (self.long_covered and self.short_covered):
            return None
        assert self.long_burn is not None and self.short_burn is not None
        return self.long_burn > self.factor and self.short_burn > self.factor

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["firing"] = self.firing
        return out


def burn_rate(errors: int, requests: int, budget: float) -> float | None:
    """Burn rate = observed error ratio / error budget (1 - SLO target); None without requests."""
    if requests <= 0:
        return None
    return (errors / requests) / budget


def burn_rates(
    requests: pd.DataFrame, *, budget: float, now: pd.Timestamp | None = None
) -> list[dict[str, Any]]:
    """Per version, the burn rate over each SRE-workbook window ending at `now` (newest event).

    A window is covered when the version's logs reach back at least 99% of it; an uncovered window
    still shows the burn over what the logs hold (`*_burn`) but never fires.
    """
    if not 0 < budget < 1:
        raise UsageError(f"error budget {budget:g} is not between 0 and 1", "e.g. error_rate < 1%")
    timed = requests[requests["ts"].notna()]
    if timed.empty:
        return []
    now = timed["ts"].max() if now is None else now
    out = []
    for version, part in timed.groupby("model_version", observed=True, sort=True):
        first = part["ts"].min()
        span = (now - first).total_seconds()
        age = (now - part["ts"]).dt.total_seconds().to_numpy()
        err = part["error"].to_numpy(dtype=bool)
        rows = []
        for severity, factor, label, long_s, short_s in BURN_WINDOWS:
            burns = []
            for w in (long_s, short_s):
                inside = age < w
                burns.append(burn_rate(int(err[inside].sum()), int(inside.sum()), budget))
            rows.append(
                BurnWindow(
                    severity,
                    factor,
                    label,
                    long_s,
                    short_s,
                    burns[0],
                    burns[1],
                    span >= long_s * (1 - COVER_TOLERANCE),
                    span >= short_s * (1 - COVER_TOLERANCE),
                )
            )
        out.append(
            {
                "model_version": str(version),
                "budget": budget,
                "covered_s": span,
                "windows": [r.to_dict() for r in rows],
            }
        )
    return out


def _human(seconds: float) -> str:
    seconds = float(seconds)
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds / 86400:g}d" if seconds % 86400 == 0 else f"{seconds / 3600:g}h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
