"""`mlobs latency --sketch` as a user runs it: exact counts, bounded-error percentiles, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlobs_cli import engine

PCOLS = ["p50_ms", "p90_ms", "p95_ms", "p99_ms"]
EXACT_COLUMNS = ["requests", "errors", "error_rate", "rate_per_s", "mean_ms", "max_ms"]


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from mlobs_cli.cli import app

    result = CliRunner().invoke(app, ["simulate", "-n", "4000", "--versions", "v2.0:70,v2.1:30"])
    assert result.exit_code == 0
    path = tmp_path_factory.mktemp("sketch") / "sim.jsonl"
    path.write_text(result.stdout)
    return path


def _rows(run_cli, *args) -> list[dict]:
    result = run_cli("latency", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["rows"]


def _assert_close(sketch_rows, exact_rows, keys=("model_version",), accuracy=0.01):
    assert [[r[k] for k in keys] for r in sketch_rows] == [[r[k] for k in keys] for r in exact_rows]
    for s, e in zip(sketch_rows, exact_rows, strict=True):
        for col in EXACT_COLUMNS:  # the mean sums in another order: equal up to rounding
            assert (s[col] is None) if e[col] is None else s[col] == pytest.approx(e[col], rel=1e-12), col
        for col in PCOLS:
            assert abs(s[col] - e[col]) <= accuracy * (1 + 1e-9) * e[col], col


@pytest.mark.parametrize("chunk", [None, 700])
def test_sketch_matches_exact_within_the_bound(run_cli, sim_log, monkeypatch, chunk):
    if chunk:  # many small chunks: the fold must add up across them
        monkeypatch.setattr(engine, "CHUNK_EVENTS", chunk)
    exact = _rows(run_cli, str(sim_log))
    result = run_cli("latency", "--format", "json", "--sketch", str(sim_log))
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["approximate"] is True and doc["relative_accuracy"] == 0.01
    assert {r["model_version"] for r in doc["rows"]} == {"v2.0", "v2.1"}
    _assert_close(doc["rows"], exact)


def test_sketch_accuracy_option_and_table_title(run_cli, sim_log):
    exact = _rows(run_cli, str(sim_log))
    coarse = _rows(run_cli, "--sketch", "--sketch-accuracy", "0.05", str(sim_log))
    _assert_close(coarse, exact, accuracy=0.05)
    table = run_cli("latency", "--sketch", str(sim_log))
    assert table.exit_code == 0
    assert "approximate percentiles (DDSketch, ±1% relative)" in " ".join(table.stdout.split())
    assert "v2.1" in table.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--status", "error"],
        ["--status", "ok", "--metric", "inference_ms"],
        ["--where", "status >= 500"],
        ["--since", "2026-11-26T10:01:00", "--until", "2026-11-26T10:02:00"],
        ["--by", "status"],
    ],
)
def test_sketch_respects_filters(run_cli, sim_log, args):
    keys = ("model_version", "status") if "--by" in args else ("model_version",)
    exact = _rows(run_cli, *args, str(sim_log))
    assert exact
    _assert_close(_rows(run_cli, "--sketch", *args, str(sim_log)), exact, keys=keys)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--every", "1m"], "--every"),
        (["--baseline", "v2.0"], "--baseline"),
        (["--plot"], "--plot"),
        (["--since", "15m"], "--since"),
        (["--metric", "inference"], "--metric"),
        (["--sketch-accuracy", "1.5"], "--sketch-accuracy"),
    ],
)
def test_sketch_refuses_what_needs_every_row(run_cli, sim_log, args, named):
    result = run_cli("latency", "--sketch", *args, str(sim_log))
    assert result.exit_code == 2
    assert named in result.stderr and result.stdout == ""


def test_sketch_accuracy_needs_sketch(run_cli, sim_log):
    result = run_cli("latency", "--sketch-accuracy", "0.05", str(sim_log))
    assert result.exit_code == 2 and "--sketch-accuracy" in result.stderr


def test_messy_input_counted_and_skipped_the_same(run_cli, tmp_path):
    lines = [
        '{"request_id":"a","model_version":"v1","latency_ms":10,"status":200,"ts":"2026-11-26T10:00:00Z"}',
        '{"request_id":"b","model_version":"v1","latency_ms":30,"status":500,"ts":"2026-11-26T10:00:02Z"}',
        "not json at all",
        '{"request_id":"c","model_version":"v1","latency_ms":-5,"status":200}',
        '{"request_id":"d","model_version":"v2","latency_ms":"12ms","status":200}',
        '{"request_id":"e","model_version":"v2","latency_ms":"fast","status":200}',
        '{"request_id":"f","model_version":"v2","latency_ms":0,"status":200}',
        '{"truncated": ',
    ]
    log = tmp_path / "messy.jsonl"
    log.write_text("\n".join(lines) + "\n")
    exact = run_cli("latency", "--format", "json", str(log))
    sketch = run_cli("latency", "--format", "json", "--sketch", str(log))
    assert sketch.exit_code == exact.exit_code == 0
    assert sketch.stderr == exact.stderr and "skipped" in sketch.stderr
    exact_doc, sketch_doc = json.loads(exact.stdout), json.loads(sketch.stdout)
    assert sketch_doc["skipped"] == exact_doc["skipped"]
    _assert_close(sketch_doc["rows"], exact_doc["rows"])
    strict = run_cli("latency", "--sketch", "--strict", str(log))
    assert strict.exit_code == run_cli("latency", "--strict", str(log)).exit_code != 0


def test_no_match_exits_1(run_cli, sim_log):
    result = run_cli("latency", "--sketch", "--where", "model_version == 'v9'", str(sim_log))
    assert result.exit_code == 1
    assert "no requests matched" in result.stderr


def test_a_unitless_key_keeps_one_unit_across_chunks(run_cli, tmp_path, monkeypatch):
    """`duration` has no unit: its first chunk (fractions) says seconds; a later chunk of whole
    numbers alone would say ms. Exact mode guesses once over all rows; --sketch must read every chunk
    with the unit its first chunk got, not guess again per chunk."""
    monkeypatch.setattr(engine, "CHUNK_EVENTS", 10)  # a chunk per 1 MB block
    pad = "x" * 2000
    lines = []
    for i in range(1200):
        value = [0.1, 0.2, 0.35, 0.5][i % 4] if i < 600 else [1, 2, 3][i % 3]
        ts = f"2026-11-26T10:{i // 60:02d}:{i % 60:02d}Z"
        lines.append(
            json.dumps(
                {"ts": ts, "request_id": f"r{i}", "model_version": "v1", "duration": value, "pad": pad}
            )
        )
    path = tmp_path / "unitless.jsonl"
    path.write_text("\n".join(lines) + "\n")
    exact = _rows(run_cli, str(path))
    sketch = _rows(run_cli, "--sketch", str(path))
    assert exact[0]["max_ms"] == 3000.0
    assert sketch[0]["max_ms"] == exact[0]["max_ms"]
    _assert_close(sketch, exact)
