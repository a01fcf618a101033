"""Evaluation of check rules on request frames: values, verdicts, groups, NO DATA and regressions.

Expected numbers are computed independently with numpy on the same synthetic data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlobs_cli.analysis.checks import evaluate
from mlobs_cli.analysis.rules import parse_assert, parse_regression, parse_require
from tests.frames import requests_frame


@pytest.fixture(scope="module")
def two_versions() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    v20 = rng.gamma(4.0, 25.0, 600)
    v21 = rng.gamma(4.0, 25.0, 400) * 1.3
    status = [200] * 1000
    for i in (5, 50, 605, 606, 650, 700, 900, 999):  # 2 errors on v2.0, 6 on v2.1
        status[i] = 503
    start = pd.Timestamp("2026-11-26T10:00:00Z")
    ts = [start + pd.Timedelta(milliseconds=250 * i) for i in range(1000)]
    inference = np.concatenate([v20 * 0.6, np.full(400, np.nan)])
    return requests_frame(
        np.concatenate([v20, v21]),
        versions=["v2.0"] * 600 + ["v2.1"] * 400,
        ts=ts,
        status=status,
        inference_ms=inference,
    )


def _by_group(report):
    return {r.group: r for r in report.results}


def test_percentile_rule_is_per_version_and_numpy_exact(two_versions):
    report = evaluate([parse_assert("p99 < 300ms")], two_versions)
    got = _by_group(report)
    assert list(got) == ["v2.0", "v2.1"]
    for version in ("v2.0", "v2.1"):
        values = two_versions.loc[two_versions.model_version == version, "latency_ms"].to_numpy()
        expected = np.percentile(values, 99)
        assert got[version].observed == expected  # bit for bit
        assert got[version].model_version == version
        assert got[version].samples == len(values)
        assert got[version].outcome == ("pass" if expected < 300 else "fail")
    assert got["v2.0"].outcome == "pass" and got["v2.1"].outcome == "fail"
    assert report.failed


def test_mean_max_and_field_percentiles(two_versions):
    rules = [
        parse_assert("mean < 1s"),
        parse_assert("max < 1s"),
        parse_assert("p95(inference_ms) < 1s"),
    ]
    res = evaluate(rules, two_versions).results
    v20 = two_versions[two_versions.model_version == "v2.0"]
    assert res[0].observed == pytest.approx(v20.latency_ms.mean(), rel=1e-12)
    assert res[2].observed == v20.latency_ms.max()
    assert res[4].observed == np.percentile(v20.inference_ms.to_numpy(), 95)
    # v2.1 never logged inference_ms: no data, stated plainly
    assert (res[5].group, res[5].outcome) == ("v2.1", "no_data")
    assert res[5].observed_text == "inference_ms not logged for this version"


def test_error_rate_requests_and_rate(two_versions):
    rules = [
        parse_assert("error_rate < 1%"),
        parse_assert("requests >= 500"),
        parse_assert("rate > 3.5/s"),
    ]
    got = [(r.rule.metric, r.group, r.observed, r.outcome) for r in evaluate(rules, two_versions).results]
    span_20 = 599 * 0.25
    span_21 = 399 * 0.25
    assert got == [
        ("error_rate", "v2.0", 2 / 600, "pass"),
        ("error_rate", "v2.1", 6 / 400, "fail"),
        ("requests", "v2.0", 600.0, "pass"),
        ("requests", "v2.1", 400.0, "fail"),
        ("rate", "v2.0", pytest.approx(600 / span_20), "pass"),
        ("rate", "v2.1", pytest.approx(400 / span_21), "pass"),
    ]


def test_scoped_and_pooled_rules(two_versions):
    res = evaluate(
        [
            parse_assert("v2.1: p50 < 1s"),
            parse_assert("*: requests >= 1000"),
            parse_assert("v9: p50 < 1s"),
        ],
        two_versions,
    ).results
    assert [(r.group, r.model_version, r.outcome) for r in res] == [
        ("v2.1", "v2.1", "pass"),
        ("all versions", None, "pass"),
        ("v9", "v9", "no_data"),
    ]
    assert res[1].observed == 1000
    assert res[2].observed_text == "version not in the logs (seen: v2.0, v2.1)"
    assert res[2].failed  # no data fails by default


def test_allow_missing_makes_no_data_pass_but_keeps_it_visible(two_versions):
    report = evaluate([parse_assert("v9: p50 < 1s")], two_versions, allow_missing=True)
    (r,) = report.results
    assert (r.status, r.failed, report.failed) == ("NO DATA", False, False)


def test_warn_severity_never_fails_the_run(two_versions):
    report = evaluate([parse_assert("p99 < 1ms", severity="warn")], two_versions)
    assert {r.status for r in report.results} == {"WARN"}
    assert not report.failed


def test_skipped_as_share_of_lines_and_as_count(two_versions):
    rules = [parse_assert("skipped < 0.1%"), parse_assert("skipped <= 3")]
    res = evaluate(rules, two_versions, lines=2000, skipped=3).results
    assert [(r.group, r.observed, r.outcome) for r in res] == [
        ("all lines", 3 / 2000, "fail"),
        ("all lines", 3.0, "pass"),
    ]
    assert res[0].observed_text == "0.15% (3 of 2,000 lines)"
    assert evaluate(rules[:1], two_versions, lines=0).results[0].outcome == "no_data"


def test_require_coverage(two_versions):
    frame = two_versions.copy()
    frame["model_version"] = frame["model_version"].cat.add_categories(["unknown"])
    frame.loc[:9, "model_version"] = "unknown"
    frame.loc[:4, "request_id"] = None
    rules = [
        parse_require("model_version"),
        parse_require("model_version=99%"),
        parse_require("request_id=99.5%"),
        parse_require("user_id"),
    ]
    res = evaluate(rules, frame).results
    assert [(r.observed, r.outcome) for r in res] == [
        (0.99, "fail"),
        (0.99, "pass"),
        (0.995, "pass"),
        (0.0, "fail"),
    ]
    assert res[0].observed_text == "99% (990 of 1,000 requests)"
    assert res[3].observed_text.endswith("user_id never appears")


def test_empty_requests_give_no_data_everywhere():
    empty = requests_frame([])
    rules = [parse_assert("p99 < 1s"), parse_assert("error_rate < 1%"), parse_require("request_id")]
    res = evaluate(rules, empty).results
    assert [r.outcome for r in res] == ["no_data"] * 3
    assert res[0].group == "all versions"


def test_forecast_with_too_little_history_is_no_data(two_versions):
    res = evaluate([parse_assert("forecast(p99, 6h) < 250ms")], two_versions).results
    assert {r.outcome for r in res} == {"no_data"}
    assert all(r.observed_text.startswith("no forecast: only") for r in res)


def test_regression_against_a_version_in_the_same_logs(two_versions):
    rules = [parse_regression("p95:10%"), parse_regression("p50:40%")]
    res = evaluate(rules, two_versions, baseline_version="v2.0").results
    lat = two_versions.groupby("model_version", observed=True)["latency_ms"]
    p95 = {k: np.percentile(v.to_numpy(), 95) for k, v in lat}
    p50 = {k: np.percentile(v.to_numpy(), 50) for k, v in lat}
    assert [r.group for r in res] == ["v2.1", "v2.1"]
    assert res[0].observed == pytest.approx(p95["v2.1"] / p95["v2.0"] - 1)
    assert res[0].outcome == "fail"
    assert res[0].baseline == {"source": "version", "model_version": "v2.0", "value": p95["v2.0"]}
    assert res[1].observed == pytest.approx(p50["v2.1"] / p50["v2.0"] - 1)
    assert res[1].outcome == "pass"
    missing = evaluate(rules[:1], two_versions, baseline_version="v1.9").results
    assert missing[0].outcome == "no_data"
    assert "baseline version v1.9 is not in the logs" in missing[0].observed_text


def test_regression_against_a_baseline_file(two_versions):
    baseline = two_versions[two_versions.model_version == "v2.0"].copy()
    baseline["latency_ms"] = baseline["latency_ms"] * 0.5  # main was twice as fast on v2.0
    baseline["model_version"] = baseline["model_version"].cat.remove_unused_categories()
    res = evaluate([parse_regression("p95:10%")], two_versions, baseline_requests=baseline).results
    # v2.0 is in both: compared version to version; v2.1 is new: compared with the file pooled
    assert [(r.group, r.baseline["model_version"], r.outcome) for r in res] == [
        ("v2.0", "v2.0", "fail"),
        ("v2.1", None, "fail"),
    ]
    assert res[0].observed == pytest.approx(1.0)
    assert "on v2.0 in the baseline file" in res[0].observed_text
    assert "on all versions in the baseline file" in res[1].observed_text


def test_low_sample_percentile_is_flagged():
    frame = requests_frame([10.0, 20.0, 30.0])
    (r,) = evaluate([parse_assert("p99 < 1s")], frame).results
    assert r.observed == np.percentile([10.0, 20.0, 30.0], 99)
    assert r.observed_text == "29.8 ms (only 3 samples: near the max)"
