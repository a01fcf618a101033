"""CI-native reports of `mlobs check`: JUnit XML, GitHub annotations and a GitHub job summary.

JUnit: one testcase per rule and group; a failing result is `<failure>` with the observed value,
an allowed NO DATA is `<skipped>`, a warning passes with a `<system-out>` note. Written atomically
(temp file + rename). Annotations follow GitHub's workflow-command escaping; every log-derived
string is made inert first (control characters shown as `\\xNN`).
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from mlobs_cli.analysis.checks import CheckReport, CheckResult
from mlobs_cli.errors import InputError
from mlobs_cli.outputs import atomic_output
from mlobs_cli.render.check import COLUMNS, display_row, summary_line
from mlobs_cli.render.machine import markdown_table
from mlobs_cli.terminal import inert_text

SUITE_NAME = "mlobs check"
_STATUS_MARK = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "WARN": "⚠️ WARN", "NO DATA": "❔ NO DATA"}


# -- GitHub workflow commands ---------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow-command message: `%`, CR and LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (title=...): also `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _safe(text: str) -> str:
    return inert_text(text, keep_newlines=True)


def describe(r: CheckResult) -> str:
    """`observed 312.4 ms, threshold < 250 ms (v2.1, 1,204 requests)`: a result in one sentence."""
    if r.outcome == "no_data":
        allowed = " (allowed by --allow-missing)" if r.allow_missing else ""
        return f"no data: {r.observed_text}{allowed}"
    n = f", {r.samples:,} samples" if r.samples is not None else ""
    return f"observed {r.observed_text}, threshold {r.threshold_text} ({r.group}{n})"


def annotation_lines(report: CheckReport) -> list[str]:
    """`::error title=...::...` for failing results; `::warning` for warnings, allowed NO DATA."""
    lines = []
    for r in report.results:
        if r.status == "PASS":
            continue
        level = "error" if r.failed else "warning"
        title = f"mlobs check {r.status}: {r.label}"
        message = f"{r.rule.display} ({r.rule.origin}) on {r.group}: {describe(r)}"
        lines.append(f"::{level} title={escape_property(_safe(title))}::{escape_data(_safe(message))}")
    return lines


def step_summary(report: CheckReport) -> str:
    """The Markdown job summary: a heading, the verdict and the results table (HTML-escaped)."""
    verdict = "FAILED" if report.failed else "PASSED"
    rows = []
    for r in report.results:
        d = display_row(r)
        d["status"] = _STATUS_MARK[d["status"]]
        rows.append({k: html.escape(_safe(v), quote=False) for k, v in d.items()})
    return (
        f"### mlobs check: {verdict}\n\n{html.escape(summary_line(report), quote=False)}\n\n"
        + markdown_table(rows, columns=COLUMNS)
        + "\n"
    )


def append_step_summary(report: CheckReport, path: str) -> None:
    """Append the summary to the file GitHub names in $GITHUB_STEP_SUMMARY."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(step_summary(report))
    except OSError as exc:
        raise InputError(f"cannot append the job summary to {path}: {exc.strerror}") from None


# -- JUnit XML ------------------------------------------------------------------------------------


def junit_tree(report: CheckReport, *, elapsed_s: float = 0.0) -> ET.ElementTree:
    """`<testsuites><testsuite ...><testcase classname name time>[<failure>|<skipped>]...`."""
    c = report.counts()
    failures = c["failing"]
    skipped = sum(
        1 for r in report.results if r.outcome == "no_data" and not r.failed and r.rule.severity == "error"
    )
    counts = {
        "tests": str(c["results"]),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{elapsed_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": SUITE_NAME, **counts})
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts, "timestamp": stamp})
    for r in report.results:
        case = ET.SubElement(
            suite, "testcase", {"classname": "mlobs.check", "name": _safe(r.label), "time": "0"}
        )
        details = _safe(
            "\n".join(
                [
                    f"rule: {r.rule.display}",
                    f"from: {r.rule.origin}",
                    f"severity: {r.rule.severity}",
                    f"group: {r.group}",
                    f"observed: {r.observed_text}",
                    f"threshold: {r.threshold_text}",
                    f"status: {r.status}",
                ]
            )
        )
        if r.failed:
            kind = "no_data" if r.outcome == "no_data" else "threshold"
            fail = ET.SubElement(case, "failure", {"message": _safe(describe(r)), "type": kind})
            fail.text = details
        elif r.outcome == "no_data" and r.rule.severity == "error":
            ET.SubElement(case, "skipped", {"message": _safe(describe(r))})
        elif r.status != "PASS":
            out = ET.SubElement(case, "system-out")
            out.text = f"{r.status} (severity warn, does not fail the run): {_safe(describe(r))}"
    ET.indent(root)
    return ET.ElementTree(root)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` all or nothing (see `mlobs_cli.outputs.atomic_output`)."""
    with atomic_output(path, make_parents=True) as fh:
        fh.write(data)


def write_junit(report: CheckReport, path: Path, *, elapsed_s: float = 0.0) -> None:
    tree = junit_tree(report, elapsed_s=elapsed_s)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True) + b"\n"
    write_atomic(path, data)
