"""Render `mlobs spikes`: the windows as a table with their evidence, and a unicode chart per
version with the windows marked (`--plot`). Machine formats carry `SpikeWindow.to_dict()` rows.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console, Group
from rich.text import Text

from mlobs_cli.render.console import cell, fmt_count, fmt_ms, fmt_pct, simple_table
from mlobs_cli.render.machine import iso_utc, markdown_table, write_csv, write_json, write_ndjson

_EIGHTHS = " ▁▂▃▄▅▆▇█"
FLAT_COLUMNS = (
    "start",
    "end",
    "model_version",
    "metric",
    "unit",
    "value",
    "baseline",
    "peak",
    "score",
    "requests",
    "errors",
    "error_rate",
    "error_rate_outside",
    "worst_request_id",
)


def fmt_metric(value: Any, unit: str) -> str:
    """A metric value with its unit: ms, a percentage, or requests per second."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "ms":
        return fmt_ms(value)
    if unit == "fraction":
        return fmt_pct(value)
    return f"{float(value):,.2f}/s"


def _short_time(ts: Any) -> str:
    return iso_utc(ts).replace("T", " ")[:19]


def keep_whole(table: Any, *columns: int) -> Any:
    """Never wrap or squeeze these columns (the version must stay readable on a narrow terminal)."""
    for i in columns:
        table.columns[i].no_wrap = True
        table.columns[i].overflow = "fold"
        table.columns[i].min_width = max(len(str(table.columns[i].header)), 4)
    return table


def _length(start: Any, end: Any) -> str:
    seconds = (end - start).total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def windows_table(windows: list[Any], *, title: str) -> Any:
    """One row per window: when, version, metric inside vs baseline, requests, errors."""
    metric = windows[0].metric if windows else ""
    headers = [
        "start (UTC)",
        "length",
        "version",
        f"{metric} in",
        "baseline",
        "change",
        "requests",
        "errors in / out",
    ]
    rows = []
    for w in windows:
        change = (w.value - w.baseline) / w.baseline if w.baseline else float("nan")
        rows.append(
            [
                _short_time(w.start),
                _length(w.start, w.end),
                cell(w.model_version),
                fmt_metric(w.value, w.unit),
                fmt_metric(w.baseline, w.unit),
                f"{change:+.0%}" if math.isfinite(change) else "—",
                fmt_count(w.requests),
                f"{fmt_pct(w.error_rate)} / {fmt_pct(w.error_rate_outside)}",
            ]
        )
    table = simple_table(title, headers, rows, numeric=(1, 3, 4, 5, 6, 7))
    return keep_whole(table, 0, 2)


def _detail(window: Any, explain_cmd: str | None) -> Text:
    """A window in words: when, which version, the metric inside vs baseline, errors, the slowest
    requests, what is over-represented, and the command that explains the worst request."""
    text = Text()
    text.append(f"{_short_time(window.start)} → {_short_time(window.end)[11:]} UTC ", style="bold")
    text.append_text(cell(window.model_version, style="bold"))
    change = (window.value - window.baseline) / window.baseline if window.baseline else math.nan
    text.append(
        f"\n  {window.metric} {fmt_metric(window.value, window.unit)} vs baseline "
        f"{fmt_metric(window.baseline, window.unit)}"
        + (f" ({change:+.0%})" if math.isfinite(change) else "")
        + f" over {fmt_count(window.requests)} requests; error rate {fmt_pct(window.error_rate)} "
        f"inside vs {fmt_pct(window.error_rate_outside)} outside\n"
    )
    if window.pooled and window.versions:
        text.append("  versions inside: ")
        text.append_text(cell(", ".join(f"{k} {v:,}" for k, v in window.versions.items())))
        text.append("\n")
    for row in window.top_requests:
        text.append("  slow: ")
        text.append_text(cell(row.get("request_id") or row.get("trace_id")))
        text.append(f"  {fmt_ms(row.get('latency_ms'))}")
        rank = row.get("percentile_rank")
        if isinstance(rank, (int, float)):
            text.append(f" (rank {rank:.2f}% in ")
            text.append_text(cell(row.get("model_version")))
            text.append(")")
        if row.get("dominant_stage"):
            text.append("  dominant stage: ")
            text.append_text(cell(row.get("dominant_stage")))
        text.append("\n")
    for attr in window.attributes:
        text.append("  over-represented: ")
        text.append_text(cell(f"{attr.get('field')}={attr.get('value')}"))
        text.append(
            f"  {fmt_pct(attr.get('affected_pct'), 1)} of the requests that made the window vs "
            f"{fmt_pct(attr.get('rest_pct'), 1)} of the rest (lift {attr.get('lift', 0):.1f}x)\n"
        )
    if explain_cmd:
        text.append("  explain the worst: ", style="dim")
        text.append_text(cell(explain_cmd, max_len=None))
        text.append("\n")
    return text


