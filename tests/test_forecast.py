"""Forecasts: Theil-Sen and Sen's interval against brute force, breach times and burn rates on
hand-computed cases, a planted linear drift recovered, steady controls without breach, refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.forecast import (
    breach_in_s,
    burn_rate,
    burn_rates,
    forecast_metric,
    parse_slo,
    theil_sen,
)
from mlobs_cli.errors import UsageError

START = pd.Timestamp("2026-11-26T08:00:00Z")


def make_requests(
    seed: int,
    *,
    hours: float = 3.0,
    rate: float = 4.0,
    drift_ms_per_h: dict[str, float] | None = None,
    base_ms: float = 100.0,
) -> pd.DataFrame:
    """Two versions, latency base + drift*hours + normal noise; the docs/DESIGN.md dtypes."""
    rng = np.random.default_rng(seed)
    versions = ("v2.0", "v2.1")
    n = int(hours * 3600 * rate)
    offsets = np.sort(rng.uniform(0, hours * 3600, n))
    version = rng.choice(list(versions), n)
    latency = base_ms + rng.normal(0, 5, n)
    for v, slope in (drift_ms_per_h or {}).items():
        latency = np.where(version == v, latency + slope * offsets / 3600.0, latency)
    error = np.zeros(n, dtype=bool)
    return pd.DataFrame(
        {
            "ts": START + pd.to_timedelta(offsets, unit="s"),
            "request_id": [f"r{i}" for i in range(n)],
            "trace_id": pd.Series([None] * n, dtype="object"),
            "model_version": pd.Categorical(version),
            "latency_ms": latency.astype("float64"),
            "inference_ms": np.full(n, np.nan),
            "status": pd.array([200] * n, dtype="Int64"),
            "error": error,
            "source": pd.Categorical(["x.log"] * n),
            "line": np.arange(1, n + 1, dtype="int64"),
        }
    )


# -- Theil-Sen ---------------------------------------------------------------------------------


def test_theil_sen_matches_brute_force_median_of_pairwise_slopes():
    rng = np.random.default_rng(1)
    x = np.arange(10.0)
    y = 3 * x + rng.normal(0, 1, 10)
    y[4] = 80  # an outlier barely moves it
    pairs = sorted((y[j] - y[i]) / (x[j] - x[i]) for i, j in itertools.combinations(range(10), 2))
    slope, intercept, low, high = theil_sen(x, y)
    assert slope == pytest.approx(np.median(pairs))
    assert intercept == pytest.approx(np.median(y - slope * x))
    # Sen's interval, n=10: N=45, sigma=sqrt(10*9*25/18)=sqrt(125), C=1.6449*11.18=18.39
    # -> ranks round((45-18.39)/2)=13 and round((45+18.39)/2)=32 (0-based)
    assert (low, high) == (pairs[13], pairs[32])
    assert 2.5 < slope < 3.5


def test_theil_sen_exact_on_a_line():
    x = np.array([0.0, 1.0, 2.0, 5.0])
    slope, intercept, low, high = theil_sen(x, 2.0 + 0.5 * x)
    assert (slope, intercept, low, high) == (0.5, 2.0, 0.5, 0.5)


# -- breach and burn arithmetic ----------------------------------------------------------------


def test_breach_times_by_hand():
    slo = parse_slo("p99 < 250ms")
    assert slo.threshold == 250.0 and slo.op == "<"
    assert breach_in_s(slo, 200.0, 10.0, 6 * 3600) == pytest.approx(5 * 3600)
    assert breach_in_s(slo, 200.0, 10.0, 4 * 3600) is None  # beyond the horizon
    assert breach_in_s(slo, 200.0, 0.0, 6 * 3600) is None
    assert breach_in_s(slo, 200.0, -3.0, 6 * 3600) is None
    assert breach_in_s(slo, 260.0, -3.0, 6 * 3600) == 0.0  # already past it
    assert breach_in_s(parse_slo("p95 < 0.3s"), 240.0, 30.0, 6 * 3600) == pytest.approx(7200)
    falling = parse_slo("rate > 5/s")
    assert breach_in_s(falling, 8.0, -1.0, 6 * 3600) == pytest.approx(3 * 3600)


def test_parse_slo_uses_the_check_rule_syntax():
    assert parse_slo("error_rate < 1%").threshold == pytest.approx(0.01)
    assert parse_slo("error_rate<=0.5%").threshold == pytest.approx(0.005)
    assert parse_slo("p99.9 < 1s").threshold == 1000.0
    assert parse_slo("rate > 300/min").threshold == pytest.approx(5.0)
    scoped = parse_slo("v2.1: p95 < 200ms")
    assert (scoped.scope, scoped.metric.name, scoped.threshold) == ("v2.1", "p95", 200.0)
    for bad in ("p99 < ", "p99 ~ 3ms", "latency < 3ms", "p99 < 5%", "error_rate < 3ms",
                "requests > 100", "p99(inference_ms) < 3ms", "*: p99 < 3ms"):  # fmt: skip
        with pytest.raises(UsageError):
            parse_slo(bad)


def test_a_version_scoped_slo_only_times_that_version():
    requests = make_requests(9, drift_ms_per_h={"v2.0": 8.0, "v2.1": 8.0})
    slo = parse_slo("v2.1: p50 < 130ms")
    out = {f.model_version: f for f in forecast_metric(
        requests, metric="p50", horizon_s=6 * 3600, every="5m", slo=slo)}  # fmt: skip
    assert out["v2.0"].slo is None and out["v2.0"].breach_in_s is None
    assert out["v2.1"].slo == "v2.1: p50 < 130ms" and out["v2.1"].breach_in_s is not None


def test_burn_rate_arithmetic():
    assert burn_rate(3, 100, 0.01) == pytest.approx(3.0)  # 3% errors against a 1% budget
    assert burn_rate(1, 1000, 0.001) == pytest.approx(1.0)  # 99.9% SLO burning exactly on budget
    assert burn_rate(0, 0, 0.01) is None


def _one_per_second(seconds: int, error_ages: range) -> pd.DataFrame:
    """One request per second ending at START+seconds; errors at the given ages (s before end)."""
    end = START + pd.Timedelta(seconds=seconds)
    ages = np.arange(seconds, dtype="int64")
    error = np.isin(ages, np.array(list(error_ages), dtype="int64"))
    n = len(ages)
    return pd.DataFrame(
        {
            "ts": end - pd.to_timedelta(ages, unit="s"),
            "model_version": pd.Categorical(["v1"] * n),
            "latency_ms": np.full(n, 10.0),
            "error": error,
        }
    )


def test_multiwindow_burn_rates_by_hand():
    # 2 hours of logs, one request a second; 30 errors, all in the last 5 minutes.
    frame = _one_per_second(7200, range(0, 300, 10))
    (entry,) = burn_rates(frame, budget=0.01)
    rows = {w["windows"]: w for w in entry["windows"]}
    page = rows["1h/5m"]
    assert page["short_burn"] == pytest.approx((30 / 300) / 0.01)  # 10x
    assert page["long_burn"] == pytest.approx((30 / 3600) / 0.01)  # 0.833x
    assert page["long_covered"] and page["short_covered"] and page["firing"] is False
    six = rows["6h/30m"]
    assert six["short_burn"] == pytest.approx((30 / 1800) / 0.01)
    assert not six["long_covered"] and six["firing"] is None  # 2 h of logs cannot judge 6 h
    assert six["long_burn"] == pytest.approx((30 / 7200) / 0.01)  # over what the logs hold
    day = rows["1d/2h"]
    assert day["short_covered"] and not day["long_covered"] and day["firing"] is None


def test_multiwindow_burn_fires_when_both_windows_burn():
    # 20% errors during the whole last hour: burn 20x over 1h and over 5m > 14.4
    frame = _one_per_second(7200, range(0, 3600, 5))
    (entry,) = burn_rates(frame, budget=0.01)
    page = entry["windows"][0]
    assert page["windows"] == "1h/5m"
    assert page["long_burn"] == pytest.approx(20.0) and page["short_burn"] == pytest.approx(20.0)
    assert page["firing"] is True


def test_burn_budget_must_be_a_fraction():
    with pytest.raises(UsageError):
        burn_rates(_one_per_second(10, range(0)), budget=0.0)


# -- forecasts on requests ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_drift_is_recovered_and_the_breach_is_timed(seed):
    requests = make_requests(seed, drift_ms_per_h={"v2.1": 8.0})
    slo = parse_slo("p50 < 130ms")
    out = {
        f.model_version: f
        for f in forecast_metric(requests, metric="p50", horizon_s=6 * 3600, every="5m", slo=slo)
    }
    drift, steady = out["v2.1"], out["v2.0"]
    assert drift.refused is None and drift.method == "theil-sen"
    assert drift.slope_per_hour == pytest.approx(8.0, abs=1.5)
    assert drift.slope_low_per_hour <= 8.0 + 1.5 and drift.slope_high_per_hour >= 8.0 - 1.5
    assert drift.fitted_now == pytest.approx(100 + 8 * 3, abs=2.5)
    assert drift.projected == pytest.approx(100 + 8 * 9, abs=8)
    assert drift.low < drift.projected < drift.high
    # truth: 124 ms now, 130 ms in 0.75 h
    assert 0.4 * 3600 < drift.breach_in_s < 1.2 * 3600
    assert abs(steady.slope_per_hour) < 1.5
    assert steady.breach_in_s is None


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_steady_controls_show_no_breach(seed):
    requests = make_requests(seed)
    slo = parse_slo("p99 < 250ms")
    forecasts = forecast_metric(requests, metric="p99", horizon_s=6 * 3600, every="5m", slo=slo)
    assert [f.model_version for f in forecasts] == ["v2.0", "v2.1"]
    for f in forecasts:
        assert f.refused is None
        assert f.breach_in_s is None
        assert abs(f.slope_per_hour) < 3.0
        assert f.to_dict()["breach_in_s"] is None and f.to_dict()["slo"] == "p99 < 250ms"


def test_too_little_history_is_refused():
    short = make_requests(7, hours=0.5)
    (a, b) = forecast_metric(short, metric="p99", horizon_s=6 * 3600, every="5m")
    assert a.refused and "bucket" in a.refused and a.projected is None
    (a, b) = forecast_metric(short, metric="p99", horizon_s=6 * 3600, every="1m")
    assert a.refused and "will not extrapolate" in a.refused and a.to_dict()["method"] is None
    (a, b) = forecast_metric(short, metric="p99", horizon_s=3600, every="1m")
    assert a.refused is None and b.refused is None and math.isfinite(a.projected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=3, max_size=30),
    st.floats(0.5, 5), st.floats(-10, 10), st.floats(-50, 50),
)  # fmt: skip
def test_theil_sen_is_equivariant_and_its_interval_holds_the_slope(noise, a, b, c):
    x = np.arange(len(noise), dtype="float64")
    y = np.array(noise)
    slope, _, low, high = theil_sen(x, y)
    slope2, _, low2, high2 = theil_sen(x, a * y + b * x + c)
    assert low <= slope <= high
    assert slope2 == pytest.approx(a * slope + b, abs=1e-6)
    assert low2 == pytest.approx(a * low + b, abs=1e-6)
    assert high2 == pytest.approx(a * high + b, abs=1e-6)
