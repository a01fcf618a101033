"""Damaged input never raises: every line becomes an event or a counted skip with a reason."""

from __future__ import annotations

import gzip
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.frame import dataset_from_sources
from mlobs_cli.records import RecordParser

GOOD = '{"ts":"2026-11-26T10:00:00Z","request_id":"r%d","model_version":"v1","latency_ms":%d}'

DAMAGED = [
    b"\xef\xbb\xbf" + (GOOD % (1, 10)).encode(),  # BOM
    (GOOD % (2, 20)).encode() + b"\r",  # CRLF
    b"",  # blank
    b"   ",
    b"\x1b[32mINFO\x1b[0m Starting server on :5000",  # banner with ANSI colours
    b"Traceback (most recent call last):",
    b'  File "app.py", line 3, in <module>',
    b'{"ts": "2026-11-26T10:00:00Z", "request_id": "r3", "lat',  # truncated
    b'{"request_id": "r4", "user": "\xff\xfe", "latency_ms": 4, "model_version": "v1"}',  # bad UTF-8
    b"[1, 2, 3]",  # JSON, not an object
    b'"just a string"',
    b'{"request_id": "r5", "latency_ms": "abc"}',  # mistyped
    b'{"request_id": "r6", "latency_ms": "17.4"}',  # a number in a string: usable
    b'{"request_id": "r7", "latency_ms": -5}',  # negative
    b'{"request_id": "r8", "latency_ms": null}',
    b'{"request_id": "r9", "latency_ms": 1e400}',  # overflow to inf
    b'{"request_id": "r10", "latency_ms": 12, "ts": "not a time"}',
    b'{"request_id": "r11", "latency_ms": 12, "ts": true}',
    b'{"request_id": "r12", "latency_ms": [1]}',
    b'{"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}, "latency_ms": 3}',  # deep nesting
    b"[" * 10000 + b"]" * 10000,  # very deep JSON
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}',  # span with no ids
    b'{"resourceSpans": "nope"}',
    b'{"log": 5, "stream": "stdout", "time": "x"}',
    b"2026-11-26T10:00:00Z stdout F not json inside",
    b"{",  # starts a multi-line object that never ends
]


def test_damaged_corpus_counts_every_skip(tmp_path):
    path = tmp_path / "damaged.log"
    path.write_bytes(b"\n".join(DAMAGED) + b"\n")
    data = dataset_from_sources([str(path)])
    got = set(data.requests["request_id"].dropna())
    assert {"r1", "r2", "r4", "r6"} <= got
    assert data.requests.set_index("request_id").loc["r6", "latency_ms"] == 17.4
    by = data.skipped.by_reason
    assert by["not_json"] >= 4
    assert by["truncated_line"] == 1
    assert by["not_object"] >= 2
    assert by["bad_latency"] == 2  # "abc" and [1]; 1e400 is not JSON at all
    assert by["negative_latency"] == 1
    assert by["missing_latency"] == 1
    assert by["bad_timestamp"] == 2
    assert by["bad_span"] == 2  # a span without ids; a batch without spans
    assert by["bad_multiline_json"] == 1  # the unfinished "{" at the end
    assert data.skipped.notes["invalid_utf8_repaired"] == 1


def test_truncated_gzip_keeps_what_came_before(tmp_path):
    body = "\n".join(GOOD % (i, i) for i in range(2000)).encode() + b"\n"
    blob = gzip.compress(body)
    (tmp_path / "cut.log.gz").write_bytes(blob[: len(blob) // 2])
    data = dataset_from_sources([str(tmp_path / "cut.log.gz")])
    assert 0 < len(data.requests) < 2000
    assert data.skipped.by_reason["truncated_stream"] == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_any_bytes_give_events_or_counted_skips(lines):
    parser = RecordParser()
    parser.feed_block("fuzz", 1, list(lines))
    parser.finish_source("fuzz")
    parser.take()
    # every line read is an event of some kind, a blank line, or a counted skip
    accounted = sum(parser.stats.events.values()) + parser.skipped.total + parser.stats.blank_lines
    assert accounted >= parser.lines


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
        max_leaves=20,
    )
)
def test_any_json_value_never_raises(value):
    parser = RecordParser()
    parser.feed("fuzz", 1, json.dumps(value).encode())
    parser.feed("fuzz", 2, json.dumps({"request_id": "x", "latency_ms": value}).encode())
    parser.finish_source("fuzz")
    parser.take()
