"""The `[check]` table of mlobs.toml (or `[tool.mlobs.check]`): validated strictly, read as data.

`check_settings(table, source=path)` returns the table's rules (parsed by `analysis.rules`, in file
order, each with its severity and origin) and the defaults it sets for flags. An unknown key or a
wrong type raises `ConfigError` naming the key and the file (with a did-you-mean); exit 2.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from mlobs_cli.analysis.rules import SEVERITIES, Rule, parse_assert, parse_regression, parse_require
from mlobs_cli.errors import ConfigError

_CHECK_KEYS = {"allow_missing": bool, "baseline": str, "baseline_file": str, "rules": list}
_RULE_KEYS = {"assert": str, "require": str, "max_regression": str, "severity": str}
_RULE_PARSERS = {
    "assert": parse_assert,
    "require": parse_require,
    "max_regression": parse_regression,
}


@dataclass
class CheckSettings:
    """What the `[check]` table says: its rules (in order) and defaults for the flags."""

    rules: list[Rule] = field(default_factory=list)
    allow_missing: bool = False
    baseline: str | None = None
    baseline_file: str | None = None


def _unknown_key(key: str, where: str, known: Any) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(sorted(known))
    return ConfigError(f"unknown key {key!r} in {where}", hint)


def _type_name(t: type) -> str:
    return {bool: "true or false", str: "a string", list: "an array of tables"}[t]


def check_settings(table: Any, *, source: object = None) -> CheckSettings:
    """Validate the `[check]` table strictly: unknown keys and wrong types raise ConfigError.

    `source` (the settings file) prefixes every message and every rule's origin.
    """
    try:
        return _check_settings(table, f"{source}: " if source else "")
    except ConfigError as exc:
        if source and not exc.message.startswith(f"{source}: "):
            exc.message = f"{source}: {exc.message}"
            exc.args = (exc.message,)
        raise


def _check_settings(table: Any, prefix: str) -> CheckSettings:
    where = "[check]"
    out = CheckSettings()
    if table is None:
        return out
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table", "write [check] and its keys below it")
    for key, value in table.items():
        if key not in _CHECK_KEYS:
            raise _unknown_key(key, where, _CHECK_KEYS)
        if not isinstance(value, _CHECK_KEYS[key]):
            raise ConfigError(f"{where.strip('[]')}.{key} must be {_type_name(_CHECK_KEYS[key])}")
    out.allow_missing = bool(table.get("allow_missing", False))
    out.baseline = table.get("baseline")
    out.baseline_file = table.get("baseline_file")
    for n, entry in enumerate(table.get("rules", []), start=1):
        name = f"{where.strip('[]')}.rules[{n}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{name} must be a table", 'write [[check.rules]] and assert = "..."')
        for key, value in entry.items():
            if key not in _RULE_KEYS:
                raise _unknown_key(key, name, _RULE_KEYS)
            if not isinstance(value, str):
                raise ConfigError(f"{name}.{key} must be a string")
        kinds = [k for k in _RULE_PARSERS if k in entry]
        if len(kinds) != 1:
            raise ConfigError(
                f"{name} needs exactly one of assert, require, max_regression"
                + (f" (it has {', '.join(kinds)})" if kinds else ""),
                'e.g. assert = "p99 < 250ms"',
            )
        severity = entry.get("severity", "error")
        if severity not in SEVERITIES:
            raise ConfigError(f"{name}.severity is {severity!r}", 'use "error" or "warn"')
        parse = _RULE_PARSERS[kinds[0]]
        origin = f"{prefix}{name}.{kinds[0]}"
        out.rules.append(parse(entry[kinds[0]], origin=origin, severity=severity))
    return out
