"""`mlobs latency` as a user runs it, on logs written by structlog, python-json-logger and the OTel SDK."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.logs_from_libraries import write_console_spans, write_python_json_logger, write_structlog

PS = [50, 90, 95, 99]


def make_requests(n: int = 300, seed: int = 4) -> list[dict]:
    rng = np.random.default_rng(seed)
    versions = rng.choice(["v2.0", "v2.1", "v1.9"], n)
    latency = np.round(rng.lognormal(3.5, 0.5, n), 3)
    latency[versions == "v2.1"] *= 1.5
    status = rng.choice([200, 200, 200, 200, 200, 200, 200, 503], n)
    return [
        {
            "request_id": f"req-{i}",
            "model_version": str(versions[i]),
            "latency_ms": float(latency[i]),
            "inference_ms": float(np.round(latency[i] * 0.6, 3)),
            "status": int(status[i]),
            "user_id": f"user_{i % 7}",
        }
        for i in range(n)
    ]


def expected_rows(requests: list[dict], *, status: str = "all", metric: str = "latency_ms") -> dict:
    """Per version, computed independently with numpy from the requests we logged."""
    out = {}
    for version in sorted({r["model_version"] for r in requests}):
        group = [r for r in requests if r["model_version"] == version]
        errors = sum(r["status"] >= 500 for r in group)
        chosen = [r[metric] for r in group if status == "all" or (r["status"] >= 500) == (status == "error")]
        values = np.array(chosen, dtype=float)
        out[version] = {
            "requests": len(group),
            "errors": errors,
            "error_rate": errors / len(group),
            "mean_ms": float(values.mean()),
            **{f"p{q}_ms": float(v) for q, v in zip(PS, np.percentile(values, PS))},
            "max_ms": float(values.max()),
        }
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, list[dict]]:
    requests = make_requests()
    path = tmp_path_factory.mktemp("logs") / "structlog.log"
    write_structlog(path, requests)
    return path, requests


def run_json(run_cli, *args) -> dict:
    result = run_cli("latency", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_rows_match_numpy_on_structlog_logs(run_cli, logged):
    path, requests = logged
    doc = run_json(run_cli, path, "--by-version")
    assert doc["skipped"] == {"total": 0, "by_reason": {}}
    expected = expected_rows(requests)
    assert [r["model_version"] for r in doc["rows"]] == sorted(expected)
    for row in doc["rows"]:
        want = expected[row["model_version"]]
        assert list(row) == [
            "model_version", "requests", "errors", "error_rate", "rate_per_s", "mean_ms",
            "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
        ]  # fmt: skip
        for key, value in want.items():
            if key == "mean_ms":
                assert row[key] == pytest.approx(value, rel=1e-12)
            else:
                assert row[key] == value, key  # percentiles exact, as numpy computes them
        assert row["rate_per_s"] > 0
    assert sum(r["requests"] for r in doc["rows"]) == len(requests)


def test_rate_is_requests_over_the_versions_time_span(run_cli, logged):
    path, _ = logged
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    summaries = [rec for rec in lines if rec["event"] == "prediction" and rec["model_version"] == "v2.0"]
    import pandas as pd

    ts = pd.to_datetime([rec["timestamp"] for rec in summaries], utc=True)
    span = (ts.max() - ts.min()).total_seconds()
    doc = run_json(run_cli, path, "-p", "50")
    row = next(r for r in doc["rows"] if r["model_version"] == "v2.0")
    assert row["rate_per_s"] == pytest.approx(len(summaries) / span, rel=1e-9)


def test_python_json_logger_seconds_give_the_same_table(run_cli, logged, tmp_path):
    path, requests = logged
    other = write_python_json_logger(tmp_path / "pjl.log", requests)
    a = run_json(run_cli, path)["rows"]
    b = run_json(run_cli, other)["rows"]
    assert [r["model_version"] for r in a] == [r["model_version"] for r in b]
    for ra, rb in zip(a, b):
        assert ra["requests"] == rb["requests"] and ra["errors"] == rb["errors"]
        for key in ("mean_ms", "p50_ms", "p99_ms", "max_ms"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-9)


def test_docker_wrapped_lines_give_the_same_table(run_cli, logged, tmp_path):
    path, _ = logged
    wrapped = tmp_path / "container-json.log"
    with wrapped.open("w") as fh:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            fh.write(json.dumps({"log": line + "\n", "stream": "stdout", "time": rec["timestamp"]}) + "\n")
    assert run_json(run_cli, wrapped)["rows"] == run_json(run_cli, path)["rows"]


def test_csv_and_ndjson_carry_the_json_rows(run_cli, logged):
    path, _ = logged
    rows = run_json(run_cli, path)["rows"]
    nd = run_cli("latency", path, "--format", "ndjson")
    assert nd.exit_code == 0
    assert [json.loads(line) for line in nd.stdout.splitlines()] == rows
    result = run_cli("latency", path, "--format", "csv")
    assert result.exit_code == 0
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(parsed[0]) == list(rows[0])
    for got, want in zip(parsed, rows):
        assert got["model_version"] == want["model_version"]
        assert int(got["requests"]) == want["requests"]
        assert float(got["p99_ms"]) == want["p99_ms"]


def test_markdown_is_a_pasteable_table(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model_version"))
    assert lines[header + 1].startswith("|---|---:|")
    assert [line.split("|")[1].strip() for line in lines[header + 2 : header + 5]] == ["v1.9", "v2.0", "v2.1"]


def test_human_table_has_versions_and_flags_small_samples(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "-p", "50,99.9")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "latency_ms of all requests by model_version; latencies in ms" in out
    for version in ("v1.9", "v2.0", "v2.1"):
        assert version in out
    assert "p99.9 needs 1,000" in out  # ~100 requests per version is too few for p99.9
    assert out.count("*") >= 3


def test_every_buckets_sum_to_the_version_counts(run_cli, logged):
    path, requests = logged
    doc = run_json(run_cli, path, "--every", "100ms")
    rows = doc["rows"]
    assert list(rows[0])[:2] == ["bucket_start", "model_version"]
    assert all(r["bucket_start"].endswith("Z") for r in rows)
    for version, want in expected_rows(requests).items():
        assert sum(r["requests"] for r in rows if r["model_version"] == version) == want["requests"]


def test_status_ok_and_inference_metric(run_cli, logged):
    path, requests = logged
    rows = run_json(run_cli, path, "--status", "ok", "--metric", "inference_ms")["rows"]
    expected = expected_rows(requests, status="ok", metric="inference_ms")
    for row in rows:
        assert row["p95_ms"] == expected[row["model_version"]]["p95_ms"]
        assert row["requests"] == expected[row["model_version"]]["requests"]


def test_where_filters_and_by_adds_keys(run_cli, logged):
    path, requests = logged
    rows = run_json(
        run_cli, path, "--where", 'user_id in ("user_1", "user_2") and status < 500', "--by", "user_id"
    )["rows"]
    assert list(rows[0])[:2] == ["model_version", "user_id"]
    chosen = [r for r in requests if r["user_id"] in ("user_1", "user_2") and r["status"] < 500]
    assert sum(r["requests"] for r in rows) == len(chosen)
    assert all(r["errors"] == 0 for r in rows)


def test_where_syntax_error_is_exit_2_with_a_caret(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--where", "status >= and x")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "mlobs: error: invalid --where expression: expected a field or a value, found 'and'"
    assert lines[1] == "  status >= and x"
    assert lines[2] == "            ^"
    assert "Traceback" not in result.stderr


def test_where_unknown_field_is_exit_2(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--where", "stauts == 500")
    assert result.exit_code == 2
    assert "unknown field 'stauts'" in result.stderr and "did you mean status?" in result.stderr


def test_baseline_marks_regressions(run_cli, logged):
    path, _ = logged
    rows = run_json(run_cli, path, "--baseline", "v2.0")["rows"]
    by_version = {r["model_version"]: r for r in rows}
    assert by_version["v2.0"]["regressions"] == [] and by_version["v2.0"]["p50_ms_change"] == 0.0
    slow = by_version["v2.1"]  # logged 1.5x slower
    assert slow["p50_ms_change"] == pytest.approx(slow["p50_ms"] / by_version["v2.0"]["p50_ms"] - 1)
    assert "p50_ms" in slow["regressions"]
    table = run_cli("latency", path, "--baseline", "v2.0")
    assert table.exit_code == 0 and "changes against v2.0" in table.stdout


def test_unknown_baseline_is_exit_1_listing_versions(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--baseline", "v9")
    assert result.exit_code == 1
    assert "baseline version 'v9' has no requests here" in result.stderr
    assert "v1.9, v2.0, v2.1" in result.stderr


def test_nothing_matched_is_exit_1(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--where", "latency_ms > 1e9", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rows"] == []
    assert "no requests matched" in result.stderr


def test_since_relative_to_the_newest_request(run_cli, logged):
    path, _ = logged
    everything = sum(r["requests"] for r in run_json(run_cli, path)["rows"])
    recent = sum(r["requests"] for r in run_json(run_cli, path, "--since", "0s")["rows"])
    assert recent == 1 and everything == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "50,abc"], "invalid percentile 'abc'"),
        (["--every", "10"], "has no unit"),
        (["--regression", "lots"], "invalid --regression"),
        (["--since", "yesterday"], "invalid time bound"),
        (["--by", "nope"], "unknown field 'nope'"),
        (["--metric", "nope"], "unknown metric or stage 'nope'"),
        (["--plot", "--format", "json"], "--plot draws for people"),
    ],
)
def test_usage_errors_are_exit_2(run_cli, logged, args, message):
    path, _ = logged
    result = run_cli("latency", path, *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_histogram_and_over_time(run_cli, logged):
    path, _ = logged
    result = run_cli("latency", path, "--plot")
    assert result.exit_code == 0
    assert "latency_ms histogram per model version" in result.stdout
    assert "█" in result.stdout and "▲p50" in result.stdout
    result = run_cli("latency", path, "--plot", "--every", "50ms")
    assert result.exit_code == 0
    assert "p50 per bucket (UTC)" in result.stdout and "p99 per bucket (UTC)" in result.stdout
    assert any("\u2800" < ch <= "\u28ff" for ch in result.stdout)  # braille dots
    assert all(len(line) <= 120 for line in result.stdout.splitlines())


def test_otel_console_spans_root_spans_are_the_requests(run_cli, tmp_path):
    path = write_console_spans(tmp_path / "spans.txt", n=4)
    rows = run_json(run_cli, path)["rows"]
    assert [(r["model_version"], r["requests"]) for r in rows] == [("v2.1", 4)]
    stage = run_json(run_cli, path, "--metric", "model.inference")["rows"][0]
    assert stage["requests"] == 4 and 0 < stage["p50_ms"] < rows[0]["p50_ms"]


def test_hostile_version_strings_are_shown_inert(run_cli, tmp_path):
    path = tmp_path / "evil.log"
    path.write_text(
        json.dumps({"ts": "2026-11-26T10:00:00Z", "model_version": "\x1b[2J[bold red]v3", "latency_ms": 5})
        + "\n"
    )
    result = run_cli("latency", path)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "\\x1b[2J[bold red]v3" in result.stdout
    doc = run_json(run_cli, path)
    assert doc["rows"][0]["model_version"] == "\x1b[2J[bold red]v3"  # machine formats keep the value


EDGE_LINES = [
    '{"ts": "2026-11-26T10:00:05Z", "model_version": "v1", "latency_ms": 30, "status": 200}',
    '{"ts": "2026-11-26T10:00:01Z", "model_version": "v1", "latency_ms": 10, "status": 200}',  # out of order
    '{"model_version": "v1", "latency_ms": 20, "status": 200}',  # no timestamp
    '{"ts": "2026-11-26T10:00:02Z", "model_version": "broken", "latency_ms": 5, "status": 500}',
    '{"ts": "2026-11-26T10:00:03Z", "model_version": "broken", "latency_ms": 7, "error": true}',
    '{"ts": "2026-11-26T10:00:04Z", "latency_ms": 12, "status": 200}',  # no version
]


@pytest.fixture
def edge_log(tmp_path) -> Path:
    path = tmp_path / "edge.log"
    path.write_text("\n".join(EDGE_LINES) + "\n")
    return path


def test_edge_cases_all_errors_no_version_unsorted_and_untimed(run_cli, edge_log):
    rows = {r["model_version"]: r for r in run_json(run_cli, edge_log, "--status", "ok", "-p", "50")["rows"]}
    assert set(rows) == {"broken", "unknown", "v1"}
    broken = rows["broken"]  # every request failed: no successful latency to report
    assert (broken["requests"], broken["errors"], broken["error_rate"]) == (2, 2, 1.0)
    assert broken["p50_ms"] is None and broken["mean_ms"] is None and broken["max_ms"] is None
    assert rows["unknown"]["requests"] == 1 and rows["unknown"]["rate_per_s"] is None
    v1 = rows["v1"]
    assert v1["requests"] == 3 and v1["p50_ms"] == 20.0 and v1["max_ms"] == 30.0
    assert v1["rate_per_s"] == pytest.approx(2 / 4)  # 2 timestamped requests over 4 s
    table = run_cli("latency", edge_log, "--status", "ok")
    assert table.exit_code == 0 and "broken" in table.stdout and "—" in table.stdout


def test_every_leaves_untimed_requests_out_and_says_so(run_cli, edge_log):
    result = run_cli("latency", edge_log, "--every", "1m", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["rows"]
    assert sum(r["requests"] for r in rows) == 5
    assert {r["bucket_start"] for r in rows} == {"2026-11-26T10:00:00.000Z"}
    assert "1 request(s) without a timestamp left out of --every buckets" in result.stderr


def test_reads_stdin(run_cli, edge_log):
    result = run_cli("latency", "-", "--format", "json", "-p", "50", input=edge_log.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert sum(r["requests"] for r in json.loads(result.stdout)["rows"]) == 6


def test_missing_source_is_exit_2(run_cli, tmp_path):
    result = run_cli("latency", tmp_path / "nope.log")
    assert result.exit_code == 2 and result.stdout == ""
    assert "nope.log" in result.stderr


def test_table_snapshot(run_cli, edge_log):
    result = run_cli("latency", edge_log, "-p", "50,99")
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines == [
        "latency_ms of all requests by model_version; latencies in ms",
        "",
        " version  requests  req/s      errors  mean    p50    p99   max",
        " " + "─" * 62,
        " broken          2   2.00  2 (100.0%)   6.0    6.0   7.0*   7.0",
        " unknown         1      —    0 (0.0%)  12.0  12.0*  12.0*  12.0",
        " v1              3   0.50    0 (0.0%)  20.0   20.0  29.8*  30.0",
        "",
        "* fewer samples than the percentile needs (p50 needs 2, p99 needs 100): it is close to the maximum; "
        "read it with care",
    ]
