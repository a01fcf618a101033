"""The simulator: exact line shapes, time order, consistent timings, and planted effects."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli import linebytes, simulate
from mlobs_cli.simulate import Drift, LatencyDist, SimConfig, Slowdown, Spike, iter_log_chunks

START = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
TWO = (("v2.0", 1.0), ("v2.1", 1.0))
SUMMARY_KEYS = [
    "ts", "level", "event", "request_id", "trace_id", "model_version", "user_id",
    "num_recommendations", "latency_ms", "inference_ms", "status", "predictions", "host", "route",
    "feature_cache",
]  # fmt: skip
ERROR_KEYS = SUMMARY_KEYS[:11] + ["error"] + SUMMARY_KEYS[11:]
STAGE_KEYS = ["ts", "level", "event", "request_id", "trace_id", "model_version"]
STAGES = ["request_received", "features_fetched", "inference_done", "response_sent", "prediction"]


def run(cfg: SimConfig) -> bytes:
    return b"".join(bytes(chunk) for chunk in iter_log_chunks(cfg))


def parse(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def micros(rows: list[dict]) -> np.ndarray:
    stamps = np.array([r["ts"].removesuffix("Z") for r in rows], dtype="datetime64[us]")
    return stamps.astype(np.int64)


def summaries(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["event"] == "prediction"]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches so that every test crosses batch boundaries (the merge of held-back lines).
    monkeypatch.setattr(simulate, "CHUNK", 257)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    cfg = SimConfig(requests=900, seed=7, versions=TWO, error_rate=0.05, slow_features=0.1)
    first = run(cfg)
    assert first == run(cfg)
    assert first != run(replace(cfg, seed=8))


def test_batch_size_changes_nothing_but_the_draws_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A request never straddles two output chunks wrongly: with one batch the log is the same
    # set of requests (arrivals come from their own stream), still sorted.
    cfg = SimConfig(requests=600, seed=3, versions=TWO)
    many = parse(run(cfg))
    monkeypatch.setattr(simulate, "CHUNK", 10_000)
    one = parse(run(cfg))
    first_seen = lambda rows: [r["ts"] for r in rows if r["event"] == "request_received"]  # noqa: E731
    assert first_seen(many) == first_seen(one)


def test_every_line_has_the_exact_keys_in_order() -> None:
    rows = parse(run(SimConfig(requests=1500, seed=1, versions=TWO, error_rate=0.1)))
    assert len(rows) == 1500 * 5
    for row in rows:
        if row["event"] == "prediction":
            assert list(row) == (ERROR_KEYS if "error" in row else SUMMARY_KEYS)
        else:
            assert list(row) == STAGE_KEYS
    for s in summaries(rows):
        assert s["request_id"].startswith("req-") and len(s["request_id"]) == 20
        assert len(s["trace_id"]) == 32 and int(s["trace_id"], 16) >= 0
        assert s["trace_id"] == s["trace_id"].lower()
        assert s["route"] == "/predict" and s["host"].startswith("predict-")
        if "error" in s:
            assert s["level"] == "error" and s["status"] in (500, 503) and s["predictions"] == []
        else:
            assert s["level"] == "info" and s["status"] == 200
            assert len(s["predictions"]) == s["num_recommendations"]
            assert all(p.startswith("item_") for p in s["predictions"])


def test_lines_are_sorted_by_time_and_timings_add_up() -> None:
    rows = parse(run(SimConfig(requests=2000, seed=2, rate=200.0, versions=TWO, error_rate=0.05)))
    t = micros(rows)
    assert np.all(np.diff(t) >= 0)
    assert datetime.fromisoformat(rows[0]["ts"]) >= START
    by_request: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_request.setdefault(row["request_id"], []).append(i)
    assert len(by_request) == 2000
    for idx in by_request.values():
        events = [rows[i]["event"] for i in idx]
        failed = events[2] == "inference_failed"
        assert events == STAGES[:2] + [events[2]] + STAGES[3:]
        assert (rows[idx[2]]["level"] == "error") == failed
        recv, feat, inf, sent, summ = (int(t[i]) for i in idx)
        assert recv < feat < inf < sent == summ
        s = rows[idx[4]]
        assert ("error" in s) == failed
        assert s["latency_ms"] == pytest.approx((sent - recv) / 1000, abs=1e-9)
        assert s["inference_ms"] == pytest.approx((inf - feat) / 1000, abs=1e-9)
        assert {rows[i]["trace_id"] for i in idx} == {s["trace_id"]}
        assert {rows[i]["model_version"] for i in idx} == {s["model_version"]}


def test_no_stages_writes_only_summaries() -> None:
    cfg = SimConfig(requests=700, seed=4, versions=TWO)
    rows = parse(run(replace(cfg, stages=False)))
    assert [r["event"] for r in rows] == ["prediction"] * 700
    assert rows == summaries(parse(run(cfg)))


def test_traffic_split_error_rate_and_arrival_rate() -> None:
    n = 20_000
    cfg = SimConfig(
        requests=n, seed=11, rate=100.0, versions=(("v2.0", 80.0), ("v2.1", 20.0)),
        error_rate=0.03, stages=False,
    )  # fmt: skip
    rows = parse(run(cfg))
    share = np.mean([r["model_version"] == "v2.1" for r in rows])
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n)
    errors = np.mean([r["status"] >= 500 for r in rows])
    assert abs(errors - 0.03) < 4 * np.sqrt(0.03 * 0.97 / n)
    span_s = (micros(rows)[-1] - micros(rows)[0]) / 1e6
    assert n / span_s == pytest.approx(100.0, rel=0.05)


def test_default_latencies_follow_the_seed_and_a_heavier_tailed_v21() -> None:
    rows = parse(run(SimConfig(requests=8000, seed=5, versions=TWO, error_rate=0.0, stages=False)))
    inf = {v: np.array([r["inference_ms"] for r in rows if r["model_version"] == v]) for v, _ in TWO}
    assert 50.0 <= inf["v2.0"].min() and inf["v2.0"].max() <= 200.0  # random.uniform(0.05, 0.2)
    assert np.median(inf["v2.1"]) == pytest.approx(90.0, rel=0.05)
    assert np.percentile(inf["v2.1"], 99.9) > 250.0  # the lognormal tail


def test_slowdown_is_planted_at_p95() -> None:
    base = SimConfig(requests=6000, seed=9, versions=TWO, error_rate=0.0, stages=False)
    latency = {"v2.0": LatencyDist("uniform", (80, 120)), "v2.1": LatencyDist("uniform", (80, 120))}
    base = replace(base, latency=latency)
    slow = replace(base, slowdowns=(Slowdown("v2.1", factor=1.2),))

    def p95(cfg: SimConfig, version: str) -> float:
        rows = parse(run(cfg))
        return float(np.percentile([r["inference_ms"] for r in rows if r["model_version"] == version], 95))

    assert p95(slow, "v2.1") == pytest.approx(1.2 * p95(base, "v2.1"), rel=0.01)
    assert p95(slow, "v2.0") == p95(base, "v2.0")
    assert p95(slow, "v2.1") > 1.15 * p95(slow, "v2.0")


def test_spike_multiplies_latency_and_errors_inside_its_window() -> None:
    begin = simulate.epoch_us(START) + 120 * 1_000_000
    cfg = SimConfig(
        requests=12_000, seed=13, rate=50.0, versions=(("v2.0", 1.0),), error_rate=0.01,
        spikes=(Spike(begin, 60 * 1_000_000, 4.0),), stages=False,
    )  # fmt: skip
    rows = parse(run(cfg))
    sent = micros(rows)
    latency = np.array([r["latency_ms"] for r in rows])
    arrived = sent - np.rint(latency * 1000).astype(np.int64)
    inside = (arrived >= begin) & (arrived < begin + 60 * 1_000_000)
    ok = np.array([r["status"] == 200 for r in rows])
    assert 2500 < inside.sum() < 3500
    assert np.median(latency[inside & ok]) == pytest.approx(4 * np.median(latency[~inside & ok]), rel=0.1)
    assert (~ok[inside]).mean() > 2.5 * (~ok[~inside]).mean()


def test_drift_adds_a_linear_trend() -> None:
    cfg = SimConfig(
        requests=10_000, seed=17, rate=2.0, versions=(("v2.1", 1.0),), error_rate=0.0,
        latency={"v2.1": LatencyDist("normal", (100.0, 5.0))}, drifts=(Drift("v2.1", 8.0),),
        stages=False,
    )  # fmt: skip
    rows = parse(run(cfg))
    hours = (micros(rows) - simulate.epoch_us(START)) / 3.6e9
    slope = np.polyfit(hours, [r["inference_ms"] for r in rows], 1)[0]
    assert hours[-1] > 1.2
    assert slope == pytest.approx(8.0, abs=0.5)


def test_slow_feature_path_is_attributable_to_cache_misses() -> None:
    cfg = SimConfig(requests=6000, seed=19, versions=TWO, slow_features=0.05)
    rows = parse(run(cfg))
    t = micros(rows)
    fetched: dict[str, int] = {}
    received: dict[str, int] = {}
    for row, at in zip(rows, t, strict=True):
        if row["event"] == "request_received":
            received[row["request_id"]] = int(at)
        elif row["event"] == "features_fetched":
            fetched[row["request_id"]] = int(at) - received[row["request_id"]]
    summary = {r["request_id"]: r for r in summaries(rows)}
    slow = [rid for rid, us in fetched.items() if us > 30_000]
    assert abs(len(slow) / 6000 - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 6000)
    assert all(summary[rid]["feature_cache"] == "miss" for rid in slow)
    fast_ms = [us / 1000 for rid, us in fetched.items() if us <= 30_000]
    assert 1.0 < np.median(fast_ms) < 4.0
    misses = [rid for rid, s in summary.items() if s["feature_cache"] == "miss"]
    assert len(slow) / len(misses) > 0.5  # misses are mostly the slow path, not all of it


def test_zero_requests_write_nothing() -> None:
    assert run(SimConfig(requests=0, seed=1)) == b""


def test_decimal_hex_and_timestamps_match_python_formatting() -> None:
    values = np.array([0, 7, 42, 999, 1000, 123456, 9_999_999])
    assert [bytes(r).decode() for r in linebytes.decimal(values, 7)] == [f"{v:07d}" for v in values]
    raw = np.frombuffer(bytes(range(256)), dtype=np.uint8).reshape(32, 8)
    assert [bytes(r).decode() for r in linebytes.hexdigits(raw)] == [bytes(r).hex() for r in raw]
    t = np.array([0, 1_764_151_200_123_456, 4_102_444_799_999_999, 951_782_400_000_001])
    expected = np.datetime_as_string(t.astype("datetime64[us]"), unit="us")
    assert [bytes(r).decode() for r in linebytes.timestamps(t)] == [f"{e}Z" for e in expected]


def test_write_sorted_orders_by_time_then_sequence_and_holds_later_lines() -> None:
    a = linebytes.LineSet(np.frombuffer(b"a1\na2\na3\n", np.uint8).reshape(3, 3).copy(),
                          np.array([5, 1, 9]), np.array([0, 1, 2]))  # fmt: skip
    b = linebytes.LineSet(np.frombuffer(b"bb1\nbb2\n", np.uint8).reshape(2, 4).copy(),
                          np.array([5, 7]), np.array([-1, 3]))  # fmt: skip
    out, held = linebytes.write_sorted([a, b], before=8)
    assert bytes(out) == b"a2\nbb1\na1\nbb2\n"
    rest, none_left = linebytes.write_sorted(held, before=None)
    assert bytes(rest) == b"a3\n" and none_left == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 253_402_300_799_999_999), min_size=1, max_size=40))
def test_timestamps_match_numpy_for_any_microsecond(values: list[int]) -> None:
    t = np.array(values, dtype=np.int64)
    expected = [f"{s}Z" for s in np.datetime_as_string(t.astype("datetime64[us]"), unit="us")]
    assert [bytes(r).decode() for r in linebytes.timestamps(t)] == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 50), st.integers(-5, 5)), min_size=0, max_size=12),
        min_size=1,
        max_size=5,
    ),
    st.one_of(st.none(), st.integers(0, 60)),
)
def test_write_sorted_is_a_stable_merge_by_time_then_sequence(sets_spec, before) -> None:
    sets, expected = [], []
    for width, spec in enumerate(sets_spec, start=2):
        lines = [f"{i % 10}".rjust(width - 1, "x") + "\n" for i in range(len(spec))]
        matrix = np.frombuffer("".join(lines).encode(), np.uint8).reshape(len(spec), width)
        ts = np.array([t for t, _ in spec], dtype=np.int64)
        seq = np.array([q for _, q in spec], dtype=np.int64)
        sets.append(linebytes.LineSet(matrix.copy(), ts, seq))
        expected += [(t, q, line) for (t, q), line in zip(spec, lines, strict=True)]
    out, held = linebytes.write_sorted(sets, before)
    rest, _ = linebytes.write_sorted(held, None)
    ordered = sorted(expected, key=lambda e: (e[0], e[1]))  # stable: ties keep set order
    cut = len(ordered) if before is None else sum(e[0] < before for e in ordered)
    assert bytes(out) == "".join(e[2] for e in ordered[:cut]).encode()
    assert sorted(bytes(rest).splitlines(keepends=True)) == sorted(e[2].encode() for e in ordered[cut:])