def spike_chart(series: Any, *, label: str, unit: str, width: int = 72, height: int = 8) -> Text:
    """A column chart of one version's bucketed metric; window buckets in red, marked with ▲."""
    values = series["value"].to_numpy(dtype="float64", na_value=float("nan"))
    flags = series["anomalous"].to_numpy(dtype=bool)
    n = len(values)
    cols = max(1, min(width, n))
    # Columns take the max of the buckets they cover, so a one-bucket spike never disappears.
    edges = [round(i * n / cols) for i in range(cols + 1)]
    col_vals, col_flags = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        chunk = values[a : max(b, a + 1)]
        finite = chunk[~(chunk != chunk)]
        col_vals.append(float(finite.max()) if len(finite) else float("nan"))
        col_flags.append(bool(flags[a : max(b, a + 1)].any()))
    finite_all = [v for v in col_vals if v == v]
    top = max(finite_all) if finite_all else 0.0
    text = Text()
    text.append_text(cell(label, style="bold"))
    text.append(f"  (max {fmt_metric(top, unit)})\n")
    for row in range(height, 0, -1):
        for v, hot in zip(col_vals, col_flags, strict=True):
            if v != v or top <= 0:
                text.append(" ")
                continue
            eighths = v / top * height * 8
            level = max(0, min(8, int(round(eighths - (row - 1) * 8))))
            text.append(_EIGHTHS[level], style="red" if hot else "cyan")
        text.append("\n")
    text.append("".join("▲" if hot else " " for hot in col_flags).rstrip() + "\n", style="red")
    first, last = series["bucket_start"].iloc[0], series["bucket_start"].iloc[-1]
    text.append(f"{_short_time(first)} … {_short_time(last)} UTC\n", style="dim")
    return text


def render_spikes_human(report: Any, *, console: Console, plot: bool, explain_cmds: dict[int, str]) -> None:
    """The windows table, one detail block per window, and the charts with `plot`."""
    metric = report.metric.name
    if not report.windows:
        console.print(
            Text(
                f"no {metric} spikes (modified z > {report.settings.threshold:g}, "
                f"change >= {report.settings.min_change:.0%}, buckets of "
                f"{_every_label(report.every)} with >= {report.settings.min_requests} "
                "requests)"
            )
        )
    else:
        title = f"{len(report.windows)} {metric} spike window(s)"
        if console.width >= 90:
            console.print(windows_table(report.windows, title=title))
        else:
            console.print(Text(title, style="bold"))
        details = (_detail(w, explain_cmds.get(i)) for i, w in enumerate(report.windows))
        console.print(Group(*details))
    if plot and not report.series.empty:
        width = max(20, min(console.width - 2, 120))
        for version, part in report.series.groupby("model_version", sort=True):
            console.print(
                spike_chart(part, label=f"{version} {metric}", unit=report.metric.unit, width=width)
            )


def _every_label(every: Any) -> str:
    seconds = every.total_seconds()
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def render_spikes_machine(rows: list[dict[str, Any]], fmt: str) -> None:
    """json: {"windows": [...]}; ndjson one window per line; csv/markdown the flat columns."""
    if fmt == "json":
        write_json({"windows": rows})
    elif fmt == "ndjson":
        write_ndjson(rows)
    elif fmt == "csv":
        write_csv(rows, columns=FLAT_COLUMNS)
    else:
        import sys

        sys.stdout.write(markdown_table(rows, columns=FLAT_COLUMNS, formatters=_md_formatters(rows)))


def _md_formatters(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Markdown is for people: metric values with their unit, rates as percentages."""
    unit = rows[0]["unit"] if rows else "ms"
    metric = lambda v: fmt_metric(v, unit)  # noqa: E731
    return {
        "value": metric, "baseline": metric, "peak": metric,
        "score": lambda v: "inf" if v is None else f"{v:.1f}",
        "error_rate": fmt_pct, "error_rate_outside": fmt_pct,
    }  # fmt: skip
