"""The check-rule grammar and the [check] table: what parses, into what, and how failures read."""

from __future__ import annotations

import pytest
import tomllib
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.check_settings import check_settings
from mlobs_cli.analysis.rules import (
    RuleSyntaxError,
    parse_assert,
    parse_regression,
    parse_require,
)
from mlobs_cli.errors import ConfigError, ExitCode


@pytest.mark.parametrize(
    ("text", "kind", "metric", "field", "op", "value", "unit", "scope"),
    [
        ("p99 < 250ms", "stat", "p99", "latency_ms", "<", 250.0, "ms", None),
        ("p95(inference_ms) < 120ms", "stat", "p95", "inference_ms", "<", 120.0, "ms", None),
        ("v2.1: p99 < 300ms", "stat", "p99", "latency_ms", "<", 300.0, "ms", "v2.1"),
        ("  v2.1-rc+1 :p99<=0.3s", "stat", "p99", "latency_ms", "<=", 300.0, "ms", "v2.1-rc+1"),
        ("*: p50 < 1.5s", "stat", "p50", "latency_ms", "<", 1500.0, "ms", "*"),
        ('"model:v2": p50 < 1s', "stat", "p50", "latency_ms", "<", 1000.0, "ms", "model:v2"),
        ("p99.9 < 1m", "stat", "p99.9", "latency_ms", "<", 60_000.0, "ms", None),
        ("mean < 250 ms", "stat", "mean", "latency_ms", "<", 250.0, "ms", None),
        ("max < 1h30m", "stat", "max", "latency_ms", "<", 5_400_000.0, "ms", None),
        (
            "max(num_recommendations) <= 10",
            "stat",
            "max",
            "num_recommendations",
            "<=",
            10.0,
            "number",
            None,
        ),
        ("error_rate < 1%", "stream", "error_rate", None, "<", 0.01, "fraction", None),
        ("requests >= 500", "stream", "requests", None, ">=", 500.0, "count", None),
        ("rate > 5/s", "stream", "rate", None, ">", 5.0, "per_s", None),
        ("rate > 120/min", "stream", "rate", None, ">", 2.0, "per_s", None),
        ("skipped < 0.1%", "input", "skipped", None, "<", 0.001, "fraction", None),
        ("skipped <= 3", "input", "skipped", None, "<=", 3.0, "count", None),
        ("forecast(p99, 6h) < 250ms", "forecast", "p99", "latency_ms", "<", 250.0, "ms", None),
    ],
)
def test_assert_rules_parse(text, kind, metric, field, op, value, unit, scope):
    rule = parse_assert(text)
    assert (rule.kind, rule.metric, rule.field, rule.op, rule.scope) == (
        kind,
        metric,
        field,
        op,
        scope,
    )
    assert rule.threshold.value == pytest.approx(value)
    assert rule.threshold.unit == unit
    assert rule.severity == "error"


def test_percentile_and_forecast_details():
    assert parse_assert("p99.9 < 1s").percentile == 99.9
    fc = parse_assert("forecast(p95(inference_ms), 6h) < 80ms")
    assert (fc.kind, fc.field, fc.percentile, fc.horizon.value) == (
        "forecast",
        "inference_ms",
        95.0,
        6 * 3_600_000.0,
    )


@pytest.mark.parametrize(
    ("text", "column", "caret", "reason"),
    [
        ("p99 < 250xs", 7, "^^^^^", "unknown duration unit 'xs'"),
        ("p99 < 250", 7, "^^^", "needs a duration unit, e.g. 250ms"),
        ("p99x < 3ms", 1, "^^^^", "unknown metric 'p99x' (did you mean p99?)"),
        ("latncy_rate < 3%", 1, "^" * 11, "unknown metric"),
        ("error_rate < 1", 14, "^", "error_rate needs a percentage"),
        ("rate > 5", 8, "^", "rate needs a unit of time"),
        ("requests >= 5ms", 14, "^^", "requests is a count"),
        ("p99 250ms", 5, "^^^", "expected a comparison"),
        ("p99 = 250ms", 5, "^", "expected a comparison"),
        ("p99 < 250ms and", 13, "^^^", "unexpected 'and' after the rule"),
        (": p99 < 1ms", 1, "^", "expected a model version before ':'"),
        ("p99 & 3", 5, "^", "unexpected character '&'"),
        ("p101 < 3ms", 1, "^^^^", "percentile 101 is outside 0-100"),
        ("error_rate(latency_ms) < 1%", 11, "^", "error_rate takes no field"),
        ("forecast(error_rate, 6h) < 1%", 10, "^" * 10, "forecast applies to pNN, mean or max"),
        ("forecast(p99) < 1s", 13, "^", "expected ',' and a horizon"),
        ("v2: skipped < 1%", 1, "^^", "property of the whole input"),
        ("p99 < ", 7, "^", "expected a number, found the end of the rule"),
        ("p95(user_id) < 3ms", 17, "^^", "compared as a plain number"),
    ],
)
def test_bad_rules_name_the_rule_the_column_and_point_at_it(text, column, caret, reason):
    with pytest.raises(RuleSyntaxError) as info:
        parse_assert(text)
    err = info.value
    assert err.exit_code == ExitCode.USAGE
    assert f"--assert {text!r} does not parse at column {column}: " in str(err)
    assert reason in str(err)
    source, marker = err.caret_lines()
    assert source == "  " + text
    assert marker == "  " + " " * (column - 1) + caret


