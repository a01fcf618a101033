"""`mlobs spikes` driven as a user does, on logs written by structlog (summaries and stage events),
with a planted spike found across seeds and steady runs reported clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import structlog

START = pd.Timestamp("2026-11-26T10:00:00Z")


def write_service_log(
    path: Path,
    seed: int,
    *,
    minutes: float = 12,
    rate: float = 10.0,
    spike: tuple[float, float, float] | None = None,  # (start min, duration min, factor)
    spike_version: str | None = None,
    stages: bool = True,
) -> Path:
    """The /predict service's structlog JSON lines: stage events and one summary per request.

    During a spike the feature fetch of the affected requests is `factor` times slower.
    """
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * rate)
    begin = np.sort(rng.uniform(0, minutes * 60, n))
    version = rng.choice(["v2.0", "v2.1"], n)
    fetch = 8.0 * rng.lognormal(0, 0.3, n)
    infer = 30.0 * rng.lognormal(0, 0.2, n)
    respond = 1.0 + rng.uniform(0, 1, n)
    if spike is not None:
        a, d, factor = spike
        hit = (begin >= a * 60) & (begin < (a + d) * 60)
        if spike_version:
            hit &= version == spike_version
        fetch = np.where(hit, fetch * factor * 4, fetch)  # fetch grows: the total ~ factor x
    error = rng.random(n) < 0.01
    total = fetch + infer + respond
    t0_us = START.value // 1000 + np.round(begin * 1e6).astype("int64")
    offsets = np.stack([np.zeros(n), fetch, fetch + infer, total], axis=1)
    stamps = _iso(t0_us[:, None] + np.round(offsets * 1000).astype("int64"))
    events = ("request_received", "features_fetched", "inference_done", "response_sent")
    with path.open("w") as fh:
        log = structlog.wrap_logger(
            structlog.PrintLogger(fh), processors=[structlog.processors.JSONRenderer()]
        )
        for i in range(n):
            rid = f"req-{seed}-{i:05d}"
            ver = str(version[i])
            if stages:
                for k, event in enumerate(events):
                    log.info(event, request_id=rid, model_version=ver, timestamp=stamps[i, k])
            log.info(
                "request_completed", request_id=rid, model_version=ver,
                latency_ms=round(float(total[i]), 3), status=500 if error[i] else 200,
                user_id=f"u{i % 40}", timestamp=stamps[i, 3],
            )  # fmt: skip
    return path


def _iso(us: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch -> `2026-11-26T10:00:00.123456Z` (vectorized)."""
    return np.char.add(np.datetime_as_string(us.astype("datetime64[us]"), unit="us"), "Z")


