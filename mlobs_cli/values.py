"""Column-wise coercion of raw logged values: durations, status codes, error markers, ids.

Parsing keeps raw values; these functions turn whole columns into typed arrays at once, taking the
fast path (one numpy conversion) when every value already has the expected type, and a per-value path
only for columns that hold strings like `"357.8ms"`, `"17.4"` or junk. numpy only, no pandas: a forked
reader worker (`engine`) types its columns with these without importing pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlobs_cli.schema import UNIT_FACTORS_MS, duration_from_text

# Skip reasons decided here (the names are stable: they appear in JSON output and tests).
BAD_LATENCY = "bad_latency"
NEGATIVE_LATENCY = "negative_latency"
MISSING_LATENCY = "missing_latency"

_ERROR_LEVELS = frozenset({"error", "err", "critical", "fatal", "crit", "alert", "emergency", "severe"})
_ERROR_WORDS = frozenset({"error", "err", "fail", "failed", "failure", "exception", "timeout"})
_OK_WORDS = frozenset({"ok", "success", "succeeded", "done", "completed"})
_NUMBER_TYPES = frozenset({int, float})
# Above this a duration is garbage that would overflow sums and means (1e308 ms): skipped as
# bad_latency. Far above any real duration, so huge-but-summable values (1e30) are still shown as is.
MAX_DURATION_MS = 1e200


def _one_duration(value: Any, unit: str | None) -> tuple[float, bool, str | None]:
    """(value, needs a unit guess, skip reason) for one raw value; value in ms unless guessing."""
    if value is None:
        return np.nan, False, MISSING_LATENCY
    if type(value) is str:
        parsed = duration_from_text(value)
        if parsed is None:
            return np.nan, False, BAD_LATENCY
        value, text_unit = parsed
        unit = text_unit or unit
    elif type(value) is bool or not isinstance(value, (int, float)):
        return np.nan, False, BAD_LATENCY
    value = float(value)
    if value != value or value in (np.inf, -np.inf):
        return np.nan, False, BAD_LATENCY
    if value < 0:
        return np.nan, False, NEGATIVE_LATENCY
    if unit is None:  # read as ms or s later: bounded in either
        return (value, True, None) if value <= MAX_DURATION_MS else (np.nan, False, BAD_LATENCY)
    ms = value * UNIT_FACTORS_MS[unit]
    return (ms, False, None) if ms <= MAX_DURATION_MS else (np.nan, False, BAD_LATENCY)


def durations_ms(
    values: Sequence[Any], unit: str | None
) -> tuple[np.ndarray, np.ndarray, list[str | None] | None]:
    """Convert a column of durations to ms: `(values, needs_unit_guess, reasons)`.

    `reasons` is None when every value is usable, else a list with a skip reason (or None) per row.
    Values whose key names no unit come back raw with `needs_unit_guess` set.
    """
    n = len(values)
    if set(map(type, values)) <= _NUMBER_TYPES:
        arr = np.asarray(values, dtype=np.float64)
        ms = arr if unit is None else arr * UNIT_FACTORS_MS[unit]
        bad = ~np.isfinite(arr) | (arr < 0) | (ms > MAX_DURATION_MS)
        if not bad.any():
            return ms, np.full(n, unit is None, dtype=bool), None
    out = np.empty(n, dtype=np.float64)
    guess = np.zeros(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    for i, value in enumerate(values):
        out[i], guess[i], reasons[i] = _one_duration(value, unit)
    return out, guess, reasons


def optional_durations_ms(values: Sequence[Any], unit: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Like `durations_ms` for optional fields (inference time): unusable values become NaN."""
    ms, guess, reasons = durations_ms(values, unit)
    if reasons is not None:
        bad = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
        ms[bad] = np.nan
        guess[bad] = False
    return ms, guess