def test_require_rules():
    r = parse_require("model_version")
    assert (r.kind, r.field, r.op, r.threshold.value) == ("require", "model_version", ">=", 1.0)
    r = parse_require("request_id=99.5%")
    assert (r.field, r.threshold.value) == ("request_id", pytest.approx(0.995))
    assert parse_require("http.route >= 50%").field == "http.route"
    for bad, reason in [
        ("model_version=99.5", "expected a percentage"),
        ("model_version=101%", "between 0% and 100%"),
        ("model_version < 5%", "expected '=' and a percentage"),
        ("99%", "expected a field name"),
    ]:
        with pytest.raises(RuleSyntaxError, match=reason):
            parse_require(bad)


def test_regression_limits():
    r = parse_regression("p95:10%")
    assert (r.kind, r.metric, r.percentile, r.field, r.threshold.value) == (
        "regression",
        "p95",
        95.0,
        "latency_ms",
        pytest.approx(0.10),
    )
    r = parse_regression("mean(inference_ms): 2.5%")
    assert (r.metric, r.field, r.threshold.value) == ("mean", "inference_ms", pytest.approx(0.025))
    for bad, reason in [
        ("p95", "expected METRIC:PERCENT"),
        ("p95:10ms", "expected a percentage"),
        ("error_rate:10%", "applies to pNN, mean or max"),
    ]:
        with pytest.raises(RuleSyntaxError, match=reason):
            parse_regression(bad)


EXAMPLE = """
[check]
allow_missing = true
baseline = "v2.0"

[[check.rules]]
assert = "p99 < 250ms"

[[check.rules]]
assert = "v2.1: error_rate < 1%"
severity = "warn"

[[check.rules]]
require = "model_version=99.5%"

[[check.rules]]
max_regression = "p95:10%"
"""


def test_check_table_gives_rules_in_order_with_severity_and_origin():
    plan = check_settings(tomllib.loads(EXAMPLE)["check"])
    assert plan.allow_missing is True and plan.baseline == "v2.0" and plan.baseline_file is None
    assert [(r.kind, r.severity, r.origin) for r in plan.rules] == [
        ("stat", "error", "check.rules[1].assert"),
        ("stream", "warn", "check.rules[2].assert"),
        ("require", "error", "check.rules[3].require"),
        ("regression", "error", "check.rules[4].max_regression"),
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[check]\nallow_mising = true",
            "unknown key 'allow_mising' in [check] (did you mean 'allow_missing'?)",
        ),
        ("[check]\nallow_missing = 'yes'", "check.allow_missing must be true or false"),
        (
            "[[check.rules]]\nasert = 'p99 < 1s'",
            "unknown key 'asert' in check.rules[1] (did you mean 'assert'?)",
        ),
        (
            "[[check.rules]]\nassert = 'p99 < 1s'\nseverity = 'fatal'",
            "check.rules[1].severity is 'fatal'",
        ),
        ("[[check.rules]]\nassert = 250", "check.rules[1].assert must be a string"),
        ("[[check.rules]]\nseverity = 'warn'", "check.rules[1] needs exactly one of assert"),
        ("[[check.rules]]\nassert = 'p99<1s'\nrequire = 'request_id'", "(it has assert, require)"),
        ("[check]\nrules = 'p99 < 1s'", "check.rules must be an array of tables"),
    ],
)
def test_check_table_is_validated_strictly(toml, message):
    with pytest.raises(ConfigError) as info:
        check_settings(tomllib.loads(toml)["check"])
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_rule_in_file_that_does_not_parse_names_its_place():
    with pytest.raises(RuleSyntaxError) as info:
        check_settings(tomllib.loads("[[check.rules]]\nassert = 'p99 < 250xs'")["check"])
    assert str(info.value).startswith("check.rules[1].assert 'p99 < 250xs' does not parse at column 7")


RULE_ALPHABET = "pmaxenrt_ligquds0123456789.:%/()<>=,* v\t&\"'"


@given(st.text(alphabet=RULE_ALPHABET, max_size=40) | st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_any_text_parses_or_fails_with_a_caret_inside_the_rule(text):
    for parse in (parse_assert, parse_require, parse_regression):
        try:
            rule = parse(text)
        except RuleSyntaxError as err:
            assert 0 <= err.pos <= len(text)
            assert err.length >= 1
            src, caret = err.caret_lines()
            assert caret.strip() == "^" * err.length
        else:
            assert rule.threshold is not None
            assert rule.text == text.strip()


@given(
    q=st.sampled_from(["50", "90", "95", "99", "99.9"]),
    value=st.decimals(min_value=0, max_value=10_000, places=3),
    unit=st.sampled_from([("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)]),
    op=st.sampled_from(["<", "<=", ">", ">="]),
)
def test_latency_thresholds_convert_to_ms(q, value, unit, op):
    rule = parse_assert(f"p{q} {op} {value}{unit[0]}")
    assert rule.op == op and rule.percentile == float(q)
    assert rule.threshold.value == pytest.approx(float(value) * unit[1], rel=1e-12)
