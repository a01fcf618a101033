"""CI reports of `mlobs check`: GitHub workflow-command escaping, the job summary, JUnit XML."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from mlobs_cli.analysis.checks import CheckReport, CheckResult
from mlobs_cli.analysis.rules import parse_assert, parse_require
from mlobs_cli.errors import InputError
from mlobs_cli.render import ci


def _report(allow_missing: bool = False) -> CheckReport:
    p99 = parse_assert("p99 < 250ms")
    warn = parse_assert("error_rate < 1%", severity="warn", origin="check.rules[2].assert")
    need = parse_require("model_version")
    results = [
        CheckResult(p99, "v2.0", "v2.0", "pass", 201.5, "201.5 ms", samples=900),
        CheckResult(p99, "v2.1", "v2.1", "fail", 312.4, "312.4 ms", samples=300),
        CheckResult(warn, "v2.1", "v2.1", "fail", 0.02, "2%", samples=300),
        CheckResult(need, "all versions", None, "no_data", observed_text="no request summaries"),
    ]
    for r in results:
        r.allow_missing = allow_missing
    return CheckReport(results, allow_missing)


def test_escape_data_escapes_percent_cr_lf_only():
    assert ci.escape_data("50% a:b, c\r\nd") == "50%25 a:b, c%0D%0Ad"
    # % first: an already-escaped-looking value is not decoded by the runner into something else
    assert ci.escape_data("%0A") == "%250A"


def test_escape_property_also_escapes_colon_and_comma():
    assert ci.escape_property("p99 < 1s [v2:1, x]\n50%") == "p99 < 1s [v2%3A1%2C x]%0A50%25"


def test_annotations_one_per_non_passing_result_with_level_by_outcome():
    lines = ci.annotation_lines(_report())
    assert lines == [
        "::error title=mlobs check FAIL%3A p99 < 250ms [v2.1]::p99 < 250ms (--assert) on v2.1: "
        "observed 312.4 ms, threshold < 250ms (v2.1, 300 samples)",
        "::warning title=mlobs check WARN%3A error_rate < 1%25 [v2.1]::error_rate < 1%25 "
        "(check.rules[2].assert) on v2.1: observed 2%25, threshold < 1%25 (v2.1, 300 samples)",
        "::error title=mlobs check NO DATA%3A model_version [all versions]::model_version "
        "(--require) on all versions: no data: no request summaries",
    ]
    allowed = ci.annotation_lines(_report(allow_missing=True))
    assert allowed[-1].startswith("::warning title=mlobs check NO DATA")
    assert allowed[-1].endswith("(allowed by --allow-missing)")


def test_log_derived_text_cannot_start_a_new_workflow_command():
    rule = parse_assert("p99 < 1s")
    evil = "v1\n::set-output name=x::y,\r\x1b[2J%"
    report = CheckReport([CheckResult(rule, evil, evil, "fail", 2000.0, "2,000 ms")], False)
    (line,) = ci.annotation_lines(report)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    title, message = line[len("::error title=") :].split("::", 1)
    assert "::" not in title  # the title property cannot end early
    assert "%0A%3A%3Aset-output name=x%3A%3Ay%2C\\x0d\\x1b[2J%25" in title
    assert "v1%0A::set-output name=x::y,\\x0d\\x1b[2J%25" in message


def test_step_summary_is_markdown_with_escaped_cells():
    rule = parse_assert("p99 < 1s")
    report = CheckReport([CheckResult(rule, "v<b>|1", "v<b>|1", "fail", 2000.0, "2,000 ms")], False)
    text = ci.step_summary(report)
    lines = text.splitlines()
    assert lines[0] == "### mlobs check: FAILED"
    assert lines[2] == "FAILED: 1 of 1 results fail the check"
    assert lines[4] == "| rule | group | observed | threshold | status |"
    assert lines[6] == "| p99 &lt; 1s | v&lt;b&gt;\\|1 | 2,000 ms | &lt; 1s | ❌ FAIL |"


def test_append_step_summary_appends(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    ci.append_step_summary(_report(), str(target))
    ci.append_step_summary(_report(), str(target))
    text = target.read_text()
    assert text.startswith("earlier step\n### mlobs check: FAILED")
    assert text.count("### mlobs check: FAILED") == 2


def test_junit_has_one_testcase_per_result_with_failures_carrying_the_observed_value(tmp_path):
    path = tmp_path / "reports" / "junit.xml"
    ci.write_junit(_report(), path, elapsed_s=0.25)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.attrib["name"] == "mlobs check"
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == (
        "4",
        "2",
        "0",
        "0",
    )
    assert suite.get("time") == "0.250"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "p99 < 250ms [v2.0]",
        "p99 < 250ms [v2.1]",
        "error_rate < 1% [v2.1]",
        "model_version [all versions]",
    ]
    assert all(c.get("classname") == "mlobs.check" for c in cases)
    assert list(cases[0]) == []  # pass
    failure = cases[1].find("failure")
    assert failure.get("type") == "threshold"
    assert failure.get("message") == "observed 312.4 ms, threshold < 250ms (v2.1, 300 samples)"
    assert "observed: 312.4 ms" in failure.text and "group: v2.1" in failure.text
    assert cases[2].find("failure") is None  # a warning never fails the suite
    assert "WARN" in cases[2].find("system-out").text
    assert cases[3].find("failure").get("type") == "no_data"


def test_junit_allowed_no_data_is_skipped(tmp_path):
    path = tmp_path / "junit.xml"
    ci.write_junit(_report(allow_missing=True), path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    skipped = suite.findall("testcase")[3].find("skipped")
    assert skipped.get("message") == "no data: no request summaries (allowed by --allow-missing)"


def test_junit_stays_well_formed_with_control_characters_in_versions(tmp_path):
    rule = parse_assert("p99 < 1s")
    report = CheckReport([CheckResult(rule, "v\x00\x07<&>", "v", "fail", 2.0e3, "2,000 ms")], False)
    path = tmp_path / "j.xml"
    ci.write_junit(report, path)
    case = ET.parse(path).getroot().find("testsuite/testcase")
    assert case.get("name") == "p99 < 1s [v\\x00\\x07<&>]"


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text("old")
    ci.write_atomic(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]


def test_write_atomic_when_the_folder_cannot_exist_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        ci.write_atomic(blocker / "junit.xml", b"data")  # parent is a file


def test_write_atomic_failure_keeps_the_old_report_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "junit.xml"
    target.write_text("previous report")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(InputError, match="No space left on device"):
        ci.write_atomic(target, b"new")
    assert target.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]
