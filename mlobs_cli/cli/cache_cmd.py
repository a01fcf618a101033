"""`mlobs ingest` builds or updates the columnar cache; `mlobs cache info|clear` shows or removes it."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, FormatOpt, OutputFormat, SourcesArg


class CacheAction(str, Enum):
    """What `mlobs cache` does."""

    info = "info"
    clear = "clear"


def _report(
    fmt: OutputFormat,
    what: str,
    doc: dict[str, object],
    title: str,
    headers: list[str],
    rows: list[list[object]],
    numeric: tuple[int, ...],
) -> None:
    """`doc` as JSON, or `rows` as a table; `what` (the command) names it in the format error."""
    from mlobs_cli.errors import UsageError

    if fmt is OutputFormat.json:
        from mlobs_cli.render.machine import write_json

        write_json(doc)
        return
    if fmt is not OutputFormat.table:
        raise UsageError(f"{what} supports --format table or json, not {fmt.value}")
    from mlobs_cli.render.console import make_console, simple_table

    make_console().print(simple_table(title, headers, rows, numeric=numeric))


@command("ingest")
def ingest(
    sources: SourcesArg,
    fmt: FormatOpt = OutputFormat.table,
    field: FieldOpt = None,
    config: ConfigOpt = None,
    snapshot: Annotated[
        bool,
        typer.Option(
            "--snapshot/--no-snapshot",
            help="Also store each file's explain snapshot, so `mlobs explain ID` reads only its request's "
            "rows. Building it holds every event of the file in memory once (about 1.2 GB for 5M lines); "
            "--no-snapshot keeps ingest's memory bounded, and explain makes one on first use.",
        ),
    ] = True,
) -> None:
    """Parse logs into the cache, so later commands read columns instead of JSON.

    Only new bytes are parsed for files that grew since the last run; rotated, truncated or
    rewritten files are read again. Every command uses and updates the cache by itself (a command
    that needs only request summaries does not create entries); `mlobs --no-cache CMD` bypasses it.
    """
    from mlobs_cli import cache
    from mlobs_cli.config import load_settings
    from mlobs_cli.engine import EVERYTHING
    from mlobs_cli.errors import UsageError
    from mlobs_cli.snapshot import refresh_snapshot
    from mlobs_cli.sources import expand_sources

    if not cache.is_enabled():
        raise UsageError("ingest fills the cache, which --no-cache (or MLOBS_NO_CACHE) turns off")
    settings = load_settings(config, field_flags=field or [])
    rows = []
    for source in expand_sources(sources):
        found = cache.cached_partials(source, settings, EVERYTHING, build=True, load=False)
        index = cache.entry_of(source, settings) if found is not None else None
        if found is None or index is None:
            rows.append({"source": source.name, "outcome": "not cached", "lines": None, "events": None})
            continue
        if snapshot:
            refresh_snapshot(source, settings)
        events = sum(s.get("events", 0) for s in index["segments"])
        rows.append({"source": source.name, "outcome": found[1], "lines": index["lines"], "events": events})
    _report(
        fmt,
        "ingest",
        {"cache": str(cache.cache_root()), "sources": rows},
        f"cache: {cache.cache_root()}",
        ["source", "outcome", "lines", "events"],
        [[r["source"], r["outcome"], r["lines"], r["events"]] for r in rows],
        (2, 3),
    )


@command("cache")
def cache_cmd(
    action: Annotated[CacheAction, typer.Argument(help="info: list the entries; clear: remove them all.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Show (`info`) or remove (`clear`) the cache of parsed logs (in $XDG_CACHE_HOME/mlobs)."""
    from mlobs_cli import cache
    from mlobs_cli.render.machine import write_json
    from mlobs_cli.terminal import warn

    if action is CacheAction.clear:
        n = cache.clear()
        if fmt is OutputFormat.json:
            write_json({"cache": str(cache.cache_root()), "removed_entries": n})
        else:
            warn(f"removed {n} cache entr{'y' if n == 1 else 'ies'} from {cache.cache_root()}")
        return
    entries = cache.entries()
    rows = [
        {
            "path": e["path"],
            "bytes_covered": e["end"],
            "file_bytes": e["size"],
            "lines": e["lines"],
            "segments": len(e["segments"]),
            "bytes_on_disk": e["bytes_on_disk"],
        }
        for e in entries
    ]
    _report(
        fmt,
        "cache info",
        {"cache": str(cache.cache_root()), "entries": rows},
        f"cache: {cache.cache_root()} ({len(rows)} entries)",
        ["file", "lines", "segments", "MB covered", "MB on disk"],
        [
            [
                r["path"],
                r["lines"],
                r["segments"],
                f"{r['bytes_covered'] / 1e6:,.1f}",
                f"{r['bytes_on_disk'] / 1e6:,.1f}",
            ]
            for r in rows
        ],
        (1, 2, 3, 4),
    )
