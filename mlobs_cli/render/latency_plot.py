"""`mlobs latency --plot`: percentiles over time per version (with --every), else histograms.

A rollout should be visible at a glance: one coloured line per model version, one chart per
percentile shown (the median and the highest requested up to p99), or one latency histogram per
version on shared log-spaced bins with the p50/p99 positions marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Group
from rich.text import Text

from mlobs_cli.analysis.latency import BUCKET, histogram, percentile_key
from mlobs_cli.render.plot import histograms, line_chart

VERSION = "model_version"


def _chart_percentiles(qs: list[float]) -> list[float]:
    """The median (or the lowest asked) and the highest asked up to p99."""
    low = 50.0 if 50.0 in qs else qs[0]
    high = max((q for q in qs if q <= 99.0), default=qs[-1])
    return [low] if high == low else [low, high]


def plot_latency(
    table: pd.DataFrame,
    requests: pd.DataFrame,
    *,
    qs: list[float],
    metric: str,
    status: str,
    width: int,
) -> Group:
    """The plot for a latency table, `width` characters wide."""
    if BUCKET in table.columns:
        return _over_time(table, qs=qs, width=width)
    return _histograms(table, requests, metric=metric, status=status, width=width)


def _over_time(table: pd.DataFrame, *, qs: list[float], width: int) -> Group:
    charts: list[Text] = []
    if table.empty:
        return Group(Text("(nothing to plot)", style="dim"))
    starts = table[BUCKET]
    first, last = starts.min(), starts.max()
    labels = (first.strftime("%H:%M:%S"), last.strftime("%H:%M:%S"))
    if first.normalize() != last.normalize():
        labels = (first.strftime("%m-%d %H:%M"), last.strftime("%m-%d %H:%M"))
    x = starts.to_numpy(dtype="datetime64[ns]").view(np.int64) / 1e9
    extra_keys = [
        c for c in table.columns[: list(table.columns).index("requests")] if c not in (BUCKET, VERSION)
    ]
    names = table[[VERSION, *extra_keys]].astype(str).agg(" ".join, axis=1).to_numpy()
    for q in _chart_percentiles(qs):
        col = percentile_key(q)
        series: dict[str, list[tuple[float, float]]] = {}
        for name, xi, yi in zip(names, x, table[col].to_numpy(dtype=float), strict=True):
            series.setdefault(name, []).append((float(xi), float(yi)))
        charts.append(line_chart(series, width=width, title=f"{col[:-3]} per bucket (UTC)", x_labels=labels))
    return Group(*charts)


def _histograms(
    table: pd.DataFrame, requests: pd.DataFrame, *, metric: str, status: str, width: int
) -> Group:
    chosen = requests
    if status == "ok":
        chosen = requests[~requests["error"].to_numpy(dtype=bool)]
    elif status == "error":
        chosen = requests[requests["error"].to_numpy(dtype=bool)]
    bins = max(10, min(80, width - 30))
    edges, counts = histogram(chosen, by=VERSION, metric=metric, bins=bins)
    markers: dict[str, dict[str, float]] = {}
    by_version = table.groupby(table[VERSION].astype(str), observed=True)
    if len(table.columns) and list(table.columns).index("requests") == 1:  # version is the only key
        for version, rows in by_version:
            row = rows.iloc[0]
            markers[str(version)] = {
                label: float(row[col])
                for label, col in (("p50", "p50_ms"), ("p99", "p99_ms"))
                if col in row and row[col] == row[col]
            }
    return Group(
        histograms(
            edges,
            counts,
            width=width,
            markers=markers,
            title=f"{metric} histogram per model version",
        )
    )
