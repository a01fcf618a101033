"""`mlobs schema`: what mlobs understood of the logs (formats, field mapping, coverage, skips)."""

from __future__ import annotations

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


@command("schema")
def schema(
    sources: SourcesArg,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show the detected formats, which key feeds each field (and its unit), coverage and skips."""
    from mlobs_cli.analysis.coverage import schema_report
    from mlobs_cli.cli.hygiene import reports_of, tidy_dataset
    from mlobs_cli.errors import UsageError
    from mlobs_cli.render.console import make_console
    from mlobs_cli.render.machine import write_json
    from mlobs_cli.render.schema import render_schema

    data = tidy_dataset(
        load_dataset(sources, fields=field, config=config, strict=strict, quiet=fmt is OutputFormat.table),
        quiet=fmt is OutputFormat.table,
    )
    report = schema_report(data)
    dups, clock = reports_of(data)
    report["duplicates"] = dups.as_dict()
    report["clock"] = clock.as_dict()
    if fmt is OutputFormat.json:
        write_json(report)
    elif fmt is OutputFormat.table:
        render_schema(report, make_console())
    else:
        raise UsageError(f"schema supports --format table or json, not {fmt.value}")
