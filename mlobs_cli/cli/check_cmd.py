"""`mlobs check`: the CI gate. Rules from flags and the `[check]` table -> results -> exit 0/1/2."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, FormatOpt, OutputFormat, SourcesArg, StrictOpt
from mlobs_cli.errors import ExitCode, MlobsError, UsageError

if TYPE_CHECKING:
    from mlobs_cli.analysis.rules import RuleSyntaxError

# typer needs Optional (not X | None) on Python 3.10
RuleOpt = Optional[list[str]]  # noqa: UP045
OptStr = Optional[str]  # noqa: UP045
OptPath = Optional[Path]  # noqa: UP045
OptBool = Optional[bool]  # noqa: UP045


@command("check")
def check(
    sources: SourcesArg,
    assert_: Annotated[
        RuleOpt,
        typer.Option(
            "--assert",
            "-a",
            show_default=False,
            metavar="RULE",
            help="A threshold, checked per model version: 'p99 < 250ms', "
            "'p95(inference_ms) < 120ms', 'error_rate < 1%', 'requests >= 500', 'rate > 5/s', "
            "'skipped < 0.1%'; scoped: "
            "'v2.1: p99 < 300ms', '*: p99 < 250ms' (all pooled). Repeatable.",
        ),
    ] = None,
    require: Annotated[
        RuleOpt,
        typer.Option(
            "--require",
            show_default=False,
            metavar="FIELD[=PCT]",
            help="A field request summaries must carry: model_version, request_id=99.5%. Repeatable.",
        ),
    ] = None,
    baseline: Annotated[
        OptStr,
        typer.Option(
            "--baseline",
            show_default=False,
            metavar="VERSION",
            help="Baseline model version: every other version is compared with it.",
        ),
    ] = None,
    baseline_file: Annotated[
        OptPath,
        typer.Option(
            "--baseline-file",
            show_default=False,
            metavar="LOGS",
            help="Baseline logs (e.g. from main): each version vs the same version there, else vs "
            "all its versions pooled.",
        ),
    ] = None,
    max_regression: Annotated[
        RuleOpt,
        typer.Option(
            "--max-regression",
            show_default=False,
            metavar="STAT:PCT",
            help="Largest allowed increase vs the baseline: p95:10%. Repeatable.",
        ),
    ] = None,
    allow_missing: Annotated[
        OptBool,
        typer.Option(
            "--allow-missing/--no-allow-missing",
            show_default=False,
            help="Let NO DATA (a version or field a rule needs is absent) pass; by default it fails.",
        ),
    ] = None,
    junit: Annotated[
        OptPath,
        typer.Option(
            "--junit",
            show_default=False,
            metavar="FILE",
            help="Also write a JUnit XML report.",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """CI gate: exit 1 when a model version is too slow, errors too often, or logs requests
    without the fields you require; exit 2 when the logs or the rules are unusable.

    Rules come from the check table of mlobs.toml (or tool.mlobs.check in pyproject.toml) and flags.
    With GITHUB_ACTIONS=true: annotations on stderr and a job summary in $GITHUB_STEP_SUMMARY.
    """
    from mlobs_cli.analysis.rules import RuleSyntaxError

    started = time.perf_counter()
    try:
        plan = _plan(assert_, require, baseline, baseline_file, max_regression, allow_missing, field, config)
        _run(
            plan,
            sources,
            fmt=fmt,
            strict=strict,
            field=field,
            config=config,
            junit=junit,
            started=started,
        )
    except RuleSyntaxError as exc:
        _annotate_error(exc)
        _syntax_error(exc)
    except MlobsError as exc:  # reported by @command; in GitHub Actions also as an annotation
        _annotate_error(exc)
        raise


def _annotate_error(exc: MlobsError) -> None:
    """In GitHub Actions, an error that stops the check is an `::error` annotation too."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from mlobs_cli.render.ci import escape_data, escape_property
        from mlobs_cli.terminal import inert_text

        title = escape_property("mlobs check error")
        sys.stderr.write(f"::error title={title}::{escape_data(inert_text(str(exc)))}\n")


def _syntax_error(exc: RuleSyntaxError) -> None:
    from mlobs_cli.terminal import error_line, inert_text

    error_line(str(exc))
    for line in exc.caret_lines():
        sys.stderr.write(inert_text(line) + "\n")
    raise typer.Exit(int(ExitCode.USAGE))


