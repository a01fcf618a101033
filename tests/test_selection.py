"""--since/--until bounds (half-open, relative to the newest request) and --where together."""

from __future__ import annotations

import pandas as pd

from mlobs_cli.analysis.selection import select_requests
from mlobs_cli.analysis.where import parse_where
from tests.frames import requests_frame

T0 = pd.Timestamp("2026-11-26T10:00:00Z")


def frame():
    ts = [T0, pd.NaT, T0 + pd.Timedelta("10min"), T0 + pd.Timedelta("20min")]
    return requests_frame([1, 2, 3, 4], ts=ts, status=[200, 500, 500, 200])


def test_no_filters_return_the_frame_itself() -> None:
    f = frame()
    assert select_requests(f) is f


def test_relative_and_absolute_bounds() -> None:
    f = frame()
    assert select_requests(f, since="10m")["latency_ms"].tolist() == [3.0, 4.0]
    assert select_requests(f, until="10m")["latency_ms"].tolist() == [1.0]  # half-open
    assert select_requests(f, since="2026-11-26T10:05:00", until="2026-11-26T10:20:00")[
        "latency_ms"
    ].tolist() == [3.0]


def test_bounds_and_where_combine_and_keep_the_index() -> None:
    f = frame()
    got = select_requests(f, since="30m", where=parse_where("status >= 500"))
    assert got.index.tolist() == [2]


def test_relative_bound_without_timestamps_selects_nothing() -> None:
    f = requests_frame([1, 2], ts=[pd.NaT, pd.NaT])
    assert select_requests(f, since="1h").empty
