"""`mlobs check` driven as a user drives it: real structlog logs, exit codes, stdout/stderr apart."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import structlog

from mlobs_cli.analysis.checks import format_value

START = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def write_structlog(
    path,
    *,
    per_version: int = 400,
    versions=("v2.0", "v2.1"),
    slowdown: dict[str, float] | None = None,
    error_every: dict[str, int] | None = None,
    drop_version_every: int = 0,
    seed: int = 11,
) -> dict[str, np.ndarray]:
    """Service logs written by structlog's JSONRenderer, one summary per request, 10 per second.

    Every version gets the same latency draws times its slowdown factor, so a planted slowdown is
    exact at every percentile. Returns the latencies per version.
    """
    rng = np.random.default_rng(seed)
    base = rng.gamma(4.0, 25.0, per_version)
    buf = io.StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(buf), processors=[structlog.processors.JSONRenderer()])
    out = {}
    i = 0
    for v in versions:
        lat = base * (slowdown or {}).get(v, 1.0)
        out[v] = lat
        every = (error_every or {}).get(v, 0)
        for k, ms in enumerate(lat):
            fields = {
                "timestamp": (START + timedelta(milliseconds=100 * i)).isoformat(),
                "request_id": f"req-{i}",
                "model_version": v,
                "latency_ms": float(ms),
                "inference_ms": float(ms) * 0.5,
                "status": 503 if every and k % every == 0 else 200,
            }
            if drop_version_every and i % drop_version_every == 0:
                del fields["model_version"]
            log.info("prediction", **fields)
            i += 1
    path.write_text(buf.getvalue())
    return out


@pytest.fixture
def logs(tmp_path):
    path = tmp_path / "app.log"
    lat = write_structlog(path, slowdown={"v2.1": 1.2}, error_every={"v2.1": 50})
    return path, lat


def as_json(result) -> dict:
    return json.loads(result.stdout)


def test_every_rule_kind_passing_exits_0(run_cli, logs):
    path, lat = logs
    p99 = max(np.percentile(v, 99) for v in lat.values())
    result = run_cli(
        "check", path, "-f", "json",
        "--assert", f"p99 < {p99 + 0.01:.3f}ms",
        "--assert", "p95(inference_ms) < 1s",
        "--assert", "v2.0: p50 < 150ms",
        "--assert", "*: requests >= 800",
        "--assert", "error_rate < 2.5%",
        "--assert", "requests >= 400",
        "--assert", "rate > 9/s",
        "--assert", "skipped < 0.1%",
        "--assert", "mean < 200ms",
        "--assert", "max < 2s",
        "--require", "model_version",
        "--require", "request_id=100%",
        "--baseline", "v2.0", "--max-regression", "p95:25%",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = as_json(result)
    assert doc["passed"] is True and doc["exit_code"] == 0
    assert {r["status"] for r in doc["results"]} == {"PASS"}
    kinds = {r["kind"] for r in doc["results"]}
    assert kinds == {"stat", "stream", "input", "require", "regression"}
    p99_rows = [r for r in doc["results"] if r["rule"].startswith("p99")]
    assert [(r["model_version"], r["observed"]) for r in p99_rows] == [
        ("v2.0", np.percentile(lat["v2.0"], 99)),
        ("v2.1", np.percentile(lat["v2.1"], 99)),
    ]
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "failing"),
    [
        (["--assert", "p99 < 250ms"], [("p99 < 250ms", "v2.1")]),
        (["--assert", "p95(inference_ms) < 100ms"], [("p95(inference_ms) < 100ms", "v2.1")]),
        (["--assert", "v2.0: p50 < 10ms"], [("v2.0: p50 < 10ms", "v2.0")]),
        (["--assert", "error_rate < 1%"], [("error_rate < 1%", "v2.1")]),
        (["--assert", "requests >= 401"], [("requests >= 401", "v2.0"), ("requests >= 401", "v2.1")]),
        (["--assert", "*: requests > 800"], [("*: requests > 800", "all versions")]),
        (["--assert", "rate > 11/s"], [("rate > 11/s", "v2.0"), ("rate > 11/s", "v2.1")]),
        (["--assert", "skipped < 1"], [("skipped < 1", "all lines")]),
        (["--assert", "mean < 110ms"], [("mean < 110ms", "v2.1")]),
        (["--assert", "max < 300ms"], [("max < 300ms", "v2.1")]),
        (["--require", "user_id"], [("user_id", "all versions")]),
        (
            ["--baseline", "v2.0", "--max-regression", "p95:10%"],
            [("p95:10%", "v2.1")],
        ),
    ],
)
def test_each_rule_kind_failing_exits_1(run_cli, tmp_path, args, failing):
    path = tmp_path / "app.log"
    write_structlog(path, slowdown={"v2.1": 1.2}, error_every={"v2.1": 50})
    with path.open("a") as fh:
        fh.write("Traceback (most recent call last):\n")  # one skipped line
    result = run_cli("check", path, "-f", "json", *args)
    assert result.exit_code == 1, result.stderr
    doc = as_json(result)
    assert doc["passed"] is False
    got = [(r["rule"], r["group"]) for r in doc["results"] if r["status"] == "FAIL"]
    assert got == failing


def test_planted_slowdown_is_measured_exactly_per_version(run_cli, logs):
    path, lat = logs
    result = run_cli("check", path, "-f", "json", "--baseline", "v2.0",
                     "--max-regression", "p95:10%", "--max-regression", "p95:25%")  # fmt: skip
    assert result.exit_code == 1
    rows = as_json(result)["results"]
    assert [(r["group"], r["status"]) for r in rows] == [("v2.1", "FAIL"), ("v2.1", "PASS")]
    assert rows[0]["observed"] == pytest.approx(0.20, abs=1e-9)
    assert rows[0]["baseline"] == {
        "source": "version",
        "model_version": "v2.0",
        "value": np.percentile(lat["v2.0"], 95),
    }
    assert rows[0]["observed_text"].startswith("+20.0% (")


def test_baseline_file_compares_version_to_version_else_pooled(run_cli, tmp_path):
    main_logs = tmp_path / "main.jsonl"
    write_structlog(main_logs, versions=("v2.0",))
    branch_logs = tmp_path / "branch.jsonl"
    write_structlog(branch_logs, slowdown={"v2.0": 1.02, "v2.2": 1.3}, versions=("v2.0", "v2.2"))
    result = run_cli("check", branch_logs, "-f", "json",
                     "--baseline-file", main_logs, "--max-regression", "p99:10%")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    rows = as_json(result)["results"]
    assert [(r["group"], r["baseline"]["model_version"], r["status"]) for r in rows] == [
        ("v2.0", "v2.0", "PASS"),
        ("v2.2", None, "FAIL"),
    ]
    assert rows[0]["observed"] == pytest.approx(0.02, abs=1e-9)
    assert rows[1]["observed"] == pytest.approx(0.30, abs=1e-9)
    assert "on all versions in the baseline file" in rows[1]["observed_text"]


def test_table_output_names_the_version_on_every_row(run_cli, logs):
    path, _ = logs
    result = run_cli("check", path, "--assert", "p99 < 250ms", "--assert", "skipped < 1%")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "mlobs check"
    rows = [line for line in lines if line.startswith("│")]
    assert [r.split("│")[2].strip() for r in rows] == ["v2.0", "v2.1", "all lines"]
    assert [r.split("│")[5].strip() for r in rows] == ["PASS", "FAIL", "PASS"]
    assert lines[-1] == "FAILED: 1 of 3 results fail the check"


def test_rule_that_does_not_parse_exits_2_with_a_caret(run_cli, logs, tmp_path):
    path, _ = logs
    report = tmp_path / "junit.xml"
    result = run_cli("check", path, "--assert", "p99 < 250xs", "--junit", report)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "mlobs: error: --assert 'p99 < 250xs' does not parse at column 7: unknown duration unit "
        "'xs' in '250xs' (use a number with a unit: 250ms, 10s, 1.5s, 5m, 1min, 1h, 2d (or 1h30m))",
        "  p99 < 250xs",
        "        ^^^^^",
    ]
    assert not report.exists()


def test_rules_file_with_a_typo_exits_2_naming_the_key(run_cli, logs):
    path, _ = logs
    with open("mlobs.toml", "w") as fh:
        fh.write('[check]\n[[check.rules]]\nasert = "p99 < 250ms"\n')
    result = run_cli("check", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "mlobs: error: mlobs.toml: unknown key 'asert' in check.rules[1] (did you mean 'assert'?)\n"
    )


def test_rules_file_rule_that_does_not_parse_names_the_file_and_rule(run_cli, logs):
    path, _ = logs
    with open("mlobs.toml", "w") as fh:
        fh.write('[[check.rules]]\nassert = "p99 < 250ms"\n[[check.rules]]\nassert = "p99 <"\n')
    result = run_cli("check", path)
    assert result.exit_code == 2
    first, src, caret = result.stderr.splitlines()
    assert first.startswith("mlobs: error: mlobs.toml: check.rules[2].assert 'p99 <' does not parse")
    assert (src, caret) == ("  p99 <", "       ^")


def test_rules_from_pyproject_with_warn_severity_and_flags_added(run_cli, logs):
    path, _ = logs
    with open("pyproject.toml", "w") as fh:
        fh.write(
            '[project]\nname = "svc"\n\n'
            "[tool.mlobs.check]\n"
            "[[tool.mlobs.check.rules]]\n"
            'assert = "p99 < 250ms"\nseverity = "warn"\n'
        )
    result = run_cli("check", path, "-f", "json")
    assert result.exit_code == 0, result.stderr  # a warning never changes the exit code
    rows = as_json(result)["results"]
    assert [(r["group"], r["status"], r["origin"]) for r in rows] == [
        ("v2.0", "PASS", "pyproject.toml: check.rules[1].assert"),
        ("v2.1", "WARN", "pyproject.toml: check.rules[1].assert"),
    ]
    result = run_cli("check", path, "-f", "json", "--assert", "error_rate < 1%")
    assert result.exit_code == 1
    assert [r["status"] for r in as_json(result)["results"]] == ["PASS", "WARN", "PASS", "FAIL"]


def test_config_flag_and_allow_missing_from_the_file(run_cli, logs, tmp_path):
    path, _ = logs
    cfg = tmp_path / "ci-rules.toml"
    cfg.write_text('[check]\nallow_missing = true\n[[check.rules]]\nassert = "v3.0: p99 < 1s"\n')
    result = run_cli("check", path, "--config", cfg, "-f", "json")
    assert result.exit_code == 0
    (row,) = as_json(result)["results"]
    assert (row["status"], row["fails_run"]) == ("NO DATA", False)
    assert row["observed_text"] == "version not in the logs (seen: v2.0, v2.1)"
    result = run_cli("check", path, "--config", cfg, "--no-allow-missing")
    assert result.exit_code == 1


def test_no_data_fails_by_default_and_passes_with_allow_missing(run_cli, logs):
    path, _ = logs
    args = ["check", path, "--assert", "p99(queue_ms) < 10ms", "-f", "json"]
    result = run_cli(*args)
    assert result.exit_code == 1
    assert {r["observed_text"] for r in as_json(result)["results"]} == {"field queue_ms is not in the logs"}
    assert run_cli(*args, "--allow-missing").exit_code == 0


def test_junit_report_is_written_and_parses(run_cli, logs, tmp_path):
    path, lat = logs
    report = tmp_path / "out" / "junit.xml"
    result = run_cli("check", path, "--assert", "p99 < 250ms", "--require", "request_id",
                     "--junit", report)  # fmt: skip
    assert result.exit_code == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["p99 < 250ms [v2.0]", "p99 < 250ms [v2.1]", "request_id [all versions]"]
    failure = suite.findall("testcase")[1].find("failure")
    observed = format_value(np.percentile(lat["v2.1"], 99), "ms")
    assert observed == f"{np.percentile(lat['v2.1'], 99):,.1f} ms".replace(".0 ms", " ms")
    assert failure.get("message") == f"observed {observed}, threshold < 250ms (v2.1, 400 samples)"


def test_github_actions_annotations_on_stderr_and_job_summary(run_cli, logs, tmp_path, monkeypatch):
    path, _ = logs
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("check", path, "-f", "json", "--assert", "p99 < 250ms",
                     "--assert", "error_rate < 1%")  # fmt: skip
    assert result.exit_code == 1
    doc = as_json(result)  # stdout is pure JSON: annotations never mix into it
    assert doc["counts"]["failing"] == 2
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert len(annotations) == 2
    assert annotations[0].startswith("::error title=mlobs check FAIL%3A p99 < 250ms [v2.1]::")
    assert annotations[1].startswith("::error title=mlobs check FAIL%3A error_rate < 1%25 [v2.1]::")
    text = summary.read_text()
    assert text.startswith("### mlobs check: FAILED\n")
    assert "| p99 &lt; 250ms | v2.1 |" in text


def test_without_github_actions_there_are_no_annotations(run_cli, logs, tmp_path, monkeypatch):
    path, _ = logs
    summary = tmp_path / "s.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("check", path, "--assert", "p99 < 250ms")
    assert "::error" not in result.stderr and not summary.exists()


def test_requests_without_a_version_are_named_and_left_out_of_per_version_rows(run_cli, tmp_path):
    path = tmp_path / "app.log"
    write_structlog(path, drop_version_every=100)
    result = run_cli("check", path, "-f", "json", "--assert", "p99 < 1s",
                     "--require", "model_version=99%")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = as_json(result)
    assert [r["group"] for r in doc["results"]] == ["v2.0", "v2.1", "all versions"]
    assert doc["unversioned_requests"] == 8
    assert doc["results"][2]["observed"] == pytest.approx(792 / 800)
    assert "8 requests without a model version left out of per-version results" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no rules to check"),
        (["--max-regression", "p95:10%"], "a regression limit needs a baseline"),
        (["--baseline", "v2.0", "--assert", "p99 < 1s"], "a baseline needs at least one regression"),
        (["--assert", "p99 < 1s", "--junit", "{tmp}/file/x.xml"], "cannot write"),
    ],
)
def test_unusable_rules_or_options_exit_2(run_cli, logs, tmp_path, args, message):
    path, _ = logs
    (tmp_path / "file").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli("check", path, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_log_file_exits_2(run_cli, tmp_path):
    result = run_cli("check", tmp_path / "nope.log", "--assert", "p99 < 1s")
    assert result.exit_code == 2
    assert result.stderr.startswith("mlobs: error: ")


def test_empty_logs_give_no_data_and_exit_1(run_cli, tmp_path):
    path = tmp_path / "empty.log"
    path.write_text("")
    result = run_cli("check", path, "-f", "json", "--assert", "p99 < 1s")
    assert result.exit_code == 1
    (row,) = as_json(result)["results"]
    assert (row["status"], row["observed_text"]) == ("NO DATA", "no request summaries in the logs")


def test_simulated_logs_with_v21_planted_20_percent_slower_at_p95(run_cli, tmp_path):
    path = tmp_path / "sim.jsonl"
    made = run_cli("simulate", "--requests", "4000", "--seed", "7",
                   "--latency", "v2.1=uniform:50:200", "--slowdown", "v2.1:20%", "-o", path)  # fmt: skip
    assert made.exit_code == 0, made.stderr
    lat: dict[str, list[float]] = {"v2.0": [], "v2.1": []}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "latency_ms" in rec:
            lat[rec["model_version"]].append(rec["latency_ms"])
    p95 = {v: np.percentile(np.array(x), 95) for v, x in lat.items()}
    expected = p95["v2.1"] / p95["v2.0"] - 1

    result = run_cli("check", path, "-f", "json", "--baseline", "v2.0",
                     "--max-regression", "p95:10%")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    (row,) = as_json(result)["results"]
    assert (row["group"], row["status"]) == ("v2.1", "FAIL")
    assert row["observed"] == pytest.approx(expected, rel=1e-12)
    assert 0.15 < row["observed"] < 0.25  # the planted 20% (on inference) shows at p95
    relaxed = run_cli("check", path, "--baseline", "v2.0", "--max-regression", "p95:30%")
    assert relaxed.exit_code == 0, relaxed.stdout


def test_ndjson_csv_and_markdown_carry_the_same_results(run_cli, logs):
    path, _ = logs
    args = ["check", path, "--assert", "p99 < 250ms"]
    nd = run_cli(*args, "-f", "ndjson")
    assert nd.exit_code == 1
    rows = [json.loads(line) for line in nd.stdout.splitlines()]
    assert [(r["model_version"], r["status"]) for r in rows] == [("v2.0", "PASS"), ("v2.1", "FAIL")]
    csv_out = run_cli(*args, "-f", "csv").stdout.splitlines()
    assert csv_out[0].startswith("rule,origin,kind,severity,group,model_version,")
    assert len(csv_out) == 3
    md = run_cli(*args, "-f", "markdown").stdout.splitlines()
    assert md[0] == "| rule | group | observed | threshold | status |"
    assert md[3].startswith("| p99 < 250ms | v2.1 | ") and md[3].endswith(" | < 250ms | FAIL |")


def test_unusable_input_in_github_actions_is_an_annotation_too(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("check", tmp_path / "nope.log", "--assert", "p99 < 1s")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("::error title=mlobs check error::")
    assert "nope.log" in lines[0]
    assert lines[1].startswith("mlobs: error: ")
    bad = run_cli("check", tmp_path / "nope.log", "--assert", "p99 << 1s")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("::error title=mlobs check error::--assert 'p99 << 1s' does not parse")


def test_forecast_rule_fails_the_drifting_version_only(run_cli, tmp_path):
    """`forecast(p50, 2h)` uses mlobs forecast's Theil-Sen projection, per version."""
    log = tmp_path / "drift.jsonl"
    made = run_cli(
        "simulate",
        "--requests",
        "12000",
        "--rate",
        "2",
        "--seed",
        "3",
        "--no-stages",
        "--drift",
        "v2.1:+60ms/h",
        "-o",
        log,
    )
    assert made.exit_code == 0, made.stderr
    result = run_cli("check", log, "--assert", "forecast(p50, 2h) < 250ms", "--format", "json")
    assert result.exit_code == 1, result.stderr
    rows = {r["group"]: r for r in json.loads(result.stdout)["results"]}
    assert rows["v2.0"]["status"] == "PASS"
    assert rows["v2.1"]["status"] == "FAIL"
    # v2.1 median ~90 ms at the start, +60 ms/h over ~1.7 h of logs, then 2 h more
    assert 250 < rows["v2.1"]["observed"] < 400
