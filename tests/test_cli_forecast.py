"""`mlobs forecast` driven as a user does, on logs written by python-json-logger: a planted linear
drift recovered with about its slope, steady controls without breach, burn rates checked against
the log lines counted independently, and the refusal to extrapolate from too little history."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pythonjsonlogger.json import JsonFormatter

START = pd.Timestamp("2026-11-26T06:00:00Z")


def write_json_logger_log(
    path: Path,
    seed: int,
    *,
    hours: float = 3.0,
    rate: float = 2.0,
    drift_ms_per_h: float = 0.0,
    error_rate: float = 0.0,
    errors_in_last_s: float | None = None,
) -> Path:
    """python-json-logger lines: `latency_ms` ~ 60 ms lognormal (+ drift per hour for v2.1),
    `status` 500 for errors (all of them in the last `errors_in_last_s` seconds when given)."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * rate)
    at = np.sort(rng.uniform(0, hours * 3600, n))
    version = rng.choice(["v2.0", "v2.1"], n)
    latency = 60.0 * rng.lognormal(0, 0.15, n)
    latency = np.where(version == "v2.1", latency + drift_ms_per_h * at / 3600.0, latency)
    error = rng.random(n) < error_rate
    if errors_in_last_s is not None:
        error &= at >= hours * 3600 - errors_in_last_s
    stamps = np.char.add(
        np.datetime_as_string(
            (START.value // 1000 + np.round(at * 1e6).astype("int64")).astype("datetime64[us]"),
            unit="us",
        ),
        "Z",
    )
    logger = logging.getLogger(f"mlobs-test-{path}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(JsonFormatter("%(message)s"))
    logger.addHandler(handler)
    try:
        for i in range(n):
            logger.info(
                "request_completed",
                extra={
                    "timestamp": str(stamps[i]),
                    "request_id": f"r{seed}-{i}",
                    "model_version": str(version[i]),
                    "latency_ms": round(float(latency[i]), 3),
                    "status": 500 if error[i] else 200,
                },
            )
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


def forecast_json(run_cli, *args):
    result = run_cli("forecast", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("seed", [1])
def test_planted_drift_is_detected_with_about_its_slope(run_cli, tmp_path, seed):
    log = write_json_logger_log(tmp_path / "svc.log", seed, drift_ms_per_h=8.0)
    doc = forecast_json(run_cli, log, "--metric", "p50", "--slo", "p50 < 90ms", "--horizon", "6h")
    rows = {f["model_version"]: f for f in doc["forecasts"]}
    drift, steady = rows["v2.1"], rows["v2.0"]
    assert set(drift) >= {"model_version", "metric", "method", "last_value", "slope_per_hour",
                          "projected", "low", "high", "breach_in_s"}  # fmt: skip
    assert drift["method"] == "theil-sen" and drift["metric"] == "p50"
    assert drift["slope_per_hour"] == pytest.approx(8.0, abs=2.0)
    assert drift["low"] < drift["projected"] < drift["high"]
    # median ~60 ms + 8 ms/h: ~84 ms now (3 h in), crossing 90 ms about 0.75 h later
    assert 0.3 * 3600 < drift["breach_in_s"] < 1.5 * 3600
    assert abs(steady["slope_per_hour"]) < 2.0
    assert steady["breach_in_s"] is None
    assert doc["refused"] == []


@pytest.mark.parametrize("seed", [3, 4])
def test_steady_controls_show_no_breach(run_cli, tmp_path, seed):
    log = write_json_logger_log(tmp_path / "svc.log", seed, hours=2.0)
    doc = forecast_json(run_cli, log, "--slo", "p99 < 250ms")
    assert [f["model_version"] for f in doc["forecasts"]] == ["v2.0", "v2.1"]
    for f in doc["forecasts"]:
        assert f["metric"] == "p99" and f["breach_in_s"] is None
        assert abs(f["slope_per_hour"]) < 5.0
    if seed != 3:
        return
    human = run_cli("forecast", log, "--slo", "p99 < 250ms")
    assert human.exit_code == 0
    assert "v2.0 p99" in human.stdout
    assert "no breach of p99 < 250ms expected within 6 h" in human.stdout


def test_burn_rates_match_the_log_counted_by_hand(run_cli, tmp_path):
    log = write_json_logger_log(tmp_path / "svc.log", 5, hours=1.25, rate=2.0, error_rate=0.3,
                                errors_in_last_s=600)  # fmt: skip
    doc = forecast_json(run_cli, log, "--slo", "error_rate < 1%", "--horizon", "1h")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    frame = pd.DataFrame(lines)
    frame["ts"] = pd.to_datetime(frame["timestamp"], utc=True)
    now = frame["ts"].max()
    by_version = {entry["model_version"]: entry for entry in doc["burn_rates"]}
    for version, part in frame.groupby("model_version"):
        entry = by_version[version]
        assert entry["slo"] == "error_rate < 1%" and entry["budget"] == pytest.approx(0.01)
        rows = {w["windows"]: w for w in entry["windows"]}
        for label, long_s, short_s in (("1h/5m", 3600, 300), ("6h/30m", 21600, 1800)):
            for key, span in (("long_burn", long_s), ("short_burn", short_s)):
                inside = part[(now - part["ts"]).dt.total_seconds() < span]
                expected = (inside["status"] >= 500).mean() / 0.01
                assert rows[label][key] == pytest.approx(expected), (version, label, key)
        # errors only in the last 10 minutes: ~30% over 5 m (30x), ~5% over 1 h (~5x)
        page = rows["1h/5m"]
        assert page["long_covered"] and page["short_covered"]
        assert page["short_burn"] > 14.4 and page["long_burn"] < 14.4 and page["firing"] is False
        assert rows["6h/30m"]["firing"] is None and not rows["6h/30m"]["long_covered"]
    human = run_cli("forecast", log, "--slo", "error_rate < 1%", "--horizon", "1h")
    assert human.exit_code == 0
    assert "error-budget burn rate" in human.stdout
    assert "6h/30m, 1d/2h, 3d/6h window pair(s) are not covered" in human.stdout


def test_too_little_history_is_refused_with_exit_1(run_cli, tmp_path):
    log = write_json_logger_log(tmp_path / "svc.log", 6, hours=0.5)
    result = run_cli("forecast", log, "--horizon", "6h")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("mlobs: error: too little history to forecast")
    assert "v2.0 p99" in result.stderr and len(result.stderr.splitlines()) == 1
    shorter = forecast_json(run_cli, log, "--horizon", "1h", "--every", "1m")
    assert {f["model_version"] for f in shorter["forecasts"]} == {"v2.0", "v2.1"}


def test_bad_slo_and_horizon_are_usage_errors(run_cli, tmp_path):
    log = write_json_logger_log(tmp_path / "svc.log", 7, hours=0.1)
    for args in (["--slo", "p99 <"], ["--horizon", "soon"], ["--slo", "error_rate > 1%"],
                 ["--metric", "latency"]):  # fmt: skip
        result = run_cli("forecast", log, *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith("mlobs: error: ")


def _simulate_available() -> bool:
    from mlobs_cli.cli import app

    return any(getattr(c, "name", None) == "simulate" for c in app.registered_commands)


@pytest.mark.skipif(not _simulate_available(), reason="mlobs simulate lands from branch simulate")
def test_drift_planted_by_simulate(run_cli, tmp_path):
    log = tmp_path / "sim.jsonl"
    made = run_cli("simulate", "-n", "27000", "--rate", "3", "--drift", "v2.1:+8ms/h",
                   "--seed", "7", "-o", log)  # fmt: skip
    assert made.exit_code == 0, made.stderr
    doc = forecast_json(run_cli, log, "--metric", "p50", "--slo", "p95 < 1s")
    rows = {(f["model_version"], f["metric"]): f for f in doc["forecasts"]}
    assert rows[("v2.1", "p50")]["slope_per_hour"] == pytest.approx(8.0, abs=3.0)
    assert abs(rows[("v2.0", "p50")]["slope_per_hour"]) < 3.0
    assert rows[("v2.0", "p95")]["breach_in_s"] is None  # steady control, far from 1 s
    assert rows[("v2.1", "p95")]["slo"] == "p95 < 1s"
