"""Text lines built as numpy byte matrices: many lines of one layout at a time, no Python loop per
line. `assemble` fills a layout (constant text + byte-matrix fields); `write_sorted` lays the lines
of several layouts into one buffer in time order. The simulator writes its logs with them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGITS3 = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)
_TIME_OF_DAY: list[np.ndarray] = []  # (86400, 8) `HH:MM:SS`, built on first use


def text(value: str) -> np.ndarray:
    return np.frombuffer(value.encode(), dtype=np.uint8)


def decimal(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers, as an (n, width) uint8 matrix."""
    groups = -(-width // 3)
    out = np.empty((len(values), groups * 3), dtype=np.uint8)
    rest = values
    for g in range(groups - 1, -1, -1):
        rest, low = np.divmod(rest, 1000)
        out[:, 3 * g : 3 * g + 3] = _DIGITS3[low]
    return np.ascontiguousarray(out[:, groups * 3 - width :])


def hexdigits(raw: np.ndarray) -> np.ndarray:
    """(n, k) bytes -> (n, 2k) lowercase hex digits."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def timestamps(t_us: np.ndarray) -> np.ndarray:
    """Epoch µs -> (n, 27) `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC)."""
    if not _TIME_OF_DAY:
        secs = np.arange(86_400)
        table = np.empty((86_400, 8), dtype=np.uint8)
        table[:, 0:2] = decimal(secs // 3600, 2)
        table[:, 3:5] = decimal(secs // 60 % 60, 2)
        table[:, 6:8] = decimal(secs % 60, 2)
        table[:, [2, 5]] = ord(":")
        _TIME_OF_DAY.append(table)
    days, tod = np.divmod(t_us, 86_400 * US_PER_S)
    first = int(days.min()) if len(days) else 0
    span = range(first, int(days.max()) + 1 if len(days) else 0)
    dates = np.frombuffer(
        "".join(f"{_EPOCH + timedelta(days=d):%Y-%m-%d}T" for d in span).encode(), dtype=np.uint8
    ).reshape(len(span), 11)
    secs, micros = np.divmod(tod, US_PER_S)
    high, low = np.divmod(micros, 1000)
    out = np.empty((len(t_us), 27), dtype=np.uint8)
    out[:, 0:11] = dates[days - first]
    out[:, 11:19] = _TIME_OF_DAY[0][secs]
    out[:, 19] = ord(".")
    out[:, 20:23] = _DIGITS3[high]
    out[:, 23:26] = _DIGITS3[low]
    out[:, 26] = ord("Z")
    return out


@functools.lru_cache(maxsize=4096)
def _layout(offsets: tuple[int, ...], widths: tuple[int, ...], itemsize: int) -> np.dtype:
    """A structured dtype with one void field per (offset, width) in rows of `itemsize` bytes."""
    return np.dtype(
        {
            "names": [f"f{i}" for i in range(len(offsets))],
            "formats": [f"V{w}" for w in widths],
            "offsets": list(offsets),
            "itemsize": itemsize,
        }
    )


def _fields(matrix: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bytes [start, start+width) of each row of a uint8 matrix, as a 1-D void array."""
    matrix = np.ascontiguousarray(matrix)
    return matrix.view(_layout((start,), (width,), matrix.shape[1])).ravel()["f0"]


def assemble(parts: list, rows: np.ndarray | None, n: int) -> np.ndarray:
    """Lines of one layout as an (n, width) uint8 matrix.

    Each part is constant text (str) or a field `(matrix, start, width)`: bytes [start, start+width)
    of the matrix rows `rows` (all rows when None), so whole-batch matrices are gathered once here.
    """
    template = bytearray()
    fields = []
    for part in parts:
        if isinstance(part, str):
            template += part.encode()
        else:
            matrix, start, width = part
            fields.append((len(template), matrix, start, width))
            template += b"\0" * width
    out = np.empty((n, len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(bytes(template), dtype=np.uint8)
    if not fields:
        return out
    layout = _layout(tuple(f[0] for f in fields), tuple(f[3] for f in fields), len(template))
    slots = out.view(layout).ravel()
    for i, (_, matrix, start, width) in enumerate(fields):
        source = _fields(matrix, start, width)
        slots[f"f{i}"] = source if rows is None else source[rows]
    return out


@dataclass
class LineSet:
    """Lines of one layout with their sort keys: time (epoch µs) and a tie-breaking sequence."""

    lines: np.ndarray  # (n, width) uint8, each row one line ending in b"\n"
    ts: np.ndarray  # int64
    seq: np.ndarray  # int64


def _time_order(ts: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Indices sorting by (ts, seq): one int64 key when both ranges fit, else lexsort."""
    t, q = ts - ts.min(), seq - seq.min()
    bits = int(q.max()).bit_length()
    if int(t.max()).bit_length() + bits <= 62:
        return np.argsort((t << bits) | q, kind="stable")
    return np.lexsort((seq, ts))


def write_sorted(sets: list[LineSet], before: int | None) -> tuple[memoryview, list[LineSet]]:
    """Lay every line with ts < `before` (all when None) into one buffer, sorted by (ts, seq).

    Returns the buffer and the lines held back, as line sets to pass in again with the next batch.
    """
    sets = [s for s in sets if len(s.ts)]
    if not sets:
        return memoryview(b""), []
    ts = np.concatenate([s.ts for s in sets])
    seq = np.concatenate([s.seq for s in sets])
    widths = np.concatenate([np.full(len(s.ts), s.lines.shape[1], dtype=np.int64) for s in sets])
    order = _time_order(ts, seq)
    emit = len(order) if before is None else int(np.searchsorted(ts[order], before))
    offsets = np.full(len(ts), -1, dtype=np.int64)
    chosen = order[:emit]
    sizes = widths[chosen]
    total = int(sizes.sum())
    offsets[chosen] = np.cumsum(sizes) - sizes
    buffer = np.empty(total + int(widths.max()), dtype=np.uint8)
    held: list[LineSet] = []
    first = 0
    for s in sets:
        count, width = s.lines.shape
        at = offsets[first : first + count]
        first += count
        keep = np.flatnonzero(at >= 0)
        source = s.lines.view(f"V{width}").ravel()
        if len(keep):
            # Overlapping view: element k is the `width` bytes starting at byte k of the buffer.
            slots = np.ndarray((total,), dtype=f"V{width}", buffer=buffer, strides=(1,))
            slots[at[keep]] = source if len(keep) == count else source[keep]
        if len(keep) < count:
            back = np.flatnonzero(at < 0)
            held.append(LineSet(s.lines[back], s.ts[back], s.seq[back]))
    return memoryview(buffer)[:total], held
