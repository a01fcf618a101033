"""Render `mlobs forecast`: per-version trend, projection and band, SLO breach time, and the
multiwindow burn-rate table, each with a plain sentence. Machine formats carry the dicts as is.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from mlobs_cli.render.console import cell, simple_table
from mlobs_cli.render.machine import markdown_table, write_csv, write_json, write_ndjson
from mlobs_cli.render.spikes import fmt_metric, keep_whole

FLAT_COLUMNS = (
    "model_version",
    "metric",
    "method",
    "buckets",
    "history_s",
    "last_value",
    "fitted_now",
    "slope_per_hour",
    "projected",
    "low",
    "high",
    "horizon_s",
    "slo",
    "breach_in_s",
)


def human_duration(seconds: float | None) -> str:
    """`5.2 h`, `1 h`, `42 min`, `30 s`."""
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}".removesuffix(".0") + " h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _slope(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:+,.2f} ms/h"
    if unit == "fraction":
        return f"{value * 100:+.3f} pp/h"
    return f"{value:+,.3f} /s per h"


def sentence(fc: Any) -> str:
    """`v2.1 p99 grows ~8.00 ms/h; in 6 h about 262 ms (90% band 240–290 ms); at this trend it
    crosses 250 ms in about 5.2 h`."""
    slope = fc.slope_per_hour
    verb = "is flat" if slope == 0 else ("grows" if slope > 0 else "falls")
    trend = "" if slope == 0 else f" ~{_slope(abs(slope), fc.unit).lstrip('+')}"
    text = (
        f"{fc.model_version} {fc.metric} {verb}{trend}; in {human_duration(fc.horizon_s)} about "
        f"{fmt_metric(fc.projected, fc.unit)} (90% band {_band(fc)})"
    )
    if fc.slo is None:
        return text
    limit = fmt_metric(fc.threshold, fc.unit)
    if fc.breach_in_s == 0:
        return text + f"; it is already past {limit} (SLO {fc.slo})"
    if fc.breach_in_s is None:
        return text + f"; no breach of {fc.slo} expected within {human_duration(fc.horizon_s)}"
    return text + f"; at this trend it crosses {limit} in about {human_duration(fc.breach_in_s)}"


def _band(fc: Any) -> str:
    return f"{fmt_metric(fc.low, fc.unit)}–{fmt_metric(fc.high, fc.unit)}".replace(" ms–", "–")


def forecast_table(forecasts: list[Any]) -> Any:
    horizon = human_duration(forecasts[0].horizon_s) if forecasts else ""
    headers = [
        "version",
        "metric",
        "buckets",
        "last",
        "now (fit)",
        "trend",
        f"in {horizon}",
        "90% band",
        "breach in",
    ]
    rows = []
    for fc in forecasts:
        band = _band(fc)
        breach = (
            "—" if fc.slo is None else ("none" if fc.breach_in_s is None else human_duration(fc.breach_in_s))
        )
        rows.append(
            [
                cell(fc.model_version),
                fc.metric,
                str(fc.buckets),
                fmt_metric(fc.last_value, fc.unit),
                fmt_metric(fc.fitted_now, fc.unit),
                _slope(fc.slope_per_hour, fc.unit),
                fmt_metric(fc.projected, fc.unit),
                band,
                breach,
            ]
        )
    table = simple_table("forecast (Theil-Sen trend)", headers, rows, numeric=(2, 3, 4, 5, 6, 7, 8))
    return keep_whole(table, 0, 1)


def burn_table(burns: list[dict[str, Any]], slo: str) -> Any:
    headers = ["version", "windows", "alert", "factor", "long burn", "short burn", "status"]
    rows = []
    for entry in burns:
        for w in entry["windows"]:
            firing = w["firing"]
            status = (
                Text("FIRING", style="bold red")
                if firing
                else Text("ok", style="green")
                if firing is False
                else Text("not covered", style="yellow")
            )
            rows.append(
                [
                    cell(entry["model_version"]),
                    w["windows"],
                    w["severity"],
                    f"{w['factor']:g}x",
                    _burn(w["long_burn"], w["long_covered"]),
                    _burn(w["short_burn"], w["short_covered"]),
                    status,
                ]
            )
    return simple_table(
        f"error-budget burn rate ({slo}; SRE workbook multiwindow rule)",
        headers,
        rows,
        numeric=(3, 4, 5),
    )


def _burn(value: float | None, covered: bool) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}x" + ("" if covered else "*")


def coverage_sentence(entry: dict[str, Any]) -> str:
    missing = sorted(
        {w["windows"] for w in entry["windows"] if not (w["long_covered"] and w["short_covered"])},
        key=lambda label: [w["windows"] for w in entry["windows"]].index(label),
    )
    logs = human_duration(entry["covered_s"])
    if not missing:
        return f"{entry['model_version']}: the logs ({logs}) cover every window"
    return (
        f"{entry['model_version']}: the logs cover only {logs}, so the "
        f"{', '.join(missing)} window pair(s) are not covered (* = burn over what the logs hold; "
        "never fires)"
    )


def render_forecast_human(
    forecasts: list[Any], burns: list[dict[str, Any]], burn_slo: str | None, *, console: Console
) -> None:
    if forecasts:
        if console.width >= 100:  # the table needs the room; the sentences say it all anyway
            console.print(forecast_table(forecasts))
        for fc in forecasts:
            console.print(cell(sentence(fc), max_len=None))
    if burn_slo is not None:
        if forecasts:
            console.print()
        console.print(burn_table(burns, burn_slo))
        for entry in burns:
            console.print(cell(coverage_sentence(entry), max_len=None))


def render_forecast_machine(doc: dict[str, Any], fmt: str) -> None:
    """json: the whole document; ndjson/csv/markdown: the forecast rows."""
    rows = doc["forecasts"]
    if fmt == "json":
        write_json(doc)
    elif fmt == "ndjson":
        write_ndjson(rows)
    elif fmt == "csv":
        write_csv(rows, columns=FLAT_COLUMNS)
    else:
        sys.stdout.write(markdown_table(rows, columns=FLAT_COLUMNS))
