"""`mlobs explain` driven as a user does, on logs written by structlog and the OpenTelemetry SDK."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests._service_logs import otel_spans, structlog_service, write_console, write_otlp_json


def _service(n: int = 40) -> list[dict]:
    """v2.1 fetches features in exactly 2.0 ms, v2.2 in 3.0 ms; req-slow (v2.1) waits 63.1 ms."""
    reqs = []
    for i in range(n):
        version = "v2.1" if i % 2 else "v2.2"
        reqs.append({"id": f"req-{i:03d}", "version": version,
                     "fetch": 2.0 if version == "v2.1" else 3.0,
                     "infer": 10.0 + (i % 7), "respond": 0.5, "user_id": f"u{i % 5}"})  # fmt: skip
    reqs.insert(17, {"id": "req-slow", "version": "v2.1", "fetch": 63.1, "infer": 12.0,
                     "respond": 0.5, "user_id": "u9"})  # fmt: skip
    # req-mixed: inference takes longest but is near its median; the feature fetch is the outlier
    reqs.append({"id": "req-mixed", "version": "v2.1", "fetch": 15.0, "infer": 18.0, "respond": 0.5})
    reqs.append({"id": "req-fail", "version": "v2.2", "fetch": 3.0, "infer": 4.0,
                 "respond": 0.2, "failed": True})  # fmt: skip
    return reqs


@pytest.fixture
def app_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "app.log"
    structlog_service(path, monkeypatch, _service())
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_milestone_timeline_in_context_of_its_version(run_cli, app_log: Path) -> None:
    doc = _json(run_cli("explain", "req-slow", app_log, "--format", "json"))
    assert doc["request_id"] == "req-slow" and doc["model_version"] == "v2.1"
    assert doc["status"] == 200
    assert doc["latency_ms"] == pytest.approx(63.1 + 12.0 + 0.5)
    stages = doc["stages"]
    assert [s["name"] for s in stages] == ["feature fetch", "inference", "response"]
    assert [s["start_offset_ms"] for s in stages] == pytest.approx([0.0, 63.1, 75.1])
    assert [s["duration_ms"] for s in stages] == pytest.approx([63.1, 12.0, 0.5])
    assert [s["self_ms"] for s in stages] == pytest.approx([63.1, 12.0, 0.5])
    assert all(s["on_critical_path"] for s in stages)
    assert stages[0]["version_median_ms"] == pytest.approx(2.0)  # v2.1's median, not v2.2's 3.0
    assert doc["dominant_stage"] == "feature fetch"
    # percentile rank among v2.1 requests: the share at or below this latency
    lines = [json.loads(x) for x in app_log.read_text().splitlines()]
    v21 = np.array([x["latency_ms"] for x in lines
                    if x["event"] == "request" and x["model_version"] == "v2.1"])  # fmt: skip
    assert doc["percentile_rank"] == pytest.approx((v21 <= doc["latency_ms"]).mean() * 100)
    assert [e["kind"] for e in doc["events"]] == ["milestone"] * 4 + ["summary"]
    assert doc["fields"]["user_id"] == "u9"


def test_waterfall_names_the_dominant_stage_against_the_version_median(run_cli, app_log) -> None:
    result = run_cli("explain", "req-slow", app_log)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "feature fetch 63.1 ms, 32x the v2.1 median of 2.0 ms" in out
    verdict = [ln for ln in out.splitlines() if ln.startswith("verdict:")]
    assert verdict == [
        "verdict: slow in feature fetch: 63.1 ms (83% of 75.6 ms), 32x the v2.1 median of 2.0 ms"
    ]
    assert "percentile rank 100.0 among 22 v2.1 requests" in out
    assert "█" in out and result.stderr == ""


def test_failed_inference_is_an_error_stage(run_cli, app_log: Path) -> None:
    doc = _json(run_cli("explain", "req-fail", app_log, "-f", "json"))
    assert doc["status"] == 500 and doc["error"] is True
    assert [(s["name"], s["error"]) for s in doc["stages"]] == [
        ("feature fetch", False), ("inference", True), ("response", False)]  # fmt: skip


def test_prefix_lookup_ambiguous_and_not_found(run_cli, app_log: Path) -> None:
    assert _json(run_cli("explain", "req-sl", app_log, "-f", "json"))["request_id"] == "req-slow"
    result = run_cli("explain", "req-00", app_log)
    assert result.exit_code == 1 and result.stdout == ""
    assert "'req-00' is ambiguous: 10 requests match: req-000, req-001" in result.stderr
    assert "give more characters" in result.stderr
    result = run_cli("explain", "nope", app_log)
    assert result.exit_code == 1 and result.stdout == ""
    lines = len(app_log.read_text().splitlines())
    assert f"no request or trace id starts with 'nope' in {lines:,} events searched" in (result.stderr)


def test_raw_lines_are_the_requests_own_and_inert(run_cli, tmp_path, monkeypatch) -> None:
    path = tmp_path / "evil.log"
    structlog_service(path, monkeypatch, [
        {"id": "[red]evil[/red]", "version": "v1", "fetch": 1.0, "infer": 2.0, "respond": 0.1,
         "note": "\x1b]52;c;cGF5bG9hZA==\x07"},
        {"id": "other", "version": "v1", "fetch": 1.0, "infer": 2.0, "respond": 0.1},
    ])  # fmt: skip
    result = run_cli("explain", "[red]evil", path, "--raw")
    assert result.exit_code == 0, result.stderr
    assert "request [red]evil[/red]" in result.stdout
    raw = result.stdout.split("raw log lines\n", 1)[1].splitlines()
    assert [ln.split(": ", 1)[0].rsplit(":", 1)[1] for ln in raw] == ["1", "2", "3", "4", "5"]
    assert all('"request_id": "[red]evil[/red]"' in ln for ln in raw)
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "note=\\x1b]52;c;cGF5bG9hZA==\\x07" in result.stdout  # the decoded value, escaped
    doc = _json(run_cli("explain", "[red]evil", path, "--raw", "-f", "json"))
    assert json.loads(doc["events"][0]["raw"])["event"] == "request_received"


def test_raw_from_stdin_says_it_cannot_reread(run_cli, app_log: Path) -> None:
    result = run_cli("explain", "req-slow", "-", "--raw", input=app_log.read_bytes())
    assert result.exit_code == 0
    assert "raw lines of -: raw lines from stdin cannot be re-read" in result.stderr
    assert "-:86: (not re-read)" in result.stdout


def test_unsupported_format_is_a_usage_error(run_cli, app_log: Path) -> None:
    result = run_cli("explain", "req-slow", app_log, "--format", "csv")
    assert result.exit_code == 2 and "table or json" in result.stderr


# --- OpenTelemetry spans -------------------------------------------------------------------

TREE = [
    ("POST /predict", None, 0, 100,
     {"request_id": "otel-1", "model.version": "v3", "http.response.status_code": 200}),
    ("feature fetch", "POST /predict", 5, 45, {}),
    ("embedding lookup", "POST /predict", 10, 60, {}),  # parallel with feature fetch
    ("inference", "POST /predict", 62, 95, {"error": True}),
    ("tokenize", "inference", 63, 70, {}),
]  # fmt: skip


@pytest.mark.parametrize("writer", [write_console, write_otlp_json], ids=["console", "otlp"])
def test_span_waterfall_self_time_and_critical_path(run_cli, tmp_path: Path, writer) -> None:
    path = tmp_path / "spans.json"
    writer(path, otel_spans(TREE))
    doc = _json(run_cli("explain", "otel-1", path, "-f", "json"))
    got = {s["name"]: s for s in doc["stages"]}
    approx = lambda v: pytest.approx(v, abs=1e-3)  # noqa: E731 - epoch ns pass through float64 upstream
    assert [s["name"] for s in doc["stages"]] == ["POST /predict", "feature fetch",
                                                  "embedding lookup", "inference", "tokenize"]  # fmt: skip
    assert got["POST /predict"]["self_ms"] == approx(100 - 55 - 33)  # union, not sum
    assert got["inference"]["self_ms"] == approx(33 - 7)
    assert {n: s["on_critical_path"] for n, s in got.items()} == {
        "POST /predict": True, "feature fetch": False, "embedding lookup": True,
        "inference": True, "tokenize": True}  # fmt: skip
    assert got["inference"]["error"] is True and got["tokenize"]["depth"] == 2
    assert [s["start_offset_ms"] for s in doc["stages"]] == approx([0, 5, 10, 62, 63])
    assert doc["dominant_stage"] == "embedding lookup"
    assert doc["model_version"] == "v3" and doc["latency_ms"] == approx(100)
    # the trace id works too, with the 0x that ConsoleSpanExporter prints
    again = _json(run_cli("explain", "0x" + doc["trace_id"][:10], path, "-f", "json"))
    assert again["stages"] == doc["stages"]


def test_stage_duration_lines_without_trace_ids(run_cli, tmp_path: Path) -> None:
    # The seed service's own shape: a stage line carries its duration in seconds and ends at its time.
    lines = [
        {"timestamp": "2026-11-26T10:00:00.020Z", "request_id": "s-1", "model_version": "v1",
         "stage": "feature_fetch", "duration": 0.015},
        {"timestamp": "2026-11-26T10:00:00.031Z", "request_id": "s-1", "model_version": "v1",
         "stage": "model_inference", "duration": 0.011},
        {"timestamp": "2026-11-26T10:00:00.032Z", "request_id": "s-1", "model_version": "v1",
         "latency_ms": 30.0, "status": 200},
        {"timestamp": "2026-11-26T10:00:01.020Z", "request_id": "s-2", "model_version": "v1",
         "stage": "feature_fetch", "duration": 0.002},
        {"timestamp": "2026-11-26T10:00:01.032Z", "request_id": "s-2", "model_version": "v1",
         "latency_ms": 14.0, "status": 200},
    ]  # fmt: skip
    path = tmp_path / "stages.log"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    doc = _json(run_cli("explain", "s-1", path, "-f", "json"))
    assert [(s["name"], s["start_offset_ms"], s["duration_ms"]) for s in doc["stages"]] == [
        ("feature_fetch", pytest.approx(3.0), pytest.approx(15.0)),
        ("model_inference", pytest.approx(18.0), pytest.approx(11.0)),
    ]
    assert doc["stages"][0]["version_median_ms"] == pytest.approx((15.0 + 2.0) / 2)
    assert doc["dominant_stage"] == "feature_fetch"


WATERFALL = """\
request otel-1  trace TRACE
at 2026-11-18T11:06:40.100Z  model v3  status 200
latency 100.0 ms  percentile rank 100.0 among 1 v3 requests
name=POST /predict
  stage                offset  duration     self  share  0 … 100.0 ms                        vs v3 median
