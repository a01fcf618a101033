"""Output of `mlobs tail`: a live rich view, greppable plain lines, or NDJSON snapshots and events.

Every renderer has the same four calls: `events(rows)` for incoming requests (with `--events`),
`snapshot(snap, ctx)` once per interval, `final(snap, ctx)` at the end, and `close()`. Log-derived
text reaches the terminal only through `cell()`/`inert_text`; NDJSON keeps exact values.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlobs_cli.render.console import cell, fmt_count, fmt_ms, fmt_pct
from mlobs_cli.render.machine import iso_utc, plain_value, to_json_bytes
from mlobs_cli.terminal import inert_text

if TYPE_CHECKING:
    import pandas as pd

    from mlobs_cli.analysis.window import Snapshot

SPARK = "▁▂▃▄▅▆▇█"
EVENT_KEYS = ("ts", "request_id", "model_version", "latency_ms", "status", "error", "source", "line")


@dataclass
class Context:
    """What a snapshot is shown with, besides the window itself."""

    lines: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    firing: dict[str, list[str]] = field(default_factory=dict)  # version -> alert rule texts
    firing_rows: list[dict[str, Any]] = field(default_factory=list)
    slow_over_ms: float | None = None
    percentiles: list[float] = field(default_factory=lambda: [50.0, 90.0, 95.0, 99.0])


def sparkline(values: list[float]) -> str:
    """`▁▃█` from values scaled between their min and max; a gap (space) where a value is missing."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(" ")
        elif hi == lo:
            out.append(SPARK[0])
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * len(SPARK)))])
    return "".join(out)


def _pkey(q: float) -> str:
    from mlobs_cli.analysis.latency import percentile_key

    return percentile_key(q)


def _rows(snap: Snapshot, percentiles: list[float]) -> list[dict[str, Any]]:
    """The rows of `mlobs latency --format json` (same keys, same order) plus the window bounds."""
    from mlobs_cli.render.latency import machine_rows

    start, end = iso_utc(snap.window_start), iso_utc(snap.window_end)
    rows = machine_rows(snap.table, percentiles)
    for row in rows:
        row["window_start"] = start
        row["window_end"] = end
    return rows


def snapshot_document(snap: Snapshot, ctx: Context, *, final: bool) -> dict[str, Any]:
    """One NDJSON snapshot: the per-version rows (keys of `mlobs latency --format json`) and more."""
    return {
        "type": "snapshot",
        "final": final,
        "window_start": iso_utc(snap.window_start),
        "window_end": iso_utc(snap.window_end),
        "window_s": snap.window_s,
        "span_s": snap.span_s,
        "rows": _rows(snap, ctx.percentiles),
        "trend_p99_ms": {v: [plain_value(x) for x in pts] for v, pts in snap.trend.items()},
        "slowest": [{k: plain_value(v) for k, v in r.items()} for r in snap.slowest.to_dict("records")],
        "totals": {v: {"requests": r, "errors": e} for v, (r, e) in snap.totals.items()},
        "requests_total": snap.requests_total,
        "lines": ctx.lines,
        "skipped": ctx.skipped,
        "skipped_by_reason": dict(ctx.skipped_by_reason),
        "alerts": list(ctx.firing_rows),
    }


def event_document(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "request"}
    out.update({k: plain_value(row.get(k)) for k in EVENT_KEYS if k in row})
    return out


