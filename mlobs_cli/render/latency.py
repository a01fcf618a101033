"""Render a latency table: a rich table for people, flat rows for json/ndjson/csv/markdown.

Machine rows carry exactly the table contract (group keys, requests, errors, error_rate, rate_per_s,
mean_ms, pNN_ms..., max_ms; plus `<col>_change` and `regressions` with a baseline). The rich table
puts the model version first, flags percentiles from too few samples, and colours baseline changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlobs_cli.analysis.latency import (
    BUCKET,
    STAT_COLUMNS,
    low_sample,
    min_samples,
    percentile_key,
)
from mlobs_cli.render.console import cell, fmt_count, fmt_pct
from mlobs_cli.render.machine import markdown_table, plain_value

if TYPE_CHECKING:  # rich is imported by the table functions only: json/csv/markdown never load it
    from rich.console import Group
    from rich.text import Text

VERSION = "model_version"


def key_columns(table: pd.DataFrame) -> list[str]:
    """The group-key columns of a latency table (everything before `requests`), version first."""
    keys = list(table.columns[: list(table.columns).index("requests")])
    return sorted(keys, key=lambda c: (c != VERSION, c != BUCKET))


def value_columns(table: pd.DataFrame, percentiles: list[float]) -> list[str]:
    """The statistic columns, in contract order (then baseline changes when present)."""
    cols = [*STAT_COLUMNS, *(percentile_key(q) for q in percentiles), "max_ms"]
    if "regressions" in table.columns:
        changes = [f"{c}_change" for c in ("mean_ms", *cols[5:])]
        cols += [*changes, "error_rate_change", "regressions"]
    return cols


def machine_columns(table: pd.DataFrame, percentiles: list[float]) -> list[str]:
    """The machine-format columns: the keys as grouped (bucket first), then the statistics."""
    keys = list(table.columns[: list(table.columns).index("requests")])
    return keys + value_columns(table, percentiles)


def machine_rows(table: pd.DataFrame, percentiles: list[float]) -> list[dict[str, Any]]:
    """Flat JSON-ready rows: keys by field name (bucket_start as ISO-8601 UTC), then the stats."""
    records = table[machine_columns(table, percentiles)].to_dict(orient="records")
    return [{k: plain_value(v) for k, v in row.items()} for row in records]


def skipped_dict(skipped: Any) -> dict[str, Any]:
    """`{"total": N, "by_reason": {...}}` from a SkipReport."""
    if skipped is None:
        return {"total": 0, "by_reason": {}}
    if hasattr(skipped, "as_dict"):
        return dict(skipped.as_dict())
    return {"total": int(getattr(skipped, "total", 0)), "by_reason": {}}


def json_document(rows: list[dict[str, Any]], skipped: Any) -> dict[str, Any]:
    """The `--format json` document: rows and the skip report."""
    return {"rows": rows, "skipped": skipped_dict(skipped)}


def _fmt_num(value: Any, digits: int = 1) -> str:
    v = plain_value(value)
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def _fmt_ms(value: Any) -> str:
    """Compact ms for the table: 1 decimal below 100 ms, whole ms above (exact values in json)."""
    v = plain_value(value)
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _fmt_rate(value: Any) -> str:
    v = plain_value(value)
    if v is None:
        return "—"
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def _fmt_change(value: Any, *, points: bool = False) -> str:
    v = plain_value(value)
    if v is None:
        return ""
    if isinstance(v, float) and math.isinf(v):
        return "+∞"
    return f"{v * 100:+.1f}{'pp' if points else '%'}"


def _change_text(value: Any, col: str, regressed: bool, regression: float) -> Text:
    from rich.text import Text

    text = _fmt_change(value, points=col == "error_rate")
    if not text:
        return Text("")
    v = plain_value(value)
    if regressed:
        style = "bold red"
    elif v is not None and v < -regression:
        style = "green"
    else:
        style = "dim"
    return Text(text, style=style)


def _bucket_format(table: pd.DataFrame) -> tuple[str, str]:
    """strftime for bucket cells, and a note for the title (the day when all buckets share it)."""
    if BUCKET not in table.columns or table.empty:
        return "%Y-%m-%d %H:%M:%S", ""
    days = table[BUCKET].dt.normalize().unique()
    if len(days) == 1:
        return "%H:%M:%S", f" on {pd.Timestamp(days[0]).strftime('%Y-%m-%d')} (UTC)"
    return "%m-%d %H:%M:%S", " (UTC)"


def latency_renderable(
    table: pd.DataFrame,
    percentiles: list[float],
    *,
    title: str,
    caption: str | None = None,
    regression: float = 0.10,
) -> Group:
    """The rich table (and a footnote when some percentile rests on too few samples).

    Compact enough for 80 columns: latencies in ms (said once, in the title), no vertical rules;
    with a baseline each changed cell gets a second line with the change, red when it regressed.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    keys = key_columns(table)
    pcols = [percentile_key(q) for q in percentiles]
    flags = low_sample(table, percentiles)
    has_base = "regressions" in table.columns
    time_fmt, day_note = _bucket_format(table)
    grid = Table(
        title=f"{title}{day_note}; latencies in ms",
        title_justify="left",
        header_style="bold",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for key in keys:
        if key == BUCKET:
            grid.add_column("bucket", no_wrap=True, min_width=8)
        else:
            longest = int(table[key].astype(str).str.len().max()) if len(table) else 4
            name = "version" if key == VERSION else key
            grid.add_column(name, overflow="fold", min_width=min(max(longest, len(name)), 24))
    headers = ["requests", "req/s", "errors", "mean", *(c[:-3] for c in pcols), "max"]
    for h in headers:
        grid.add_column(h, justify="right", no_wrap=True)
    flagged_any: set[str] = set()
    for i, row in enumerate(table.to_dict(orient="records")):
        regressions = set(row.get("regressions") or []) if has_base else set()
        cells: list[Text] = []
        for key in keys:
            value = row[key]
            if key == BUCKET:
                cells.append(Text(pd.Timestamp(value).strftime(time_fmt)))
            else:
                cells.append(cell(value, style="bold cyan" if key == VERSION else None))
        cells.append(Text(fmt_count(row["requests"])))
        cells.append(Text(_fmt_rate(row["rate_per_s"])))
        err = Text(
            f"{fmt_count(row['errors'])} ({fmt_pct(row['error_rate'], 1)})",
            style="red" if row["errors"] else "",
        )
        if has_base:
            change = _change_text(
                row.get("error_rate_change"), "error_rate", "error_rate" in regressions, regression
            )
            if change:
                err.append("\n").append_text(change)
        cells.append(err)
        for col in ("mean_ms", *pcols, "max_ms"):
            low = col in pcols and bool(flags.at[table.index[i], col])
            missing = plain_value(row[col]) is None
            text = Text(_fmt_ms(row[col]) + ("*" if low and not missing else ""), style="dim" if low else "")
            if low and not missing:
                flagged_any.add(col)
            if has_base:
                change = _change_text(row.get(f"{col}_change"), col, col in regressions, regression)
                if change:
                    text.append("\n").append_text(change)
            cells.append(text)
        grid.add_row(*cells)
    parts: list[Any] = [grid]
    if flagged_any:
        needs = ", ".join(
            f"{c[:-3]} needs {min_samples(q):,}"
            for q, c in zip(percentiles, pcols, strict=True)
            if c in flagged_any
        )
        parts.append(
            Text(
                f"* fewer samples than the percentile needs ({needs}): it is close to the "
                "maximum; read it with care",
                style="dim",
            )
        )
    if has_base:
        parts.append(
            Text(
                f"changes against {table.attrs.get('baseline', 'the baseline')}: latencies relative, "
                f"error rate in percentage points; red = worse by more than {regression:.0%}",
                style="dim",
            )
        )
    return Group(*parts)


def markdown_document(table: pd.DataFrame, percentiles: list[float], *, title: str | None = None) -> str:
    """A Markdown table to paste in a pull request: version first, numbers right-aligned, ms with
    two decimals, percentiles from too few samples marked with `*`."""
    rows = machine_rows(table, percentiles)
    flags = low_sample(table, percentiles)
    pcols = [percentile_key(q) for q in percentiles]
    keys = key_columns(table)
    columns = keys + value_columns(table, percentiles)
    shown: list[dict[str, Any]] = []
    flagged: set[str] = set()
    for i, row in enumerate(rows):
        out: dict[str, Any] = {}
        for key in columns:
            value = row[key]
            if key in keys:
                out[key] = value
            elif value is None:
                out[key] = ""
            elif key == "error_rate":
                out[key] = fmt_pct(value)
            elif key.endswith("_change"):
                out[key] = _fmt_change(value, points=key == "error_rate_change")
            elif key == "regressions":
                out[key] = ", ".join(value)
            elif key.endswith("_ms"):
                mark = key in pcols and bool(flags.at[table.index[i], key])
                if mark:
                    flagged.add(key)
                out[key] = _fmt_num(value, 2) + ("†" if mark else "")
            elif key == "rate_per_s":
                out[key] = _fmt_rate(value)
            else:
                out[key] = fmt_count(value)
        shown.append(out)
    if "regressions" in columns:  # fold each change into its cell; bold when it regressed
        for out, row in zip(shown, rows):
            for key in [c for c in columns if c.endswith("_change")]:
                base = key.removesuffix("_change")
                if out[key]:
                    cell_text = f"{out[base]} ({out[key]})"
                    out[base] = f"**{cell_text}**" if base in (row["regressions"] or []) else cell_text
        columns = [c for c in columns if not c.endswith("_change")]
    lines = markdown_table(shown, columns=columns).split("\n")
    lines[1] = "|" + "|".join("---" if c in keys or c == "regressions" else "---:" for c in columns) + "|"
    text = (f"**{title}**\n\n" if title else "") + "\n".join(lines)
    if flagged:
        needs = ", ".join(
            f"{c[:-3]} needs {min_samples(q):,}" for q, c in zip(percentiles, pcols) if c in flagged
        )
        text += f"\n† fewer samples than the percentile needs ({needs}): close to the maximum.\n"
    return text


def describe(table: pd.DataFrame, attrs: Mapping[str, Any]) -> str:
    """A one-line title: which metric, which requests, grouped how."""
    metric = attrs.get("metric", "latency_ms")
    status = attrs.get("status", "all")
    keys = [k for k in key_columns(table) if k != BUCKET]
    what = {"all": "all requests", "ok": "successful requests", "error": "failed requests"}[status]
    if attrs.get("filtered"):
        what = "the selected " + what.removeprefix("all ")
    by = " and ".join(keys) if keys else "everything"
    every = f", every {attrs['every']}" if attrs.get("every") else ""
    accuracy = attrs.get("relative_accuracy")
    approx = f"; approximate percentiles (DDSketch, ±{accuracy * 100:.4g}% relative)" if accuracy else ""
    return f"{metric} of {what} by {by}{every}{approx}"
