"""The engine's shortcuts give the same answers as a full read: prefilter, fields, byte-range workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlobs_cli import engine
from mlobs_cli.cachedir import set_enabled
from mlobs_cli.cli import app  # noqa: F401 - registers the commands used below
from mlobs_cli.config import Settings
from mlobs_cli.engine import Need, dataset_from_sources
from mlobs_cli.schema import parse_field_override
from tests.logs_from_libraries import write_console_spans, write_structlog

FULL_REQUESTS = Need(kinds=frozenset({"requests"}))  # every line parsed, summaries kept


@pytest.fixture(autouse=True)
def _cache_on():
    """`mlobs --no-cache` in one test must not leak into the next (the flag is process state)."""
    set_enabled(True)
    yield
    set_enabled(True)


def read(path: Path, need: Need, settings_: Settings | None = None, **kw):
    return dataset_from_sources([str(path)], settings_, need, use_cache=False, **kw)


def same_requests(a, b) -> None:
    cols = [c for c in a.requests.columns if c in b.requests.columns]
    pd.testing.assert_frame_equal(a.requests[cols], b.requests[cols])
    assert a.lines == b.lines


def simulated(tmp_path: Path, run_cli, requests: int = 300, seed: int = 5) -> Path:
    out = tmp_path / "sim.jsonl"
    assert (
        run_cli("simulate", "--requests", str(requests), "--seed", str(seed), "-o", str(out)).exit_code == 0
    )
    return out


# A messy log: every kind of line the prefilter must not lose, and junk it must still report.
MESSY = [
    '{"ts": "2026-11-26T10:00:00Z", "event": "request_received", "request_id": "a", "model_version": "v1"}',
    '{"ts": "2026-11-26T10:00:01Z", "request_id": "a", "model_version": "v1", "latency_ms": 12.5, '
    '"status": 200}',
    '{"ts": "2026-11-26T10:00:02Z", "request_id": "b", "model_version": "v1", "Latency_MS": 7}',
    '{"ts": "2026-11-26T10:00:03Z", "request_id": "c", "model_version": "v2", "re_sponse-Time": 9.5}',
    '{"ts": "2026-11-26T10:00:04Z", "request_id": "d", "model_version": "v2", "lat\\u0065ncy_ms": 3}',
    '{"ts": "2026-11-26T10:00:05Z", "request_id": "e", "model_version": "v2", "lat": {"y": 2, "ency": 4}}',
    '{"ts": "2026-11-26T10:00:06Z", "request_id": "f", "model_version": "v2", "too\u212a": 5}',
    '{"ts": "2026-11-26T10:00:07Z", "request_id": "g", "model_version": "v2", "elapsed": "17ms"}',
    "not json at all",
    "",
    '{"ts": "2026-11-26T10:00:08Z", "request_id": "h", "latency_ms": 5',
    "[1, 2, 3]",
    '2026-11-26T10:00:09Z stdout F {"ts": "2026-11-26T10:00:09Z", "request_id": "i", "latency_ms": 8}',
    '{"log": "{\\"ts\\": \\"2026-11-26T10:00:10Z\\", \\"request_id\\": \\"j\\", \\"latency_ms\\": 6}\\n", '
    '"stream": "stdout", "time": "2026-11-26T10:00:10Z"}',
    "{",
    '  "ts": "2026-11-26T10:00:11Z", "request_id": "k", "duration_ms": 11',
    "}",
    '{"ts": "2026-11-26T10:00:12Z", "request_id": "l", "model_version": "v1", "latency_ms": -1}',
    '{"ts": "2026-11-26T10:00:13Z", "event": "response_sent", "request_id": "a", "model_version": "v1"}',
]


def test_prefilter_finds_every_summary_and_every_damaged_line(tmp_path: Path) -> None:
    path = tmp_path / "messy.log"
    path.write_text("\n".join(MESSY) + "\n", encoding="utf-8")
    fast = read(path, Need.requests())
    full = read(path, FULL_REQUESTS)
    same_requests(fast, full)
    assert sorted(fast.requests["request_id"]) == ["a", "b", "c", "d", "e", "f", "g", "i", "j", "k"]
    assert fast.skipped.as_dict() == full.skipped.as_dict()
    assert fast.skipped.examples == full.skipped.examples


def test_prefilter_leaves_well_shaped_lines_without_latency_words_unchecked(tmp_path: Path) -> None:
    """The documented cost: an object-shaped line that is not valid JSON is not parsed, so not reported."""
    path = tmp_path / "a.log"
    lines = [MESSY[1], '{"ts": "2026-11-26T10:00:00Z", "event": tru}']
    path.write_text("\n".join(lines) + "\n")
    assert read(path, Need.requests()).skipped.total == 0
    assert read(path, FULL_REQUESTS).skipped.as_dict()["by_reason"] == {"not_json": 1}
    assert read(path, Need.requests(prefilter=False)).skipped.total == 1


def test_prefilter_matches_a_full_read_of_library_logs(tmp_path: Path) -> None:
    reqs = [
        {"request_id": f"r{i}", "model_version": "v1" if i % 2 else "v2", "latency_ms": 10.0 + i}
        for i in range(40)
    ]
    path = write_structlog(tmp_path / "s.log", reqs)
    same_requests(read(path, Need.requests()), read(path, FULL_REQUESTS))


def test_no_summaries_falls_back_to_spans(tmp_path: Path) -> None:
    path = write_console_spans(tmp_path / "spans.log", n=3)
    fast = read(path, Need.requests())
    assert fast.requests_from == "root spans"
    assert len(fast.requests) == 3


def test_override_key_is_a_needle(tmp_path: Path) -> None:
    path = tmp_path / "o.log"
    path.write_text('{"ts": "2026-11-26T10:00:00Z", "resp_wait": 5, "model_version": "v1"}\n')
    conf = Settings(overrides={"latency_ms": parse_field_override("latency_ms=resp_wait")})
    assert len(read(path, Need.requests(), conf).requests) == 1


def test_fields_limit_request_columns_but_not_the_numbers(tmp_path: Path, run_cli) -> None:
    path = simulated(tmp_path, run_cli)
    narrow = read(path, Need.requests({"route"}))
    full = read(path, FULL_REQUESTS)
    assert "route" in narrow.requests.columns and "user_id" not in narrow.requests.columns
    assert narrow.requests["request_id"].isna().all()
    for col in ("ts", "model_version", "latency_ms", "status", "error", "route", "line"):
        pd.testing.assert_series_equal(narrow.requests[col], full.requests[col])


@pytest.mark.parametrize("split_inside_multiline", [False, True])
def test_two_byte_range_workers_equal_one_pass(
    tmp_path: Path, run_cli, monkeypatch, split_inside_multiline
) -> None:
    path = simulated(tmp_path, run_cli, requests=200)
    data = path.read_bytes()
    if split_inside_multiline:  # a pretty-printed object across the middle of the file
        half = data.index(b"\n", len(data) // 2 - 200) + 1
        pretty = json.dumps({"ts": "2026-11-26T10:00:00Z", "request_id": "m", "latency_ms": 1}, indent=2)
        data = data[:half] + ("\n" * 3 + pretty + "\n").encode() * 40 + data[half:]
        path.write_bytes(data)
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    for need in (Need.requests(), engine.EVERYTHING):
        two = read(path, need, parallel=True)
        one = read(path, need, parallel=False)
        same_requests(two, one)
        pd.testing.assert_frame_equal(two.milestones, one.milestones)
        assert two.skipped.as_dict() == one.skipped.as_dict()
        assert two.stats.events == one.stats.events


def test_latency_cli_answers_equal_with_and_without_prefilter(tmp_path: Path, run_cli) -> None:
    path = simulated(tmp_path, run_cli)
    args = ["latency", str(path), "--by", "route", "--where", "status >= 200", "--format", "json"]
    fast = run_cli("--no-cache", *args)
    strict = run_cli("--no-cache", *args, "--strict")  # --strict parses every line
    assert fast.exit_code == 0 and strict.exit_code == 0
    assert json.loads(fast.stdout) == json.loads(strict.stdout)


KEYS = st.sampled_from(
    [
        "ts",
        "event",
        "request_id",
        "model_version",
        "latency_ms",
        "Duration",
        "took_s",
        "msg",
        "user",
        "x-Elapsed",
    ]
)
VALUES = st.one_of(st.integers(0, 500), st.sampled_from(["a", "latency", "v1", "2026-11-26T10:00:00Z", ""]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6), min_size=1, max_size=30))
def test_prefilter_equals_full_read_on_random_objects(tmp_path: Path, objs: list[dict]) -> None:
    path = tmp_path / "h.log"
    path.write_text("\n".join(json.dumps(o) for o in objs) + "\n")
    fast = read(path, Need.requests())
    full = read(path, FULL_REQUESTS)
    if full.requests_from == "summaries" and len(full.requests):
        same_requests(fast, full)
        assert fast.skipped.as_dict() == full.skipped.as_dict()


@pytest.mark.parametrize("range_bytes", [1, 700, 5000])
@pytest.mark.parametrize("need", [Need.requests(), Need.requests(prefilter=False), engine.EVERYTHING])
def test_many_shared_ranges_equal_one_pass(tmp_path: Path, run_cli, monkeypatch, range_bytes, need) -> None:
    """Two processes taking ranges from one queue give one pass's answers: rows, line numbers, skip
    counts and the first skipped places (a damaged line every ~40 lines, a pretty-printed object)."""
    lines = simulated(tmp_path, run_cli, requests=120).read_text().splitlines()
    damaged = [m for m in MESSY if m not in ("{", "}") and not m.startswith("  ")]
    for i in range(len(lines) - 1, 0, -40):
        lines.insert(i, damaged[i % len(damaged)])
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "RANGE_BYTES", range_bytes)
    two = read(path, need, parallel=True)
    one = read(path, need, parallel=False)
    same_requests(two, one)
    pd.testing.assert_frame_equal(two.milestones, one.milestones)
    pd.testing.assert_frame_equal(two.spans, one.spans)
    assert two.skipped.as_dict() == one.skipped.as_dict()
    assert two.skipped.examples == one.skipped.examples
    assert two.stats.events == one.stats.events and two.stats.formats == one.stats.formats


def test_the_summary_worker_imports_no_pandas() -> None:
    """What a forked worker runs to read summaries (engine -> scan, records, request_columns) must not
    import pandas: the worker starts before the parent imports it, and parses meanwhile."""
    code = (
        "import sys, mlobs_cli.engine, mlobs_cli.request_columns, mlobs_cli.scan, mlobs_cli.cli.common\n"
        "import mlobs_cli.analysis.latency\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_worker_columns_become_the_same_frames(tmp_path: Path, run_cli) -> None:
    """A partial typed into numpy columns (what the worker sends) turns into the frames of a direct read."""
    from mlobs_cli.frame import FrameBuilder
    from mlobs_cli.request_columns import ColumnBatches
    from mlobs_cli.sources import expand_sources

    path = simulated(tmp_path, run_cli, requests=150)
    source = expand_sources([str(path)])[0]
    need = Need.requests()
    direct = engine.parse_partition(source, Settings(), need)
    columns = engine.parse_partition(source, Settings(), need, frames=False)
    assert isinstance(columns.builder, ColumnBatches)
    converted = FrameBuilder()
    converted.add_columns(columns.builder)
    got = pd.concat(converted._requests, ignore_index=True)
    want = pd.concat(direct.builder._requests, ignore_index=True)
    pd.testing.assert_frame_equal(got, want)


def test_compacted_request_chunks_equal_one_concat(tmp_path: Path, run_cli) -> None:
    """Many chunks joined column by column (`compact_requests`) give `pd.concat`'s frame."""
    from mlobs_cli.frame import FrameBuilder
    from mlobs_cli.sources import expand_sources

    path = simulated(tmp_path, run_cli, requests=300)
    part = engine.parse_partition(expand_sources([str(path)])[0], Settings(), Need.requests())
    (whole,) = part.builder._requests
    chunks = [whole.iloc[i : i + 37].reset_index(drop=True) for i in range(0, len(whole), 37)]
    expected = pd.concat([c.copy() for c in chunks], ignore_index=True)
    builder = FrameBuilder()
    builder._requests = chunks
    builder.compact_requests()
    assert len(builder._requests) == 1
    pd.testing.assert_frame_equal(builder._requests[0], expected)
    pd.testing.assert_frame_equal(builder._requests[0], whole)


def test_chunks_with_different_columns_are_left_to_finish() -> None:
    from mlobs_cli.frame import FrameBuilder

    a = pd.DataFrame({"x": [1.0], "route": ["/a"]})
    b = pd.DataFrame({"x": [2.0]})
    builder = FrameBuilder()
    builder._requests = [a, b]
    builder.compact_requests()
    assert builder._requests == [a, b] and list(a.columns) == ["x", "route"]
