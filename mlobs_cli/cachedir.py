"""Where the cache lives and whether this run may use it (stdlib only: imported at start-up)."""

from __future__ import annotations

import os
from pathlib import Path

_state = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    """`mlobs --no-cache`: neither read nor write the cache in this run."""
    _state["enabled"] = enabled


def is_enabled() -> bool:
    """The cache is used unless `--no-cache` was given or `MLOBS_NO_CACHE` is set (not to 0)."""
    return _state["enabled"] and os.environ.get("MLOBS_NO_CACHE", "") in ("", "0")


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/mlobs/v1`, by default `~/.cache/mlobs/v1`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlobs" / "v1"
