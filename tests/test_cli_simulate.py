"""`mlobs simulate` driven as a user does: files, stdout, gzip, determinism, and bad options."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mlobs_cli.cli import app

runner = CliRunner()


def simulate(*args: str):
    return runner.invoke(app, ["simulate", *args])


def test_writes_to_stdout_by_default() -> None:
    result = simulate("--requests", "50", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == 250
    events = [orjson.loads(line)["event"] for line in lines]
    assert events.count("prediction") == 50 and events.count("request_received") == 50
    assert result.stderr == ""


def test_same_seed_gives_byte_identical_files_and_gzip(tmp_path: Path) -> None:
    args = ["-n", "3000", "--seed", "42", "--versions", "v2.0:50,v2.1:50", "--error-rate", "0.02",
            "--slow-features", "0.05", "--spike", "+20s/10s:3x", "--drift", "v2.1:+30ms/min",
            "--slowdown", "v2.1:10%", "--latency", "v2.0=uniform:60:180"]  # fmt: skip
    for name in ("a.jsonl", "b.jsonl", "a.jsonl.gz", "b.jsonl.gz"):
        assert simulate(*args, "-o", str(tmp_path / name)).exit_code == 0
    plain = (tmp_path / "a.jsonl").read_bytes()
    assert plain == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert (tmp_path / "a.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()) == plain
    other = simulate(*args[:3], "43", *args[4:], "-o", str(tmp_path / "c.jsonl"))
    assert other.exit_code == 0 and (tmp_path / "c.jsonl").read_bytes() != plain


def test_options_reach_the_log(tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    result = simulate(
        "-n", "4000", "--seed", "3", "--rate", "20", "--start", "2026-12-01T08:30:00+01:00",
        "--versions", "a1:3,b2:1", "--latency", "a1=const:40", "--latency",
        "b2=lognormal:median=150,sigma=0.2", "--error-rate", "0", "--slow-features", "0",
        "--no-stages", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {r["event"] for r in rows} == {"prediction"} and len(rows) == 4000
    assert rows[0]["ts"].startswith("2026-12-01T07:30:")  # 08:30+01:00 in UTC
    inf = {v: np.array([r["inference_ms"] for r in rows if r["model_version"] == v]) for v in ("a1", "b2")}
    assert len(inf["a1"]) / 4000 == pytest.approx(0.75, abs=0.03)
    assert set(inf["a1"].tolist()) == {40.0}
    assert np.median(inf["b2"]) == pytest.approx(150.0, rel=0.03)
    assert all(r["status"] == 200 for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--versions", ""], "--versions"),
        (["--versions", "v2.0:-1"], "above 0"),
        (["--versions", "v2.0:abc"], "not a number"),
        (["--versions", "v2.0,v2.0"], "twice"),
        (["--versions", 'v"2'], "model version"),
        (["--latency", "v2.1=foo"], "unknown distribution"),
        (["--latency", "v2.1"], "'='"),
        (["--latency", "v2.1=uniform:200:50"], "low <= high"),
        (["--latency", "v2.1=lognormal:median=90"], "needs sigma"),
        (["--latency", "v2.1=uniform:1:2:3"], "takes 2 values"),
        (["--latency", "v9=const:5"], "v9 is not simulated"),
        (["--slowdown", "v2.1:abc"], "unit"),
        (["--slowdown", "v2.1:-200%"], "above 0"),
        (["--slowdown", "v7:20%"], "not simulated"),
        (["--spike", "+30m:4x"], "START/DURATION:FACTOR"),
        (["--spike", "+30m/2m:0x"], "above 0"),
        (["--spike", "+30q/2m:4x"], "not a duration"),
        (["--spike", "yesterday/2m:4x"], "neither"),
        (["--drift", "v2.1:8"], "VERSION:RATE"),
        (["--rate", "0"], "--rate"),
        (["--error-rate", "1.5"], "between 0 and 1"),
        (["--slow-features", "-0.1"], "between 0 and 1"),
        (["--start", "yesterday"], "ISO-8601"),
        (["--seed", "-4"], "--seed"),
        (["--start", "9999-12-31T23:00:00Z"], "year 9999"),
        (["--drift", "v2.1:+" + "9" * 400 + "ms/h"], "finite"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = simulate("-n", "10", *args)
    assert result.exit_code == 2
    assert result.stdout_bytes == b""
    assert message in result.stderr
    assert result.stderr.startswith("mlobs: error:") and "Traceback" not in result.stderr


def test_negative_request_count_is_rejected_by_the_option_parser() -> None:
    result = simulate("-n", "-1")
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_unwritable_output_is_one_clear_error(tmp_path: Path) -> None:
    result = simulate("-n", "5", "-o", str(tmp_path / "missing" / "log.jsonl"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_extreme_factors_saturate_instead_of_breaking_lines(tmp_path: Path) -> None:
    out = tmp_path / "log.jsonl"
    result = simulate(
        "-n", "50", "--seed", "1", "--no-stages", "--latency", "v2.1=const:1e300",
        "--slowdown", "v2.0:1e300x", "--error-rate", "0", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0 and result.stderr == ""
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 50 and {r["inference_ms"] for r in rows} == {3_600_000.0}


def test_the_parser_reads_every_simulated_line_exactly(tmp_path: Path) -> None:
    from mlobs_cli.frame import dataset_from_sources

    out = tmp_path / "log.jsonl.gz"
    args = ["-n", "1200", "--seed", "5", "--error-rate", "0.05", "--slow-features", "0.05"]
    assert simulate(*args, "-o", str(out)).exit_code == 0
    rows = [orjson.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    summaries = [r for r in rows if r["event"] == "prediction"]
    data = dataset_from_sources([str(out)])
    assert data.skipped.total == 0 and data.lines == 6000
    requests, milestones = data.requests, data.milestones
    assert len(requests) == 1200 and len(milestones) == 4800
    assert requests["request_id"].tolist() == [r["request_id"] for r in summaries]
    assert np.array_equal(requests["latency_ms"].to_numpy(), [r["latency_ms"] for r in summaries])
    assert np.array_equal(requests["inference_ms"].to_numpy(), [r["inference_ms"] for r in summaries])
    assert requests["error"].tolist() == [r["status"] >= 500 for r in summaries]
    assert set(requests["model_version"].astype(str)) == {"v2.0", "v2.1"}
    sent = milestones[milestones["event"] == "response_sent"].set_index("request_id")["ts"]
    assert (requests.set_index("request_id")["ts"] == sent.loc[requests["request_id"]]).all()
    received = milestones[milestones["event"] == "request_received"].set_index("request_id")["ts"]
    span_ms = (sent - received.loc[sent.index]).dt.total_seconds() * 1000
    by_id = requests.set_index("request_id")["latency_ms"]
    assert np.allclose(span_ms.to_numpy(), by_id.loc[sent.index].to_numpy(), atol=1e-6)


def test_the_rotated_sample_set_reads_back_as_one_run() -> None:
    from mlobs_cli.frame import dataset_from_sources

    folder = Path(__file__).resolve().parent.parent / "sample_logs" / "rotated"
    data = dataset_from_sources([str(folder)])
    assert data.skipped.total == 0 and len(data.requests) == 900
    assert data.requests["ts"].is_monotonic_increasing
