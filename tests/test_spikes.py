"""The spike test: modified z-scores (and the MAD==0 fallback) by hand, the rolling baseline, window
merging, and planted spikes found / steady runs clean on synthetic frames with the DESIGN dtypes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.spikes import (
    SpikeSettings,
    bucket_grid,
    find_spikes,
    modified_z,
    parse_metric,
    rolling_baseline,
    score_buckets,
    windows_from_scores,
)
from mlobs_cli.errors import UsageError

START = pd.Timestamp("2026-11-26T10:00:00Z")


def make_requests(
    seed: int,
    *,
    minutes: float = 40,
    rate: float = 10.0,
    versions: tuple[str, ...] = ("v2.0", "v2.1"),
    spike: tuple[float, float, float] | None = None,  # (start min, duration min, factor)
    spike_versions: tuple[str, ...] | None = None,
    error_rate: float = 0.01,
) -> pd.DataFrame:
    """A requests frame with exactly the docs/DESIGN.md dtypes: lognormal latency around 40 ms."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * rate) * len(versions)
    offsets = np.sort(rng.uniform(0, minutes * 60, n))
    version = rng.choice(list(versions), n)
    latency = 40.0 * rng.lognormal(0.0, 0.25, n)
    if spike is not None:
        a, d, factor = spike
        hit = (offsets >= a * 60) & (offsets < (a + d) * 60)
        if spike_versions is not None:
            hit &= np.isin(version, spike_versions)
        latency = np.where(hit, latency * factor, latency)
    error = rng.random(n) < error_rate
    return pd.DataFrame(
        {
            "ts": START + pd.to_timedelta(offsets, unit="s"),
            "request_id": [f"req-{i:06d}" for i in range(n)],
            "trace_id": pd.Series([None] * n, dtype="object"),
            "model_version": pd.Categorical(version),
            "latency_ms": latency.astype("float64"),
            "inference_ms": (latency * 0.6).astype("float64"),
            "status": pd.array(np.where(error, 500, 200), dtype="Int64"),
            "error": error,
            "source": pd.Categorical(["app.log"] * n),
            "line": np.arange(1, n + 1, dtype="int64"),
        }
    )


# -- the score, by hand ------------------------------------------------------------------------


def test_modified_z_uses_mad_when_positive():
    # baseline 10, 12, 14, 16, 18: median 14, |dev| 4,2,0,2,4 -> MAD 2
    med, mad, meanad = rolling_baseline(np.array([10, 12, 30, 14, 16, 18.0]), 5, 1)
    assert med[2] == 14.0 and mad[2] == 2.0
    z = modified_z(np.array([30.0]), med[2:3], mad[2:3], meanad[2:3])
    assert z[0] == pytest.approx(0.6745 * (30 - 14) / 2)


def test_modified_z_falls_back_to_mean_absolute_deviation_when_mad_is_zero():
    # neighbours 10 x6 and 24: median 10, MAD 0, MeanAD = 14/7 = 2
    values = np.array([10, 10, 10, 99, 10, 10, 10, 24.0])
    med, mad, meanad = rolling_baseline(values, 10, 1)
    assert (med[3], mad[3], meanad[3]) == (10.0, 0.0, 2.0)
    z = modified_z(np.array([99.0]), med[3:4], mad[3:4], meanad[3:4])
    assert z[0] == pytest.approx((99 - 10) / (1.253314 * 2.0))


def test_modified_z_on_a_perfectly_flat_baseline():
    med = np.array([5.0, 5.0, 5.0])
    zero = np.zeros(3)
    z = modified_z(np.array([5.0, 6.0, 4.0]), med, zero, zero)
    assert z[0] == 0 and z[1] == math.inf and z[2] == -math.inf


def test_rolling_baseline_leaves_the_bucket_itself_and_nans_out():
    values = np.array([1.0, 2.0, 100.0, np.nan, 5.0])
    med, _, _ = rolling_baseline(values, 2, 1)
    assert med[2] == 2.0  # neighbours 1, 2, (nan), 5 -> median of 1, 2, 5
    med, _, _ = rolling_baseline(values, 2, 4)
    assert np.isnan(med).all()  # nobody has four usable neighbours within two buckets


def _grid(values, requests=None, start=START):
    n = len(values)
    return pd.DataFrame(
        {
            "bucket_start": pd.date_range(start, periods=n, freq="30s"),
            "requests": requests if requests is not None else [100] * n,
            "errors": [0] * n,
            "p99_ms": np.asarray(values, dtype="float64"),
        }
    )


def test_score_buckets_flags_the_spike_and_only_it():
    rng = np.random.default_rng(3)
    values = 50 + rng.normal(0, 2, 60)
    values[30:33] = 150
    scored = score_buckets(_grid(values), "p99_ms", SpikeSettings())
    assert list(np.flatnonzero(scored["anomalous"])) == [30, 31, 32]
    assert scored["baseline"].iloc[31] == pytest.approx(50, abs=2)


