"""What `mlobs --help` and `mlobs --version` print, defined once and rendered without typer or rich.

`COMMANDS` is the one table of commands and their one-line help: `@command(name)` takes its short help
from it, and `render_overview` lists it. The entry point prints this text before importing typer, and
the typer app's top-level group prints the very same text, so `mlobs --no-cache --help` agrees.
"""

from __future__ import annotations

import os
import sys

from mlobs_cli import __version__

APP_HELP = (
    "Latency percentiles, request timelines and CI checks from the JSON logs of model-serving services."
)

# Options of the top-level group, as (flags, help); app.py declares them with these help strings.
OPTIONS: tuple[tuple[str, str], ...] = (
    ("--version", "Print the version and exit."),
    ("--no-cache", "Parse the logs afresh: neither read nor update the cache (see `mlobs cache`)."),
    ("-h, --help", "Show this message and exit."),
)

# Every command, in the order shown, with its one-line help.
COMMANDS: dict[str, str] = {
    "latency": "Exact latency percentiles, request rates and error rates per model version.",
    "explain": "Where one request's time went: a waterfall of its stages against its version's medians.",
    "slow": "The slowest requests, and what is different about them (stages, field values).",
    "check": "CI gate: thresholds, coverage and regressions per model version; exit 1 on failure.",
    "tail": "Follow live logs: rolling per-version latency, rates, errors, alerts, Prometheus metrics.",
    "spikes": "Latency, error or traffic spikes per model version, with the requests inside them.",
    "forecast": "Project each version's latency or error-rate trend and the time to an SLO breach.",
    "schema": "What mlobs understood of the logs: formats, field mapping, units, coverage, skips.",
    "simulate": "Write realistic JSON-lines logs of the seed /predict service (deterministic with --seed).",
    "ingest": "Parse logs into the cache, so later commands read columns instead of JSON.",
    "cache": "Show (`info`) or remove (`clear`) the cache of parsed logs (in $XDG_CACHE_HOME/mlobs).",
}

MIN_WIDTH, MAX_WIDTH = 40, 78  # as click: a margin of 2 columns, at most 78 wide


def version_line() -> str:
    """`mlobs --version`."""
    return f"mlobs {__version__}"


def help_width() -> int:
    """Columns to wrap the help to: $COLUMNS, else the terminal's, else 80; less 2, within 40..78."""
    columns = 0
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        pass
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(MIN_WIDTH, min(columns - 2, MAX_WIDTH))


def render_overview(prog: str, width: int | None = None) -> str:
    """The top-level help of `prog` (how mlobs was invoked), wrapped to `width`; no trailing newline."""
    width = help_width() if width is None else width
    lines = [f"Usage: {prog} [OPTIONS] COMMAND [ARGS]...", ""]
    lines += _wrap(APP_HELP, width, "  ")
    lines += ["", "Options:"]
    lines += _definitions(OPTIONS, width)
    lines += ["", "Commands:"]
    lines += _definitions(tuple(COMMANDS.items()), width)
    lines += [""]
    lines += _wrap(f"Run `{prog} COMMAND --help` for the options of a command.", width, "")
    return "\n".join(lines)


def _definitions(rows: tuple[tuple[str, str], ...], width: int) -> list[str]:
    """Two columns, click-style: the term, then its help wrapped in a column of its own."""
    term_width = max(len(term) for term, _ in rows)
    out = []
    for term, text in rows:
        indent = " " * (2 + term_width + 2)
        wrapped = _wrap(text, width, indent)
        out.append(f"  {term.ljust(term_width)}  {wrapped[0].lstrip()}")
        out.extend(wrapped[1:])
    return out


def _wrap(text: str, width: int, indent: str) -> list[str]:
    """Greedy word wrap at spaces (textwrap would import re, which this fast path avoids)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(indent + line)
    return lines
