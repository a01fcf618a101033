"""`mlobs tail` driven as a user drives it: a writer process, rotation, truncation, stdin, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from tests.logs_from_libraries import write_structlog

REPO = Path(__file__).resolve().parents[1]
WRITER = REPO / "tests" / "tail_writer.py"


def mlobs(*args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "mlobs_cli", *args],
        stdout=stdout, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def structlog_requests(n: int, *, slow_every: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "request_id": f"req-{i}",
                "model_version": "v2.1" if i % 4 == 0 else "v2.0",
                "latency_ms": 900.0 if slow_every and i % slow_every == 0 else 20.0 + (i * 13) % 80,
                "inference_ms": 10.0,
                "status": 503 if i % 10 == 0 else 200,
            }
        )
    return out


def test_writer_process_through_rotation_and_truncation_counts_every_request_once(tmp_path):
    """The file appears late, rotates by rename (RotatingFileHandler), then is copy-truncated."""
    log = tmp_path / "predict.log"
    total = 600
    out_file = open(tmp_path / "out.ndjson", "wb")  # a pipe nobody reads would stall tail
    tail = mlobs(
        "tail", str(log), "--format", "ndjson", "--events", "--duration", "4s",
        "--refresh", "250ms", "--window", "10m", stdout=out_file,
    )  # fmt: skip
    assert b"does not exist yet" in tail.stderr.readline()  # tail is waiting for the file
    writer = subprocess.run(
        [sys.executable, str(WRITER), str(log), str(total), "400", "450"], timeout=30, check=True
    )
    assert writer.returncode == 0
    _, err = tail.communicate(timeout=30)
    out_file.close()
    assert tail.returncode == 0, err
    docs = ndjson((tmp_path / "out.ndjson").read_text())
    ids = [d["request_id"] for d in docs if d["type"] == "request"]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(total))  # each exactly once
    assert len(ids) == len(set(ids))
    final = docs[-1]
    assert final["type"] == "snapshot" and final["final"] is True
    assert final["requests_total"] == total
    assert final["totals"] == {"v1": {"requests": 400, "errors": 16}, "v2": {"requests": 200, "errors": 8}}
    assert final["skipped"] == 0
    text = err.decode()
    assert "appeared" in text and "replaced" in text and "truncated" in text
    assert len(list(tmp_path.glob("predict.log.*"))) >= 3  # it really rotated


def test_partial_line_writes_are_counted_once_whole(tmp_path, run_cli):
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    lines = [
        json.dumps({"ts": f"2026-11-26T10:00:{i:02d}Z", "request_id": f"r{i}",
                    "model_version": "v1", "latency_ms": float(i + 1)}).encode() + b"\n"
        for i in range(20)
    ]  # fmt: skip

    def writer():
        time.sleep(0.3)
        with open(log, "ab", buffering=0) as fh:
            for line in lines:
                fh.write(line[:9])
                time.sleep(0.01)
                fh.write(line[9:])

    t = threading.Thread(target=writer)
    t.start()
    # --from-start: whether tail starts before or after the writer, every line is read once
    result = run_cli(
        "tail", log, "--from-start", "--format", "ndjson", "--duration", "1s", "--refresh", "100ms"
    )  # fmt: skip
    t.join()
    assert result.exit_code == 0, result.stderr
    final = ndjson(result.stdout)[-1]
    assert final["final"] and final["requests_total"] == 20 and final["skipped"] == 0
    row = final["rows"][0]
    assert row["p50_ms"] == np.percentile(np.arange(1, 21, dtype=float), 50)
    assert row["p99_ms"] == np.percentile(np.arange(1, 21, dtype=float), 99)


def test_stdin_snapshot_matches_numpy_and_latency_row_keys(tmp_path, run_cli):
    reqs = structlog_requests(200)
    data = write_structlog(tmp_path / "s.log", reqs).read_bytes()
    result = run_cli("tail", "-", "--format", "ndjson", "--window", "1h", input=data)
    assert result.exit_code == 0, result.stderr
    docs = ndjson(result.stdout)
    assert len(docs) == 1 and docs[0]["final"]  # stdin ended: the run ends with its summary
    rows = {r["model_version"]: r for r in docs[0]["rows"]}
    for version in ("v2.0", "v2.1"):
        vals = np.array([r["latency_ms"] for r in reqs if r["model_version"] == version])
        row = rows[version]
        assert row["requests"] == len(vals)
        assert row["p50_ms"] == np.percentile(vals, 50)
        assert row["p95_ms"] == np.percentile(vals, 95)
        assert row["p99_ms"] == np.percentile(vals, 99)
        assert row["max_ms"] == vals.max()
    keys = set(docs[0]["rows"][0])
    assert {"model_version", "requests", "errors", "error_rate", "rate_per_s", "mean_ms",
            "p50_ms", "p95_ms", "p99_ms", "max_ms", "window_start", "window_end"} <= keys  # fmt: skip
    assert docs[0]["slowest"][0]["stage"] is not None  # milestones give the dominant stage


def test_intervals_and_plain_lines(tmp_path, run_cli):
    log = write_structlog(tmp_path / "s.log", structlog_requests(40))
    result = run_cli("tail", log, "--from-start", "--intervals", "2", "--refresh", "100ms")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6  # 2 intervals x (2 versions + 1 input line); the last is the final one
    assert lines[0].startswith("time=") and " kind=interval " in lines[0]
    assert " kind=final " in lines[-1] and lines[-1].endswith("lines=200 skipped=0 total_requests=40")
    v20 = [ln for ln in lines if "model_version=v2.0" in ln]
    assert len(v20) == 2 and "requests=30 " in v20[0]


def test_backlog_lines(tmp_path, run_cli):
    log = write_structlog(tmp_path / "s.log", structlog_requests(40))  # 5 lines per request
    result = run_cli("tail", log, "-n", "10", "--format", "ndjson", "--intervals", "1",
                     "--refresh", "100ms")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert ndjson(result.stdout)[-1]["requests_total"] == 2


def test_events_where_and_slow_over(tmp_path, run_cli):
    log = write_structlog(tmp_path / "s.log", structlog_requests(20, slow_every=7))
    result = run_cli(
        "tail", log, "--from-start", "--events", "--plain", "--slow-over", "500ms",
        "--where", "model_version == 'v2.1'", "--intervals", "1", "--refresh", "100ms",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    events = [ln for ln in result.stdout.splitlines() if not ln.startswith("time=")]
    assert len(events) == 5  # req-0, 4, 8, 12, 16
    assert all("v2.1" in ln for ln in events)
    slow = [ln for ln in events if ln.rstrip().endswith("slow") or "slow " in ln]
    assert [re.search(r"req-\d+", ln).group(0) for ln in slow] == ["req-0"]
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3}  v2\.1 +900\.0 ms  503  req-0  slow  error$", events[0])


def test_alert_crossing_goes_to_stderr(tmp_path, run_cli):
    log = write_structlog(tmp_path / "s.log", structlog_requests(40, slow_every=4))
    result = run_cli(
        "tail", log, "--from-start", "--alert", "p99 > 250ms", "--alert", "v2.0: error_rate > 50%",
        "--format", "ndjson", "--intervals", "1", "--refresh", "100ms", "--window", "1h",
    )  # fmt: skip
    assert result.exit_code == 0
    assert re.search(r"^mlobs: alert: p99 > 250ms \[v2\.1\] \(p99 = 900 ms", result.stderr, re.M)
    assert "[v2.0]" not in result.stderr
    final = ndjson(result.stdout)[-1]
    assert final["alerts"] == [{"rule": "p99 > 250ms", "model_version": "v2.1", "value": 900.0}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "10"], "has no unit"),
        (["--alert", "p99 >"], "does not parse"),
        (["--alert", "skipped > 1"], "cannot be watched live"),
        (["--format", "csv"], "ndjson"),
        (["--serve-metrics", "localhost"], "HOST:PORT"),
        (["--where", "latency_ms >>> 1"], ""),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, run_cli, args, message):
    log = tmp_path / "a.log"
    log.write_text("")
    result = run_cli("tail", log, "--duration", "1s", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("mlobs: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_sigterm_ends_with_a_final_summary(tmp_path):
    log = write_structlog(tmp_path / "s.log", structlog_requests(30))
    proc = mlobs("tail", str(log), "--from-start", "--format", "ndjson", "--refresh", "100ms")
    first = proc.stdout.readline()  # the first snapshot: it is running
    assert json.loads(first)["requests_total"] == 30
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    last = ndjson(out.decode())[-1]
    assert last["final"] is True and last["requests_total"] == 30
    assert b"Traceback" not in err


def test_sigint_ends_with_a_final_summary(tmp_path):
    log = write_structlog(tmp_path / "s.log", structlog_requests(30))
    proc = mlobs("tail", str(log), "--from-start", "--plain", "--refresh", "100ms")
    proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err  # the exit-code contract: interrupted, after the summary
    assert err.endswith(b"mlobs: interrupted\n") and b"Traceback" not in err
    assert b" kind=final " in out.splitlines()[-1]


def test_closed_pipe_ends_silently(tmp_path):
    log = write_structlog(tmp_path / "s.log", structlog_requests(2000))
    proc = mlobs("tail", str(log), "--from-start", "--events", "--plain", "--refresh", "100ms")
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert err == b""


def test_live_view_at_a_pinned_width(tmp_path):
    from mlobs_cli.analysis.window import RollingWindow, dominant_stages
    from mlobs_cli.frame import dataset_from_sources
    from mlobs_cli.render.tail import Context, live_view

    log = write_structlog(tmp_path / "s.log", structlog_requests(40, slow_every=9))
    data = dataset_from_sources([str(log)])
    win = RollingWindow(3600)
    win.add(data.requests, 1_800_000_000.0)
    win.add_stages(dominant_stages(data.milestones, data.spans, data.requests))
    snap = win.snapshot(1_800_000_000.0, percentiles=[50, 90, 95, 99], slowest=3)
    ctx = Context(lines=200, skipped=2, skipped_by_reason={"not_json": 2},
                  firing={"v2.1": ["p99 > 250ms"]}, slow_over_ms=250.0,
                  firing_rows=[{"rule": "p99 > 250ms", "model_version": "v2.1", "value": 900.0}])  # fmt: skip
    console = Console(width=110, record=True, color_system=None, file=open(os.devnull, "w"))
    console.print(live_view(snap, ctx))
    text = console.export_text()
    lines = text.splitlines()
    assert lines[0].startswith("mlobs tail · window 3600s ") and "40 requests read" in lines[0]
    header = next(ln for ln in lines if "req/s" in ln)
    assert (
        header.split() == "version req/s reqs errs err % p50 ms p90 ms p95 ms p99 ms max ms p99 trend".split()
    )
    row_v21 = next(ln for ln in lines if ln.strip().startswith("v2.1 "))
    cells = row_v21.split()
    vals = np.array(
        [r["latency_ms"] for r in structlog_requests(40, slow_every=9) if r["model_version"] == "v2.1"]
    )
    assert cells[:5] == ["v2.1", f"{10 / snap.span_s:.2f}", "10", "2", "20.00%"]
    assert cells[5:10] == [f"{np.percentile(vals, q):,.1f}" for q in (50, 90, 95, 99, 100)]
    assert "slowest in the window" in text
    slow_rows = [ln for ln in lines if "req-" in ln]
    assert len(slow_rows) == 3 and all(ln.split()[3] == "900.0" for ln in slow_rows)
    assert "2 skipped (not_json 2)" in text and "ALERT v2.1: p99 > 250ms" in text
    assert max(len(ln) for ln in lines) <= 110
    assert pd.notna(snap.window_end)


@pytest.mark.parametrize("writer", ["console", "otlp"])
def test_spans_from_the_otel_sdk_count_one_request_per_trace(tmp_path, run_cli, writer):
    from tests.logs_from_libraries import write_console_spans, write_otlp_json

    write = write_console_spans if writer == "console" else write_otlp_json
    data = write(tmp_path / "spans.log", n=4).read_bytes()
    result = run_cli("tail", "-", "--format", "ndjson", "--window", "1h", input=data)
    assert result.exit_code == 0, result.stderr
    final = ndjson(result.stdout)[-1]
    assert final["requests_total"] == 4  # the root span of each trace, not its children
    assert final["rows"][0]["model_version"] == "v2.1"
    # the dominant stage: the slowest request's stage with the most self time (timings vary)
    from mlobs_cli.analysis.timeline import per_request_stages, stage_durations
    from mlobs_cli.frame import dataset_from_sources

    data = dataset_from_sources([str(tmp_path / "spans.log")])
    per = per_request_stages(stage_durations(data.milestones, data.spans, data.requests))
    slowest = final["slowest"][0]
    mine = per[per["request_id"] == slowest["request_id"]]
    assert slowest["stage"] == mine.loc[mine["self_ms"].idxmax(), "stage"]


def test_a_whole_simulated_log_in_one_window_gives_the_numbers_of_mlobs_latency(tmp_path, run_cli):
    log = tmp_path / "sim.log"
    assert run_cli("simulate", "--requests", "800", "--seed", "11", "-o", log).exit_code == 0
    latency = json.loads(run_cli("latency", log, "--format", "json").stdout)["rows"]
    result = run_cli("tail", log, "--from-start", "--format", "ndjson", "--window", "1d",
                     "--intervals", "1", "--refresh", "100ms")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = ndjson(result.stdout)[-1]["rows"]
    assert [list(r)[:-2] for r in rows] == [list(r) for r in latency]  # same keys, same order
    for mine, theirs in zip(rows, latency, strict=True):
        for key in theirs:
            if key != "rate_per_s":  # a window rate (requests / covered span) differs by definition
                assert mine[key] == theirs[key], key


def test_live_renderer_redraws_in_place_and_leaves_the_final_frame(tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("TERM", "xterm-256color")  # the pinned TERM=dumb would disable redrawing

    from mlobs_cli.analysis.window import RollingWindow
    from mlobs_cli.frame import dataset_from_sources
    from mlobs_cli.render.tail import Context, LiveRenderer

    log = write_structlog(tmp_path / "s.log", structlog_requests(12))
    data = dataset_from_sources([str(log)])
    win = RollingWindow(3600)
    kept = win.add(data.requests, 1_800_000_000.0)
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    live = LiveRenderer(console, slow_over_ms=50.0)
    live.events(kept.head(2).to_dict("records"))
    live.snapshot(win.snapshot(1_800_000_000.0), Context())
    live.final(win.snapshot(1_800_000_001.0), Context())
    live.close()
    text = out.getvalue()
    assert "req-0" in text and "req-1" in text  # the events scrolled above the view
    assert "mlobs tail · window 3600s" in text and "mlobs tail (final) · window 3600s" in text
    assert "\x1b[" in text  # cursor movements: the view is redrawn in place


def test_alert_recovers_when_the_window_moves_on(tmp_path, run_cli):
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    def lines(latency: float, first: int) -> bytes:
        now = pd.Timestamp.now(tz="UTC")
        return b"".join(
            json.dumps({"ts": (now + pd.Timedelta(milliseconds=i)).isoformat(), "request_id": f"r{first + i}",
                        "model_version": "v1", "latency_ms": latency}).encode() + b"\n"
            for i in range(20)
        )  # fmt: skip

    def writer():
        time.sleep(0.2)
        with open(log, "ab") as fh:
            fh.write(lines(500.0, 0))  # slow: the alert starts
        time.sleep(1.4)  # longer than the window: the slow requests leave it
        with open(log, "ab") as fh:
            fh.write(lines(10.0, 100))  # fast: it recovers

    t = threading.Thread(target=writer)
    t.start()
    result = run_cli(
        "tail", log, "--from-start", "--window", "1s", "--refresh", "100ms", "--duration", "2.5s",
        "--alert", "p99 > 100ms", "--format", "ndjson",
    )  # fmt: skip
    t.join()
    assert result.exit_code == 0, result.stderr
    alerts = [ln for ln in result.stderr.splitlines() if "p99 > 100ms" in ln]
    assert len(alerts) == 2, result.stderr
    assert alerts[0].startswith("mlobs: alert: p99 > 100ms [v1] (p99 = 500 ms")
    assert alerts[1].startswith("mlobs: recovered: p99 > 100ms [v1] (p99 = 10 ms")
    assert ndjson(result.stdout)[-1]["totals"] == {"v1": {"requests": 40, "errors": 0}}


def test_where_on_an_attribute_reads_it_though_tail_otherwise_types_only_its_fields(tmp_path, run_cli):
    now = pd.Timestamp.now(tz="UTC")
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(
        json.dumps({"ts": (now + pd.Timedelta(milliseconds=i)).isoformat(), "request_id": f"r{i}",
                    "model_version": "v1", "latency_ms": 10.0 + i, "region": "eu" if i % 3 else "us",
                    "user": {"tier": "gold" if i % 2 else "free"}}).encode() + b"\n"
        for i in range(30)
    ))  # fmt: skip
    args = ["--from-start", "--format", "ndjson", "--window", "1h", "--intervals", "1", "--refresh", "100ms"]
    every = ndjson(run_cli("tail", log, *args).stdout)[-1]
    assert every["requests_total"] == 30 and every["skipped"] == 0
    eu = run_cli("tail", log, *args, "--where", "region == 'eu'")
    assert eu.exit_code == 0, eu.stderr
    assert ndjson(eu.stdout)[-1]["requests_total"] == 20
    gold = ndjson(run_cli("tail", log, *args, "--where", "user.tier == 'gold'").stdout)[-1]
    assert gold["requests_total"] == 15
    assert gold["rows"][0]["max_ms"] == 39.0
