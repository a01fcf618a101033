"""Output of `mlobs check`: a table for people, plain rows and one JSON document for machines.

Every row names its rule, its group (the model version, or `all versions` / `all lines`), the
observed value, the threshold and the status (PASS / FAIL / WARN / NO DATA).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from mlobs_cli.analysis.checks import CheckReport, CheckResult
from mlobs_cli.render.console import cell, simple_table

STATUS_STYLE = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "NO DATA": "magenta"}
COLUMNS = ["rule", "group", "observed", "threshold", "status"]


def result_row(r: CheckResult) -> dict[str, Any]:
    """One result as a flat, JSON-ready dict (exact values, canonical units)."""
    q = r.rule.threshold
    return {
        "rule": r.rule.text,
        "origin": r.rule.origin,
        "kind": r.rule.kind,
        "severity": r.rule.severity,
        "group": r.group,
        "model_version": r.model_version,
        "metric": r.rule.metric_label,
        "op": r.rule.op,
        "threshold": q.value if q else None,
        "unit": q.unit if q else None,
        "observed": r.observed,
        "observed_text": r.observed_text,
        "threshold_text": r.threshold_text,
        "samples": r.samples,
        "outcome": r.outcome,
        "status": r.status,
        "fails_run": r.failed,
        "baseline": r.baseline,
    }


def display_row(r: CheckResult) -> dict[str, str]:
    """The five columns people read (also the Markdown summary's)."""
    return {
        "rule": r.rule.display + ("" if r.rule.severity == "error" else " (warn)"),
        "group": r.group,
        "observed": r.observed_text,
        "threshold": r.threshold_text,
        "status": r.status,
    }


def summary_line(report: CheckReport) -> str:
    """`PASSED: 7 of 7 results` or `FAILED: 2 of 9 results fail (1 warning, 1 no data)`."""
    c = report.counts()
    extras = []
    if c["warn"]:
        extras.append(f"{c['warn']} warning{'s' if c['warn'] != 1 else ''}")
    if c["no_data"]:
        allowed = " allowed" if report.allow_missing else ""
        extras.append(f"{c['no_data']} no data{allowed}")
    tail = f" ({', '.join(extras)})" if extras else ""
    if report.failed:
        return f"FAILED: {c['failing']} of {c['results']} results fail the check{tail}"
    return f"PASSED: {c['results']} results checked, none failing{tail}"


def report_document(report: CheckReport) -> dict[str, Any]:
    """The `--format json` document."""
    c = report.counts()
    return {
        "passed": not report.failed,
        "exit_code": 1 if report.failed else 0,
        "allow_missing": report.allow_missing,
        "unversioned_requests": report.unversioned,
        "counts": c,
        "summary": summary_line(report),
        "results": [result_row(r) for r in report.results],
    }


def render_table(report: CheckReport, console: Console) -> None:
    """The human table, then the one-line verdict."""
    rows = []
    for r in report.results:
        d = display_row(r)
        rows.append(
            [
                cell(d["rule"]),
                cell(d["group"]),
                cell(d["observed"], max_len=160),
                cell(d["threshold"]),
                Text(d["status"], style=STATUS_STYLE[d["status"]]),
            ]
        )
    table = simple_table("mlobs check", COLUMNS, rows)
    table.columns[0].overflow = "fold"  # rules are single tokens at times: fold, never elide
    console.print(table)
    verdict = summary_line(report)
    console.print(Text(verdict, style="bold red" if report.failed else "bold green"))
