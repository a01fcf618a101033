"""Settings: `--field` flags plus `mlobs.toml` (or `[tool.mlobs]` in pyproject.toml), read as TOML data.

Nothing in a settings file is executed. Unknown top-level sections are an error (a typo must not be
silently ignored); each command validates its own section (`check`, `tail`, ...).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlobs_cli.errors import ConfigError, UsageError
from mlobs_cli.schema import FieldOverride, parse_field_override
from mlobs_cli.sources import DEFAULT_MAX_LINE_BYTES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KNOWN_SECTIONS = (
    "fields",
    "max_line_bytes",
    "check",
    "latency",
    "slow",
    "explain",
    "tail",
    "spikes",
    "forecast",
    "cache",
)


@dataclass
class Settings:
    """What every command reads through: field overrides, limits, and the raw mlobs table."""

    overrides: dict[str, FieldOverride] = field(default_factory=dict)
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    table: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such settings file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a settings file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def find_settings_table(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    """The mlobs table: from `path`, else ./mlobs.toml, else [tool.mlobs] of ./pyproject.toml."""
    if path is not None:
        data = _read_toml(path)
        if path.name == "pyproject.toml":
            return data.get("tool", {}).get("mlobs", {}), path
        return data, path
    local = Path("mlobs.toml")
    if local.is_file():
        return _read_toml(local), local
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        try:
            data = _read_toml(pyproject)
        except ConfigError:
            return {}, None  # somebody else's broken pyproject is not ours to fail on
        table = data.get("tool", {}).get("mlobs")
        if isinstance(table, dict):
            return table, pyproject
    return {}, None


def load_settings(path: Path | None = None, field_flags: list[str] | None = None) -> Settings:
    """Build `Settings` from a settings file (found or given) and `--field` flags (flags win)."""
    table, found = find_settings_table(path)
    if not isinstance(table, dict):
        raise ConfigError(f"{found}: the mlobs settings must be a table")
    unknown = sorted(set(table) - set(KNOWN_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{found}: unknown setting(s) {', '.join(unknown)}",
            "known: " + ", ".join(KNOWN_SECTIONS),
        )
    settings = Settings(table=table, path=found)
    fields = table.get("fields", {})
    if not isinstance(fields, dict):
        raise ConfigError(f'{found}: [fields] must be a table of CANON = "KEY[:UNIT]"')
    for canon, spec in fields.items():
        if not isinstance(spec, str):
            raise ConfigError(f'{found}: fields.{canon} must be a string like "resp.duration:s"')
        try:
            ov = parse_field_override(f"{canon}={spec}")
        except UsageError as exc:
            raise ConfigError(f"{found}: fields.{canon}: {exc.message}", exc.hint) from None
        settings.overrides[ov.canon] = ov
    for flag in field_flags or []:
        ov = parse_field_override(flag)
        settings.overrides[ov.canon] = ov
    cap = table.get("max_line_bytes")
    if cap is not None:
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1024:
            raise ConfigError(f"{found}: max_line_bytes must be a whole number >= 1024")
        settings.max_line_bytes = cap
    return settings
