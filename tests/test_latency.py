"""latency_table: exact percentiles (numpy linear), rates, error rates, buckets, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.baseline import compare_to_baseline
from mlobs_cli.analysis.latency import (
    histogram,
    latency_table,
    low_sample,
    min_samples,
    parse_percentiles,
    percentile_key,
    stage_metric,
)
from mlobs_cli.errors import UsageError
from tests.frames import requests_frame

PS = [50.0, 90.0, 95.0, 99.0, 99.9]
T0 = pd.Timestamp("2026-11-26T10:00:00Z")


def _random_frame(n: int, seed: int, versions=("v2.0", "v2.1", "v1.9")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(rng.integers(0, 600 * 10**9, n), unit="ns")
    status = rng.choice([200, 200, 200, 503], n)
    return requests_frame(
        rng.lognormal(3, 0.7, n),
        versions=rng.choice(list(versions), n),
        ts=ts,
        status=status,
        inference_ms=np.where(rng.random(n) < 0.2, np.nan, rng.lognormal(2, 0.5, n)),
    )


def test_percentile_key() -> None:
    assert percentile_key(50) == "p50_ms"
    assert percentile_key(99.9) == "p99.9_ms"
    assert percentile_key(99.99) == "p99.99_ms"
    assert percentile_key(0) == "p0_ms"
    assert percentile_key(100.0) == "p100_ms"
    assert percentile_key(12.5) == "p12.5_ms"


def test_parse_percentiles() -> None:
    assert parse_percentiles("99,50, 90,p95,99") == [50.0, 90.0, 95.0, 99.0]
    assert parse_percentiles("99.9") == [99.9]
    for bad in ("", "abc", "101", "-1", ","):
        with pytest.raises(UsageError):
            parse_percentiles(bad)


def test_min_samples() -> None:
    assert min_samples(50) == 2
    assert min_samples(90) == 10
    assert min_samples(95) == 20
    assert min_samples(99) == 100
    assert min_samples(99.9) == 1000
    assert min_samples(100) == 1
    assert min_samples(0) == 1


def test_percentiles_equal_numpy_bit_for_bit_and_rates_match() -> None:
    frame = _random_frame(5000, seed=7)
    table = latency_table(frame, by=["model_version"], percentiles=PS)
    assert list(table.columns) == [
        "model_version",
        "requests",
        "errors",
        "error_rate",
        "rate_per_s",
        "mean_ms",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "samples",
    ]
    assert list(table["model_version"]) == ["v1.9", "v2.0", "v2.1"]
    for _, row in table.iterrows():
        group = frame[frame["model_version"] == row["model_version"]]
        values = group["latency_ms"].to_numpy()
        expected = np.percentile(values, PS)
        got = row[[percentile_key(q) for q in PS]].to_numpy(dtype=float)
        np.testing.assert_array_equal(got, expected)
        assert row["max_ms"] == values.max()
        assert row["mean_ms"] == pytest.approx(values.mean(), rel=1e-12)
        assert row["requests"] == len(group)
        assert row["errors"] == int((group["status"] >= 500).sum())
        assert row["error_rate"] == pytest.approx(row["errors"] / len(group))
        span = (group["ts"].max() - group["ts"].min()).total_seconds()
        assert row["rate_per_s"] == pytest.approx(len(group) / span, rel=1e-9)


def test_other_metric_and_missing_values_feed_no_latency_column() -> None:
    frame = _random_frame(3000, seed=3)
    table = latency_table(frame, by=["model_version"], percentiles=PS, metric="inference_ms")
    for _, row in table.iterrows():
        values = frame.loc[frame["model_version"] == row["model_version"], "inference_ms"]
        values = values.dropna().to_numpy()
        assert row["samples"] == len(values)
        np.testing.assert_array_equal(
            row[["p50_ms", "p99_ms"]].to_numpy(float), np.percentile(values, [50, 99])
        )


@pytest.mark.parametrize("status", ["ok", "error"])
def test_status_selects_latency_values_but_counts_stay_over_all(status: str) -> None:
    frame = _random_frame(4000, seed=11)
    table = latency_table(frame, by=["model_version"], percentiles=PS, status=status)
    full = latency_table(frame, by=["model_version"], percentiles=PS)
    pd.testing.assert_series_equal(table["requests"], full["requests"])
    pd.testing.assert_series_equal(table["errors"], full["errors"])
    for _, row in table.iterrows():
        group = frame[frame["model_version"] == row["model_version"]]
        chosen = group[group["error"] == (status == "error")]["latency_ms"].to_numpy()
        assert row["samples"] == len(chosen)
        np.testing.assert_array_equal(
            row[["p50_ms", "p95_ms"]].to_numpy(float), np.percentile(chosen, [50, 95])
        )


def test_group_by_several_fields_with_missing_and_mixed_values() -> None:
    frame = requests_frame(
        [10, 20, 30, 40, 50, 60],
        versions=["b", "a", "b", "a", "b", "a"],
        extra={"route": ["/x", None, "/x", 5, None, 5]},
    )
    table = latency_table(frame, by=["model_version", "route"], percentiles=[50])
    assert table["requests"].sum() == 6
    assert list(table["model_version"]) == ["a", "a", "b", "b"]
    got = {
        (r.model_version, r.route if isinstance(r.route, (str, int)) else None): r.p50_ms
        for r in table.itertuples()
    }
    assert got == {("a", None): 20.0, ("a", 5): 50.0, ("b", "/x"): 20.0, ("b", None): 50.0}


def test_one_request() -> None:
    frame = requests_frame([42.5], versions=["v3"])
    row = latency_table(frame, by=["model_version"], percentiles=PS).iloc[0]
    assert row["requests"] == 1
    assert all(row[percentile_key(q)] == 42.5 for q in PS)
    assert row["max_ms"] == 42.5 and row["mean_ms"] == 42.5
    assert np.isnan(row["rate_per_s"])  # a rate needs a window


def test_zero_span_gives_null_rate() -> None:
    frame = requests_frame([1, 2, 3], ts=[T0, T0, T0])
    assert np.isnan(latency_table(frame, by=["model_version"], percentiles=[50])["rate_per_s"][0])


def test_all_errors_and_a_version_with_no_successes() -> None:
    frame = requests_frame([5, 6, 7, 8], versions=["bad", "bad", "good", "good"], status=[500, 503, 200, 200])
    table = latency_table(frame, by=["model_version"], percentiles=[50, 99], status="ok")
    bad = table[table["model_version"] == "bad"].iloc[0]
    assert bad["requests"] == 2 and bad["errors"] == 2 and bad["error_rate"] == 1.0
    assert bad["samples"] == 0
    assert np.isnan(bad["p50_ms"]) and np.isnan(bad["max_ms"]) and np.isnan(bad["mean_ms"])
    good = table[table["model_version"] == "good"].iloc[0]
    assert good["p50_ms"] == 7.5 and good["error_rate"] == 0.0


def test_error_marker_without_status_counts_as_error() -> None:
    frame = requests_frame([5, 6], status=[None, None], error=[True, False])
    row = latency_table(frame, by=["model_version"], percentiles=[50]).iloc[0]
    assert row["errors"] == 1 and row["error_rate"] == 0.5


def test_unknown_version_value_is_a_group_like_any_other() -> None:
    frame = requests_frame([1, 2, 3], versions=["unknown", "v1", "unknown"])
    table = latency_table(frame, by=["model_version"], percentiles=[50])
    assert dict(zip(table["model_version"], table["requests"], strict=True)) == {
        "unknown": 2,
        "v1": 1,
    }


def test_unsorted_timestamps_give_the_same_table() -> None:
    frame = _random_frame(2000, seed=5)
    shuffled = frame.sample(frac=1.0, random_state=1)
    for every in (None, "1m"):
        a = latency_table(frame, by=["model_version"], percentiles=PS, every=every)
        b = latency_table(shuffled, by=["model_version"], percentiles=PS, every=every)
        pd.testing.assert_frame_equal(a.drop(columns="mean_ms"), b.drop(columns="mean_ms"))
        np.testing.assert_allclose(a["mean_ms"], b["mean_ms"], rtol=1e-12)


def test_buckets_floor_timestamps_and_rates_use_the_covered_window() -> None:
    ts = [T0 + pd.Timedelta(seconds=s) for s in (5, 20, 59, 60, 61, 150)]
    frame = requests_frame([1, 2, 3, 4, 5, 6], ts=ts)
    table = latency_table(frame, by=["model_version"], percentiles=[50], every="1m")
    assert list(table.columns[:2]) == ["bucket_start", "model_version"]
    assert str(table["bucket_start"].dtype) == "datetime64[ns, UTC]"
    assert list(table["bucket_start"]) == [T0, T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")]
    assert list(table["requests"]) == [3, 2, 1]
    # first bucket: logs start at :05, so it covers 55 s; last bucket covers 120..150 s = 30 s.
    np.testing.assert_allclose(table["rate_per_s"], [3 / 55, 2 / 60, 1 / 30])
    assert list(table["p50_ms"]) == [2.0, 4.5, 6.0]


def test_nat_timestamps_counted_but_not_bucketed() -> None:
    ts = [T0, pd.NaT, T0 + pd.Timedelta(seconds=10), pd.NaT]
    frame = requests_frame([1, 2, 3, 4], ts=ts)
    whole = latency_table(frame, by=["model_version"], percentiles=[50]).iloc[0]
    assert whole["requests"] == 4 and whole["p50_ms"] == 2.5
    assert whole["rate_per_s"] == pytest.approx(2 / 10)  # timed requests over the timed span
    table = latency_table(frame, by=["model_version"], percentiles=[50], every="1m")
    assert table["requests"].sum() == 2
    assert table.attrs["unbucketed"] == 2


def test_empty_input_gives_an_empty_table_with_the_columns() -> None:
    frame = requests_frame([])
    table = latency_table(frame, by=["model_version"], percentiles=[50, 99], every="1m")
    assert len(table) == 0
    assert list(table.columns)[:3] == ["bucket_start", "model_version", "requests"]


def test_bad_arguments_raise_usage_errors() -> None:
    frame = requests_frame([1.0])
    with pytest.raises(UsageError, match="unknown field 'versoin'"):
        latency_table(frame, by=["versoin"], percentiles=[50])
    with pytest.raises(UsageError, match="unknown metric 'request_id'"):
        latency_table(frame, by=["model_version"], percentiles=[50], metric="request_id")
    with pytest.raises(UsageError, match="invalid status"):
        latency_table(frame, by=["model_version"], percentiles=[50], status="fine")
    with pytest.raises(UsageError, match="no unit"):
        latency_table(frame, by=["model_version"], percentiles=[50], every="10")


def test_low_sample_flags() -> None:
    frame = requests_frame(np.arange(150.0), versions=["a"] * 99 + ["b"] * 51)
    table = latency_table(frame, by=["model_version"], percentiles=[50, 99])
    flags = low_sample(table, [50, 99])
    assert list(flags["p50_ms"]) == [False, False]
    assert list(flags["p99_ms"]) == [True, True]
    frame = requests_frame(np.arange(100.0))
    table = latency_table(frame, by=["model_version"], percentiles=[99])
    assert not low_sample(table, [99])["p99_ms"][0]


def test_compare_to_baseline() -> None:
    frame = requests_frame(
        [10, 10, 10, 10, 12, 12, 12, 12, 10, 10, 10, 10],
        versions=["base"] * 4 + ["slow"] * 4 + ["same"] * 4,
        status=[200, 200, 200, 500] + [200, 500, 500, 200] + [200] * 4,
    )
    table = latency_table(frame, by=["model_version"], percentiles=[50])
    out = compare_to_baseline(table, "base", percentiles=[50], regression=0.10)
    rows = {r["model_version"]: r for _, r in out.iterrows()}
    assert rows["slow"]["p50_ms_change"] == pytest.approx(0.2)
    assert rows["slow"]["error_rate_change"] == pytest.approx(0.25)
    assert rows["slow"]["regressions"] == ["mean_ms", "p50_ms", "max_ms", "error_rate"]
    assert rows["same"]["p50_ms_change"] == 0.0
    assert rows["same"]["error_rate_change"] == pytest.approx(-0.25)
    assert rows["same"]["regressions"] == []
    assert rows["base"]["regressions"] == [] and rows["base"]["p50_ms_change"] == 0.0


def test_compare_to_baseline_per_bucket() -> None:
    ts = [T0, T0, T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")]
    frame = requests_frame([10, 30, 10, 11, 50], versions=["a", "b", "a", "b", "b"], ts=ts)
    table = latency_table(frame, by=["model_version"], percentiles=[50], every="1m")
    out = compare_to_baseline(table, "a", percentiles=[50])
    changes = list(out["p50_ms_change"])
    assert changes[:4] == [0.0, 2.0, 0.0, pytest.approx(0.1)]
    assert np.isnan(changes[4])  # no baseline in that bucket
    assert out["regressions"].tolist()[1] == ["mean_ms", "p50_ms", "max_ms"]


def test_error_rate_rising_from_zero_is_a_regression() -> None:
    frame = requests_frame([1, 1, 1, 1], versions=["a", "a", "b", "b"], status=[200, 200, 200, 500])
    out = compare_to_baseline(
        latency_table(frame, by=["model_version"], percentiles=[50]), "a", percentiles=[50]
    )
    assert out.loc[out["model_version"] == "b", "regressions"].iloc[0] == ["error_rate"]


def test_histogram_counts_cover_every_value() -> None:
    frame = _random_frame(1000, seed=2)
    edges, counts = histogram(frame, by="model_version", bins=20)
    assert len(edges) == 21 and np.all(np.diff(edges) > 0)
    assert set(counts) == {"v1.9", "v2.0", "v2.1"}
    assert sum(int(c.sum()) for c in counts.values()) == 1000
    for version, c in counts.items():
        assert c.sum() == (frame["model_version"] == version).sum()


def test_stage_metric_sums_spans_per_request() -> None:
    frame = requests_frame([10, 20, 30])
    spans = pd.DataFrame(
        {
            "request_id": ["req-0", "req-0", "req-1", None],
            "trace_id": [None, None, None, f"{2:032x}"],
            "name": ["model_inference", "model_inference", "model_inference", "model_inference"],
            "duration_ms": [1.0, 2.0, 5.0, 7.0],
        }
    )
    got = stage_metric(frame, spans, "model_inference")
    assert got.tolist() == [3.0, 5.0, 7.0]
    with pytest.raises(UsageError, match="stages in these logs: model_inference"):
        stage_metric(frame, spans, "feature_fetch")


versions_st = st.sampled_from(["v1", "v2", "v3"])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.floats(0, 1e5, allow_nan=False), versions_st, st.integers(0, 3_600), st.booleans()),
        min_size=1,
        max_size=80,
    ),
    every=st.sampled_from([None, "10s", "1m", "7m"]),
)
def test_properties(rows, every) -> None:
    latency, versions, seconds, errs = zip(*rows, strict=True)
    frame = requests_frame(
        latency,
        versions=versions,
        ts=[T0 + pd.Timedelta(seconds=s) for s in seconds],
        error=errs,
    )
    table = latency_table(frame, by=["model_version"], percentiles=[50, 95, 99], every=every)
    assert table["requests"].sum() == len(frame)
    assert table["errors"].sum() == sum(errs)
    assert np.all(table["p50_ms"] <= table["p95_ms"])
    assert np.all(table["p95_ms"] <= table["p99_ms"])
    assert np.all(table["p99_ms"] <= table["max_ms"])
    per_version = frame["model_version"].astype(str).value_counts().to_dict()
    sums = table.groupby(table["model_version"].astype(str))["requests"].sum().to_dict()
    assert sums == per_version
    if every is None:
        for r in table.itertuples():
            values = frame.loc[frame["model_version"] == r.model_version, "latency_ms"]
            np.testing.assert_array_equal(
                [r.p50_ms, r.p95_ms, r.p99_ms], np.percentile(values.to_numpy(), [50, 95, 99])
            )
    else:
        width = pd.Timedelta(every)
        for r in table.itertuples():
            inside = frame[
                (frame["model_version"] == r.model_version)
                & (frame["ts"] >= r.bucket_start)
                & (frame["ts"] < r.bucket_start + width)
            ]
            assert len(inside) == r.requests
            np.testing.assert_array_equal(
                [r.p50_ms, r.p99_ms], np.percentile(inside["latency_ms"].to_numpy(), [50, 99])
            )


def test_group_by_a_field_holding_lists() -> None:
    frame = requests_frame([1, 2, 3], extra={"predictions": [[1, 2], [1, 2], None]})
    table = latency_table(frame, by=["predictions"], percentiles=[50])
    assert sorted(table["requests"].tolist()) == [1, 2]


def test_many_groups_take_the_vectorized_sort_and_stay_exact(monkeypatch) -> None:
    import mlobs_cli.analysis.latency as lat

    frame = _random_frame(3000, seed=9)
    frame["user"] = [f"u{i % 400}" for i in range(3000)]
    monkeypatch.setattr(lat, "MAX_GROUP_SORTS", 10_000)
    loop = latency_table(frame, by=["model_version", "user"], percentiles=PS)
    monkeypatch.setattr(lat, "MAX_GROUP_SORTS", 5)
    vectorized = latency_table(frame, by=["model_version", "user"], percentiles=PS)
    assert len(loop) > 5
    pd.testing.assert_frame_equal(loop, vectorized)
    row = vectorized.iloc[17]
    values = frame.loc[
        (frame["model_version"] == row["model_version"]) & (frame["user"] == row["user"]), "latency_ms"
    ]
    np.testing.assert_array_equal(
        row[["p50_ms", "p99.9_ms"]].to_numpy(float), np.percentile(values, [50, 99.9])
    )


def test_stage_metric_from_timeline_stages_by_request_key() -> None:
    frame = requests_frame([10, 20])
    frame.loc[1, "request_id"] = None  # this request is known by its trace id only
    stages = pd.DataFrame(
        {
            "request_id": ["req-0", "req-0", f"{1:032x}"],
            "trace_id": [None, None, f"{1:032x}"],
            "stage": ["inference", "feature fetch", "inference"],
            "duration_ms": [4.0, 1.0, 6.5],
        }
    )
    assert stage_metric(frame, stages, "inference", name_col="stage").tolist() == [4.0, 6.5]