def _logfmt(value: Any) -> str:
    text = inert_text(value)
    if not text or any(c in text for c in ' "=\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _num(value: Any, digits: int = 3) -> str:
    v = plain_value(value)
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def plain_lines(snap: Snapshot, ctx: Context, *, final: bool) -> list[str]:
    """One logfmt line per version, then one for the input; stable keys, greppable."""
    head = f"time={iso_utc(snap.window_end)} kind={'final' if final else 'interval'}"
    head += f" window_s={_num(snap.window_s, 1)}"
    lines = []
    for row in snap.table.to_dict("records"):
        version = str(row["model_version"])
        parts = [
            head,
            f"model_version={_logfmt(version)}",
            f"requests={int(row['requests'])}",
            f"rate_per_s={_num(row['rate_per_s'])}",
            f"errors={int(row['errors'])}",
            f"error_rate={_num(row['error_rate'], 4)}",
        ]
        parts += [f"{_pkey(q)}={_num(row.get(_pkey(q)))}" for q in ctx.percentiles]
        parts.append(f"max_ms={_num(row.get('max_ms'))}")
        total = snap.totals.get(version, (0, 0))
        parts.append(f"total_requests={total[0]}")
        for rule in ctx.firing.get(version, []):
            parts.append(f"alert={_logfmt(rule)}")
        lines.append(" ".join(parts))
    lines.append(f"{head} lines={ctx.lines} skipped={ctx.skipped} total_requests={snap.requests_total}")
    return lines


def event_line(row: dict[str, Any], slow_over_ms: float | None, *, color: bool) -> Text:
    """`12:00:01.123  v2  312.4 ms  200  req-42` as one inert line, coloured for a terminal."""
    ts = row.get("ts")
    when = iso_utc(ts)[11:23] if ts is not None and ts == ts else "--:--:--.---"
    latency = float(row.get("latency_ms", math.nan))
    slow = slow_over_ms is not None and latency > slow_over_ms
    status = plain_value(row.get("status"))
    error = bool(row.get("error"))
    text = Text(no_wrap=True)
    text.append(when, style="dim" if color else "")
    text.append("  ")
    text.append(cell(row.get("model_version"), max_len=40))
    text.append("  ")
    text.append(f"{fmt_ms(latency):>12}", style=("bold red" if slow else "") if color else "")
    text.append("  ")
    text.append(f"{status if status is not None else '-':>3}", style=(
        ("red" if error else "green") if color else ""
    ))  # fmt: skip
    text.append("  ")
    text.append(cell(row.get("request_id"), max_len=80))
    if slow and not color:
        text.append("  slow")
    if error and not color:
        text.append("  error")
    return text


def _ms(value: Any) -> str:
    """A latency without its unit (the column header carries `ms`); `—` when missing."""
    v = plain_value(value)
    return "—" if v is None else f"{v:,.1f}"


def versions_table(snap: Snapshot, ctx: Context) -> Table:
    """Per version: requests/s, requests, error rate, percentiles, max, and the p99 trend."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", expand=False, pad_edge=False)
    table.add_column("version", no_wrap=True, max_width=24)
    for name in ("req/s", "reqs", "errs", "err %"):
        table.add_column(name, justify="right", no_wrap=True)
    for q in ctx.percentiles:
        table.add_column(f"{_pkey(q).removesuffix('_ms')} ms", justify="right", no_wrap=True)
    table.add_column("max ms", justify="right", no_wrap=True)
    table.add_column("p99 trend", no_wrap=True, min_width=9)
    for row in snap.table.to_dict("records"):
        version = str(row["model_version"])
        alerting = version in ctx.firing
        style = "bold red" if alerting else ""
        cells: list[Text] = [cell(version, max_len=24, style=style)]
        cells.append(Text(f"{float(row['rate_per_s']):,.2f}"))
        cells.append(Text(fmt_count(row["requests"])))
        cells.append(Text(fmt_count(row["errors"])))
        cells.append(Text(fmt_pct(row["error_rate"])))
        for q in ctx.percentiles:
            value = plain_value(row.get(_pkey(q)))
            slow = ctx.slow_over_ms is not None and value is not None and value > ctx.slow_over_ms
            cells.append(Text(_ms(value), style="yellow" if slow else ""))
        cells.append(Text(_ms(row.get("max_ms"))))
        cells.append(Text(sparkline(snap.trend.get(version, [])), style="cyan"))
        table.add_row(*cells, style=style)
    return table


def slowest_table(slowest: pd.DataFrame, ctx: Context) -> Table:
    table = Table(
        title="slowest in the window (mlobs explain ID)", title_justify="left",
        header_style="bold", expand=False, pad_edge=False, box=box.SIMPLE_HEAD,
    )  # fmt: skip
    for name, right in (("time", False), ("request id", False), ("version", False),
                        ("latency ms", True), ("dominant stage", False)):  # fmt: skip
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in slowest.to_dict("records"):
        latency = row.get("latency_ms")
        slow = ctx.slow_over_ms is not None and latency > ctx.slow_over_ms
        stage = row.get("stage")
        stage_text = (
            Text.assemble(cell(stage, max_len=40), f" {fmt_ms(row.get('stage_ms'))}")
            if stage is not None
            else cell(None)
        )
        ts = row.get("ts")
        table.add_row(
            Text(iso_utc(ts)[11:23] if ts is not None and ts == ts else "—"),
            cell(row.get("request_id"), max_len=48),
            cell(row.get("model_version"), max_len=32),
            Text(_ms(latency), style="bold red" if slow else ""),
            stage_text,
        )
    return table


def live_view(snap: Snapshot, ctx: Context, *, final: bool = False) -> Group:
    """The whole screen: header, versions, slowest requests, skipped lines and alerts."""
    start = iso_utc(snap.window_start)[11:19]
    end = iso_utc(snap.window_end)
    head = Text(f"mlobs tail{' (final)' if final else ''} · window {snap.window_s:g}s ", style="bold")
    head.append(f"{start}–{end[11:19]} UTC {end[:10]}", style="")
    head.append(f" · {fmt_count(snap.requests_total)} requests read", style="")
    parts: list[Any] = [head, versions_table(snap, ctx)]
    if len(snap.slowest):
        parts.append(slowest_table(snap.slowest, ctx))
    foot = Text(f"{fmt_count(ctx.lines)} lines · {fmt_count(ctx.skipped)} skipped", style="dim")
    if ctx.skipped_by_reason:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(ctx.skipped_by_reason.items()))
        foot.append(f" ({reasons})")
    parts.append(foot)
    for row in ctx.firing_rows:
        parts.append(
            Text.assemble(
                ("ALERT ", "bold red"),
                cell(row["model_version"], max_len=40),
                (": ", ""),
                cell(row["rule"], max_len=80),
            )  # fmt: skip
        )
    return Group(*parts)


class NdjsonRenderer:
    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout

    def _write(self, obj: dict[str, Any]) -> None:
        self.out.write(to_json_bytes(obj).decode() + "\n")
        self.out.flush()

    def events(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._write(event_document(row))

    def snapshot(self, snap: Snapshot, ctx: Context) -> None:
        self._write(snapshot_document(snap, ctx, final=False))

    def final(self, snap: Snapshot, ctx: Context) -> None:
        self._write(snapshot_document(snap, ctx, final=True))

    def close(self) -> None:
        pass


class PlainRenderer:
    """Plain text straight to stdout (already inert), so a closed pipe surfaces as BrokenPipeError
    and ends the run silently, which rich's console (it exits 1) would not do."""

    def __init__(self, out: Any = None, slow_over_ms: float | None = None) -> None:
        self.out = out or sys.stdout
        self.slow_over_ms = slow_over_ms

    def _write(self, lines: list[str]) -> None:
        self.out.write("".join(line + "\n" for line in lines))
        self.out.flush()

    def events(self, rows: list[dict[str, Any]]) -> None:
        self._write([event_line(r, self.slow_over_ms, color=False).plain for r in rows])

    def snapshot(self, snap: Snapshot, ctx: Context) -> None:
        self._write(plain_lines(snap, ctx, final=False))

    def final(self, snap: Snapshot, ctx: Context) -> None:
        self._write(plain_lines(snap, ctx, final=True))

    def close(self) -> None:
        pass


class LiveRenderer:
    """rich `Live`: the view is redrawn in place each interval; events scroll above it."""

    def __init__(self, console: Console, slow_over_ms: float | None) -> None:
        from rich.live import Live

        self.console = console
        self.slow_over_ms = slow_over_ms
        self.live = Live(
            Text("mlobs tail: waiting for requests…", style="dim"), console=console,
            auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False,
        )  # fmt: skip
        self.live.start()

    def events(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.live.console.print(event_line(row, self.slow_over_ms, color=True))

    def snapshot(self, snap: Snapshot, ctx: Context) -> None:
        self.live.update(live_view(snap, ctx), refresh=True)

    def final(self, snap: Snapshot, ctx: Context) -> None:
        self.live.update(live_view(snap, ctx, final=True), refresh=True)

    def close(self) -> None:
        self.live.stop()
