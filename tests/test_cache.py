"""The cache answers exactly as a cold read, after appends, rotation, truncation and rewrites."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from mlobs_cli import cache
from mlobs_cli.cachedir import cache_root, set_enabled
from mlobs_cli.config import Settings
from mlobs_cli.engine import EVERYTHING, Need, dataset_from_sources
from mlobs_cli.sources import Source

SUMMARY = (
    '{{"ts": "2026-11-26T10:{m:02d}:{s:02d}.{us:06d}Z", "request_id": "r{i}", "model_version": "{v}", '
    '"latency_ms": {lat}, "status": {status}, "user": "u{u}", "predictions": ["a", "b"]}}\n'
)
EVENT = '{{"ts": "2026-11-26T10:{m:02d}:{s:02d}.{us:06d}Z", "event": "{e}", "request_id": "r{i}"}}\n'


@pytest.fixture(autouse=True)
def _cache_on():
    """`mlobs --no-cache` in one test must not leak into the next (the flag is process state)."""
    set_enabled(True)
    yield
    set_enabled(True)


def log_lines(start: int, n: int) -> str:
    out = []
    for i in range(start, start + n):
        m, s, us = (i // 60) % 60, i % 60, (i * 7919) % 1_000_000
        out.append(EVENT.format(m=m, s=s, us=us, e="request_received", i=i))
        out.append(
            SUMMARY.format(
                m=m,
                s=s,
                us=us,
                i=i,
                v="v2" if i % 3 else "v1",
                lat=round(5 + (i * 37) % 200 / 3, 3),
                status=500 if i % 17 == 0 else 200,
                u=i % 5,
            )
        )
    if start == 0:
        out.insert(3, "this line is not json\n")
    return "".join(out)


def both(path: Path, need: Need = EVERYTHING):
    cold = dataset_from_sources([str(path)], None, need, use_cache=False)
    warm = dataset_from_sources([str(path)], None, need, use_cache=True, build_cache=True)
    return cold, warm


def assert_same(cold, warm) -> None:
    pd.testing.assert_frame_equal(warm.requests, cold.requests)
    pd.testing.assert_frame_equal(warm.milestones, cold.milestones)
    pd.testing.assert_frame_equal(warm.spans, cold.spans)
    assert warm.lines == cold.lines
    assert warm.skipped.as_dict() == cold.skipped.as_dict()
    assert warm.skipped.examples == cold.skipped.examples
    assert warm.stats.events == cold.stats.events
    assert warm.stats.mapping == cold.stats.mapping
    assert warm.unit_guesses == cold.unit_guesses
    assert warm.list_keys == cold.list_keys


def outcome(path: Path) -> str:
    found = cache.cached_partials(Source(str(path), path), Settings(), EVERYTHING, build=True)
    assert found is not None
    return found[1]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text(log_lines(0, 300))
    return path


def test_warm_equals_cold_and_is_reused(log: Path) -> None:
    assert_same(*both(log))
    assert outcome(log) == "hit"
    cold, warm = both(log, Need.requests({"user"}))  # cold: only summaries parsed (prefilter)
    pd.testing.assert_frame_equal(warm.requests, cold.requests)
    assert (warm.lines, warm.skipped.as_dict()) == (cold.lines, cold.skipped.as_dict())


def test_appended_bytes_are_parsed_from_the_last_offset(log: Path) -> None:
    both(log)
    with open(log, "a") as fh:
        fh.write(log_lines(300, 50))
    assert outcome(log) == "appended"
    with open(log, "a") as fh:  # a line still being written: read every time, never stored
        fh.write(log_lines(350, 1) + '{"ts": "2026-11-26T11:00:00Z", "request_id": "x", "latency')
    assert_same(*both(log))
    with open(log, "a") as fh:  # ... and finished later
        fh.write('_ms": 3.5}\n')
    assert_same(*both(log))
    assert len(cache.entries()[0]["segments"]) >= 3


def test_rotation_is_a_new_file(log: Path) -> None:
    both(log)
    os.rename(log, log.with_name("app.log.1"))
    log.write_text(log_lines(1000, 20))
    assert outcome(log) == "built"
    assert_same(*both(log))
    cold, warm = (
        dataset_from_sources([str(log.parent)], None, EVERYTHING, use_cache=flag, build_cache=True)
        for flag in (False, True)
    )
    assert_same(cold, warm)


def test_truncation_is_read_again(log: Path) -> None:
    both(log)
    log.write_text(log_lines(0, 100))
    assert outcome(log) == "built"
    assert_same(*both(log))


def test_same_size_rewrite_is_detected(log: Path) -> None:
    both(log)
    st = log.stat()
    data = log.read_bytes().replace(b'"v1"', b'"v9"')
    assert len(data) == st.st_size
    log.write_bytes(data)
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime: the head hash differs
    assert outcome(log) == "built"
    cold, warm = both(log)
    assert_same(cold, warm)
    assert "v9" in set(warm.requests["model_version"].astype(str))


def test_same_size_rewrite_with_new_mtime_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text(log_lines(0, 600))  # larger than the hashed head and tail
    both(path)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    at = data.index(b'"v2"', mid)
    data[at : at + 4] = b'"v7"'
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert outcome(path) == "built"
    assert_same(*both(path))


def test_cli_ingest_info_clear_and_no_cache(log: Path, run_cli) -> None:
    cold = run_cli("--no-cache", "latency", str(log), "--format", "json")
    assert not cache_root().exists()  # --no-cache writes nothing
    result = run_cli("ingest", str(log), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["sources"][0]["outcome"] == "built"
    warm = run_cli("latency", str(log), "--format", "json")
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    assert warm.stderr == cold.stderr  # the same skip summary
    info = json.loads(run_cli("cache", "info", "--format", "json").stdout)
    assert info["entries"][0]["path"] == str(log.resolve()) and info["entries"][0]["lines"] == 601
    assert run_cli("cache", "clear").exit_code == 0
    assert json.loads(run_cli("cache", "info", "--format", "json").stdout)["entries"] == []


def test_explain_reads_the_cache(log: Path, run_cli) -> None:
    cold = run_cli("--no-cache", "explain", "r17", str(log), "--format", "json")
    run_cli("ingest", str(log))
    warm = run_cli("explain", "r17", str(log), "--format", "json")
    assert cold.exit_code == warm.exit_code == 0
    assert json.loads(warm.stdout) == json.loads(cold.stdout)


def test_two_worker_build_and_append_equal_cold(tmp_path: Path, monkeypatch) -> None:
    from mlobs_cli import engine

    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)  # split even a small file in two
    path = tmp_path / "two.log"
    path.write_text(log_lines(0, 400))
    cold, warm = both(path)
    assert_same(cold, warm)
    assert len(cache.entries()[0]["segments"]) == 2
    with open(path, "a") as fh:
        fh.write(log_lines(400, 100))
    assert_same(*both(path))
    # the appended bytes lie after the file's midpoint cut: one more segment
    assert len(cache.entries()[0]["segments"]) == 3


def _small_chunks(monkeypatch, events: int) -> None:
    """Parse in 256-byte blocks and type every `events` events: many small frames per segment."""
    from mlobs_cli import engine, sources

    def small_blocks(stream, **kw):
        return sources.iter_raw_blocks(stream, **{**kw, "block_bytes": 256})

    monkeypatch.setattr(engine, "iter_raw_blocks", small_blocks)
    monkeypatch.setattr(engine, "CHUNK_EVENTS", events)


def test_many_chunks_with_different_categories_equal_cold(tmp_path: Path, monkeypatch) -> None:
    """Versions and sources come back from the cache as categoricals built from stored codes; chunks
    whose string tables differ (v1 only in some) must still give the cold frames exactly."""
    _small_chunks(monkeypatch, 7)
    path = tmp_path / "chunks.log"
    lines = log_lines(0, 120).splitlines(keepends=True)
    lines[40:40] = [EVENT.format(m=0, s=1, us=5, e="request_received", i=999)]  # no summary: no version
    path.write_text("".join(lines))
    cold, warm = both(path)
    assert_same(cold, warm)
    assert warm.requests["model_version"].cat.categories.tolist() == ["v1", "v2"]
    assert "unknown" in warm.milestones["model_version"].cat.categories
    with open(path, "a") as fh:  # the appended tail is parsed (object columns) and merged with them
        fh.write(log_lines(120, 3)[:-1])
    assert_same(*both(path))


def test_merged_segment_frames_equal_cold_when_chunks_differ(tmp_path: Path, monkeypatch) -> None:
    """A segment's chunks are merged on disk into one frame per kind where their columns match; a
    field present in some chunks only, or ints in one chunk and floats in the next, keep them apart."""
    _small_chunks(monkeypatch, 5)
    path = tmp_path / "mixed.log"
    lines = []
    for i in range(60):
        extra = {"n": i if i < 30 else i + 0.5} if i % 20 < 12 else {"tag": f"t{i % 3}", "n": None}
        doc = {"ts": f"2026-11-26T10:00:{i:02d}Z", "request_id": f"r{i}", "model_version": f"v{i % 2}",
               "latency_ms": 10 + i, "status": 200, "level": None if i % 7 else "warn", **extra}  # fmt: skip
        lines.append(json.dumps(doc) + "\n")
    path.write_text("".join(lines))
    cold, warm = both(path)
    assert_same(cold, warm)
    seg = next(p for p in cache_root().glob("*/seg-*"))
    frames = json.loads((seg / "segment.json").read_bytes())["frames"]["requests"]
    assert 1 < len(frames) < 60 // 5  # merged where they could be, apart where they could not
