"""Each real-world format, produced by its own library, parses into the same canonical frames."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mlobs_cli.frame import dataset_from_sources
from tests.logs_from_libraries import (
    write_console_spans,
    write_otlp_json,
    write_python_json_logger,
    write_structlog,
)

REQUESTS = [
    {"request_id": "req-1", "model_version": "v2.0", "latency_ms": 120.5, "inference_ms": 80.0},
    {"request_id": "req-2", "model_version": "v2.1", "latency_ms": 95.25, "status": 503},
    {"request_id": "req-3", "model_version": "v2.1", "latency_ms": 301.0},
]


def test_structlog_summaries_and_milestones(tmp_path):
    path = write_structlog(tmp_path / "structlog.jsonl", REQUESTS)
    data = dataset_from_sources([str(path)])
    req = data.requests
    assert list(req["request_id"]) == ["req-1", "req-2", "req-3"]
    assert list(req["latency_ms"]) == [120.5, 95.25, 301.0]
    assert list(req["model_version"].astype(str)) == ["v2.0", "v2.1", "v2.1"]
    assert list(req["error"]) == [False, True, False]
    assert str(req["ts"].dtype) == "datetime64[ns, UTC]"
    assert req["ts"].notna().all()
    assert len(data.milestones) == 12
    assert set(data.milestones["event"]) == {
        "request_received",
        "features_fetched",
        "inference_done",
        "response_sent",
    }
    assert "structlog" in data.formats
    assert data.skipped.total == 0


def test_python_json_logger_seconds_and_camel_case(tmp_path):
    path = write_python_json_logger(tmp_path / "pjl.log", REQUESTS)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert "asctime" in raw[0] and "," in raw[0]["asctime"]  # the library's own time format
    data = dataset_from_sources([str(path)])
    req = data.requests
    np.testing.assert_allclose(req["latency_ms"], [120.5, 95.25, 301.0])
    assert list(req["request_id"]) == ["req-1", "req-2", "req-3"]
    assert list(req["status"]) == [200, 503, 200]
    assert data.formats == ["python-json-logger"]
    assert req["ts"].notna().all()
    assert data.stats.mapping["latency_ms"].most_common(1)[0][0] == ("latencySeconds", "s")


@pytest.mark.parametrize("hex_ids", [True, False], ids=["hex-ids", "base64-ids"])
def test_otlp_json_spans_become_requests_from_root_spans(tmp_path, hex_ids):
    path = write_otlp_json(tmp_path / "otlp.jsonl", n=3, hex_ids=hex_ids)
    data = dataset_from_sources([str(path)])
    spans = data.spans
    assert len(spans) == 9
    assert set(spans["name"]) == {"POST /predict", "features.fetch", "model.inference"}
    assert spans["trace_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert spans["span_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    roots = spans[spans["parent_span_id"].isna()]
    assert len(roots) == 3
    # model version comes from the resource attributes
    assert set(spans["model_version"].astype(str)) == {"v2.1"}
    assert data.requests_from == "root spans"
    req = data.requests
    assert sorted(req["request_id"]) == ["req-otel-0", "req-otel-1", "req-otel-2"]
    np.testing.assert_allclose(sorted(req["latency_ms"]), sorted(roots["duration_ms"]), rtol=0, atol=1e-9)
    assert (req["latency_ms"] >= 6.0).all()  # 2 ms + 4 ms of sleeps inside each root
    assert list(req["status"]) == [200, 200, 200]


def test_console_span_exporter_multiline_objects(tmp_path):
    path = write_console_spans(tmp_path / "console.txt", n=2)
    assert path.read_text().startswith("{\n")  # pretty, multi-line, back to back
    data = dataset_from_sources([str(path)])
    assert data.skipped.total == 0
    assert len(data.spans) == 6
    assert data.formats == ["otel-console"]
    child = data.spans[data.spans["name"] == "model.inference"].iloc[0]
    assert child["parent_span_id"] is not None
    assert child["duration_ms"] >= 4.0
    assert data.lines == 6  # one record per span object, not per physical line


def test_docker_envelope_with_split_line_and_cri_partial(tmp_path):
    inner = json.dumps(
        {
            "ts": "2026-11-26T10:00:00Z",
            "request_id": "d1",
            "model_version": "v3",
            "latency_ms": 42.0,
            "note": "x" * 50,
        }
    )
    docker = [
        {"log": inner[:30], "stream": "stdout", "time": "2026-11-26T10:00:00.1Z"},
        {"log": inner[30:] + "\n", "stream": "stdout", "time": "2026-11-26T10:00:00.1Z"},
        {"log": "plain text banner\n", "stream": "stderr", "time": "2026-11-26T10:00:00.2Z"},
    ]
    (tmp_path / "docker.log").write_text("\n".join(json.dumps(d) for d in docker) + "\n")
    cri_inner = json.dumps({"request_id": "c1", "latency_ms": 7, "model_version": "v3"})
    (tmp_path / "cri.log").write_text(
        f"2026-11-26T10:00:01.000000001Z stdout P {cri_inner[:10]}\n"
        f"2026-11-26T10:00:01.000000002Z stdout F {cri_inner[10:]}\n"
    )
    data = dataset_from_sources([str(tmp_path / "docker.log"), str(tmp_path / "cri.log")])
    req = data.requests.set_index("request_id")
    assert req.loc["d1", "latency_ms"] == 42.0
    assert req.loc["c1", "latency_ms"] == 7.0
    # CRI lines without an inner time take the envelope's time
    assert str(req.loc["c1", "ts"]) == "2026-11-26 10:00:01.000000002+00:00"
    assert set(data.formats) == {"docker-json-file", "cri"}
    assert data.skipped.by_reason == {"not_json": 1}


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    line = '{"request_id":"g1","latency_ms":5,"ts":1764151200.5}\n'
    (tmp_path / "weird-name.log").write_bytes(gzip.compress(line.encode()))
    data = dataset_from_sources([str(tmp_path / "weird-name.log")])
    assert list(data.requests["latency_ms"]) == [5.0]
    assert str(data.requests["ts"].iloc[0]) == "2025-11-26 10:00:00.500000+00:00"


def test_epoch_timestamps_by_magnitude(tmp_path):
    base = 1764151200
    lines = [
        {"request_id": "s", "latency_ms": 1, "ts": base},
        {"request_id": "ms", "latency_ms": 1, "ts": base * 1000},
        {"request_id": "us", "latency_ms": 1, "ts": base * 1_000_000},
        {"request_id": "ns", "latency_ms": 1, "ts": base * 1_000_000_000},
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    data = dataset_from_sources([str(tmp_path / "e.jsonl")])
    assert data.requests["ts"].nunique() == 1


def test_field_override_with_unit(tmp_path, run_cli):
    (tmp_path / "custom.jsonl").write_text(
        '{"rid":"a","resp":{"duration":0.25},"model":"m1"}\n'
        '{"rid":"b","resp":{"duration":0.5},"model":"m1"}\n'
    )
    result = run_cli(
        "schema",
        tmp_path / "custom.jsonl",
        "--format",
        "json",
        "--field",
        "latency_ms=resp.duration:s",
        "--field",
        "model_version=model",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fields"]["latency_ms"]["source"] == "resp.duration"
    assert report["fields"]["latency_ms"]["unit"] == "s"
    assert report["fields"]["model_version"]["coverage"] == 1.0


def test_bad_field_override_is_usage_error(tmp_path, run_cli):
    (tmp_path / "a.log").write_text('{"latency_ms": 1}\n')
    result = run_cli("schema", tmp_path / "a.log", "--field", "latency=foo")
    assert result.exit_code == 2
    assert "unknown field 'latency'" in result.stderr