def test_thin_buckets_are_never_flagged_nor_used_as_baseline():
    values = [50.0] * 20 + [500.0] + [50.0] * 20
    requests = [100] * 20 + [3] + [100] * 20
    scored = score_buckets(_grid(values, requests), "p99_ms", SpikeSettings(min_requests=20))
    assert not scored["anomalous"].any()


def test_minimum_relative_change_blocks_a_statistically_odd_but_flat_bucket():
    values = [100.0, 100.2, 99.8, 100.1, 99.9] * 8
    values[20] = 105.0  # z is huge (MAD ~0.1) but only +5%
    scored = score_buckets(_grid(values), "p99_ms", SpikeSettings())
    assert scored["score"].iloc[20] > 3.5
    assert not scored["anomalous"].any()
    loose = score_buckets(_grid(values), "p99_ms", SpikeSettings(min_change=0.01))
    assert list(np.flatnonzero(loose["anomalous"])) == [20]


def test_rate_drops_count_both_ways():
    values = [10.0, 10.5, 9.5, 10.2, 9.8] * 8
    values[20] = 1.0
    grid = _grid(values).rename(columns={"p99_ms": "rate_per_s"})
    up = score_buckets(grid, "rate_per_s", SpikeSettings(), direction="up")
    both = score_buckets(grid, "rate_per_s", SpikeSettings(), direction="both")
    assert not up["anomalous"].any()
    assert list(np.flatnonzero(both["anomalous"])) == [20]


def test_adjacent_buckets_merge_into_one_window_and_gaps_split():
    grid = _grid([1.0] * 10)
    grid["baseline"] = 1.0
    grid["score"] = [0, 9, 8, 0, 0, 7, 0, 0, 0, 6.0]
    grid["anomalous"] = grid["score"] > 3.5
    windows = windows_from_scores(grid, pd.Timedelta("30s"))
    assert [(w["start"], w["end"], w["buckets"]) for w in windows] == [
        (START + pd.Timedelta("30s"), START + pd.Timedelta("90s"), 2),
        (START + pd.Timedelta("150s"), START + pd.Timedelta("180s"), 1),
        (START + pd.Timedelta("270s"), START + pd.Timedelta("300s"), 1),
    ]
    assert windows[0]["peak_bucket"] == START + pd.Timedelta("30s")
    assert windows[0]["score"] == 9


def test_bucket_grid_fills_missing_buckets():
    buckets = _grid([5.0, 6.0, 7.0]).drop(index=1)
    grid = bucket_grid(buckets, pd.Timedelta("30s"), "p99_ms")
    assert list(grid["requests"]) == [100, 0, 100]
    assert np.isnan(grid["p99_ms"].iloc[1])


def test_parse_metric():
    assert parse_metric("p99").column == "p99_ms"
    assert parse_metric("P99.9").column == "p99.9_ms"
    assert parse_metric("error_rate").unit == "fraction"
    assert parse_metric("rate").direction == "both"
    with pytest.raises(UsageError):
        parse_metric("p101")
    with pytest.raises(UsageError):
        parse_metric("latency")


# -- on requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_planted_spike_is_found_with_its_window_and_version(seed):
    requests = make_requests(seed, spike=(20, 2, 3.0), spike_versions=("v2.1",))
    report = find_spikes(requests, metric="p99", every="30s")
    assert len(report.windows) == 1, [w.to_dict() for w in report.windows]
    w = report.windows[0]
    assert w.model_version == "v2.1"
    assert abs((w.start - (START + pd.Timedelta("20min"))).total_seconds()) <= 30
    assert abs((w.end - (START + pd.Timedelta("22min"))).total_seconds()) <= 30
    inside = requests[
        (requests["model_version"] == "v2.1") & (requests["ts"] >= w.start) & (requests["ts"] < w.end)
    ]
    assert w.requests == len(inside)
    assert w.value == pytest.approx(np.percentile(inside["latency_ms"], 99))
    assert w.value > 2 * w.baseline
    assert w.worst_request_id == inside.loc[inside["latency_ms"].idxmax(), "request_id"]
    assert w.versions == {"v2.1": len(inside)}


@pytest.mark.parametrize("seed", [10, 11, 12, 13, 14])
def test_steady_runs_report_no_spike(seed):
    report = find_spikes(make_requests(seed), metric="p99", every="30s")
    assert report.windows == []
    assert set(report.series["model_version"]) == {"v2.0", "v2.1"}


def test_pooled_mode_names_the_versions_inside():
    requests = make_requests(5, spike=(15, 1.5, 4.0))
    report = find_spikes(requests, metric="p95", every="30s", by_version=False)
    assert len(report.windows) == 1
    w = report.windows[0]
    assert w.model_version == "all"
    assert set(w.versions) == {"v2.0", "v2.1"} and sum(w.versions.values()) == w.requests


