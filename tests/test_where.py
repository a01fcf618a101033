"""`--where`: tokenizer, parser (caret errors) and vectorized masks on request frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.where import parse_where, tokenize
from mlobs_cli.errors import UsageError
from tests.frames import requests_frame


@pytest.fixture
def frame() -> pd.DataFrame:
    return requests_frame(
        [10.0, 300.0, 50.0, 1000.0, 0.5],
        versions=["v2.0", "v2.1", "v2.1", "v2.0", "unknown"],
        status=[200, 500, None, 200, 404],
        error=[False, True, True, False, False],
        inference_ms=[5.0, np.nan, 20.0, 900.0, 0.1],
        extra={
            "user_id": ["a", "b", None, 7, "c"],
            "http.route": ["/predict", "/health", "/predict", None, "/predict/v2"],
            "num_recommendations": [1, 5, 3, 10, 0],
        },
    )


def rows(frame: pd.DataFrame, text: str) -> list[int]:
    mask = parse_where(text).mask(frame)
    assert mask.dtype == bool and mask.index.equals(frame.index)
    return [i for i, hit in enumerate(mask) if hit]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status >= 500", [1]),
        ("status == 200", [0, 3]),
        ("status != 200", [1, 4]),  # a missing status matches no comparison
        ("status == null", [2]),
        ("status is null", [2]),
        ("status is not null", [0, 1, 3, 4]),
        ("500 <= status", [1]),
        ('model_version == "v2.1" and num_recommendations > 3', [1]),
        ("model_version == 'v2.1' or model_version = \"unknown\"", [1, 2, 4]),
        ('user_id in ("a","b")', [0, 1]),
        ("user_id in (7)", [3]),
        ('user_id in ("a", null)', [0, 2]),
        ('user_id not in ("a", "b")', [3, 4]),
        ('model_version not in ("v2.0",)', [1, 2, 4]),
        ("latency_ms > 250ms", [1, 3]),
        ("latency_ms > 0.25s", [1, 3]),
        ("latency_ms <= 500us", [4]),
        ("latency_ms > -1", [0, 1, 2, 3, 4]),
        ('http.route ~ "^/predict$"', [0, 2]),
        ('http.route !~ "^/predict"', [1]),
        ('http.route contains "v2"', [4]),
        ('http.route not contains "predict"', [1]),
        ("error", [1, 2]),
        ("not error", [0, 3, 4]),
        ("!error && status < 300", [0, 3]),
        ("error || latency_ms < 1", [1, 2, 4]),
        ("error == true", [1, 2]),
        ("not (status >= 500 or status == null)", [0, 3, 4]),
        ("inference_ms < latency_ms", [0, 2, 3, 4]),  # a missing side never matches
        ("inference_ms == null", [1]),
        ('ts >= "2026-11-26T10:00:03"', [3, 4]),
        ('ts < "2026-11-26T12:00:02+02:00"', [0, 1]),
        ('model_version > "v2.0"', [1, 2]),
        ('`http.route` == "/health"', [1]),
        ("NOT error AND status == 200", [0, 3]),
        ('num_recommendations in (0, 10) and user_id != "c"', [3]),
        ('status == "500"', [1]),
    ],
)
def test_masks(frame: pd.DataFrame, text: str, expected: list[int]) -> None:
    assert rows(frame, text) == expected


def test_precedence_and_binds_tighter_than_or(frame: pd.DataFrame) -> None:
    assert rows(frame, "status == 404 or error and latency_ms > 100") == [1, 4]
    assert rows(frame, "(status == 404 or error) and latency_ms > 100") == [1]


def _error(text: str, frame: pd.DataFrame | None = None) -> str:
    with pytest.raises(UsageError) as info:
        where = parse_where(text)
        if frame is not None:
            where.mask(frame)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message", "caret_col"),
    [
        ("status >= ", "expected a field or a value, found the end", 10),
        ("(status == 1", "expected ')', found the end", 12),
        ("status === 5", "expected a field or a value, found '='", 9),
        ("latency_ms > 5 foo", "expected 'and', 'or' or the end of the expression", 15),
        ("user_id in (a)", "a list holds values, not the field 'a'", 12),
        ("user_id in 'a'", "expected '(' to start a list", 11),
        ("a == 'abc", "unterminated string", 5),
        ("status # 5", "unexpected character '#'", 7),
        ('route ~ "("', "invalid regular expression", 8),
        ("route ~ abc", "expected a quoted pattern", 8),
        ("", "empty expression", 0),
        ("latency_ms > 5parsecs", "unknown unit in '5parsecs'", 13),
        ("status is 5", "expected null after 'is'", 10),
        ("x not 5", "expected 'in' or 'contains' after 'not'", 6),
        ("5 6", "expected a comparison operator", 2),
    ],
)
def test_syntax_errors_show_a_caret(text: str, message: str, caret_col: int) -> None:
    lines = _error(text).split("\n")
    assert lines[0].startswith(f"invalid --where expression: {message}")
    assert lines[1] == f"  {text}"
    assert lines[2] == "  " + " " * caret_col + "^"


def test_unknown_field_errors_name_the_known_fields(frame: pd.DataFrame) -> None:
    message = _error("stauts >= 500", frame)
    assert "unknown field 'stauts'" in message
    assert "did you mean status?" in message and "known fields: ts, request_id" in message
    assert message.split("\n")[2] == "  ^"
    message = _error("model_version == v2.1", frame)
    assert "unknown field 'v2.1'" in message and 'quote it: "v2.1"' in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('status == "abc"', "status holds numbers; 'abc' is not one"),
        ("latency_ms", "field 'latency_ms' is not true/false"),
        ("ts > 5", "ts is a time"),
        ('ts > "yesterday"', "'yesterday' is not an ISO-8601 time"),
        ("status > null", "null only compares with == or !="),
        ("error == 5", "error is true/false"),
        ("ts < latency_ms", "cannot compare a time field with a number field"),
    ],
)
def test_type_errors(frame: pd.DataFrame, text: str, message: str) -> None:
    assert message in _error(text, frame)


def test_control_characters_in_an_expression_are_shown_inert_with_the_caret_aligned() -> None:
    lines = _error('x == "\x1b[31m" and ').split("\n")
    assert "\x1b" not in "".join(lines)
    assert lines[1].index("and") + 4 == lines[2].index("^")


def test_tokens() -> None:
    kinds = [(t.kind, t.value) for t in tokenize('a.b>=-2.5e1 and `x y` in ("q\\"", 1, true)')]
    assert kinds == [
        ("ident", "a.b"), ("op", ">="), ("number", -25.0), ("kw", "and"), ("ident", "x y"),
        ("kw", "in"), ("op", "("), ("string", 'q"'), ("op", ","), ("number", 1), ("op", ","),
        ("kw", "true"), ("op", ")"), ("end", None),
    ]  # fmt: skip


def test_fields_are_collected() -> None:
    where = parse_where('a > 1 and (not b or c ~ "x") and 5 < a and d in (1)')
    assert where.fields == ["a", "b", "c", "d"]


def test_literal_only_expressions(frame: pd.DataFrame) -> None:
    assert rows(frame, "1 == 1") == [0, 1, 2, 3, 4]
    assert rows(frame, "1 == 2") == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        parse_where(text)
    except UsageError:
        pass


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=1, max_size=30),
    threshold=st.integers(-6, 6),
)
def test_numeric_comparisons_agree_with_pandas(values, threshold) -> None:
    col = pd.array(values, dtype="Int64")
    f = requests_frame([1.0] * len(values), status=col)
    present = ~pd.isna(col)
    for op, fn in ((">", np.greater), ("<=", np.less_equal), ("!=", np.not_equal)):
        got = parse_where(f"status {op} {threshold}").mask(f).to_numpy()
        filled = col.fillna(0).to_numpy(dtype=np.int64)
        expected = fn(filled, threshold) & present
        np.testing.assert_array_equal(got, expected)
    got = parse_where(f"not (status > {threshold})").mask(f).to_numpy()
    np.testing.assert_array_equal(got, ~(col.fillna(-99).to_numpy(dtype=np.int64) > threshold) | ~present)
