"""Slow-set analysis: ranks, thresholds, stage comparison and attribute lift find planted causes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.slow import (
    attribute_lift,
    rank_within_version,
    report_dict,
    slow_mask,
    slow_report,
    stage_comparison,
)
from mlobs_cli.analysis.timeline import percentile_rank, request_key, stage_durations
from tests._frames import at, empty_spans, milestones_frame, requests_frame


def simulated(n: int = 1500, seed: int = 7, slow_host: str | None = "h3", slow_version: str = ""):
    """Milestone logs of `n` requests; 2% of requests on `slow_host` wait ~60 ms for features, and
    every request of `slow_version` spends 3x longer in inference."""
    rng = np.random.default_rng(seed)
    versions = rng.choice(["v2.1", "v2.2"], n)
    hosts = rng.choice(["h1", "h2", "h3", "h4"], n)
    fetch = rng.gamma(4.0, 0.5, n)
    planted = (hosts == slow_host) & (rng.random(n) < 0.08) if slow_host else np.zeros(n, bool)
    fetch[planted] += rng.uniform(50, 80, planted.sum())
    infer = rng.gamma(9.0, 1.2, n) * np.where(versions == slow_version, 3.0, 1.0)
    resp = rng.gamma(2.0, 0.25, n)
    reqs, ms = [], []
    for i in range(n):
        rid, t0 = f"req-{i:05d}", i * 50.0
        marks = {"request_received": t0, "features_fetched": t0 + fetch[i],
                 "inference_done": t0 + fetch[i] + infer[i],
                 "response_sent": t0 + fetch[i] + infer[i] + resp[i]}  # fmt: skip
        ms += [{"ts": at(t), "request_id": rid, "event": e, "model_version": versions[i]}
               for e, t in marks.items()]  # fmt: skip
        reqs.append({"ts": at(marks["response_sent"]), "request_id": rid, "trace_id": None,
                     "model_version": versions[i], "status": 200, "host": hosts[i],
                     "num_recommendations": int(rng.choice([5, 10, 20])),
                     "user_id": f"u{i}",
                     "latency_ms": (marks["response_sent"] - t0)})  # fmt: skip
    req_frame = requests_frame(reqs, extra=("host", "num_recommendations", "user_id"))
    # latency exactly as the milestones say (microsecond-rounded, like the logs)
    st_ = stage_durations(milestones_frame(ms), empty_spans(), None)
    total = st_.groupby("request_id")["duration_ms"].sum()
    req_frame["latency_ms"] = req_frame["request_id"].map(total).astype("float64")
    return req_frame, st_, planted


def test_rank_within_version_matches_percentile_rank() -> None:
    reqs, _, _ = simulated(300, seed=1, slow_host=None)
    ranks = rank_within_version(reqs)
    for i in (0, 17, 150, 299):
        v = reqs["model_version"].iloc[i]
        same = reqs.loc[reqs["model_version"] == v, "latency_ms"].to_numpy()
        assert ranks.iloc[i] == pytest.approx(percentile_rank(same, reqs["latency_ms"].iloc[i]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.1, 5000, allow_nan=False), min_size=1, max_size=60),
       st.sampled_from([50.0, 90.0, 99.0, 99.9]))  # fmt: skip
def test_above_percentile_uses_numpy_linear_threshold(lat: list[float], q: float) -> None:
    reqs = requests_frame([{"ts": at(i), "request_id": f"r{i}", "latency_ms": v}
                           for i, v in enumerate(lat)])  # fmt: skip
    mask, rule, threshold = slow_mask(reqs, above=q)
    assert threshold == np.percentile(np.array(lat), q)
    assert mask.tolist() == [v > threshold for v in lat]
    assert rule == f"above p{q:g}"


def test_over_and_by_version_thresholds() -> None:
    reqs, _, _ = simulated(400, seed=2, slow_host=None)
    mask, rule, thr = slow_mask(reqs, over_ms=30)
    assert rule == "over 30 ms" and thr == 30.0
    assert mask.sum() == (reqs["latency_ms"] > 30).sum()
    mask, _, thr = slow_mask(reqs, above=90, by_version=True)
    for v, limit in thr.items():
        lat = reqs.loc[reqs["model_version"] == v, "latency_ms"].to_numpy()
        assert limit == pytest.approx(np.percentile(lat, 90))
        assert mask[reqs["model_version"] == v].sum() == (lat > limit).sum()


def test_planted_slow_feature_store_host_is_found() -> None:
    reqs, stages, planted = simulated()
    report = slow_report(reqs, stages, over_ms=45)
    assert report.slow_requests == planted.sum() > 10  # the slow set is exactly the planted one
    top_stage = report.stages.iloc[0]
    assert top_stage["stage"] == "feature fetch"
    assert top_stage["excess_share"] > 0.9
    assert report.stages["excess_share"].sum() == pytest.approx(1.0)  # stages cover the requests
    top_attr = report.attributes.iloc[0]
    assert (top_attr["field"], top_attr["value"]) == ("host", "h3")
    assert top_attr["slow_count"] == report.slow_requests
    assert top_attr["lift"] == pytest.approx(len(reqs) / (reqs["host"] == "h3").sum())
    assert "user_id" not in set(report.attributes["field"])  # high cardinality is not compared
    # rows: slowest first, each with its dominant stage
    assert report.rows["latency_ms"].is_monotonic_decreasing
    assert set(report.rows["dominant_stage"]) == {"feature fetch"}


def test_planted_slow_version_is_found() -> None:
    reqs, stages, _ = simulated(1200, seed=11, slow_host=None, slow_version="v2.2")
    report = slow_report(reqs, stages, above=90)
    attrs = report.attributes.set_index(["field", "value"])
    assert report.attributes.iloc[0][["field", "value"]].tolist() == ["model_version", "v2.2"]
    assert attrs.loc[("model_version", "v2.2"), "slow_pct"] > 0.95
    assert report.stages.iloc[0]["stage"] == "inference"


def test_by_version_lists_top_n_of_each_version() -> None:
    reqs, stages, _ = simulated(300, seed=5)
    report = slow_report(reqs, stages, top=3, by_version=True)
    assert report.rows.groupby("model_version", observed=True).size().tolist() == [3, 3]
    for v, grp in report.rows.groupby("model_version", observed=True):
        best = reqs[reqs["model_version"] == v].nlargest(3, "latency_ms")["latency_ms"]
        assert grp["latency_ms"].tolist() == best.tolist()


def test_stage_comparison_medians_and_counts() -> None:
    reqs, stages, _ = simulated(200, seed=9)
    keys = request_key(reqs)
    slow = reqs["latency_ms"] > reqs["latency_ms"].median()
    table = stage_comparison(stages, keys, slow, reqs["latency_ms"]).set_index("stage")
    fetch = stages[stages["stage"] == "feature fetch"].set_index("request_id")["self_ms"]
    slow_ids = set(keys[slow])
    expect = np.median([v for k, v in fetch.items() if k in slow_ids])
    assert table.loc["feature fetch", "slow_median_ms"] == pytest.approx(expect)
    assert table.loc["feature fetch", "slow_requests"] == len(slow_ids)


def test_attribute_lift_counts_missing_values_and_needs_two_values() -> None:
    reqs = requests_frame(
        [{"ts": at(i), "request_id": f"r{i}", "latency_ms": 100.0 if i < 4 else 1.0,
          "zone": None if i < 3 else "a", "const": "same"} for i in range(40)],
        extra=("zone", "const"),
    )  # fmt: skip
    lift = attribute_lift(reqs, reqs["latency_ms"] > 50)
    assert "const" not in set(lift["field"])
    row = lift[lift["field"] == "zone"].iloc[0]
    assert row["value"] is None and row["slow_count"] == 3 and row["rest_count"] == 0
    assert row["lift"] == pytest.approx(1.0 / (4 / 40))


def test_no_slow_request_gives_empty_comparisons_and_a_note() -> None:
    reqs, stages, _ = simulated(50, seed=3, slow_host=None)
    report = slow_report(reqs, stages, over_ms=10_000)
    assert report.rows.empty and report.stages.empty and report.attributes.empty
    assert report.notes == ["no request is over 10000 ms: nothing to compare"]
    doc = report_dict(report, ["app.log"])
    assert doc["rows"] == [] and doc["slow_set"]["slow_requests"] == 0


def test_report_rows_carry_a_paste_ready_explain_command() -> None:
    reqs, stages, _ = simulated(100, seed=4)
    doc = report_dict(slow_report(reqs, stages, top=2), ["logs/app 1.log"])
    first = doc["rows"][0]
    assert first["explain"] == f"mlobs explain {first['request_id']} 'logs/app 1.log'"
    assert set(doc) >= {"rows", "stages", "attributes"}
