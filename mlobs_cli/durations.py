"""Durations, latencies and time bounds as people type them on a command line.

`parse_duration("5m") -> 300.0` seconds; `parse_latency_ms("0.3s") -> 300.0` ms (a bare number
is ms); `parse_time_bound("15m", newest)` -> 15 minutes before the newest event, or an absolute
ISO-8601 time (UTC when it names no zone). Bad input raises `UsageError` saying what is accepted.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from mlobs_cli.errors import UsageError

if TYPE_CHECKING:  # pandas is imported lazily, inside parse_time_bound
    import pandas as pd

# unit -> seconds. Lower-case keys; pandas-style aliases (T, S, L, U, N, H, D) included.
_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "nanoseconds": 1e-9,
    "n": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "u": 1e-6,
    "ms": 1e-3,
    "milli": 1e-3,
    "millis": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "l": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "t": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PART = re.compile(rf"\s*({_NUMBER})\s*([A-Za-zµμ]*)\s*")
_BARE_NUMBER = re.compile(rf"^\s*[+-]?{_NUMBER}\s*$")
_ISO_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")

DURATION_HELP = "a number with a unit: 250ms, 10s, 1.5s, 5m, 1min, 1h, 2d (or 1h30m)"
LATENCY_HELP = "a number of ms, or with a unit: 250ms, 0.3s, 120us"
TIME_BOUND_HELP = (
    "an ISO-8601 time (2026-11-26T10:40:00Z; UTC when no zone is given) "
    "or a span before the newest event (15m, 2h)"
)


def _unit_seconds(unit: str, text: str) -> float:
    if unit == "M":
        raise UsageError(
            f"ambiguous duration unit 'M' in {text!r}",
            "write 'min' (or 'm') for minutes, 'ms' for milliseconds",
        )
    seconds = _UNIT_SECONDS.get(unit.lower())
    if seconds is None:
        raise UsageError(f"unknown duration unit {unit!r} in {text!r}", f"use {DURATION_HELP}")
    return seconds


def _parse_parts(text: str, what: str, hint: str) -> list[tuple[float, str]]:
    """Split `1h30m` into [(1.0, 'h'), (30.0, 'm')]; raise UsageError on anything else."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"empty {what}", f"use {hint}")
    parts: list[tuple[float, str]] = []
    pos = 0
    stripped = text.strip()
    if stripped.startswith("-"):
        raise UsageError(f"negative {what} {text!r}", f"use {hint}")
    stripped = stripped.lstrip("+")
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None or match.end() == pos:
            raise UsageError(f"invalid {what} {text!r}", f"use {hint}")
        parts.append((float(match.group(1)), match.group(2)))
        pos = match.end()
    if not parts:
        raise UsageError(f"invalid {what} {text!r}", f"use {hint}")
    return parts


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """A duration in seconds: `10s`, `5m`, `1h`, `250ms`, `1.5s`, `2d`, `1min`, `30S`, `1h30m`.

    A unit is required (a bare `10` is ambiguous); `M` alone is refused as ambiguous. Zero is
    refused unless `allow_zero`; negative, NaN and infinite durations always are.
    """
    parts = _parse_parts(text, "duration", DURATION_HELP)
    total = 0.0
    for value, unit in parts:
        if not unit:
            raise UsageError(
                f"duration {text!r} has no unit",
                f"use {DURATION_HELP}; e.g. {text.strip()}s for seconds",
            )
        total += value * _unit_seconds(unit, text)
    if not math.isfinite(total):
        raise UsageError(f"duration {text!r} is too large", f"use {DURATION_HELP}")
    if total == 0 and not allow_zero:
        raise UsageError(f"duration {text!r} is zero", "give a positive duration")
    return total


def parse_latency_ms(text: str) -> float:
    """A latency in milliseconds: `250ms`, `0.3s`, `120us`, `1m`; a bare number (`300`) is ms."""
    parts = _parse_parts(text, "latency", LATENCY_HELP)
    total = 0.0
    for value, unit in parts:
        if not unit:
            if len(parts) > 1:
                raise UsageError(f"latency {text!r} mixes units and a bare number", LATENCY_HELP)
            total += value
        else:
            total += value * _unit_seconds(unit, text) * 1000.0
    if not math.isfinite(total):
        raise UsageError(f"latency {text!r} is too large", f"use {LATENCY_HELP}")
    return total


def parse_time_bound(text: str, newest: pd.Timestamp) -> pd.Timestamp:
    """An absolute ISO-8601 time, or a span (`15m`, `2h`) before `newest` (the newest event).

    Absolute times without a zone are taken as UTC; the result is always tz-aware UTC. When a
    relative bound is asked for and `newest` is missing (NaT/None: no timestamped events), the
    result is NaT, which no timestamp compares true to, so a filter on it selects nothing.
    """
    import pandas as pd

    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty time bound", f"use {TIME_BOUND_HELP}")
    stripped = text.strip()
    if _ISO_DATE.match(stripped):
        try:
            ts = pd.Timestamp(stripped.replace(" ", "T", 1) if " " in stripped else stripped)
        except (ValueError, TypeError, OverflowError) as exc:
            raise UsageError(f"invalid time {text!r}: {exc}", f"use {TIME_BOUND_HELP}") from None
        if ts is pd.NaT:
            raise UsageError(f"invalid time {text!r}", f"use {TIME_BOUND_HELP}")
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if _BARE_NUMBER.match(stripped):
        raise UsageError(f"time bound {text!r} has no unit", f"use {TIME_BOUND_HELP}; e.g. {stripped}m")
    try:
        seconds = parse_duration(stripped, allow_zero=True)
    except UsageError:
        raise UsageError(f"invalid time bound {text!r}", f"use {TIME_BOUND_HELP}") from None
    if newest is None or newest is pd.NaT:
        return pd.NaT
    newest = pd.Timestamp(newest)
    if newest.tzinfo is None:
        newest = newest.tz_localize("UTC")
    return newest - pd.Timedelta(round(seconds * 1e9), unit="ns")
