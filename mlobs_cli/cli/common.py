"""Options shared by every command (defined once) and the one way commands load logs.

Commands declare their parameters with these `Annotated` aliases so that `--format`, `--strict`,
`--field` and `--config` mean the same everywhere, then call `load_dataset`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:  # pandas is imported lazily, inside load_dataset
    from mlobs_cli.engine import Need
    from mlobs_cli.frame import Dataset


class OutputFormat(str, Enum):
    """Output formats: `table` for people, the rest for machines."""

    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    markdown = "markdown"


SourcesArg = Annotated[
    list[str],
    typer.Argument(
        help="Log files, folders, shell globs, rotated/compressed files, or - for stdin.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format.", case_sensitive=False),
]
StrictOpt = Annotated[
    bool,
    typer.Option("--strict", help="Fail (exit 1) when any input line had to be skipped."),
]
FieldOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional here on Python 3.10
    typer.Option(
        "--field",
        help="Map a canonical field to a key of your logs, with an optional unit: "
        "latency_ms=resp.duration:s. Repeatable.",
        show_default=False,
    ),
]
WhereOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--where",
        "-w",
        metavar="EXPR",
        help='Only requests matching EXPR: status >= 500, model_version == "v2.1" and '
        'user_id in ("a","b"), http.route ~ "^/pred". Parsed, never evaluated.',
        show_default=False,
    ),
]
PercentilesOpt = Annotated[
    str, typer.Option("--percentiles", "-p", help="Percentiles to report, comma-separated.")
]
ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--config",
        help="Settings file (TOML). Default: ./mlobs.toml, else \\[tool.mlobs] in ./pyproject.toml.",
        show_default=False,
    ),
]


def requests_need(fields: list[str], metric: str = "latency_ms") -> Need | None:
    """What a per-request query needs: request summaries with `fields` (group keys, `--where`
    fields). None (everything) when `metric` may be a stage or span name, which needs every event."""
    from mlobs_cli.engine import Need

    if metric not in ("latency_ms", "inference_ms"):
        return None
    names = set(fields) | {metric}
    names |= {f.removeprefix("attr.") for f in names}
    return Need.requests(names)


def load_dataset(
    sources: list[str],
    *,
    fields: list[str] | None = None,
    config: Path | None = None,
    strict: bool = False,
    quiet: bool = False,
    need: Need | None = None,
) -> Dataset:
    """Read, parse and frame `sources`; report skipped input on stderr; enforce `--strict`.

    `need` (see `engine.Need`, e.g. from `requests_need`) lets a command read only what it uses:
    then lines that cannot be request summaries are not parsed, except under `strict`, where every
    line is checked. Files with a cache entry are read from the cache (`mlobs ingest`, `--no-cache`).

    Raises `InputError` for unreadable sources, `UsageError`/`ConfigError` for bad mappings, and
    `StrictError` under `strict` when anything was skipped.
    """
    from dataclasses import replace

    from mlobs_cli import cachedir
    from mlobs_cli.config import load_settings
    from mlobs_cli.engine import EVERYTHING, dataset_from_sources

    settings = load_settings(config, field_flags=fields or [])
    need = need or EVERYTHING
    if strict:
        need = replace(need, prefilter=False)
    data = dataset_from_sources(sources, settings, need, use_cache=cachedir.is_enabled())
    report_input(data.notes, data.skipped, data.lines, strict=strict, quiet=quiet)
    return data


def report_input(notes: list[str], skipped, lines: int, *, strict: bool, quiet: bool = False) -> None:
    """Say on stderr what reading the input noted and skipped; under `strict`, fail on any skip."""
    from mlobs_cli.errors import StrictError
    from mlobs_cli.terminal import warn

    for note in notes:
        warn(f"note: {note}")
    if skipped.total and not quiet:
        warn(skipped.summary_line(lines))
    if strict and skipped.total:
        raise StrictError(
            f"--strict: {skipped.total} input line(s) could not be used",
            "see `mlobs schema` for the reasons and the first offending lines",
        )


def timed_requests(data: Dataset):  # -> pandas.DataFrame (pandas is imported lazily)
    """The request summaries of `data` for commands that place requests in time (spikes, forecast).

    Raises `NotFoundError` (exit 1) when no request has a timestamp; says on stderr how many requests
    without one are left out.
    """
    from mlobs_cli.errors import NotFoundError
    from mlobs_cli.terminal import warn

    requests = data.requests
    if requests.empty or requests["ts"].notna().sum() == 0:
        raise NotFoundError(
            "no timestamped request summaries in the input", "see `mlobs schema` for what was read"
        )
    untimed = int(requests["ts"].isna().sum())
    if untimed:
        warn(f"{untimed:,} request(s) without a timestamp left out (they cannot be placed in time)")
    return requests
