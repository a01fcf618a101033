"""analysis/window.py: the rolling window on its stated clock, checked against numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.window import EventClock, RollingWindow, dominant_stages

T0 = pd.Timestamp("2024-03-01T10:00:00Z")  # an old, replayed log
WALL0 = 1_800_000_000.0  # "now" on the machine running mlobs (2027)


def requests(ts_s, versions, latency, errors=None, ids=None):
    n = len(ts_s)
    ts = pd.Series(
        [T0 + pd.Timedelta(seconds=s) if s is not None else pd.NaT for s in ts_s],
        dtype="datetime64[ns, UTC]",
    )
    return pd.DataFrame(
        {
            "ts": ts,
            "request_id": ids or [f"r{i}" for i in range(n)],
            "trace_id": [None] * n,
            "model_version": pd.Series(versions, dtype="category"),
            "latency_ms": np.asarray(latency, dtype=np.float64),
            "inference_ms": np.full(n, np.nan),
            "status": pd.array([500 if e else 200 for e in (errors or [False] * n)], dtype="Int64"),
            "error": np.asarray(errors or [False] * n, dtype=bool),
            "source": pd.Series(["app.log"] * n, dtype="category"),
            "line": np.arange(1, n + 1, dtype=np.int64),
        }
    )


def test_event_clock_anchors_on_events_and_ticks_with_wall_time():
    c = EventClock()
    assert c.now(5) == 5  # nothing seen: arrival time
    c.observe(1_000, 10_000)
    assert c.now(10_500) == 1_500
    c.observe(1_200, 10_500)  # older than the clock: no jump back
    assert c.now(10_500) == 1_500
    c.observe(9_000, 10_600)  # a replay running ahead of wall time
    assert c.now(10_600) == 9_000


def test_replayed_log_with_old_timestamps_gives_the_numbers_of_its_last_window():
    w = RollingWindow(60)
    secs = list(range(0, 300, 2))  # 150 requests over 5 minutes of 2024, read in one go
    lat = [float(10 + (s % 37)) for s in secs]
    versions = ["v1" if s % 4 else "v2" for s in secs]
    w.add(requests(secs, versions, lat), WALL0)
    snap = w.snapshot(WALL0)
    assert snap.window_end == T0 + pd.Timedelta(seconds=298)
    assert snap.window_start == T0 + pd.Timedelta(seconds=238)
    inside = [(s, v, x) for s, v, x in zip(secs, versions, lat, strict=True) if 238 < s <= 298]
    for version in ("v1", "v2"):
        vals = np.array([x for _, v, x in inside if v == version])
        row = snap.table.set_index("model_version").loc[version]
        assert row["requests"] == len(vals)
        assert row["p50_ms"] == np.percentile(vals, 50)
        assert row["p95_ms"] == np.percentile(vals, 95)
        assert row["p99_ms"] == np.percentile(vals, 99)
        assert row["rate_per_s"] == len(vals) / 60
    assert snap.totals == {"v1": (75, 0), "v2": (75, 0)}


def test_window_slides_with_wall_time_when_the_service_goes_quiet():
    w = RollingWindow(10)
    w.add(requests([0, 1, 2], ["v1"] * 3, [5, 6, 7]), WALL0)
    assert w.snapshot(WALL0).table["requests"].tolist() == [3]
    later = w.snapshot(WALL0 + 8.5)
    assert later.table["requests"].tolist() == [2]  # ts 0 left: the window is (0.5, 10.5]
    quiet = w.snapshot(WALL0 + 30)
    row = quiet.table.iloc[0]
    assert row["model_version"] == "v1" and row["requests"] == 0 and row["rate_per_s"] == 0
    assert np.isnan(row["p99_ms"])
    assert quiet.totals == {"v1": (3, 0)}


def test_rates_use_the_covered_span_before_the_window_fills():
    w = RollingWindow(60)
    w.add(requests([0, 5, 10, 20], ["v1"] * 4, [1, 2, 3, 4]), WALL0)
    snap = w.snapshot(WALL0)
    assert snap.span_s == 20
    assert snap.table["rate_per_s"].tolist() == [4 / 20]


def test_lines_without_time_are_stamped_with_the_clock_at_arrival():
    w = RollingWindow(10)
    w.add(requests([100], ["v1"], [5.0]), WALL0)
    kept = w.add(requests([None, None], ["v1", "v2"], [7.0, 9.0]), WALL0 + 2)
    assert kept["ts"].tolist() == [T0 + pd.Timedelta(seconds=102)] * 2
    snap = w.snapshot(WALL0 + 2)
    assert snap.table.set_index("model_version")["requests"].to_dict() == {"v1": 2, "v2": 1}
    assert w.snapshot(WALL0 + 20).requests_total == 3


def test_error_rate_and_slowest():
    w = RollingWindow(60)
    w.add(
        requests(
            [1, 2, 3, 4],
            ["v1", "v1", "v2", "v2"],
            [10, 300, 20, 40],
            errors=[False, True, False, False],
        ),
        WALL0,
    )
    w.add_stages({"r1": ("inference_done", 250.0)})
    snap = w.snapshot(WALL0, slowest=2)
    t = snap.table.set_index("model_version")
    assert t.loc["v1", "errors"] == 1 and t.loc["v1", "error_rate"] == 0.5
    assert t.loc["v2", "error_rate"] == 0.0
    assert snap.slowest["request_id"].tolist() == ["r1", "r3"]
    assert snap.slowest["stage"].tolist() == ["inference_done", None]


def test_p99_trend_has_one_point_per_closed_window_and_the_open_one():
    w = RollingWindow(10, trend_points=4)
    # 50 seconds of data: buckets [0,10) .. [40,50); latency grows by bucket for v1.
    secs = [s + 0.5 for s in range(50)]
    lat = [float(100 * (1 + int(s) // 10)) for s in secs]
    w.add(requests(secs, ["v1"] * 50, lat), WALL0)
    t0 = T0.value % (10**10)  # T0 is 10-s aligned
    assert t0 == 0
    snap = w.snapshot(WALL0)
    assert snap.trend["v1"] == [100.0, 200.0, 300.0, 400.0, 500.0]


def test_dominant_stage_of_the_slowest_requests_from_the_timeline_stages(tmp_path, run_cli):
    from mlobs_cli.analysis.timeline import per_request_stages, stage_durations
    from mlobs_cli.frame import dataset_from_sources

    log = tmp_path / "sim.log"
    assert run_cli("simulate", "--requests", "300", "--seed", "5", "-o", log).exit_code == 0
    data = dataset_from_sources([str(log)])
    got = dominant_stages(data.milestones, data.spans, data.requests, slowest=5)
    slowest = data.requests.nlargest(5, "latency_ms")["request_id"]
    assert set(got) == set(slowest)  # only the slowest requests are worked out
    per = per_request_stages(stage_durations(data.milestones, data.spans, data.requests))
    for rid in slowest:
        mine = per[per["request_id"] == rid]
        best = mine.loc[mine["self_ms"].idxmax()]
        assert got[rid] == (best["stage"], best["self_ms"])
    # the three ~1 s timeouts of this log spent their time in inference
    assert [got[r][0] for r in slowest[:3]] == ["inference"] * 3
    assert all(got[r][1] > 900 for r in slowest[:3])


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 120),
                st.sampled_from(["v1", "v2", "v3"]),
                st.floats(0, 5000, allow_nan=False),
            ),
            min_size=1,
            max_size=30,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_window_matches_numpy_on_any_batches(batches):
    w = RollingWindow(30)
    everything = []
    for i, batch in enumerate(batches):
        secs, versions, lat = zip(*batch, strict=True)
        w.add(requests(list(secs), list(versions), list(lat)), WALL0 + i * 0.001)
        everything.extend(batch)
    wall = WALL0 + (len(batches) - 1) * 0.001
    snap = w.snapshot(wall)
    end = (snap.window_end - T0).value
    start = end - 30 * 10**9
    for version in {v for _, v, _ in everything}:
        vals = np.array(
            [x for s, v, x in everything if v == version and start < s * 10**9 <= end], dtype=float
        )
        row = snap.table.set_index("model_version").loc[version]
        assert row["requests"] == len(vals)
        if len(vals):
            assert row["p50_ms"] == np.percentile(vals, 50)
            assert row["p99_ms"] == np.percentile(vals, 99)
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert snap.requests_total == len(everything)


def test_alerts_fire_once_and_recover_once():
    from mlobs_cli.analysis.alerts import AlertTracker, parse_alert

    tracker = AlertTracker([parse_alert("p99 > 250ms"), parse_alert("v2: rate < 1/s")])

    def table(p99_v1, p99_v2, rate_v2, n_v2=10):
        return pd.DataFrame(
            {"model_version": ["v1", "v2"], "p99_ms": [p99_v1, p99_v2], "rate_per_s": [5.0, rate_v2],
             "requests": [10, n_v2]}
        )  # fmt: skip

    assert tracker.update(table(100, 100, 2)) == []
    fired = tracker.update(table(300, 100, 2))
    assert [(c.rule.text, c.model_version, c.value, c.firing) for c in fired] == [
        ("p99 > 250ms", "v1", 300.0, True)
    ]
    assert tracker.update(table(320, 100, 2)) == []  # still firing: no second line
    assert tracker.firing() == {"v1": ["p99 > 250ms"]}
    changes = tracker.update(table(200, np.nan, np.nan, n_v2=0))  # v2 went quiet: rate 0
    assert [(c.model_version, c.firing) for c in changes] == [("v1", False), ("v2", True)]
    assert tracker.firing_list() == [{"rule": "v2: rate < 1/s", "model_version": "v2", "value": 0.0}]


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 90),
                st.sampled_from(["v1", "v2", "v10"]),
                st.one_of(st.floats(0, 5000, allow_nan=False), st.just(float("nan"))),
                st.booleans(),
            ),
            min_size=1,
            max_size=40,
        ),
        min_size=1,
        max_size=8,
    ),
    window_s=st.sampled_from([5, 30, 200]),
)
def test_window_table_is_latency_table_of_the_rows_inside_bit_for_bit(batches, window_s):
    """Per-version stats come from batches grouped by version and a window that cuts batches in
    two; they must equal `latency_table` (mean, percentiles, max: same bits) on the same rows."""
    from mlobs_cli.analysis.latency import latency_table

    w = RollingWindow(window_s)
    everything = []
    for batch in batches:
        secs, versions, lat, err = zip(*batch, strict=True)
        w.add(requests(list(secs), list(versions), list(lat), errors=list(err)), WALL0)
        everything.extend(batch)
    qs = [50.0, 90.0, 99.0, 99.9]
    snap = w.snapshot(WALL0, percentiles=qs)
    end = (snap.window_end - T0).value
    inside = [b for b in everything if end - window_s * 10**9 < b[0] * 10**9 <= end]
    got = snap.table[snap.table["requests"] > 0].reset_index(drop=True)
    if not inside:
        assert got.empty
        return
    secs, versions, lat, err = zip(*inside, strict=True)
    want = latency_table(requests(list(secs), list(versions), list(lat), errors=list(err)),
                         by=["model_version"], percentiles=qs)  # fmt: skip
    assert got["model_version"].astype(str).tolist() == want["model_version"].astype(str).tolist()
    for col in want.columns.drop(["model_version", "rate_per_s"]):
        a, b = got[col].to_numpy(dtype=float), want[col].to_numpy(dtype=float)
        assert np.array_equal(a.view(np.int64), b.view(np.int64)) or np.array_equal(a, b, equal_nan=True), col
        assert got[col].dtype == want[col].dtype, col


def test_slowest_across_batches_ties_go_to_the_earlier_request():
    w = RollingWindow(60)
    w.add(requests([1, 2, 3], ["v1", "v2", "v1"], [50, 90, 90], ids=["a", "b", "c"]), WALL0)
    w.add(requests([4, 5], ["v2", "v1"], [90, 70], ids=["d", "e"]), WALL0)
    snap = w.snapshot(WALL0, slowest=4)
    assert snap.slowest["request_id"].tolist() == ["b", "c", "d", "e"]
    assert snap.slowest["model_version"].tolist() == ["v2", "v1", "v2", "v1"]
    # a window (1.5 s, 4 s] that starts inside the first batch leaves its first row out
    w2 = RollingWindow(2.5)
    w2.add(requests([1, 2, 3], ["v1", "v1", "v1"], [500, 400, 10], ids=["a", "b", "c"]), WALL0)
    w2.add(requests([4], ["v1"], [20], ids=["d"]), WALL0)
    assert w2.snapshot(WALL0, slowest=5).slowest["request_id"].tolist() == ["b", "d", "c"]


def test_a_batch_straddling_the_window_start_counts_only_its_rows_inside():
    w = RollingWindow(5)
    lat = [float(10 * (s + 1)) for s in range(10)]
    w.add(requests(list(range(10)), ["v1"] * 10, lat, errors=[s % 2 == 0 for s in range(10)]), WALL0)
    snap = w.snapshot(WALL0)  # window (4 s, 9 s]: the batch's last five rows
    row = snap.table.set_index("model_version").loc["v1"]
    inside = np.array(lat[5:])
    assert row["requests"] == 5 and row["errors"] == 2  # s = 6, 8
    assert row["p50_ms"] == np.percentile(inside, 50) and row["max_ms"] == inside.max()
    assert row["mean_ms"] == inside.mean()
    assert snap.slowest["request_id"].tolist() == ["r9", "r8", "r7", "r6", "r5"]
    assert snap.totals == {"v1": (10, 5)}  # totals count every request ever read
    # 3 s of wall time later the clock has moved on: only s = 8, 9 remain
    later = w.snapshot(WALL0 + 3).table.set_index("model_version").loc["v1"]
    assert later["requests"] == 2 and later["p99_ms"] == np.percentile(lat[8:], 99)


def test_an_alert_fires_once_over_many_batches_and_snapshots_then_recovers_once():
    from mlobs_cli.analysis.alerts import AlertTracker, parse_alert

    w = RollingWindow(10)
    tracker = AlertTracker([parse_alert("p99 > 250ms")])
    changes = []
    for i in range(6):  # one slow batch a second: p99 stays above 250 ms in every snapshot
        w.add(requests([i + 0.1 * k for k in range(10)], ["v1"] * 10, [300.0] * 10), WALL0 + i)
        for tick in (0.0, 0.5):
            changes += tracker.update(w.snapshot(WALL0 + i + tick).table)
    assert [(c.model_version, c.firing) for c in changes] == [("v1", True)]
    for i in range(6, 20):  # then fast batches; the slow ones leave the 10 s window
        w.add(requests([i + 0.1 * k for k in range(10)], ["v1"] * 10, [20.0] * 10), WALL0 + i)
        changes += tracker.update(w.snapshot(WALL0 + i).table)
    assert [(c.model_version, c.firing) for c in changes] == [("v1", True), ("v1", False)]
    assert tracker.firing() == {}


@settings(max_examples=40, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(0, 59.9), st.sampled_from(["v1", "v2"]), st.floats(0, 5000, allow_nan=False)),
        min_size=1,
        max_size=80,
    ),
    step_s=st.sampled_from([3, 25, 60]),
)
def test_p99_trend_of_closed_buckets_is_numpys_whatever_the_batching(events, step_s):
    """Buckets close one at a time (small steps) or many at once, from batches cut across bucket
    bounds; each closed bucket's point is np.percentile 99 of its requests."""
    w = RollingWindow(10, trend_points=6)
    for start in range(0, 60, step_s):  # each batch added at its end: no request comes late
        batch = [e for e in events if start <= e[0] < start + step_s]
        if batch:
            secs, versions, lat = zip(*batch, strict=True)
            w.add(requests(list(secs), list(versions), list(lat)), WALL0 + start + step_s)
    snap = w.snapshot(WALL0 + 60)
    starts = [(b - T0.value) / 1e9 for b, _ in w._trend]  # the closed buckets, oldest first
    for version, points in snap.trend.items():
        assert len(points) == len(starts) + 1  # then the open window's p99
        for b, got in zip(starts, points, strict=False):
            vals = [x for s, v, x in events if v == version and b <= s < b + 10]
            assert got == np.percentile(vals, 99) if vals else np.isnan(got)
