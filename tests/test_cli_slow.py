"""`mlobs slow` driven as a user does: slowest rows, and the planted cause found by stage and lift."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests._service_logs import structlog_service

SLOW_HOST_EVERY = 50  # 2% of requests: every 50th request runs on h3 and waits on the feature store


def _service(n: int, seed: int, slow_version: str | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    reqs = []
    for i in range(n):
        planted = slow_version is None and i % SLOW_HOST_EVERY == 7
        version = str(rng.choice(["v2.1", "v2.2"]))
        infer = float(np.round(rng.gamma(9.0, 1.2), 3)) * (3 if version == slow_version else 1)
        reqs.append({
            "id": f"r{i:04d}", "version": version,
            "fetch": float(np.round(rng.uniform(55, 80) if planted else rng.gamma(4, 0.5), 3)),
            "infer": infer, "respond": float(np.round(rng.gamma(2.0, 0.25), 3)),
            "host": "h3" if planted else str(rng.choice(["h1", "h2", "h3", "h4"])),
            "num_recommendations": int(rng.choice([5, 10, 20])), "user_id": f"user-{i}",
        })  # fmt: skip
    return reqs


@pytest.fixture
def planted_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "app.log"
    structlog_service(path, monkeypatch, _service(600, seed=1))
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _summaries(path: Path) -> list[dict]:
    return [x for x in map(json.loads, path.read_text().splitlines()) if x["event"] == "request"]


def test_slow_feature_store_host_is_the_found_cause(run_cli, planted_host: Path) -> None:
    doc = _json(run_cli("slow", planted_host, "--over", "45ms", "--format", "json"))
    planted = [r for r in _service(600, seed=1) if r["fetch"] > 50]
    n_slow = len(planted)
    assert doc["slow_set"] == {"rule": "over 45 ms", "threshold_ms": 45.0, "requests": 600,
                               "slow_requests": n_slow, "rest_requests": 600 - n_slow}  # fmt: skip
    assert {r["request_id"] for r in doc["rows"]} == {r["id"] for r in planted}
    assert [r["dominant_stage"] for r in doc["rows"]] == ["feature fetch"] * len(planted)
    stage = doc["stages"][0]
    assert stage["stage"] == "feature fetch" and stage["excess_share"] > 0.95
    assert sum(s["excess_share"] for s in doc["stages"]) == pytest.approx(1.0)
    top = doc["attributes"][0]
    assert (top["field"], top["value"], top["slow_count"]) == ("host", "h3", len(planted))
    h3 = sum(1 for r in _summaries(planted_host) if r["host"] == "h3")
    assert top["lift"] == pytest.approx(600 / h3)
    assert "user_id" not in {a["field"] for a in doc["attributes"]}


def test_rows_rank_within_version_and_paste_into_explain(run_cli, planted_host: Path) -> None:
    doc = _json(run_cli("slow", planted_host, "--top", "3", "-f", "json"))
    rows = doc["rows"]
    summaries = _summaries(planted_host)
    lat = {r["request_id"]: r["latency_ms"] for r in summaries}
    assert [r["latency_ms"] for r in rows] == sorted(lat.values(), reverse=True)[:3]
    for row in rows:
        same = np.array([r["latency_ms"] for r in summaries
                         if r["model_version"] == row["model_version"]])  # fmt: skip
        assert row["percentile_rank"] == pytest.approx((same <= row["latency_ms"]).mean() * 100)
    argv = shlex.split(rows[0]["explain"])
    assert argv[:3] == ["mlobs", "explain", rows[0]["request_id"]]
    explained = _json(run_cli(*argv[1:], "-f", "json"))
    assert explained["dominant_stage"] == rows[0]["dominant_stage"] == "feature fetch"
    assert explained["latency_ms"] == pytest.approx(rows[0]["latency_ms"])


def test_slow_version_is_found_above_a_percentile(run_cli, tmp_path, monkeypatch) -> None:
    path = tmp_path / "app.log"
    structlog_service(path, monkeypatch, _service(400, seed=2, slow_version="v2.2"))
    doc = _json(run_cli("slow", path, "--above", "p90", "-f", "json"))
    assert doc["slow_set"]["rule"] == "above p90"
    lat = np.array([r["latency_ms"] for r in _summaries(path)])
    assert doc["slow_set"]["threshold_ms"] == np.percentile(lat, 90)
    assert doc["slow_set"]["slow_requests"] == int((lat > np.percentile(lat, 90)).sum())
    assert (doc["attributes"][0]["field"], doc["attributes"][0]["value"]) == (
        "model_version", "v2.2")  # fmt: skip
    assert doc["stages"][0]["stage"] == "inference"


def test_by_version_and_where(run_cli, planted_host: Path) -> None:
    doc = _json(run_cli("slow", planted_host, "--by-version", "--top", "2", "-f", "json"))
    assert [r["model_version"] for r in doc["rows"]] == ["v2.1", "v2.1", "v2.2", "v2.2"]
    assert set(doc["slow_set"]["threshold_ms"]) == {"v2.1", "v2.2"}
    doc = _json(run_cli("slow", planted_host, "--where", 'host != "h3"', "-f", "json"))
    assert doc["slow_set"]["requests"] == sum(
        1 for r in _summaries(planted_host) if r["host"] != "h3")  # fmt: skip
    assert all(r["dominant_stage"] != "feature fetch" or r["latency_ms"] < 45 for r in doc["rows"])
    result = run_cli("slow", planted_host, "--where", 'host == "nowhere"')
    assert result.exit_code == 1 and "no requests matched" in result.stderr


def test_table_output_sections_and_inert_values(run_cli, tmp_path, monkeypatch) -> None:
    reqs = _service(300, seed=3)
    for r in reqs:
        if r["host"] == "h3":
            r["host"] = "h3\x1b[2J[bold]"
    path = tmp_path / "app.log"
    structlog_service(path, monkeypatch, reqs)
    result = run_cli("slow", path, "--over", "45ms")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "slowest requests on 2026-11-26; slow set: over 45 ms, 6 of 300 requests\n" in out
    assert "where the slow requests spend the extra time" in out
    assert "field values over-represented among slow requests" in out
    assert "h3\\x1b[2J[bold]" in out and "\x1b" not in out
    assert "explain one: mlobs explain r" in out


def test_machine_formats_and_bad_options(run_cli, planted_host: Path) -> None:
    result = run_cli("slow", planted_host, "--top", "2", "-f", "csv")
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split(",")[:4] == ["ts", "request_id", "trace_id", "model_version"]
    assert len(rows) == 2
    result = run_cli("slow", planted_host, "-f", "markdown", "--over", "45ms")
    assert "### Stages, slow vs rest" in result.stdout and "| host | h3 |" in result.stdout
    for args, message in [
        (["--over", "45ms", "--above", "p99"], "give one of them"),
        (["--above", "p100"], "out of range"),
        (["--above", "fast"], "invalid percentile"),
        (["--over", "soon"], "latency"),
        (["--where", "host ==="], "where"),
    ]:
        result = run_cli("slow", planted_host, *args)
        assert result.exit_code == 2, (args, result.stdout)
        assert message in result.stderr.lower() and result.stdout == ""


def test_by_version_title_shows_versions_inert(run_cli, tmp_path, monkeypatch) -> None:
    reqs = _service(60, seed=4)
    for r in reqs:
        r["version"] = "v9\x1b[31m" if r["version"] == "v2.2" else r["version"]
    path = tmp_path / "app.log"
    structlog_service(path, monkeypatch, reqs)
    result = run_cli("slow", path, "--by-version", "--above", "p50", "--top", "1")
    assert result.exit_code == 0, result.stderr
    assert "v9\\x1b[31m" in result.stdout and "\x1b" not in result.stdout


@pytest.fixture(scope="module")
def simulated_misses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mlobs simulate`: 2% of requests miss the feature cache and take the slow path (40-120 ms);
    inference is constant so that the planted cause is the only source of slowness."""
    from typer.testing import CliRunner

    from mlobs_cli.cli import app

    path = tmp_path_factory.mktemp("sim") / "sim.log"
    result = CliRunner().invoke(app, [
        "simulate", "--requests", "2000", "--seed", "3", "--slow-features", "0.02",
        "--latency", "v2.0=const:60", "--latency", "v2.1=const:60", "--error-rate", "0",
        "-o", str(path),
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return path


def test_simulated_slow_feature_path_is_found(run_cli, simulated_misses: Path) -> None:
    doc = _json(run_cli("slow", simulated_misses, "--over", "90ms", "-f", "json"))
    summaries = [x for x in map(json.loads, simulated_misses.read_text().splitlines())
                 if x["event"] == "prediction"]  # fmt: skip
    slow = [x for x in summaries if x["latency_ms"] > 90]
    assert doc["slow_set"]["slow_requests"] == len(slow) > 10
    assert all(x["feature_cache"] == "miss" for x in slow)  # the simulator planted them there
    top = doc["attributes"][0]
    misses = sum(1 for x in summaries if x["feature_cache"] == "miss")
    assert (top["field"], top["value"], top["slow_count"]) == ("feature_cache", "miss", len(slow))
    assert top["lift"] == pytest.approx(len(slow) / misses / (len(slow) / len(summaries)))
    stage = doc["stages"][0]
    assert stage["stage"] == "feature fetch" and stage["excess_share"] > 0.95
    # the slowest row, pasted into explain, blames the feature fetch against its version's median
    row = doc["rows"][0]
    explained = _json(run_cli(*shlex.split(row["explain"])[1:], "-f", "json"))
    fetch = explained["stages"][0]
    assert fetch["name"] == "feature fetch" and explained["dominant_stage"] == "feature fetch"
    assert fetch["duration_ms"] > 10 * fetch["version_median_ms"]


def test_spans_only_logs_slow_stage_and_attribute(run_cli, tmp_path: Path) -> None:
    from tests._service_logs import otel_spans, write_console

    spans = []
    for i in range(30):
        slow = i % 10 == 3  # 3 of 30 traces wait on a cold feature store
        fetch = 60.0 if slow else 4.0 + i % 3
        spans += otel_spans([
            ("POST /predict", None, 0, fetch + 20,
             {"request_id": f"t-{i:02d}", "model.version": "v3", "http.response.status_code": 200,
              "feature_store": "cold" if slow else "warm"}),
            ("feature fetch", "POST /predict", 1, 1 + fetch, {}),
            ("inference", "POST /predict", 2 + fetch, 18 + fetch, {}),
        ])  # fmt: skip
    path = tmp_path / "spans.json"
    write_console(path, spans)
    doc = _json(run_cli("slow", path, "--above", "p85", "-f", "json"))
    assert doc["slow_set"]["slow_requests"] == 3
    assert {r["request_id"] for r in doc["rows"][:3]} == {"t-03", "t-13", "t-23"}
    assert [r["dominant_stage"] for r in doc["rows"][:3]] == ["feature fetch"] * 3
    assert doc["stages"][0]["stage"] == "feature fetch"
    assert sum(s["excess_share"] for s in doc["stages"]) == pytest.approx(1.0)  # self times tile
    top = doc["attributes"][0]  # root-span attributes are compared too
    assert (top["field"], top["value"], top["slow_count"], top["lift"]) == (
        "feature_store", "cold", 3, pytest.approx(10.0))  # fmt: skip
