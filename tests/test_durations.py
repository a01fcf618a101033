"""Durations, latencies and time bounds as typed on the command line."""

from __future__ import annotations

import pandas as pd
import pytest

from mlobs_cli.durations import parse_duration, parse_latency_ms, parse_time_bound
from mlobs_cli.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        ("1min", 60.0),
        ("30S", 30.0),
        ("5T", 300.0),
        ("1H", 3600.0),
        ("1h30m", 5400.0),
        ("1m 30s", 90.0),
        (" 2 minutes ", 120.0),
        ("120us", 0.00012),
        ("1w", 604800.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration_accepts_common_spellings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10", "no unit"),
        ("", "empty"),
        ("   ", "empty"),
        ("5M", "ambiguous"),
        ("5 parsecs", "unknown duration unit"),
        ("-5m", "negative"),
        ("0s", "zero"),
        ("abc", "invalid"),
        ("5m!", "invalid"),
        ("1e400s", "too large"),
    ],
)
def test_parse_duration_rejects_bad_input_clearly(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert fragment in str(info.value)


def test_parse_duration_zero_allowed_on_request() -> None:
    assert parse_duration("0s", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250.0),
        ("0.3s", 300.0),
        ("300", 300.0),
        ("120us", 0.12),
        ("1m", 60000.0),
        ("12.5", 12.5),
        ("2s", 2000.0),
        ("0", 0.0),
    ],
)
def test_parse_latency_ms(text: str, ms: float) -> None:
    assert parse_latency_ms(text) == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize("text", ["", "fast", "-3ms", "3 lightyears", "1s 5"])
def test_parse_latency_ms_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_latency_ms(text)


NEWEST = pd.Timestamp("2026-11-26T12:00:00Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", "2026-11-26T11:45:00Z"),
        ("2h", "2026-11-26T10:00:00Z"),
        ("90s", "2026-11-26T11:58:30Z"),
        ("2026-11-26T10:40:00Z", "2026-11-26T10:40:00Z"),
        ("2026-11-26T10:40:00", "2026-11-26T10:40:00Z"),  # no zone: UTC
        ("2026-11-26 10:40:00", "2026-11-26T10:40:00Z"),
        ("2026-11-26T12:40:00+02:00", "2026-11-26T10:40:00Z"),
        ("2026-11-26", "2026-11-26T00:00:00Z"),
        ("2026-11-26T10:40:00.123456Z", "2026-11-26T10:40:00.123456Z"),
    ],
)
def test_parse_time_bound(text: str, expected: str) -> None:
    got = parse_time_bound(text, NEWEST)
    assert str(got.tz) == "UTC"
    assert got == pd.Timestamp(expected)


def test_parse_time_bound_relative_without_events_is_nat() -> None:
    assert parse_time_bound("15m", pd.NaT) is pd.NaT
    assert parse_time_bound("15m", None) is pd.NaT


def test_parse_time_bound_naive_newest_is_utc() -> None:
    got = parse_time_bound("1h", pd.Timestamp("2026-11-26T12:00:00"))
    assert got == pd.Timestamp("2026-11-26T11:00:00Z")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("15", "no unit"),
        ("yesterday", "invalid time bound"),
        ("2026-13-45T00:00", "invalid time"),
        ("", "empty"),
        ("-5m", "invalid time bound"),
    ],
)
def test_parse_time_bound_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_time_bound(text, NEWEST)
    assert fragment in str(info.value)
