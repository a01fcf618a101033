"""`mlobs explain` output: the JSON document, and a waterfall for people.

The waterfall puts every stage on one time axis (offset and duration in ms, share of the request, self
time), marks the critical path, shows errors in red, compares each stage with its model version's
median, and ends with a one-line verdict naming the dominant stage. Log-derived text goes through
`cell()`/`inert_text`, never rich markup.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlobs_cli.analysis.waterfall import Stage, Timeline
from mlobs_cli.render.console import cell, fmt_count, fmt_ms
from mlobs_cli.render.machine import plain_value
from mlobs_cli.terminal import inert_text

ON_PATH, OFF_PATH = "█", "░"
NOTABLE_RATIO = 2.0  # stages at least this many times their version's median get a context line


def ms(value: float | None) -> str:
    """Milliseconds with one decimal, or three below 1 ms (so 0.042 ms is not shown as 0.0 ms)."""
    if value is not None and value == value and abs(value) < 1 and value != 0:
        return fmt_ms(value, 3)
    return fmt_ms(value)


WIDE = 100  # narrower consoles drop the "vs median" column (the context lines below remain)


def _bar_width(console: Console) -> int:
    fixed = 86 if console.width >= WIDE else 60
    return max(8, min(40, console.width - fixed))


def timeline_dict(tl: Timeline, raw: dict[tuple[str, int], str] | None = None) -> dict[str, Any]:
    """The `--format json` document (stages ordered by start offset)."""
    dominant = tl.dominant
    events = []
    for ev in tl.events:
        item = {
            "kind": ev["kind"],
            "name": ev["name"],
            "ts": plain_value(ev["ts"]),
            "offset_ms": _offset(tl, ev["ts"]),
            "source": str(ev["source"]),
            "line": ev["line"],
        }
        if raw is not None:
            item["raw"] = raw.get((str(ev["source"]), ev["line"]))
        events.append(item)
    return {
        "request_id": tl.request_id,
        "trace_id": tl.trace_id,
        "model_version": tl.model_version,
        "status": tl.status,
        "latency_ms": tl.latency_ms,
        "percentile_rank": tl.percentile_rank,
        "stages": [
            {
                "name": s.name,
                "start_offset_ms": tl.offset_ms(s.start_ns),
                "duration_ms": s.duration_ms,
                "self_ms": s.self_ms,
                "on_critical_path": s.on_critical_path,
                "version_median_ms": s.version_median_ms,
                "version_self_median_ms": s.version_self_median_ms,
                "error": s.error,
                "depth": s.depth,
                "origin": s.origin,
            }
            for s in tl.stages
        ],
        "dominant_stage": dominant.name if dominant else None,
        "events": events,
        "ts": plain_value(tl.ts),
        "inference_ms": tl.inference_ms,
        "error": tl.error,
        "fields": {k: plain_value(v) for k, v in tl.summary.items()},
    }


def _offset(tl: Timeline, ts: Any) -> float | None:
    if ts is None or (not isinstance(ts, str) and ts != ts):
        return None
    import pandas as pd

    return tl.offset_ms(int(pd.Timestamp(ts).as_unit("ns").value))


def ratio_text(value: float | None, median: float | None, version: str) -> str | None:
    """`31x the v2.1 median of 2.0 ms`; None when there is no usable median."""
    if value is None or median is None or not math.isfinite(median) or median <= 0:
        return None
    return f"{_times(value / median)} the {version} median of {ms(median)}"


def _times(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def verdict(tl: Timeline) -> str:
    """One line naming the dominant stage (see `Timeline.dominant`) and how unusual it is."""
    stage = tl.dominant
    if stage is None:
        return "verdict: no stages were logged for this request (only its summary)"
    total = tl.latency_ms or 0.0
    share = f" ({stage.self_ms / total:.0%} of {ms(total)})" if total > 0 else ""
    median = stage.version_median_ms
    context = ratio_text(stage.duration_ms, median, tl.model_version)
    if tl.dominant_is_outlier():
        text = f"verdict: slow in {stage.name}: {ms(stage.self_ms)}{share}"
        if context:
            text += f", {context}"
    else:
        text = f"verdict: {stage.name} dominates with {ms(stage.self_ms)}{share}"
        if context:
            text += f", usual for {tl.model_version} (median {ms(median)})"
    if stage.error:
        text += "; it failed"
    return text


def _bar(tl: Timeline, stage: Stage, width: int) -> Text:
    span = max(tl.end_ns - tl.origin_ns, 1)
    a = int((stage.start_ns - tl.origin_ns) / span * width)
    b = math.ceil((stage.end_ns - tl.origin_ns) / span * width)
    a = min(max(a, 0), width - 1)
    b = min(max(b, a + 1), width)
    style = "red" if stage.error else ("bold cyan" if stage.on_critical_path else "dim")
    text = Text(" " * a)
    text.append((ON_PATH if stage.on_critical_path else OFF_PATH) * (b - a), style=style)
    text.append(" " * (width - b))
    return text


def _header(tl: Timeline, version_requests: int | None) -> Text:
    text = Text("request ", style="bold")
    text.append_text(cell(tl.request_id, style="bold"))
    if tl.trace_id and tl.trace_id != tl.request_id:
        text.append("  trace ")
        text.append_text(cell(tl.trace_id))
    text.append("\n")
    if plain_value(tl.ts) is not None:
        text.append("at ")
        text.append(str(plain_value(tl.ts)))
        text.append("  ")
    text.append("model ")
    text.append_text(cell(tl.model_version, style="bold"))
    if tl.status is not None:
        text.append("  status ")
        text.append(str(tl.status), style="red" if tl.error else "")
    elif tl.error:
        text.append("  failed", style="red")
    text.append("\nlatency ")
    text.append(ms(tl.latency_ms), style="bold")
    if tl.inference_ms is not None:
        text.append(f" (inference {ms(tl.inference_ms)})")
    if tl.percentile_rank is not None and not math.isnan(tl.percentile_rank):
        text.append(f"  percentile rank {tl.percentile_rank:.1f} among ")
        if version_requests:
            text.append(f"{fmt_count(version_requests)} ")
        text.append_text(cell(tl.model_version))
        text.append(" requests")
    fields = [(k, v) for k, v in tl.summary.items() if v is not None]
    if fields:
        text.append("\n")
        for i, (key, value) in enumerate(fields):
            text.append("  " if i else "")
            text.append_text(cell(key, style="dim", max_len=40))
            text.append("=", style="dim")
            text.append_text(cell(value, max_len=60))
    return text


def render_timeline(
    tl: Timeline,
    console: Console,
    *,
    version_requests: int | None = None,
    raw_lines: list[tuple[str, int, str | None]] | None = None,
) -> None:
    """Print the waterfall, the verdict, and (with `--raw`) the request's raw log lines."""
    console.print(_header(tl, version_requests))
    total = tl.latency_ms or 0.0
    width = _bar_width(console)
    axis = f"0 … {ms((tl.end_ns - tl.origin_ns) / 1e6)}"
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    wide = console.width >= WIDE
    table.add_column("  stage", no_wrap=True, min_width=12, max_width=40, overflow="ellipsis")
    for name in ("offset", "duration", "self", "share"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column(axis, no_wrap=True, min_width=width)
    if wide:
        table.add_column(f"vs {inert_text(tl.model_version, max_len=20)} median", no_wrap=True)
    notable = []
    for stage in tl.stages:
        style = "red" if stage.error else None
        name = Text("* " if stage.on_critical_path else "  ", style="bold")
        name.append("  " * stage.depth)
        name.append_text(cell(stage.name, style=style, max_len=60))
        share = f"{stage.duration_ms / total:.0%}" if total > 0 else "—"
        median = stage.version_median_ms
        versus = Text("—", style="dim")
        if median is not None and median > 0:
            ratio = stage.duration_ms / median
            versus = Text(f"{_times(ratio)} of {ms(median)}",
                          style="bold" if ratio >= NOTABLE_RATIO else "")  # fmt: skip
            if ratio >= NOTABLE_RATIO:
                notable.append(stage)
        row = [
            name,
            ms(tl.offset_ms(stage.start_ns)),
            Text(ms(stage.duration_ms), style=style or ""),
            ms(stage.self_ms),
            share,
            _bar(tl, stage, width),
        ]
        table.add_row(*row, *([versus] if wide else []))
    if tl.stages:
        console.print(table)
        console.print(Text(f"* critical path ({ON_PATH}); {OFF_PATH} off the path", style="dim"))
    for stage in notable:
        line = cell(stage.name, style="red" if stage.error else "")
        context = ratio_text(stage.duration_ms, stage.version_median_ms, tl.model_version)
        line.append(inert_text(f" {ms(stage.duration_ms)}, {context}"))
        console.print(line)
    console.print(Text(inert_text(verdict(tl)), style="bold"))
    if raw_lines is not None:
        console.print(Text("raw log lines", style="bold"))
        for source, line, content in raw_lines:
            prefix = Text(f"{inert_text(source, max_len=80)}:{line}: ", style="dim")
            body = cell(content, max_len=None) if content is not None else Text("(not re-read)")
            console.print(prefix + body, soft_wrap=True)
