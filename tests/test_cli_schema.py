"""`mlobs schema` as a user runs it: formats, mapping, coverage, skips, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

SEED_LINES = [
    '{"ts":"2026-11-26T10:00:00.100Z","event":"request_received","request_id":"r1","model_version":"v2.1"}',
    '{"ts":"2026-11-26T10:00:00.191Z","event":"prediction","request_id":"r1","model_version":"v2.1",'
    '"user_id":"u1","num_recommendations":3,"latency_ms":91.0,"inference_ms":88.0,"status":200}',
    "Traceback (most recent call last):",
    '{"ts":"2026-11-26T10:00:01Z","request_id":"r2","model_version":"v2.0","latency_ms":"abc"}',
    '{"ts":"2026-11-26T10:00:02Z","request_id":"r3","latency_ms":"120ms","status":503}',
]


def write(tmp_path: Path, lines: list[str], name: str = "app.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_schema_json_reports_mapping_coverage_and_skips(tmp_path, run_cli):
    path = write(tmp_path, SEED_LINES)
    result = run_cli("schema", path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["formats"] == ["json-lines"]
    assert report["fields"]["latency_ms"] == {"source": "latency_ms", "unit": "ms", "coverage": 1.0}
    assert report["fields"]["model_version"]["coverage"] == 0.5  # r3 has none
    assert report["events"] == {"request_summary": 2, "stage_event": 1, "span": 0, "other": 0}
    assert report["skipped"]["total"] == 2
    assert report["skipped"]["by_reason"] == {"not_json": 1, "bad_latency": 1}
    assert report["skipped"]["examples"][0] == f"{path}:3: not_json"
    assert "skipped 2 of 5 lines" in result.stderr


def test_strict_turns_skips_into_exit_1(tmp_path, run_cli):
    path = write(tmp_path, SEED_LINES)
    result = run_cli("schema", path, "--strict", "--format", "json")
    assert result.exit_code == 1
    assert "--strict" in result.stderr


def test_missing_source_is_exit_2_naming_the_path(tmp_path, run_cli):
    result = run_cli("schema", tmp_path / "nope.log")
    assert result.exit_code == 2
    assert "nope.log: no such file or folder" in result.stderr
    assert result.stdout == ""