def test_error_rate_spike():
    requests = make_requests(6, error_rate=0.0)
    hit = (
        (requests["ts"] >= START + pd.Timedelta("10min"))
        & (requests["ts"] < START + pd.Timedelta("11min"))
        & (requests["model_version"] == "v2.0")
    )
    requests.loc[hit & (np.arange(len(requests)) % 4 == 0), "error"] = True
    report = find_spikes(requests, metric="error_rate", every="30s", settings=SpikeSettings(min_delta=0.01))
    assert [(w.model_version, w.start) for w in report.windows] == [("v2.0", START + pd.Timedelta("10min"))]
    assert report.windows[0].error_rate_outside == 0.0
    assert report.windows[0].error_rate == pytest.approx(report.windows[0].value)


# -- the requests inside a window --------------------------------------------------------------


def test_window_context_names_the_version_that_made_a_pooled_spike():
    from mlobs_cli.analysis.spike_context import describe_windows

    requests = make_requests(7, spike=(12, 2, 3.0), spike_versions=("v2.1",))
    report = find_spikes(requests, metric="p99", every="30s", by_version=False)
    (w,) = report.windows
    top = requests[(requests["ts"] >= w.start) & (requests["ts"] < w.end)].nlargest(3, "latency_ms")
    stages = pd.DataFrame(
        {
            "request_id": list(top["request_id"]) * 2,
            "stage": ["inference"] * 3 + ["feature fetch"] * 3,
            "self_ms": [1.0, 50.0, 1.0, 30.0, 2.0, 40.0],
        }
    )
    describe_windows(report, requests, stages, top=3)
    assert [r["request_id"] for r in w.top_requests] == list(top["request_id"])
    assert [r["dominant_stage"] for r in w.top_requests] == [
        "feature fetch", "inference", "feature fetch"]  # fmt: skip
    assert all(r["model_version"] == "v2.1" for r in w.top_requests)
    assert w.top_requests[0]["percentile_rank"] == 100.0
    first = w.attributes[0]
    assert (first["field"], first["value"]) == ("model_version", "v2.1")
    assert first["lift"] > 1.5 and first["affected_pct"] > 0.9


def test_window_context_without_stages_or_causes():
    from mlobs_cli.analysis.spike_context import describe_windows

    requests = make_requests(8, spike=(12, 2, 3.0), spike_versions=("v2.0",))
    report = find_spikes(requests, metric="p99", every="30s")
    describe_windows(report, requests, None, top=2)
    (w,) = report.windows
    assert len(w.top_requests) == 2 and w.top_requests[0]["dominant_stage"] is None
    assert w.attributes == []  # within one version nothing but time sets the window apart


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_windows_cover_exactly_the_flagged_buckets_and_never_touch(flags):
    grid = _grid([1.0] * len(flags))
    grid["baseline"] = 1.0
    grid["score"] = [9.0 if f else 0.0 for f in flags]
    grid["anomalous"] = flags
    windows = windows_from_scores(grid, pd.Timedelta("30s"))
    covered = set()
    for w in windows:
        first = int((w["start"] - START) / pd.Timedelta("30s"))
        covered.update(range(first, first + w["buckets"]))
        assert w["end"] - w["start"] == w["buckets"] * pd.Timedelta("30s")
    assert covered == {i for i, f in enumerate(flags) if f}
    for a, b in zip(windows, windows[1:]):
        assert b["start"] > a["end"]  # adjacent flags would have merged


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1000, allow_nan=False), min_size=7, max_size=40),
    st.floats(0, 1000, allow_nan=False),
)
def test_score_sign_follows_the_side_of_the_median(neighbours, x):
    values = np.array([*neighbours, x])
    med, mad, meanad = rolling_baseline(values, len(values), 1)
    z = modified_z(values[-1:], med[-1:], mad[-1:], meanad[-1:])[0]
    assert np.sign(z) == np.sign(x - med[-1]) or (x == med[-1] and z == 0)
    assert med[-1] == np.median(neighbours)


def test_binomial_and_poisson_tails_against_direct_sums():
    from mlobs_cli.analysis.spike_confirm import binomial_sf, poisson_cdf

    for k, n, p in [(0, 10, 0.3), (3, 10, 0.3), (10, 10, 0.3), (13, 361, 0.01), (5, 40, 0.0)]:
        direct = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert binomial_sf(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-300)
    for k, lam in [(0, 2.5), (4, 2.5), (30, 12.0)]:
        direct = sum(math.exp(-lam) * lam**j / math.factorial(j) for j in range(k + 1))
        assert poisson_cdf(k, lam) == pytest.approx(direct, rel=1e-9)
