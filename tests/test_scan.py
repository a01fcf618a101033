"""The prefilter's vectorized candidate search equals its line-by-line definition (scan's docstring)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.config import Settings
from mlobs_cli.engine import Need, dataset_from_sources
from mlobs_cli.scan import _MARK, candidate_lines, squeeze, summary_needles


def must_parse(line: bytes, needles: tuple[bytes, ...]) -> bool:
    """The documented rule, one line at a time: parse unless the squeezed line is `{letters}` holding
    no needle and no escape/İ/K mark."""
    sq = squeeze(line)
    shaped = sq[:1] == b"{" and sq[-1:] == b"}" and sq.count(b"{") == 1 and sq.count(b"}") == 1
    return not shaped or bytes([_MARK]) in sq or any(n in sq for n in needles)


def check(block: bytes, needles: tuple[bytes, ...]) -> None:
    starts, ends, picked = candidate_lines(block, needles)
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    assert [block[s:e] for s, e in zip(starts.tolist(), ends.tolist())] == lines
    expected = [i for i, line in enumerate(lines) if must_parse(line, needles)]
    assert picked.tolist() == expected


# Pieces that make and break needles across separators, cases, escapes and line ends.
PIECES = st.sampled_from(
    [
        b"{",
        b"}",
        b'"',
        b":",
        b",",
        b"_",
        b"-",
        b".",
        b" ",
        b"\n",
        b"\\",
        b"7",
        b"la",
        b"t",
        b"ency",
        b"LATENCY",
        b"lat_ency",
        b"L.a-T",
        b"ok",
        b"to",
        b"took",
        b"total",
        b"stream",
        b"elapsed",
        b"response_time",
        b"duration",
        b"du",
        b"ps",
        b"cy",
        b"am",
        b"\xc4\xb0",  # İ
        b"\xe2\x84\xaa",  # K (Kelvin sign)
        b"\xc3\xa9",
        b"req",
        b"ts",
        b'{"ts": "2026-11-26T10:00:00Z", "event": "x"}\n',
        b'{"latency_ms": 5}\n',
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=60))
def test_candidates_equal_the_line_by_line_rule(pieces: list[bytes]) -> None:
    block = b"".join(pieces)
    check(block, summary_needles())
    check(block + b"\n", summary_needles())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([(b"x",), (b"ab", b"b"), (b"zz", b"qzq")]))
def test_candidates_on_any_bytes_and_short_needles(block: bytes, needles: tuple[bytes, ...]) -> None:
    check(block, needles)


def test_needle_at_every_offset_and_alignment() -> None:
    """Anchor pairs are looked up at even and odd offsets: a needle must be found at any offset."""
    needles = summary_needles()
    for pad in range(8):
        for word in (b"latency", b"took", b"responsetime", b"stream"):
            lines = [b'{"' + b"a" * pad + word + b'": 1}', b'{"' + b"b" * pad + b'": 1}'] * 3
            block = b"\n".join(lines) + b"\n"
            assert candidate_lines(block, needles)[2].tolist() == [0, 2, 4]


def test_long_block_matches_the_rule(tmp_path) -> None:
    lines = []
    rng = np.random.default_rng(3)
    words = ["ts", "event", "request_id", "Latency-MS", "to_ok", "x", "elapsed", "strea_m", "v"]
    for i in range(3000):
        keys = rng.choice(words, size=3, replace=False)
        lines.append("{" + ", ".join(f'"{k}": {i}' for k in keys) + "}")
    block = ("\n".join(lines) + "\n").encode()
    check(block, summary_needles())
    path = tmp_path / "a.log"
    path.write_bytes(block)
    need = Need.requests()
    fast = dataset_from_sources([str(path)], Settings(), need, use_cache=False)
    full = dataset_from_sources([str(path)], Settings(), Need(kinds=frozenset({"requests"})), use_cache=False)
    assert fast.requests["line"].tolist() == full.requests["line"].tolist()
