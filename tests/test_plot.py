"""Terminal plots: braille canvas geometry, width-aware charts and histograms, inert labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from mlobs_cli.analysis.latency import latency_table
from mlobs_cli.render.latency_plot import plot_latency
from mlobs_cli.render.plot import BrailleCanvas, histograms, line_chart
from tests.frames import requests_frame


def render(renderable, width: int = 100) -> str:
    console = Console(width=width, color_system=None, file=None, record=True)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def test_braille_dots_map_to_the_unicode_bits() -> None:
    canvas = BrailleCanvas(2, 1)
    canvas.dot(0, 0, "red")  # top-left dot of the first cell: U+2801
    canvas.dot(3, 3, "red")  # bottom-right dot of the second cell: U+2880
    assert canvas.row_text(0).plain == "\u2801\u2880"
    canvas.dot(99, 99, "red")  # outside: ignored
    assert canvas.row_text(0).plain == "\u2801\u2880"


def test_line_connects_points() -> None:
    canvas = BrailleCanvas(4, 1)
    canvas.line(0, 3, 7, 3, "red")  # a horizontal line on the bottom dot row
    assert canvas.row_text(0).plain == "\u28c0" * 4


def test_line_chart_fits_the_width_and_labels_the_axis() -> None:
    series = {"v1": [(0.0, 10.0), (1.0, 20.0), (2.0, 15.0)], "v2": [(0.0, 30.0), (2.0, 40.0)]}
    for width in (40, 80, 120):
        text = line_chart(series, width=width, height=6, title="p99", x_labels=("10:00", "10:02"))
        lines = text.plain.splitlines()
        assert lines[0] == "p99"
        assert all(len(line) <= width for line in lines)
        assert lines[1].startswith("41.5 ms ┤") and lines[6].startswith(" 8.5 ms ┤")  # 10..40, padded 5%
        assert "10:00" in lines[7] and lines[7].rstrip().endswith("10:02")
        assert "━━ v1" in lines[8] and "━━ v2" in lines[8]


def test_line_chart_with_nothing() -> None:
    assert "(nothing to plot)" in line_chart({"v1": [(0.0, float("nan"))]}, width=60).plain


def test_histograms_share_bins_and_mark_percentiles() -> None:
    edges = np.geomspace(1, 1000, 31)
    counts = {
        "v1": np.r_[np.zeros(10), np.ones(10) * 5, np.zeros(10)].astype(int),
        "v\x1b2": np.ones(30, int),
    }
    text = histograms(edges, counts, width=60, height=3, markers={"v1": {"p50": 30.0}}).plain
    assert "\x1b" not in text and "v\\x1b2" in text
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert "▲p50" in text and "(log scale)" in text and "1.0 ms" in text and "1,000 ms" in text
    v1_bar = next(line for line in lines if line.strip().startswith("v1 │"))
    bars = v1_bar.split("│", 1)[1]
    assert bars[:10].strip() == "" and set(bars[10:20]) == {"█"}


def test_plot_latency_picks_histograms_or_time_series() -> None:
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2026-11-26T10:00:00Z") + pd.to_timedelta(rng.integers(0, 300, 400), unit="s")
    frame = requests_frame(rng.lognormal(3, 0.5, 400), versions=rng.choice(["a", "b"], 400), ts=ts)
    table = latency_table(frame, by=["model_version"], percentiles=[50, 99])
    out = render(plot_latency(table, frame, qs=[50, 99], metric="latency_ms", status="all", width=90), 90)
    assert "histogram per model version" in out and "▲p50" in out and "▲p99" in out
    table = latency_table(frame, by=["model_version"], percentiles=[50, 90, 99.9], every="1m")
    out = render(
        plot_latency(table, frame, qs=[50, 90, 99.9], metric="latency_ms", status="all", width=90), 90
    )
    assert "p50 per bucket (UTC)" in out and "p90 per bucket (UTC)" in out and "p99.9" not in out
    assert "10:00:00" in out and "10:04:00" in out