def _plan(assert_, require, baseline, baseline_file, max_regression, allow_missing, field, config):
    """Collect the rules: the file's `[check]` rules first, then the flags' (they add up)."""
    from mlobs_cli.analysis.check_settings import check_settings
    from mlobs_cli.analysis.rules import parse_assert, parse_regression, parse_require
    from mlobs_cli.config import load_settings

    settings = load_settings(config, field_flags=field or [])
    plan = check_settings(settings.table.get("check"), source=settings.path)
    plan.rules += [parse_assert(t) for t in assert_ or []]
    plan.rules += [parse_require(t) for t in require or []]
    plan.rules += [parse_regression(t) for t in max_regression or []]
    if allow_missing is not None:
        plan.allow_missing = allow_missing
    if baseline is not None:
        plan.baseline = baseline
    if baseline_file is not None:
        plan.baseline_file = str(baseline_file)
    has_regression = any(r.kind == "regression" for r in plan.rules)
    if has_regression and not (plan.baseline or plan.baseline_file):
        raise UsageError(
            "a regression limit needs a baseline", "add --baseline VERSION or --baseline-file LOGS"
        )
    if (plan.baseline or plan.baseline_file) and not has_regression:
        raise UsageError(
            "a baseline needs at least one regression limit", "add e.g. --max-regression p95:10%"
        )
    if not plan.rules:
        raise UsageError(
            "no rules to check",
            "give --assert/--require, or add [[check.rules]] to mlobs.toml; see mlobs check --help",
        )
    return plan


def _refuse_overwriting_input(report: Path, inputs: list[str]) -> None:
    """A report path naming one of the logs being read would replace that log: refuse, exit 2."""
    from mlobs_cli.errors import UsageError

    for name in inputs:
        try:
            same = bool(name) and name != "-" and os.path.samefile(name, report)
        except OSError:
            continue
        if same:
            raise UsageError(f"--junit {report} is one of the logs being read", "write the report elsewhere")


def _run(plan, sources, *, fmt, strict, field, config, junit, started) -> None:
    from mlobs_cli.analysis.checks import evaluate
    from mlobs_cli.cli.common import load_dataset
    from mlobs_cli.cli.hygiene import tidy_dataset
    from mlobs_cli.render import check as render
    from mlobs_cli.render import ci
    from mlobs_cli.render.machine import markdown_table, write_csv, write_json, write_ndjson
    from mlobs_cli.terminal import warn

    if junit is not None:
        _refuse_overwriting_input(junit, [*sources, plan.baseline_file or ""])
    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    base_data = None
    if plan.baseline_file:
        base_data = tidy_dataset(
            load_dataset([plan.baseline_file], fields=field, config=config, strict=strict)
        )
    report = evaluate(
        plan.rules,
        data.requests,
        lines=data.lines,
        skipped=data.skipped.total,
        allow_missing=plan.allow_missing,
        baseline_version=plan.baseline,
        baseline_requests=base_data.requests if base_data is not None else None,
    )
    if report.unversioned:
        n = report.unversioned
        warn(
            f"{n:,} request{'s' if n != 1 else ''} without a model version left out of per-version "
            "results ('*:' rules and --require model_version count them)"
        )
    if junit is not None:
        ci.write_junit(report, junit, elapsed_s=time.perf_counter() - started)

    if fmt == OutputFormat.json:
        write_json(render.report_document(report))
    elif fmt == OutputFormat.ndjson:
        write_ndjson(render.result_row(r) for r in report.results)
    elif fmt == OutputFormat.csv:
        write_csv([render.result_row(r) for r in report.results])
    elif fmt == OutputFormat.markdown:
        sys.stdout.write(
            markdown_table([render.display_row(r) for r in report.results], columns=render.COLUMNS)
        )
    else:
        from mlobs_cli.render.console import make_console

        render.render_table(report, make_console())

    if os.environ.get("GITHUB_ACTIONS") == "true":
        # Workflow commands go to stderr: the runner reads both streams, and stdout stays results.
        for line in ci.annotation_lines(report):
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            try:
                ci.append_step_summary(report, summary_path)
            except MlobsError as exc:
                warn(str(exc))
    if report.failed:
        raise typer.Exit(int(ExitCode.FAILED))