def status_codes(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HTTP-like codes `(codes int64, missing, word_error)`: the parts of a nullable Int64 column, and a
    flag for word statuses meaning failure ("error"). Codes outside int64 count as missing."""
    n = len(values)
    types = set(map(type, values))
    if types <= {int, type(None)}:
        if type(None) not in types:
            try:
                return np.array(values, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
            except OverflowError:
                pass
        else:
            missing = np.fromiter((v is None for v in values), dtype=bool, count=n)
            try:
                codes = np.array([0 if v is None else v for v in values], dtype=np.int64)
                return codes, missing, np.zeros(n, dtype=bool)
            except OverflowError:
                pass
    codes = np.zeros(n, dtype=np.int64)
    missing = np.ones(n, dtype=bool)
    word_error = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        code = None
        if type(value) is int:
            code = value
        elif type(value) is float and value.is_integer() and abs(value) < 1e9:
            code = int(value)
        elif type(value) is str:
            text = value.strip().lower()
            if text.isdigit() and len(text) < 10:
                code = int(text)
            elif text in _ERROR_WORDS or text.startswith(("error", "fail")):
                word_error[i] = True
        if code is not None and -(2**63) <= code < 2**63:
            codes[i] = code
            missing[i] = False
    return codes, missing, word_error


def error_markers(values: Sequence[Any]) -> np.ndarray:
    """True where an `error`-like key holds something (a message, an object, true)."""
    n = len(values)
    if set(map(type, values)) <= {type(None)}:
        return np.zeros(n, dtype=bool)
    out = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if value is None or value is False or value == "" or value == 0:
            continue
        if type(value) is str and value.strip().lower() in ("none", "null", "false", "no", "0"):
            continue
        out[i] = True
    return out


def error_levels(values: Sequence[Any]) -> np.ndarray:
    """True where a log level says error (error, critical, fatal, ...)."""
    n = len(values)
    try:
        flags = {v: type(v) is str and v.lower() in _ERROR_LEVELS for v in set(values)}
    except TypeError:  # unhashable values (lists, objects) are never levels
        return np.fromiter(
            (type(v) is str and v.lower() in _ERROR_LEVELS for v in values), dtype=bool, count=n
        )
    if not any(flags.values()):
        return np.zeros(n, dtype=bool)
    return np.fromiter(map(flags.__getitem__, values), dtype=bool, count=n)


def texts(values: Sequence[Any]) -> np.ndarray:
    """Ids and versions as strings (numbers written as text), None for missing or unusable."""
    arr = np.empty(len(values), dtype=object)
    if set(map(type, values)) <= {str, type(None)}:
        arr[:] = values
        if "" in values:
            arr[arr == ""] = None
        return arr
    for i, value in enumerate(values):
        if value is None or value == "" or type(value) is bool:
            arr[i] = None
        elif type(value) is str:
            arr[i] = value
        elif isinstance(value, (int, float)):
            arr[i] = str(value)
        else:
            arr[i] = None
    return arr


def shared_texts(values: Sequence[Any]) -> np.ndarray:
    """`texts` for low-cardinality columns (versions, levels, event names): equal strings become one
    object, so a million rows hold a million pointers to a few strings, not a million strings."""
    try:
        distinct = list(set(values))
    except TypeError:  # unhashable values (lists, objects) among them
        arr = texts(values)
        items = arr.tolist()
        one_of = {v: v for v in set(items)}
        arr[:] = list(map(one_of.__getitem__, items))
        return arr
    # Type each distinct value once. Values equal as keys type alike (1 == 1.0 == True aside:
    # those are told apart by type below), so a lookup gives each row its text.
    if any(type(v) in (int, float, bool) for v in distinct):
        typed = texts(values)
        one_of = {v: v for v in set(typed.tolist())}
        typed[:] = list(map(one_of.__getitem__, typed.tolist()))
        return typed
    one_of = dict(zip(distinct, texts(distinct).tolist()))
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(map(one_of.__getitem__, values))
    return arr


def scalars(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """An attribute column `(values, missing)`: int64 with a missing mask when every present value is
    an int (a nullable Int64 column), float64 when numbers include floats, else objects (mask None).

    Lists and objects are dropped (None): the frames keep scalars only.
    """
    types = set(map(type, values))
    if types <= {int, type(None)} and int in types:
        missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        try:
            return np.array([0 if v is None else v for v in values], dtype=np.int64), missing
        except OverflowError:
            pass
    elif types <= {int, float, type(None)} and float in types:
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64), None
    if types & {list, dict}:
        values = [v if type(v) in (str, int, float, bool) else None for v in values]
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr, None
