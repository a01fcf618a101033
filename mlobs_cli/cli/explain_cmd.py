"""`mlobs explain REQUEST_ID SOURCES...`: one request's timeline, in context of its model version."""

from __future__ import annotations

from typing import Annotated

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import (
    ConfigOpt,
    FieldOpt,
    FormatOpt,
    OutputFormat,
    SourcesArg,
    StrictOpt,
    load_dataset,
)

RequestIdArg = Annotated[
    str,
    typer.Argument(help="Request id or trace id; a unique prefix is enough.", show_default=False),
]
RawOpt = Annotated[bool, typer.Option("--raw", help="Also print the request's raw log lines (sanitized).")]


@command("explain")
def explain(
    request_id: RequestIdArg,
    sources: SourcesArg,
    fmt: FormatOpt = OutputFormat.table,
    raw: RawOpt = False,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Where one request's time went: a waterfall of its stages, the critical path, and how each
    stage compares with its model version's median. Exit 1 when the id is not found or ambiguous."""
    from mlobs_cli.analysis.lookup import find_request
    from mlobs_cli.analysis.waterfall import add_version_context, timeline_for
    from mlobs_cli.errors import UsageError
    from mlobs_cli.render.console import make_console
    from mlobs_cli.render.explain import render_timeline, timeline_dict
    from mlobs_cli.render.machine import write_json

    if fmt not in (OutputFormat.table, OutputFormat.json):
        raise UsageError(f"explain supports --format table or json, not {fmt.value}")
    from mlobs_cli.cli.hygiene import tidy_dataset

    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    rid, tid = find_request(data.requests, data.milestones, data.spans, request_id)
    _note_reused_id(data.requests, rid)
    tl = timeline_for(data.requests, data.milestones, data.spans, rid, tid)
    add_version_context(tl, data.requests, data.milestones, data.spans)
    raw_text = _raw_lines(tl.events) if raw else None
    if fmt is OutputFormat.json:
        lookup = {(s, n): t for s, n, t in raw_text} if raw_text is not None else None
        write_json(timeline_dict(tl, lookup))
        return
    versions = data.requests["model_version"].astype(object)
    count = int((versions == tl.model_version).sum())
    render_timeline(tl, make_console(), version_requests=count, raw_lines=raw_text)


def _note_reused_id(requests, rid: str | None) -> None:
    """Say on stderr when the id is on several different summaries: the last one is explained."""
    from mlobs_cli.terminal import warn

    if rid is None or requests.empty:
        return
    same = requests[requests["request_id"].astype(object) == rid]
    if len(same) > 1:
        places = ", ".join(f"{s}:{n}" for s, n in zip(same["source"], same["line"]))
        warn(f"note: request id {rid} is on {len(same)} different summaries ({places}): explaining the last")


def _raw_lines(events: list[dict]) -> list[tuple[str, int, str | None]]:
    """The events' raw lines, re-read from their files; stdin cannot be re-read (said on stderr)."""
    from mlobs_cli.errors import MlobsError
    from mlobs_cli.sources import lines_at
    from mlobs_cli.terminal import warn

    wanted: dict[str, set[int]] = {}
    for ev in events:
        wanted.setdefault(str(ev["source"]), set()).add(int(ev["line"]))
    found: dict[tuple[str, int], str] = {}
    for source, numbers in wanted.items():
        try:
            got = lines_at(source, numbers)
        except MlobsError as exc:
            warn(f"raw lines of {source}: {exc}")
            continue
        except OSError as exc:
            warn(f"raw lines of {source} could not be re-read: {exc.strerror or exc}")
            continue
        for number, content in got.items():
            found[(source, number)] = content.decode("utf-8", "replace").rstrip("\r\n")
    out = []
    for source, numbers in wanted.items():
        for number in sorted(numbers):
            out.append((source, number, found.get((source, number))))
    return out
