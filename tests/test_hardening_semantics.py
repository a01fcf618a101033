"""Semantic oddities are handled and reported, never crashed on: zero and negative latencies,
latencies as strings with units, times out of order / in the future / jumping back, duplicate
request ids (true duplicate lines counted once; reused ids kept and reported), a summary without
stage events and stage events without a summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlobs_cli.analysis.clock import clock_report
from mlobs_cli.analysis.duplicates import duplicate_report
from mlobs_cli.cli import app


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def line(ts: str, rid: str, latency: object, version: str = "v1", **extra: object) -> str:
    row = {"ts": ts, "event": "prediction", "request_id": rid, "model_version": version,
           "latency_ms": latency, "status": 200, **extra}  # fmt: skip
    return json.dumps(row)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def latency_json(*args: object) -> tuple[dict, str]:
    result = _run("latency", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_zero_negative_and_unit_string_latencies(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.log",
        [
            line("2026-11-26T10:00:00Z", "r1", 0),
            line("2026-11-26T10:00:01Z", "r2", -5),
            line("2026-11-26T10:00:02Z", "r3", "357.8ms"),
            line("2026-11-26T10:00:03Z", "r4", "0.36s"),
            line("2026-11-26T10:00:04Z", "r5", "12 ms"),
            line("2026-11-26T10:00:05Z", "r6", "fast"),
        ],
    )
    doc, err = latency_json(log, "-p", "50,100")
    row = doc["rows"][0]
    assert row["requests"] == 4
    assert row["max_ms"] == 360.0
    assert row["p50_ms"] == pytest.approx(float(np.percentile([0.0, 357.8, 360.0, 12.0], 50)))
    assert doc["skipped"]["by_reason"] == {"negative_latency": 1, "bad_latency": 1}
    assert "negative_latency 1" in err and "bad_latency 1" in err
    slow = json.loads(_run("slow", log, "--top", "10", "--format", "json").stdout)
    assert {r["request_id"]: r["latency_ms"] for r in slow["rows"]}["r1"] == 0.0


def test_times_out_of_order_in_the_future_and_clock_jumps(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.log",
        [
            line("2026-11-26T10:00:00.000Z", "r1", 10),
            line("2026-11-26T10:00:01.000Z", "r2", 20),
            line("2026-11-26T10:00:00.900Z", "r3", 30),  # 100 ms out of order: normal interleaving
            line("2026-11-26T09:00:00Z", "r4", 40),  # the clock jumps back an hour
            line("2099-01-01T00:00:00Z", "r5", 50),  # in the future
            line("2026-11-26T09:00:01Z", "r6", 60),
        ],
    )
    doc, err = latency_json(log)
    assert doc["rows"][0]["requests"] == 6  # times are used as logged, nothing dropped
    assert doc["rows"][0]["max_ms"] == 60.0
    assert "time goes back by more than 1 s 2 time(s)" in err and f"first at {log}:4" in err
    assert f"1 request(s) are timestamped in the future (first at {log}:5)" in err
    schema = json.loads(_run("schema", log, "--format", "json").stdout)
    assert schema["clock"]["out_of_order"] == 3
    assert schema["clock"]["clock_jumps"] == 2
    assert schema["clock"]["in_the_future"] == 1
    # buckets follow the logged times, whatever the order of the lines
    every = json.loads(_run("latency", log, "--every", "1h", "--format", "json").stdout)
    assert sum(r["requests"] for r in every["rows"]) == 6


def test_ordered_logs_get_no_clock_note(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", [line(f"2026-11-26T10:00:{i:02d}Z", f"r{i}", i) for i in range(10)])
    _, err = latency_json(log)
    assert err == ""


def test_true_duplicate_lines_are_counted_once(tmp_path: Path) -> None:
    rows = [line(f"2026-11-26T10:00:{i:02d}Z", f"r{i}", 10 + i) for i in range(20)]
    log = write(tmp_path / "a.log", rows + rows[5:8])  # three lines shipped twice
    doc, err = latency_json(log, "-p", "50")
    assert doc["rows"][0]["requests"] == 20
    assert doc["rows"][0]["p50_ms"] == float(np.percentile(np.arange(10, 30), 50))
    assert "duplicate lines: 3 request summaries (e.g. r5, r6, r7) counted once" in err
    schema = json.loads(_run("schema", log, "--format", "json").stdout)
    assert schema["duplicates"]["true_duplicates"] == 3
    assert schema["duplicates"]["reused_request_ids"] == 0


def test_the_same_file_under_two_names_is_counted_once(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", [line(f"2026-11-26T10:00:{i:02d}Z", f"r{i}", i) for i in range(10)])
    alias = tmp_path / "alias.log"
    alias.symlink_to(log)
    doc, err = latency_json(log, alias)
    assert doc["rows"][0]["requests"] == 10
    assert "10 request summaries" in err


def test_reused_request_ids_are_kept_and_reported(tmp_path: Path) -> None:
    log = write(
        tmp_path / "a.log",
        [
            line("2026-11-26T10:00:00Z", "r1", 10),
            line("2026-11-26T10:00:01Z", "dup", 20),
            line("2026-11-26T10:00:02Z", "dup", 99),  # a different request with the same id
            line("2026-11-26T10:00:03Z", "r3", 30),
        ],
    )
    doc, err = latency_json(log)
    assert doc["rows"][0]["requests"] == 4
    assert "1 request id(s) appear on 2 different summaries (e.g. dup): kept as separate requests" in err
    result = _run("explain", "dup", log, "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["latency_ms"] == 99.0
    assert (
        f"request id dup is on 2 different summaries ({log}:2, {log}:3): explaining the last" in result.stderr
    )
    schema = json.loads(_run("schema", log, "--format", "json").stdout)
    assert schema["duplicates"]["reused_request_ids"] == 1
    assert schema["duplicates"]["summaries_with_reused_ids"] == 2
    table = _run("schema", log)
    shown = " ".join(table.stdout.split())
    assert "Duplicates:" in shown and "1 request ids on different summaries (e.g. dup)" in shown


def test_summary_without_stage_events_can_be_explained(tmp_path: Path) -> None:
    log = write(tmp_path / "a.log", [line(f"2026-11-26T10:00:{i:02d}Z", f"r{i}", 10 + i) for i in range(5)])
    result = _run("explain", "r3", log)
    assert result.exit_code == 0, result.stderr
    assert "no stages were logged for this request (only its summary)" in result.stdout
    doc = json.loads(_run("explain", "r3", log, "--format", "json").stdout)
    assert doc["latency_ms"] == 13.0


def test_stage_events_without_a_summary(tmp_path: Path) -> None:
    def event(ts: str, name: str, rid: str) -> str:
        return json.dumps({"ts": ts, "event": name, "request_id": rid, "model_version": "v1"})

    log = write(
        tmp_path / "a.log",
        [line("2026-11-26T10:00:00Z", "r1", 10)]
        + [
            event("2026-11-26T10:00:01.000Z", "request_received", "orphan"),
            event("2026-11-26T10:00:01.020Z", "features_fetched", "orphan"),
            event("2026-11-26T10:00:01.070Z", "response_sent", "orphan"),
        ],
    )
    result = _run("explain", "orphan", log, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["latency_ms"] == pytest.approx(70.0)
    stages = json.loads(_run("latency", log, "--format", "json").stdout)
    assert stages["rows"][0]["requests"] == 1  # the request summary only: nothing invented
    pair = [
        event("2026-11-26T10:00:01Z", "request_received", "x"),
        event("2026-11-26T10:00:02Z", "response_sent", "x"),
    ]
    only_events = write(tmp_path / "b.log", pair)
    doc, _ = latency_json(only_events)
    assert doc["rows"][0]["requests"] == 1 and doc["rows"][0]["max_ms"] == 1000.0


# ---- the pure functions behind the notes --------------------------------------------------------


def _frame(
    ts: list[str], ids: list[str | None], lat: list[float], source: list[str] | None = None
) -> pd.DataFrame:
    n = len(ts)
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(ts, utc=True),
            "request_id": pd.Series(ids, dtype=object),
            "trace_id": pd.Series([None] * n, dtype=object),
            "model_version": pd.Categorical(["v1"] * n),
            "latency_ms": np.asarray(lat, dtype=np.float64),
            "inference_ms": np.full(n, np.nan),
            "status": pd.array([200] * n, dtype="Int64"),
            "error": np.zeros(n, dtype=bool),
            "source": pd.Categorical(source or ["a.log"] * n),
            "line": np.arange(1, n + 1, dtype=np.int64),
            "predictions": pd.Series([["x"]] * n, dtype=object),  # unhashable values are fine
        }
    )


def test_duplicate_report_separates_copies_from_reused_ids() -> None:
    t = "2026-11-26T10:00:00Z"
    frame = _frame([t, t, t, t, t], ["a", "a", "b", "b", None], [1, 1, 2, 3, 4], ["x", "y", "x", "x", "x"])
    report, mask, _, _ = duplicate_report(frame)
    assert mask.tolist() == [False, True, False, False, False]  # the copy of "a" from another file
    assert report.true_duplicates == 1 and report.reused_ids == 1 and report.reused_rows == 2
    assert report.examples_reused == ["b"]


def test_clock_report_judges_order_within_each_source() -> None:
    frame = _frame(
        ["2026-11-26T10:00:05Z", "2026-11-26T10:00:00Z", "2026-11-26T10:00:01Z", "2026-11-26T10:00:00Z"],
        ["a", "b", "c", "d"],
        [1, 2, 3, 4],
        ["host1", "host2", "host1", "host2"],
    )
    report = clock_report(frame, now=pd.Timestamp("2026-11-26T12:00:00Z"))
    assert report.out_of_order == 1 and report.clock_jumps == 1 and report.largest_step_back_s == 4.0
    assert report.first_jump == "host1:3" and report.future == 0
    later = clock_report(frame, now=pd.Timestamp("2026-11-26T09:00:00Z"))
    assert later.future == 4 and later.first_future == "host1:1"
