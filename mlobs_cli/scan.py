"""Scan: feed whole blocks of raw bytes to a `RecordParser`, parsing only the lines a query can use.

A block is a run of complete lines. Without a prefilter every line is parsed. With one (when a command
needs request summaries only) a line is left out, counted as read but not parsed, only when it
provably cannot be a summary and would not have been reported as damaged:

- a summary needs a key that maps to `latency_ms`: a key whose normalized name (lowercase, letters and
  digits only, `schema.normalize_key`) is a latency alias plus an optional unit. So the line's letters,
  lowercased with everything else removed (`_SQUEEZE`), contain that alias ("latency", "duration",
  ...), or the `--field latency_ms=KEY` override's letters;
- escapes (`\\`), nested objects (more than one `{`) and the only two non-ASCII characters whose
  lowercase holds ASCII letters (`İ`, `K` Kelvin, caught by their UTF-8 lead bytes 0xC4 and 0xE2)
  can hide a key from that test: such lines are always parsed;
- a line whose letters-and-braces shape is not exactly `{...}` (blank, plain text, CRI, multi-line
  JSON, a JSON array or number) is always parsed, so damaged and unusual lines are still reported;
- Docker json-file envelopes always carry a `stream` key: lines containing "stream" are parsed.

Not validated, then: whether a one-object line without any of those words is well-formed JSON and
what it holds (its stage event, timestamps). `--strict` and `mlobs schema` turn the prefilter off.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from mlobs_cli.records import RecordParser
from mlobs_cli.schema import DURATION_ALIASES, FieldOverride, normalize_key

_UPPER = bytes(range(65, 91))
_MARK = 1  # stands for `\`, 0xC4 and 0xE2 in the squeezed block
_KEPT = set(range(97, 123)) | set(range(65, 91)) | {10, 123, 125, 92, 0xC4, 0xE2}
_SQUEEZE_TABLE = bytes.maketrans(_UPPER + b"\\\xc4\xe2", _UPPER.lower() + bytes([_MARK]) * 3)
_SQUEEZE_DELETE = bytes(b for b in range(256) if b not in _KEPT)


def squeeze(block: bytes) -> bytes:
    """Letters (lowercased), newlines and braces of `block`; escapes and 0xC4/0xE2 become 0x01."""
    return block.translate(_SQUEEZE_TABLE, _SQUEEZE_DELETE)


def summary_needles(overrides: dict[str, FieldOverride] | None = None) -> tuple[bytes, ...] | None:
    """Words one of which every line holding a request summary contains once squeezed.

    None when no such set exists (an override key without letters): then nothing may be left out.
    """
    words = {normalize_key(a) for a in DURATION_ALIASES["latency_ms"]}
    words.add("stream")  # Docker json-file envelopes
    for ov in (overrides or {}).values():
        if ov.canon == "latency_ms":
            letters = "".join(c for c in ov.key.lower() if "a" <= c <= "z")
            if not letters:
                return None
            words.add(letters)
    # A word containing a shorter one adds nothing (`totallatency` holds `latency`).
    minimal = {w for w in words if not any(o != w and o in w for o in words)}
    return tuple(sorted(w.encode() for w in minimal))


# English letter frequencies, most to least common: a needle is looked up by its rarest-looking
# letter pair (its anchor), so that few places need checking. Speed only: any pair finds the same.
_LETTER_RANK = {c: i for i, c in enumerate(b"etaoinshrdlcumwfgypbvkjxqz")}


@lru_cache(maxsize=16)
def _anchors(needles: tuple[bytes, ...]) -> list[tuple[bytes, int, int]]:
    """Per needle of two letters or more: `(needle, anchor offset, anchor pair as little-endian uint16)`."""
    plans = []
    for needle in needles:
        if len(needle) < 2:
            continue
        a = max(
            range(len(needle) - 1),
            key=lambda i: _LETTER_RANK.get(needle[i], 26) + _LETTER_RANK.get(needle[i + 1], 26),
        )
        plans.append((needle, a, needle[a] | needle[a + 1] << 8))
    return plans


def _pairs_at(pairs: np.ndarray, wanted: list[int]) -> np.ndarray:
    """Indices of `pairs` equal to one of `wanted`."""
    match = pairs == wanted[0]
    for pair in wanted[1:]:
        match |= pairs == pair
    return np.flatnonzero(match)


def _needle_hits(sq: bytes, sqa: np.ndarray, needles: tuple[bytes, ...]) -> list[np.ndarray]:
    """Offsets in `sq` where a needle starts: anchor pairs found by vectorized compares of the pairs
    at even and at odd offsets, then each candidate checked letter by letter."""
    hits = [np.flatnonzero(sqa == n[0]) for n in needles if len(n) == 1 and n in sq]
    plans = _anchors(needles)
    if not plans:
        return hits
    wanted = sorted({pair for _, _, pair in plans})
    even = np.frombuffer(sq, dtype="<u2", count=len(sq) // 2)
    odd = np.frombuffer(sq, dtype="<u2", count=(len(sq) - 1) // 2, offset=1)
    at = np.concatenate([_pairs_at(even, wanted) * 2, _pairs_at(odd, wanted) * 2 + 1])
    if not len(at):
        return hits
    pairs = sqa[at].astype(np.uint16) | sqa[at + 1].astype(np.uint16) << 8
    for needle, a, pair in plans:
        starts = at[pairs == pair] - a
        starts = starts[(starts >= 0) & (starts + len(needle) <= len(sq))]
        for j, ch in enumerate(needle):
            if j in (a, a + 1) or not len(starts):
                continue
            starts = starts[sqa[starts + j] == ch]
        hits.append(starts)
    return hits


def _unshaped_lines(sqa: np.ndarray, sq_nl: np.ndarray) -> np.ndarray | None:
    """Indices of lines whose squeezed form is not exactly `{letters}`; None when all are."""
    n = len(sq_nl)
    is_open = sqa == 123
    is_close = sqa == 125
    line_starts = np.empty(n, dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = sq_nl[:-1] + 1
    # n braces of each kind, each line starting with `{` and ending with `}`: one of each per line.
    if np.count_nonzero(is_open) == n and np.count_nonzero(is_close) == n:
        if is_open[line_starts].all() and is_close[sq_nl - 1].all():
            return None
    opens = np.flatnonzero(is_open)
    closes = np.flatnonzero(is_close)
    nonempty = line_starts < sq_nl
    first_ok = nonempty & (sqa[np.minimum(line_starts, len(sqa) - 1)] == 123)
    last_ok = nonempty & (sqa[sq_nl - 1] == 125)
    n_open = np.bincount(np.searchsorted(sq_nl, opens), minlength=n)
    n_close = np.bincount(np.searchsorted(sq_nl, closes), minlength=n)
    ok = first_ok & last_ok & (n_open == 1) & (n_close == 1)
    return np.flatnonzero(~ok)


def candidate_lines(block: bytes, needles: tuple[bytes, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(starts, ends, candidates)`: every line's byte span in `block`, and which lines to parse."""
    arr = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    if n == 0:
        return starts, ends, np.empty(0, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    sq = squeeze(block)
    if not block.endswith(b"\n"):  # squeezing keeps every newline: one more ends the last line
        sq += b"\n"
    sqa = np.frombuffer(sq, dtype=np.uint8)
    sq_nl = np.flatnonzero(sqa == 10)  # one per line: squeezing keeps every newline
    hits = _needle_hits(sq, sqa, (*needles, bytes([_MARK])))
    parts = [np.searchsorted(sq_nl, h) for h in hits if len(h)]
    unshaped = _unshaped_lines(sqa, sq_nl)
    if unshaped is not None:
        parts.append(unshaped)
    if not parts:
        return starts, ends, np.empty(0, dtype=np.int64)
    return starts, ends, np.unique(np.concatenate(parts))


def _split(block: bytes, cap: int) -> list[bytes | None]:
    lines: list[bytes | None] = block.split(b"\n")  # type: ignore[assignment]
    if block.endswith(b"\n"):
        lines.pop()
    if any(ln is not None and len(ln) > cap for ln in lines):
        lines = [None if ln is not None and len(ln) > cap else ln for ln in lines]
    return lines


def feed_blocks(
    parser: RecordParser,
    source: str,
    blocks: Iterable[bytes | None],
    *,
    needles: tuple[bytes, ...] | None,
    max_line_bytes: int,
    first_line_no: int = 1,
    on_block: object = None,
) -> int:
    """Feed blocks of whole lines (None: one line over the size cap) to `parser`.

    With `needles`, only candidate lines are parsed (see the module docstring). Returns the next line
    number. `on_block` (a callable) runs after every block, e.g. to turn events into frames.
    """
    line_no = first_line_no
    for block in blocks:
        if block is None:
            parser.feed(source, line_no, None)
            line_no += 1
        elif needles is None or parser.in_open_state(source):
            line_no = parser.feed_block(source, line_no, _split(block, max_line_bytes))
        else:
            line_no = _feed_filtered(parser, source, block, line_no, needles, max_line_bytes)
        if on_block is not None:
            on_block()  # type: ignore[operator]
    return line_no


def _feed_filtered(
    parser: RecordParser, source: str, block: bytes, line_no: int, needles: tuple[bytes, ...], cap: int
) -> int:
    starts, ends, picked = candidate_lines(block, needles)
    n = len(ends)
    too_long = ends - starts > cap
    if too_long.any():
        picked = np.union1d(picked, np.flatnonzero(too_long))
    s_list = starts[picked].tolist()
    e_list = ends[picked].tolist()
    lines: list[bytes | None] = [block[s:e] for s, e in zip(s_list, e_list)]
    if len(picked):
        arr = np.frombuffer(block, dtype=np.uint8)
        last = arr[np.maximum(ends[picked] - 1, 0)]
        odd = (starts[picked] >= ends[picked]) | (arr[np.minimum(starts[picked], len(arr) - 1)] != 123)
        odd |= last != 125
        for i in np.flatnonzero(odd | too_long[picked]).tolist():
            raw = lines[i]
            assert raw is not None
            if len(raw) > cap:
                lines[i] = None
            elif raw.strip() in (b"{", b"["):
                # A multi-line object starts here: its lines must all be read, in order.
                return parser.feed_block(source, line_no, _split(block, cap))
    numbers = (picked + line_no).tolist()
    parser.feed_selected(source, list(zip(numbers, lines)), n - len(lines))
    return line_no + n