def spikes_json(run_cli, *args):
    result = run_cli("spikes", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["windows"]


@pytest.mark.parametrize(("seed", "stages"), [(1, True)])
def test_planted_spike_is_found(run_cli, tmp_path, seed, stages):
    log = write_service_log(tmp_path / "app.log", seed, spike=(7, 1.5, 3.0), spike_version="v2.1",
                            stages=stages)  # fmt: skip
    windows = spikes_json(run_cli, log, "--top", "3")
    assert len(windows) == 1, windows
    (w,) = windows
    assert w["model_version"] == "v2.1" and w["metric"] == "p99" and w["unit"] == "ms"
    start, end = pd.Timestamp(w["start"]), pd.Timestamp(w["end"])
    assert abs((start - (START + pd.Timedelta("7min"))).total_seconds()) <= 30
    assert abs((end - (START + pd.Timedelta("8.5min"))).total_seconds()) <= 30
    assert w["value"] > 2 * w["baseline"]
    assert len(w["top_requests"]) == 3
    dominant = {r["dominant_stage"] for r in w["top_requests"]}
    assert dominant == ({"feature fetch"} if stages else {None})
    worst = w["top_requests"][0]
    assert worst["request_id"] == w["worst_request_id"]
    assert w["explain"] == f"mlobs explain {worst['request_id']} {log}"
    assert set(w) >= {"start", "end", "model_version", "metric", "value", "baseline", "requests",
                      "top_requests", "attributes"}  # fmt: skip


@pytest.mark.parametrize("seed", [4])
def test_steady_runs_report_no_spike(run_cli, tmp_path, seed):
    log = write_service_log(tmp_path / "app.log", seed, stages=False)
    assert spikes_json(run_cli, log) == []
    result = run_cli("spikes", log)
    assert result.exit_code == 0
    assert result.stdout.startswith("no p99 spikes")


def test_pooled_spike_names_the_version_behind_it_and_plots(run_cli, tmp_path):
    log = write_service_log(tmp_path / "app.log", 9, spike=(5, 1, 3.0), spike_version="v2.0",
                            stages=False)  # fmt: skip
    (w,) = spikes_json(run_cli, log, "--all-versions")
    assert w["model_version"] == "all" and set(w["versions"]) == {"v2.0", "v2.1"}
    assert w["attributes"][0]["field"] == "model_version"
    assert w["attributes"][0]["value"] == "v2.0"
    result = run_cli("spikes", log, "--plot")
    assert result.exit_code == 0
    out = result.stdout
    assert "1 p99 spike window(s)" in out and "v2.0" in out
    assert "▲" in out and "v2.1 p99" in out and "v2.0 p99" in out
    assert f"mlobs explain {w['worst_request_id']}" in out


def test_machine_formats_carry_the_same_windows(run_cli, tmp_path):
    log = write_service_log(tmp_path / "app.log", 11, spike=(5, 1, 3.0), spike_version="v2.1",
                            stages=False)  # fmt: skip
    (w,) = spikes_json(run_cli, log)
    csv = run_cli("spikes", log, "-f", "csv")
    assert csv.exit_code == 0
    header, row = csv.stdout.splitlines()
    assert header.split(",")[:3] == ["start", "end", "model_version"]
    assert row.split(",")[2] == "v2.1" and w["worst_request_id"] in row
    ndjson = run_cli("spikes", log, "-f", "ndjson")
    assert json.loads(ndjson.stdout)["start"] == w["start"]


def test_usage_and_input_errors(run_cli, tmp_path):
    log = write_service_log(tmp_path / "app.log", 12, minutes=2, stages=False)
    for args in (["--every", "10"], ["--metric", "p200"], ["--metric", "max"], ["--min-change", "x"]):
        result = run_cli("spikes", log, *args)
        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert result.stderr.startswith("mlobs: error: ") and len(result.stderr.splitlines()) == 1
    short = run_cli("spikes", log)  # 2 minutes: 4 buckets, too few for a baseline
    assert short.exit_code == 0 and "v2.0: not judged: 4 bucket(s) of 30s" in short.stderr
    assert "try a smaller --every" in short.stderr
    untimed = tmp_path / "untimed.log"
    untimed.write_text('{"request_id": "a", "latency_ms": 12}\n')
    result = run_cli("spikes", untimed)
    assert result.exit_code == 1 and "no timestamped request" in result.stderr


def _simulate_available() -> bool:
    from mlobs_cli.cli import app

    return any(getattr(c, "name", None) == "simulate" for c in app.registered_commands)


needs_simulate = pytest.mark.skipif(
    not _simulate_available(), reason="mlobs simulate lands from branch simulate"
)


@needs_simulate
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spike_planted_by_simulate_is_found_in_every_version(run_cli, tmp_path, seed):
    log = tmp_path / "sim.jsonl"
    made = run_cli("simulate", "-n", "10000", "--rate", "20", "--spike", "+5m/1m:4x",
                   "--seed", str(seed), "-o", log)  # fmt: skip
    assert made.exit_code == 0, made.stderr
    windows = spikes_json(run_cli, log, "--top", "2")
    planted = (START + pd.Timedelta("5min"), START + pd.Timedelta("6min"))
    big = [w for w in windows if w["value"] > 2 * w["baseline"]]
    assert {w["model_version"] for w in big} == {"v2.0", "v2.1"}
    for w in big:  # every big window is the planted one (give or take a bucket)
        assert pd.Timestamp(w["start"]) <= planted[0] + pd.Timedelta("30s")
        assert pd.Timestamp(w["end"]) >= planted[1]
        assert pd.Timestamp(w["end"]) <= planted[1] + pd.Timedelta("60s")
        assert w["top_requests"][0]["dominant_stage"] is not None


@needs_simulate
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_steady_simulated_runs_report_no_spike(run_cli, tmp_path, seed):
    log = tmp_path / "sim.jsonl"
    made = run_cli("simulate", "-n", "10000", "--rate", "20", "--seed", str(seed), "-o", log)
    assert made.exit_code == 0, made.stderr
    assert spikes_json(run_cli, log) == []


def test_log_derived_strings_are_shown_inert(run_cli, tmp_path):
    log = write_service_log(tmp_path / "app.log", 13, spike=(5, 1, 3.0), spike_version="v2.1",
                            stages=False)  # fmt: skip
    hostile = "[bold red]v\x1b[2J"
    text = log.read_text().replace('"v2.1"', json.dumps(hostile))
    log.write_text(text)
    result = run_cli("spikes", log, "--plot")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "[bold red]v\\x1b[2J" in result.stdout  # shown literally, escape made visible
    (w,) = spikes_json(run_cli, log)
    assert w["model_version"] == hostile  # machine formats keep the exact value
