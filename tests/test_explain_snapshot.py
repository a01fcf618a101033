"""`mlobs explain` from a file's explain snapshot answers exactly as a cold read (stdout, stderr and
exit code), reads no log line to do so, and never uses a snapshot of another state of the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlobs_cli import engine
from mlobs_cli.cachedir import cache_root, set_enabled
from tests._service_logs import otel_spans, structlog_service, write_console
from tests.test_cache import log_lines
from tests.test_cli_explain import TREE, _service


@pytest.fixture(autouse=True)
def _cache_on():
    set_enabled(True)
    yield
    set_enabled(True)


def _messy_log(path: Path) -> Path:
    """Summaries and stage events (events carry no version), a bad line, a line logged twice, and
    one request id on two different summaries."""
    lines = log_lines(0, 120).splitlines(keepends=True)
    summary = [ln for ln in lines if '"r5"' in ln and "latency_ms" in ln][0]
    lines.append([ln for ln in lines if '"r11"' in ln and "latency_ms" in ln][0])  # a true duplicate
    lines.append(summary.replace('"latency_ms": ', '"latency_ms": 1'))  # r5 again, another request
    path.write_text("".join(lines))
    return path


def _snapshots() -> list[Path]:
    return sorted(cache_root().glob("*/explain/snapshot.json"))


def _no_full_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, reading the log (cold or from the cache's segments) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("explain read the log instead of its snapshot")

    monkeypatch.setattr(engine, "dataset_from_sources", refuse)


def _same(run_cli, args: list[str]) -> None:
    cold = run_cli("--no-cache", "explain", *args)
    warm = run_cli("explain", *args)
    assert (warm.exit_code, warm.stdout, warm.stderr) == (cold.exit_code, cold.stdout, cold.stderr)


QUERIES = {
    "messy": ["r17", "r5", "r11", "r3", "r1", "nope", "r11 ", ""],
    "service": ["req-slow", "req-fail", "req-mixed", "req-00", "req-0", "req-01"],
    "spans": ["otel-1", "otel", "0x", "zzz"],
}


@pytest.mark.parametrize("kind", sorted(QUERIES))
def test_snapshot_answers_as_a_cold_read(run_cli, tmp_path, monkeypatch, kind: str) -> None:
    path = tmp_path / f"{kind}.log"
    if kind == "messy":
        _messy_log(path)
    elif kind == "service":
        structlog_service(path, monkeypatch, _service())
    else:
        write_console(path, otel_spans(TREE))
    queries = list(QUERIES[kind])
    if kind == "spans":  # the trace id, in full, by prefix and as ConsoleSpanExporter prints it
        tid = json.loads(run_cli("--no-cache", "explain", "otel-1", path, "-f", "json").stdout)["trace_id"]
        queries += [tid, tid[:8], "0x" + tid[:12].upper()]
    assert run_cli("ingest", path).exit_code == 0
    assert len(_snapshots()) == 1
    colds = {
        (q, fmt): run_cli("--no-cache", "explain", q, path, *fmt)
        for q in queries
        for fmt in ((), ("-f", "json"), ("--raw", "-f", "json"))
    }
    _no_full_read(monkeypatch)
    for (q, fmt), cold in colds.items():
        warm = run_cli("explain", q, path, *fmt)
        assert (warm.exit_code, warm.stdout, warm.stderr) == (cold.exit_code, cold.stdout, cold.stderr), q
    assert {c.exit_code for c in colds.values()} >= {0, 1}  # found and not found / ambiguous


def test_messy_notes_come_from_the_snapshot(run_cli, tmp_path, monkeypatch) -> None:
    path = _messy_log(tmp_path / "messy.log")
    run_cli("ingest", path)
    cold = run_cli("--no-cache", "explain", "r5", path)
    assert "duplicate lines: 1 request summaries" in cold.stderr
    assert "not json" in cold.stderr or "skipped" in cold.stderr
    _no_full_read(monkeypatch)
    warm = run_cli("explain", "r5", path)
    assert (warm.exit_code, warm.stdout, warm.stderr) == (cold.exit_code, cold.stdout, cold.stderr)
    strict = run_cli("explain", "--strict", "r5", path)  # the skipped line fails --strict here too
    assert strict.exit_code == 1 and "--strict" in strict.stderr


def _stamp() -> str | None:
    found = _snapshots()
    return json.loads(found[0].read_bytes())["stamp"] if found else None


def test_explain_makes_a_snapshot_of_an_unchanged_file_only(run_cli, tmp_path) -> None:
    """A run that had to read the file (first run, grown file) makes none: a file that keeps
    growing would pay for one every run. The next run over the same bytes makes it."""
    path = tmp_path / "app.log"
    path.write_text(log_lines(0, 100))
    _same(run_cli, ["r7", str(path)])  # the warm run builds the cache entry
    assert _stamp() is None
    _same(run_cli, ["r8", str(path)])  # the entry was complete and unchanged: a snapshot
    first = _stamp()
    assert first is not None
    _same(run_cli, ["r9", str(path)])  # from the snapshot
    with open(path, "a") as fh:
        fh.write(log_lines(100, 30))
    _same(run_cli, ["r120", str(path)])  # only in the new lines: the old snapshot must not answer
    assert _stamp() is None  # removed with the state of the file it was made from
    _same(run_cli, ["r7", str(path)])  # its version's context now counts the new requests too
    assert _stamp() not in (None, first)  # made again for the new state of the file
    _same(run_cli, ["r7", str(path)])
    with open(path, "a") as fh:
        fh.write(log_lines(130, 5)[:-1])  # a last line still being written: no snapshot is used
    _same(run_cli, ["r134", str(path)])
    _same(run_cli, ["r7", str(path)])


def test_rewritten_file_and_foreign_stamp_are_not_used(run_cli, tmp_path) -> None:
    path = tmp_path / "app.log"
    path.write_text(log_lines(0, 100))
    run_cli("ingest", path)
    doc = json.loads(_snapshots()[0].read_bytes())
    doc["stamp"] = "0" * 64  # made by other code, or for another state of the file
    _snapshots()[0].write_bytes(json.dumps(doc).encode())
    _same(run_cli, ["r7", str(path)])
    old = '"r7", "model_version": "v2", "latency_ms": 2'
    text = path.read_text().replace(old, old[:-1] + "9")  # same size, r7 slower
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    _same(run_cli, ["r7", str(path)])  # the entry is read again: a full read
    _same(run_cli, ["r7", str(path)])  # from the snapshot made for the rewritten file


def test_a_path_spelled_differently_keeps_its_spelling(run_cli, tmp_path, monkeypatch) -> None:
    """The cache is keyed by the resolved path; frames and skip examples must still name the file
    as this run gives it (`app.log`, not the absolute path it was ingested as)."""
    monkeypatch.chdir(tmp_path)
    path = _messy_log(tmp_path / "app.log")
    run_cli("ingest", str(path))
    for args in (["explain", "r5", "app.log", "-f", "json"], ["latency", "app.log", "-f", "json"]):
        cold = run_cli("--no-cache", *args)
        warm = run_cli(*args)
        assert (warm.exit_code, warm.stdout, warm.stderr) == (cold.exit_code, cold.stdout, cold.stderr)
    assert "app.log:" in cold.stderr and str(tmp_path) not in cold.stderr


@pytest.mark.parametrize(
    "values",
    [
        ["b", "a", None, "é", "a", "z\ud800x", "", "ab", "a b", "日本"],
        [None, None],
        [],
        ["x\x00y", "a"],  # a NUL: kept in a JSON table instead
        ["a" * 2000, "b"],  # too long for a fixed-width table
    ],
)
def test_sorted_text_columns_read_back_exactly(tmp_path: Path, values: list) -> None:
    import numpy as np
    import pandas as pd

    from mlobs_cli.colstore import load_frame, load_rows, load_sorted_strings, save_frame, sorted_table_find

    frame = pd.DataFrame({"request_id": pd.Series(values, dtype=object), "n": np.arange(len(values))})
    columns = save_frame(frame, tmp_path, "x_", sorted_text=True)
    pd.testing.assert_frame_equal(load_frame(columns, len(frame), tmp_path), frame)
    rows = np.arange(len(values))[::2]
    pd.testing.assert_frame_equal(load_rows(columns, tmp_path, rows), frame.iloc[rows].reset_index(drop=True))
    found = load_sorted_strings(columns, tmp_path, "request_id")
    strings = {v for v in values if v is not None}
    if found is None:
        assert any("\x00" in v or len(v) > 1000 for v in strings)
        return
    codes, table = found
    assert [bytes(b).decode("utf-8", "surrogatepass") for b in table] == sorted(strings)
    for value in strings:
        assert [s for _, s in sorted_table_find(table, value, exact=True)] == [value]
    assert {s for _, s in sorted_table_find(table, "a", exact=False)} == {
        v for v in strings if v.startswith("a")
    }
    assert sorted_table_find(table, "nope", exact=True) == []


def test_a_damaged_snapshot_falls_back_to_a_full_read_saying_everything_once(run_cli, tmp_path) -> None:
    path = _messy_log(tmp_path / "app.log")
    run_cli("ingest", path)
    folder = _snapshots()[0].parent
    for name in ("r_c0.npy", "lat0.npy"):  # e.g. removed by a newer snapshot while being read
        (folder / name).unlink()
    _same(run_cli, ["r5", str(path)])
    assert run_cli("explain", "r5", path).stderr.count("duplicate lines") == 1


def test_ingest_stores_a_snapshot_unless_told_not_to(run_cli, tmp_path) -> None:
    """`ingest` makes the snapshot by default; `--no-snapshot` stores only the columns (bounded
    memory), and explain then answers from a full read and makes the snapshot itself."""
    path = tmp_path / "app.log"
    path.write_text(log_lines(0, 60))
    result = run_cli("ingest", "--no-snapshot", str(path))
    assert result.exit_code == 0, result.stderr
    assert _stamp() is None
    _same(run_cli, ["r7", str(path)])  # complete, unchanged entry: explain makes the snapshot
    assert _stamp() is not None
    run_cli("cache", "clear")
    assert run_cli("ingest", str(path)).exit_code == 0
    assert _stamp() is not None
    _same(run_cli, ["r8", str(path)])
