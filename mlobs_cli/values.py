"""Column-wise coercion of raw logged values: durations, status codes, error markers, ids.

Parsing keeps raw values; these functions turn whole columns into typed arrays at once, taking the
fast path (one numpy conversion) when every value already has the expected type, and a per-value path
only for columns that hold strings like `"357.8ms"`, `"17.4"` or junk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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


def status_codes(values: Sequence[Any]) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """HTTP-like codes as nullable Int64, and a flag for word statuses meaning failure ("error")."""
    n = len(values)
    types = set(map(type, values))
    if types <= {int, type(None)}:
        return pd.array(list(values), dtype="Int64"), np.zeros(n, dtype=bool)
    codes: list[int | None] = [None] * n
    word_error = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if type(value) is int:
            codes[i] = value
        elif type(value) is float and value.is_integer() and abs(value) < 1e9:
            codes[i] = int(value)
        elif type(value) is str:
            text = value.strip().lower()
            if text.isdigit() and len(text) < 10:
                codes[i] = int(text)
            elif text in _ERROR_WORDS or text.startswith(("error", "fail")):
                word_error[i] = True
    return pd.array(codes, dtype="Int64"), word_error


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
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    flags = np.fromiter(
        (type(v) is str and v.lower() in _ERROR_LEVELS for v in uniques), dtype=bool, count=len(uniques)
    )
    return np.append(flags, False)[codes]  # code -1 (missing) picks the appended False


def texts(values: Sequence[Any]) -> np.ndarray:
    """Ids and versions as strings (numbers written as text), None for missing or unusable."""
    arr = np.empty(len(values), dtype=object)
    if set(map(type, values)) <= {str, type(None)}:
        arr[:] = values
        if list(values).count(""):
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
    arr = texts(values)
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[: len(uniques)] = uniques
    table[-1] = None
    return table[codes]


def scalars(values: Sequence[Any]) -> pd.Series:
    """An attribute column: typed numeric when every present value is a number, else objects.

    Lists and objects are dropped (None): the frames keep scalars only.
    """
    types = set(map(type, values))
    if types <= {int, type(None)} and int in types:
        return pd.Series(pd.array(list(values), dtype="Int64"))
    if types <= {int, float, type(None)} and float in types:
        return pd.Series(np.asarray([np.nan if v is None else v for v in values], dtype=np.float64))
    if types & {list, dict}:
        values = [v if type(v) in (str, int, float, bool) else None for v in values]
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return pd.Series(arr, dtype=object)
