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
    from mlobs_cli.errors import UsageError
    from mlobs_cli.render.console import make_console
    from mlobs_cli.render.explain import render_timeline, timeline_dict
    from mlobs_cli.render.machine import write_json

    if fmt not in (OutputFormat.table, OutputFormat.json):
        raise UsageError(f"explain supports --format table or json, not {fmt.value}")
    from mlobs_cli import cachedir
    from mlobs_cli.config import load_settings
    from mlobs_cli.snapshot import target_of

    settings = load_settings(config, field_flags=field or [])
    target = target_of(sources, settings) if cachedir.is_enabled() else None
    found = _from_snapshot(target, request_id, strict) if target is not None else None
    if found is None:
        found = _from_full_read(target, request_id, sources, field, config, strict)
    tl, context = found
    raw_text = _raw_lines(tl.events) if raw else None
    if fmt is OutputFormat.json:
        lookup = {(s, n): t for s, n, t in raw_text} if raw_text is not None else None
        write_json(timeline_dict(tl, lookup))
        return
    render_timeline(tl, make_console(), version_requests=context.requests, raw_lines=raw_text)


def _from_full_read(target, request_id: str, sources: list[str], field, config, strict: bool):
    """Read every line (from the cache when it can) and explain. When the file's cache entry was
    complete and is unchanged (`target`, taken before reading), store its explain snapshot too: a
    file that keeps growing is not worth one per run, a file looked into again and again is."""
    from mlobs_cli.analysis.lookup import find_request
    from mlobs_cli.analysis.waterfall import apply_version_context, timeline_for, version_context
    from mlobs_cli.cli.hygiene import tidy_dataset
    from mlobs_cli.config import load_settings
    from mlobs_cli.snapshot import save_snapshot, target_of

    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    rid, tid = find_request(data.requests, data.milestones, data.spans, request_id)
    _note_reused_id(data.requests, rid)
    tl = timeline_for(data.requests, data.milestones, data.spans, rid, tid)
    context = version_context(data.requests, data.milestones, data.spans, tl.model_version)
    apply_version_context(tl, context)
    if target is not None and target_of(sources, load_settings(config, field_flags=field or [])) == target:
        save_snapshot(target[0], target[1], data)  # the next explain reads only its request's rows
    return tl, context


def _from_snapshot(target, request_id: str, strict: bool):
    """Explain from the explain snapshot of the file's cache entry (see `snapshot`); None when
    there is none for its current state, or it could not be read (then nothing was printed)."""
    from mlobs_cli.analysis.clock import clock_report
    from mlobs_cli.analysis.lookup import find_request
    from mlobs_cli.analysis.waterfall import apply_version_context, timeline_for
    from mlobs_cli.cli.common import report_input
    from mlobs_cli.cli.hygiene import note_oddities
    from mlobs_cli.snapshot import SnapshotError, open_snapshot

    snap = open_snapshot(*target)
    if snap is None:
        return None
    query = request_id.strip()
    try:  # everything is read before anything is said: a failed read falls back to a full read
        frames = snap.rows_around(snap.ids_starting_with(query, query.lower().removeprefix("0x")))
        contexts = snap.contexts_of(frames)
        clock = clock_report(snap.clock_frame())
        notes, skipped, lines = snap.input_report()
        dups = snap.duplicates()
    except (SnapshotError, OSError, ValueError, KeyError):
        return None
    report_input(notes, skipped, lines, strict=strict)
    note_oddities(dups, clock)
    rid, tid = find_request(*frames, request_id, searched=snap.searched)
    _note_reused_id(frames[0], rid)
    tl = timeline_for(*frames, rid, tid)
    context = contexts[tl.model_version]
    apply_version_context(tl, context)
    return tl, context


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
