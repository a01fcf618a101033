"""`mlobs slow` output: the slowest requests, then how the slow set differs (stages, attributes)."""

from __future__ import annotations

import math
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.text import Text

from mlobs_cli.analysis.slow import SlowReport
from mlobs_cli.render.console import cell, fmt_count, fmt_ms, fmt_pct, simple_table
from mlobs_cli.render.machine import markdown_table, plain_value
from mlobs_cli.terminal import inert_text

MAX_ATTRIBUTES_SHOWN = 10


def _threshold_text(report: SlowReport) -> str:
    thr = report.threshold_ms
    if isinstance(thr, dict):
        return ", ".join(f"{inert_text(k, max_len=30)} {fmt_ms(v)}" for k, v in thr.items())
    return fmt_ms(thr) if thr is not None else "—"


def _short_ts(value: Any) -> str | None:
    """ISO-8601 UTC to the millisecond: `2026-11-26T10:00:47.449Z`."""
    text = plain_value(value)
    if isinstance(text, str) and len(text) > 24 and text.endswith("Z"):
        return text[:23] + "Z"
    return text


def _ratio(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{v:.1f}x"


def _value_text(value: Any) -> Text:
    return Text("(missing)", style="dim") if value is None else cell(value, max_len=40)


def render_slow(report: SlowReport, doc: dict[str, Any], console: Console) -> None:
    """Three sections: the slowest requests, stages slow vs rest, over-represented field values."""
    stamps = [_short_ts(rec["ts"]) for rec in doc["rows"]]
    days = {t[:10] for t in stamps if isinstance(t, str)}
    one_day = len(days) == 1 and all(isinstance(t, str) for t in stamps)
    rows = []
    for rec, stamp in zip(doc["rows"], stamps, strict=True):
        status = rec["status"]
        rows.append(
            [
                cell(stamp[11:].rstrip("Z") if one_day else stamp),
                cell(
                    rec["request_id"] if rec["request_id"] is not None else rec["trace_id"], max_len=None
                ),  # fmt: skip
                cell(rec["model_version"]),
                Text(fmt_ms(rec["latency_ms"]), style="bold"),
                f"p{rec['percentile_rank']:.1f}" if rec["percentile_rank"] is not None else "—",
                cell(rec["dominant_stage"]),
                Text(str(status), style="red" if rec["error"] else "")
                if status is not None
                else Text("error" if rec["error"] else "—", style="red" if rec["error"] else "dim"),
            ]
        )
    rule = report.rule if report.rule.startswith("over") else f"{report.rule} = {_threshold_text(report)}"
    title = (
        f"slowest requests{' on ' + next(iter(days)) if one_day else ''}; slow set: {rule}, "
        f"{fmt_count(report.slow_requests)} of {fmt_count(report.requests)} requests"
    )
    headers = ["time (UTC)", "request id", "version", "latency", "rank", "dominant stage", "status"]
    table = simple_table(None, headers, rows, numeric=(3, 4))
    console.print(Text(title, style="bold"))  # its own line: not wrapped at the table's width
    ids = [len(str(r["request_id"] or r["trace_id"] or "")) for r in doc["rows"]]
    # a rule under the header only, one space between columns: the columns keep their room
    table.box, table.padding, table.show_edge = box.SIMPLE_HEAD, (0, 0, 0, 1), False
    for column in table.columns:
        column.no_wrap = True
    table.columns[1].min_width = min(max(ids, default=10), 64)  # pasted into `mlobs explain`
    for i in (3, 4):  # numbers are never cut
        table.columns[i].min_width = max((len(r[i].plain if isinstance(r[i], Text) else r[i])
                                          for r in rows), default=4)  # fmt: skip
    console.print(table)
    if doc["rows"] and doc["rows"][0]["explain"]:
        console.print(Text("explain one: ", style="dim") + cell(doc["rows"][0]["explain"],
                                                                max_len=None))  # fmt: skip
    if not doc["stages"] and not doc["attributes"]:
        return
    if doc["stages"]:
        stage_rows = [
            [
                cell(s["stage"]),
                fmt_ms(s["slow_median_ms"]),
                fmt_ms(s["rest_median_ms"]),
                _ratio(s["ratio"]),
                fmt_ms(s["excess_ms"]),
                fmt_pct(s["excess_share"], 0),
                f"{fmt_count(s['slow_requests'])} / {fmt_count(s['rest_requests'])}",
            ]
            for s in doc["stages"]
        ]
        table = simple_table(
            "where the slow requests spend the extra time (self time per stage)",
            ["stage", "slow p50", "rest p50", "ratio", "excess (mean)", "share", "slow / rest"],
            stage_rows,
            numeric=(1, 2, 3, 4, 5, 6),
        )
        table.columns[0].min_width = min(max(len(str(s["stage"])) for s in doc["stages"]), 32)
        console.print(table)
    attrs = doc["attributes"][:MAX_ATTRIBUTES_SHOWN]
    if attrs:
        attr_rows = [
            [
                cell(a["field"]),
                _value_text(a["value"]),
                f"{fmt_count(a['slow_count'])} ({fmt_pct(a['slow_pct'], 1)})",
                f"{fmt_count(a['rest_count'])} ({fmt_pct(a['rest_pct'], 1)})",
                f"{a['lift']:.2f}",
            ]
            for a in attrs
        ]
        more = len(doc["attributes"]) - len(attrs)
        console.print(
            simple_table(
                "field values over-represented among slow requests"
                + (f" ({more} more with --format json)" if more > 0 else ""),
                ["field", "value", "slow", "rest", "lift"],
                attr_rows,
                numeric=(2, 3, 4),
            )
        )
    elif report.slow_requests and report.rest_requests:
        console.print(Text("no field value is over-represented among the slow requests",
                           style="dim"))  # fmt: skip


def render_markdown(doc: dict[str, Any], out: Any = None) -> None:
    """The three sections as GitHub-flavoured Markdown tables."""
    stream = out or sys.stdout
    stream.write("### Slowest requests\n\n")
    rows = [{k: v for k, v in r.items() if k != "explain"} for r in doc["rows"]]
    stream.write(markdown_table(rows) if rows else "_none_\n")
    stream.write("\n### Stages, slow vs rest\n\n")
    stream.write(markdown_table(doc["stages"]) if doc["stages"] else "_none_\n")
    stream.write("\n### Over-represented among slow requests\n\n")
    stream.write(markdown_table(doc["attributes"]) if doc["attributes"] else "_none_\n")
    stream.flush()