* POST /predict        0.0 ms  100.0 ms  12.0 ms   100%  ██████████████████████████████████  1.0x of 100.0 ms
    feature fetch      5.0 ms   40.0 ms  40.0 ms    40%   ░░░░░░░░░░░░░░░                    1.0x of 40.0 ms
*   embedding lookup  10.0 ms   50.0 ms  50.0 ms    50%     ██████████████████               1.0x of 50.0 ms
*   inference         62.0 ms   33.0 ms  26.0 ms    33%                       ████████████   1.0x of 33.0 ms
*     tokenize        63.0 ms    7.0 ms   7.0 ms     7%                       ███            1.0x of 7.0 ms
* critical path (█); ░ off the path
verdict: embedding lookup dominates with 50.0 ms (50% of 100.0 ms), usual for v3 (median 50.0 ms)
"""


def test_waterfall_snapshot_at_120_columns(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    write_console(path, otel_spans(TREE))
    result = run_cli("explain", "otel-1", path)
    assert result.exit_code == 0, result.stderr
    text = "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"
    assert re.sub(r"trace [0-9a-f]{32}", "trace TRACE", text) == WATERFALL


def test_dominant_stage_is_the_outlier_not_the_longest(run_cli, app_log: Path) -> None:
    doc = _json(run_cli("explain", "req-mixed", app_log, "-f", "json"))
    got = {s["name"]: s for s in doc["stages"]}
    fetch, infer = got["feature fetch"], got["inference"]
    assert infer["self_ms"] > fetch["self_ms"]
    assert infer["self_ms"] < 1.5 * infer["version_self_median_ms"]  # usual for v2.1
    assert fetch["self_ms"] >= 1.5 * fetch["version_self_median_ms"]  # 7.5x its median
    assert doc["dominant_stage"] == "feature fetch"
    text = run_cli("explain", "req-mixed", app_log).stdout
    assert "verdict: slow in feature fetch: 15.0 ms (45% of 33.5 ms), 7.5x the v2.1 median of 2.0 ms" in text
    # `mlobs slow` names the same stage for the same request
    rows = _json(run_cli("slow", app_log, "--top", "50", "-f", "json"))["rows"]
    assert {r["request_id"]: r["dominant_stage"] for r in rows}["req-mixed"] == "feature fetch"


def test_usual_request_names_the_longest_stage(run_cli, app_log: Path) -> None:
    text = run_cli("explain", "req-003", app_log).stdout
    verdict = [ln for ln in text.splitlines() if ln.startswith("verdict:")]
    assert verdict == ["verdict: inference dominates with 13.0 ms (84% of 15.5 ms), usual for v2.1 "
                       "(median 13.0 ms)"]  # fmt: skip


def test_summary_only_request_without_time(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "only.log"
    rows = [{"request_id": "only", "latency_ms": 12.5, "model_version": "v1", "status": 200},
            {"request_id": "other", "latency_ms": 10, "model_version": "v1", "status": 200}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("explain", "only", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "request only",
        "model v1  status 200",
        "latency 12.5 ms  percentile rank 100.0 among 2 v1 requests",
        "verdict: no stages were logged for this request (only its summary)",
    ]
    doc = _json(run_cli("explain", "only", path, "-f", "json"))
    assert doc["stages"] == [] and doc["dominant_stage"] is None and doc["ts"] is None
    assert doc["percentile_rank"] == 100.0
