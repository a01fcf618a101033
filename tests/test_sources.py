"""Sources: folders, globs, rotation order, compression by magic bytes, stdin, errors, line caps."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.errors import InputError
from mlobs_cli.sources import Source, expand_sources, iter_line_blocks, lines_at, open_source


def names(sources):
    return [s.path.name if s.path else s.name for s in sources]


def test_rotated_set_reads_oldest_first(tmp_path):
    for name in ("app.log", "app.log.1", "app.log.10", "app.log.2.gz", "other.jsonl"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "README.md").write_text("not a log")
    (tmp_path / ".hidden.log").write_text("")
    got = names(expand_sources([str(tmp_path)]))
    assert got == ["app.log.10", "app.log.2.gz", "app.log.1", "app.log", "other.jsonl"]


def test_glob_and_missing_and_empty_glob(tmp_path):
    (tmp_path / "a.log").write_text("x")
    (tmp_path / "b.log").write_text("x")
    assert names(expand_sources([str(tmp_path / "*.log")])) == ["a.log", "b.log"]
    with pytest.raises(InputError, match="no file matches"):
        expand_sources([str(tmp_path / "*.nothing")])
    with pytest.raises(InputError, match="no such file or folder"):
        expand_sources([str(tmp_path / "missing.log")])


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compression_by_magic(tmp_path, compress):
    path = tmp_path / "plain-name.log"
    path.write_bytes(compress(b"one\ntwo\n"))
    stream = open_source(Source(str(path), path))
    lines = [ln for block in iter_line_blocks(stream) for ln in block]
    assert lines == [b"one", b"two"]


def test_long_lines_are_capped_without_holding_them(tmp_path):
    data = b"short\n" + b"x" * 5000 + b"\nafter\n" + b"y" * 5000
    blocks = list(iter_line_blocks(io.BytesIO(data), max_line_bytes=1000, block_bytes=256))
    lines = [ln for block in blocks for ln in block]
    assert lines == [b"short", None, b"after", None]


def test_last_line_without_newline_and_crlf_kept_raw():
    lines = [ln for b in iter_line_blocks(io.BytesIO(b"a\r\nb")) for ln in b]
    assert lines == [b"a\r", b"b"]


def test_lines_at_rereads_given_lines(tmp_path):
    path = tmp_path / "x.log.gz"
    path.write_bytes(gzip.compress(b"l1\nl2\nl3\nl4\n"))
    assert lines_at(str(path), [4, 2]) == {2: b"l2", 4: b"l4"}
    with pytest.raises(InputError):
        lines_at("-", [1])


def test_stdin_source(run_cli):
    stdin = '{"request_id":"s1","latency_ms":3,"model_version":"v1"}\n'
    result = run_cli("schema", "-", "--format", "json", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert '"request_summary": 1' in result.stdout


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.booleans(),
    st.integers(1, 9),
    st.integers(0, 20),
)
def test_raw_blocks_hold_every_line_once_and_mark_long_ones(
    lines: list[bytes], final_newline: bool, block_bytes: int, cap: int
) -> None:
    """Blocks of whole lines, cut anywhere by small reads, give back the lines (None: over the cap)."""

    from mlobs_cli.sources import iter_raw_blocks

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    got: list[bytes | None] = []
    for block in iter_raw_blocks(io.BytesIO(data), max_line_bytes=cap, block_bytes=block_bytes):
        if block is None:
            got.append(None)
            continue
        assert block.endswith(b"\n") or block == data[-len(block) :]
        pieces = block.split(b"\n")
        if block.endswith(b"\n"):
            pieces.pop()
        got.extend(pieces)
    expected = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected.pop()
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == e or (g is None and len(e) > cap), (g, e)
