"""Parse the `mlobs simulate` option specs (versions, latency, slowdown, spike, drift, durations).

Each parser takes the text a user typed and returns the simulator's value, or raises `UsageError`
with a message that shows the expected form.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from mlobs_cli.errors import UsageError
from mlobs_cli.simulate import Drift, LatencyDist, Slowdown, Spike, epoch_us

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_US = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}
_DIST_PARAMS = {
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
    "normal": ("mean", "sd"),
    "const": ("value",),
}
_DIST_ALIASES = {
    "constant": "const",
    "fixed": "const",
    "gaussian": "normal",
    "lognorm": "lognormal",
}


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite number")
    return value


def parse_version(text: str, what: str) -> str:
    name = text.strip()
    if not _VERSION.fullmatch(name):
        raise UsageError(
            f"{what}: {text!r} is not a model version name",
            "use letters, digits and . _ + -, e.g. v2.1",
        )
    return name


def parse_versions(text: str) -> tuple[tuple[str, float], ...]:
    """`v2.0:50,v2.1:50` (traffic weights, any scale) or `v2.0,v2.1` (equal split)."""
    hint = "e.g. --versions v2.0:90,v2.1:10"
    versions: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.strip().partition(":")
        name = parse_version(name, "--versions")
        share = _number(weight, f"--versions {name}") if sep else 1.0
        if share <= 0:
            raise UsageError(f"--versions: the weight of {name} must be above 0", hint)
        if name in versions:
            raise UsageError(f"--versions: {name} is given twice", hint)
        versions[name] = share
    return tuple(versions.items())


def parse_latency(text: str) -> tuple[str, LatencyDist]:
    """`v2.1=lognormal:median=90,sigma=0.5`, `v2.0=uniform:50:200`, `v2.2=const:40` (ms)."""
    hint = (
        "e.g. --latency v2.0=uniform:50:200 or v2.1=lognormal:median=90,sigma=0.5; "
        "distributions: uniform:LOW:HIGH, lognormal:MEDIAN:SIGMA, normal:MEAN:SD, const:MS"
    )
    name, sep, spec = text.partition("=")
    if not sep:
        raise UsageError(f"--latency: {text!r} has no '='", hint)
    name = parse_version(name, "--latency")
    kind, _, args = spec.strip().partition(":")
    kind = _DIST_ALIASES.get(kind.lower(), kind.lower())
    if kind not in _DIST_PARAMS:
        raise UsageError(f"--latency {name}: unknown distribution {kind!r}", hint)
    names = _DIST_PARAMS[kind]
    values: dict[str, float] = {}
    pieces = [p for p in re.split(r"[:,]", args) if p.strip()] if args else []
    for position, piece in enumerate(pieces):
        key, eq, raw = piece.partition("=")
        if not eq:
            if position >= len(names):
                raise UsageError(f"--latency {name}: {kind} takes {len(names)} values", hint)
            key, raw = names[position], piece
        key = key.strip().lower()
        if key not in names:
            raise UsageError(f"--latency {name}: {kind} takes {', '.join(names)}, not {key!r}", hint)
        values[key] = _number(raw, f"--latency {name} {key}")
    missing = [k for k in names if k not in values]
    if missing:
        raise UsageError(f"--latency {name}: {kind} needs {', '.join(missing)}", hint)
    params = tuple(values[k] for k in names)
    if kind == "uniform" and not 0 <= params[0] <= params[1]:
        raise UsageError(f"--latency {name}: uniform needs 0 <= low <= high", hint)
    if kind == "lognormal" and not (params[0] > 0 and params[1] >= 0):
        raise UsageError(f"--latency {name}: lognormal needs median > 0 and sigma >= 0", hint)
    if kind == "normal" and not (params[0] > 0 and params[1] >= 0):
        raise UsageError(f"--latency {name}: normal needs mean > 0 and sd >= 0", hint)
    if kind == "const" and params[0] <= 0:
        raise UsageError(f"--latency {name}: const needs a value > 0", hint)
    return name, LatencyDist(kind, params)


def parse_slowdown(text: str) -> Slowdown:
    """`v2.1:20%` (20% slower), `v2.1:1.5x` (times 1.5), `v2.1:+15ms` (15 ms more)."""
    hint = "e.g. --slowdown v2.1:20% or v2.1:1.5x or v2.1:+15ms"
    name, sep, amount = text.rpartition(":")
    if not sep:
        raise UsageError(f"--slowdown: {text!r} is not VERSION:AMOUNT", hint)
    name = parse_version(name, "--slowdown")
    amount = amount.strip().lower()
    if amount.endswith("%"):
        factor = 1.0 + _number(amount[:-1], f"--slowdown {name}") / 100.0
        add = 0.0
    elif amount.endswith("x"):
        factor, add = _number(amount[:-1], f"--slowdown {name}"), 0.0
    elif amount.endswith("ms"):
        factor, add = 1.0, _number(amount[:-2], f"--slowdown {name}")
    else:
        raise UsageError(f"--slowdown {name}: {amount!r} needs a unit: %, x or ms", hint)
    if factor <= 0:
        raise UsageError(f"--slowdown {name}: the latency factor must stay above 0", hint)
    return Slowdown(name, factor, add)


def parse_duration_us(text: str, what: str) -> int:
    """`90s`, `2m`, `1h30m`, `500ms` -> microseconds."""
    body = text.strip().lower()
    if not body or _DURATION_PART.sub("", body):
        raise UsageError(f"{what}: {text!r} is not a duration", "e.g. 90s, 2m, 1h30m, 500ms")
    return int(round(sum(float(n) * _DURATION_US[u] for n, u in _DURATION_PART.findall(body))))


def parse_start(text: str) -> datetime:
    """An ISO-8601 time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--start: {text!r} is not an ISO-8601 time", "e.g. 2026-11-26T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_spike(text: str, start: datetime) -> Spike:
    """`+30m/2m:4x` (30 min after --start, 2 min long, 4 times slower) or `ISO/2m:4x`."""
    hint = "e.g. --spike +30m/2m:4x or --spike 2026-11-26T10:30:00Z/2m:4x"
    window, sep, factor_text = text.rpartition(":")
    begin, slash, length = window.partition("/")
    if not sep or not slash:
        raise UsageError(f"--spike: {text!r} is not START/DURATION:FACTOR", hint)
    factor_text = factor_text.strip().lower().removesuffix("x")
    factor = _number(factor_text, "--spike factor")
    if factor <= 0:
        raise UsageError("--spike: the factor must be above 0", hint)
    begin = begin.strip()
    if begin.startswith("+"):
        start_us = epoch_us(start) + parse_duration_us(begin[1:], "--spike start")
    else:
        try:
            start_us = epoch_us(parse_start(begin))
        except UsageError:
            raise UsageError(f"--spike: start {begin!r} is neither +DURATION nor ISO", hint) from None
    duration = parse_duration_us(length, "--spike duration")
    if duration <= 0:
        raise UsageError("--spike: the duration must be above 0", hint)
    return Spike(start_us, duration, factor)


def parse_drift(text: str) -> Drift:
    """`v2.1:+8ms/h` (8 ms slower per hour), also `/min`, `/d`; a negative drift speeds up."""
    hint = "e.g. --drift v2.1:+8ms/h"
    name, sep, rate = text.rpartition(":")
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*ms\s*/\s*(h|min|m|d|s)", rate.strip().lower())
    if not sep or not match:
        raise UsageError(f"--drift: {text!r} is not VERSION:RATE", hint)
    name = parse_version(name, "--drift")
    per_hour = {"h": 1.0, "min": 60.0, "m": 60.0, "d": 1 / 24, "s": 3600.0}[match.group(2)]
    return Drift(name, _number(match.group(1), f"--drift {name}") * per_hour)
