"""`mlobs slow SOURCES...`: the slowest requests, and what is different about them."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import (
    ConfigOpt,
    FieldOpt,
    FormatOpt,
    OutputFormat,
    SourcesArg,
    StrictOpt,
    WhereOpt,
    load_dataset,
)

TopOpt = Annotated[
    int,
    typer.Option(
        "--top", min=1, metavar="N", help="How many requests to list (per version with --by-version)."
    ),
]
OverOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option(
        "--over",
        metavar="LATENCY",
        help="Slow = latency over this: 250ms, 0.3s, or a number of ms.",
        show_default=False,
    ),  # fmt: skip
]
AboveOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--above",
        metavar="pNN",
        help="Slow = latency above this percentile: p99, p99.9 (default p99).",
        show_default=False,
    ),  # fmt: skip
]
ByVersionOpt = Annotated[
    bool,
    typer.Option(
        "--by-version",
        help="List the top requests of each model version; --above is then taken within each version.",
    ),  # fmt: skip
]


def parse_percentile(text: str) -> float:
    """`p99`, `P99.9` or `99` -> 99.0 / 99.9; strictly between 0 and 100."""
    from mlobs_cli.errors import UsageError

    body = text.strip().lower().removeprefix("p")
    try:
        q = float(body)
    except ValueError:
        raise UsageError(f"invalid percentile {text!r}", "use p50, p99 or p99.9") from None
    if not 0 < q < 100:
        raise UsageError(f"percentile {text!r} is out of range", "use a value between p0 and p100")
    return q


@command("slow")
def slow(
    sources: SourcesArg,
    top: TopOpt = 20,
    over: OverOpt = None,
    above: AboveOpt = None,
    by_version: ByVersionOpt = False,
    where: WhereOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the slowest requests (paste an id into `mlobs explain`), then compare the slow set with
    the rest: which stage grows, and which field values are over-represented (ranked by lift)."""
    from mlobs_cli.analysis.selection import select_requests
    from mlobs_cli.analysis.slow import report_dict, slow_report, with_span_attributes
    from mlobs_cli.analysis.timeline import stage_durations
    from mlobs_cli.durations import parse_latency_ms
    from mlobs_cli.errors import ExitCode, UsageError
    from mlobs_cli.render.console import make_console
    from mlobs_cli.render.machine import write_csv, write_json, write_ndjson
    from mlobs_cli.render.slow import render_markdown, render_slow
    from mlobs_cli.terminal import warn

    if over is not None and above is not None:
        raise UsageError("--over and --above both choose the slow set", "give one of them")
    over_ms = parse_latency_ms(over) if over is not None else None
    q = parse_percentile(above) if above is not None else None
    expr = None
    if where is not None:
        from mlobs_cli.analysis.where import parse_where

        expr = parse_where(where)
    from mlobs_cli.cli.hygiene import tidy_dataset

    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    requests = select_requests(data.requests, where=expr)
    requests = with_span_attributes(requests, data.spans)
    stages = stage_durations(data.milestones, data.spans, requests)
    report = slow_report(requests, stages, top=top, over_ms=over_ms, above=q, by_version=by_version)
    for note in report.notes if not requests.empty else []:
        warn(note)
    doc = report_dict(report, list(sources))
    if fmt is OutputFormat.json:
        write_json(doc)
    elif fmt is OutputFormat.ndjson:
        write_ndjson(doc["rows"])
    elif fmt is OutputFormat.csv:
        write_csv(doc["rows"])
    elif fmt is OutputFormat.markdown:
        render_markdown(doc)
    elif not requests.empty:
        render_slow(report, doc, make_console())
    if requests.empty:
        warn("no requests matched")
        raise typer.Exit(int(ExitCode.FAILED))
