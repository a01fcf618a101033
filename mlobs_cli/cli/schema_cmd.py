"""`mlobs schema`: what mlobs understood of the logs (formats, field mapping, coverage, skips)."""

from __future__ import annotations

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, FormatOpt, OutputFormat, SourcesArg, StrictOpt


@command("schema")
def schema(
    sources: SourcesArg,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show the detected formats, which key feeds each field (and its unit), coverage and skips."""
    raise NotImplementedError("schema lands with the foundation")
