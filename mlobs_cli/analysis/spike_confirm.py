"""Request-level confirmation of a spike window: exact one-sided binomial and Poisson tails.

A bucket-level score says a window looks odd; `window_p_value` asks how likely the window's own
requests are if nothing had changed, against the requests around it. Pure numpy, no scipy.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlobs_cli.analysis.spikes import MetricSpec


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact, no scipy)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype="float64")))])
    j = np.arange(k, n + 1)
    log_pmf = log_fact[n] - log_fact[j] - log_fact[n - j] + j * math.log(p) + (n - j) * math.log1p(-p)
    return float(min(1.0, np.exp(log_pmf).sum()))


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam), summed in log space."""
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    j = np.arange(0, k + 1, dtype="float64")
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, k + 1, dtype="float64")))])
    return float(min(1.0, np.exp(-lam + j * math.log(lam) - log_fact).sum()))


def window_p_value(
    spec: MetricSpec, window: pd.DataFrame, around: pd.DataFrame, baseline: float, span_s: float
) -> float:
    """How likely the window's requests are if nothing had changed (one-sided, exact binomial or
    Poisson tails), judged against the requests `around` it (same series, the baseline's span):

    pNN: the share of requests above the baseline value is the same inside as around;
    error_rate: the share of errors is the same inside as around;
    rate: the count is Poisson with the baseline rate times the window length (either tail).
    The shares around get add-one smoothing, (k+1)/(n+2), so a spotless neighbourhood still
    allows a rare event. Other metrics have no exact test here: 0.0 (no confirmation)."""
    n = len(window)
    if spec.percentile is not None:
        lat = window["latency_ms"].to_numpy(dtype="float64")
        ref = around["latency_ms"].to_numpy(dtype="float64")
        p0 = (np.count_nonzero(ref > baseline) + 1) / (len(ref) + 2)
        return binomial_sf(int(np.count_nonzero(lat > baseline)), n, p0)
    if spec.name == "error_rate":
        p0 = (int(around["error"].sum()) + 1) / (len(around) + 2)
        return binomial_sf(int(window["error"].sum()), n, p0)
    if spec.name == "rate":
        lam = baseline * span_s
        return poisson_cdf(n, lam) if n < lam else 1.0 - poisson_cdf(n - 1, lam)
    return 0.0
