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


def void_rows(matrix: np.ndarray, start: int = 0, width: int | None = None) -> np.ndarray:
    """Bytes [start, start+width) of each row of a uint8 matrix, as a 1-D void array.

    Gathering and assigning whole void elements is much faster in numpy than copying narrow
    2-D column slices, so every field travels as one of these.
    """
    matrix = np.ascontiguousarray(matrix)
    width = matrix.shape[1] - start if width is None else width
    return matrix.view(_layout((start,), (width,), matrix.shape[1])).ravel()["f0"]


def _table(texts: list[str]) -> np.ndarray:
    raw = "".join(texts).encode()
    return void_rows(np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), -1).copy())


_DIGITS3 = _table([f"{i:03d}" for i in range(1000)])
_HEX2 = _table([f"{i:02x}" for i in range(256)])
_TIME_OF_DAY: list[np.ndarray] = []  # `HH:MM:SS` for every second of a day, built on first use


def text(value: str) -> np.ndarray:
    return np.frombuffer(value.encode(), dtype=np.uint8)


def decimal(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers, as an (n, width) uint8 matrix."""
    groups = -(-width // 3)
    out = np.empty((len(values), groups), dtype="V3")
    rest = values
    for g in range(groups - 1, -1, -1):
        rest, low = np.divmod(rest, 1000)
        out[:, g] = _DIGITS3[low]
    digits = out.view(np.uint8).reshape(len(values), groups * 3)
    return digits if width == groups * 3 else np.ascontiguousarray(digits[:, groups * 3 - width :])


def hexdigits(raw: np.ndarray) -> np.ndarray:
    """(n, k) bytes -> (n, 2k) lowercase hex digits."""
    return _HEX2[raw].view(np.uint8).reshape(raw.shape[0], raw.shape[1] * 2)


_TS_LAYOUT = [("date", 0, 11), ("tod", 11, 8), ("dot", 19, 1), ("ms", 20, 3), ("us", 23, 3),
              ("z", 26, 1)]  # fmt: skip


def timestamps(t_us: np.ndarray) -> np.ndarray:
    """Epoch µs -> (n, 27) `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC)."""
    if not _TIME_OF_DAY:
        _TIME_OF_DAY.append(
            _table([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)])
        )
    days, tod = np.divmod(t_us, 86_400 * US_PER_S)
    first = int(days.min()) if len(days) else 0
    span = int(days.max()) + 1 - first if len(days) else 0
    if span <= len(days) + 366:  # a table of every day in the range: no sort needed
        day_list, day_index = range(first, first + span), days - first
    else:  # a few times over centuries: only the days that occur
        day_list, day_index = np.unique(days, return_inverse=True)
        day_list = day_list.tolist()
    dates = _table([f"{_EPOCH + timedelta(days=d):%Y-%m-%d}T" for d in day_list]) if span else None
    secs, micros = np.divmod(tod, US_PER_S)
    high, low = np.divmod(micros, 1000)
    layout = _layout(tuple(f[1] for f in _TS_LAYOUT), tuple(f[2] for f in _TS_LAYOUT), 27)
    out = np.empty(len(t_us), dtype=layout)
    if dates is not None:
        out["f0"] = dates[day_index]
    out["f1"] = _TIME_OF_DAY[0][secs]
    out["f2"] = np.void(b".")
    out["f3"] = _DIGITS3[high]
    out["f4"] = _DIGITS3[low]
    out["f5"] = np.void(b"Z")
    return out.view(np.uint8).reshape(len(t_us), 27)


def assemble(parts: list, rows: np.ndarray | None, n: int) -> np.ndarray:
    """Lines of one layout as an (n, width) uint8 matrix.

    Each part is constant text (str) or a field: a 1-D void array (see `void_rows`) holding one
    value per row of the whole batch, of which the rows `rows` (all when None) are taken.
    """
    template = bytearray()
    fields = []
    for part in parts:
        if isinstance(part, str):
            template += part.encode()
        else:
            fields.append((len(template), part))
            template += b"\0" * part.dtype.itemsize
    out = np.empty((n, len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(bytes(template), dtype=np.uint8)
    if not fields:
        return out
    offsets = tuple(f[0] for f in fields)
    widths = tuple(f[1].dtype.itemsize for f in fields)
    slots = out.view(_layout(offsets, widths, len(template))).ravel()
    for i, (_, source) in enumerate(fields):
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
