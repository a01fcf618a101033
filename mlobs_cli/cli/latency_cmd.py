"""`mlobs latency`: exact percentiles, request rates and error rates per model version."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import (
    ConfigOpt,
    FieldOpt,
    FormatOpt,
    OutputFormat,
    PercentilesOpt,
    SourcesArg,
    StrictOpt,
    WhereOpt,
)
from mlobs_cli.errors import ExitCode, NotFoundError, UsageError

VERSION = "model_version"


class StatusChoice(str, Enum):
    """Which requests feed the latency columns."""

    all = "all"
    ok = "ok"
    error = "error"


def parse_regression(text: str) -> float:
    """`10%` (or `10`) -> 0.10: the relative change beyond which a baseline comparison regresses."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"invalid --regression {text!r}", "use a percentage like 10%") from None
    if not 0 <= value < 1e6:
        raise UsageError(f"invalid --regression {text!r}", "use a percentage like 10%")
    return value / 100.0


def group_keys(by: list[str] | None) -> list[str]:
    """`--by a,b` (repeatable) -> keys; the model version always travels with the numbers."""
    keys: list[str] = []
    for item in by or []:
        keys.extend(k.strip() for k in item.split(",") if k.strip())
    keys = list(dict.fromkeys(keys))
    if VERSION not in keys:
        keys.insert(0, VERSION)
    return keys


@command("latency")
def latency(
    sources: SourcesArg,
    by_version: Annotated[
        bool, typer.Option("--by-version", help="One row per model version (the default).")
    ] = False,
    by: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--by",
            help="Also group by these fields (comma-separated or repeated), e.g. http.route. "
            "model_version is always a key.",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--every", help="Add a time bucket of this width: 10s, 1m, 5m, 1h.", show_default=False),
    ] = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--since",
            help="Only requests at or after: ISO time, or 15m/2h before the newest request.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--until",
            help="Only requests before: ISO time, or 15m/2h before the newest request.",
            show_default=False,
        ),
    ] = None,
    where: WhereOpt = None,
    percentiles: PercentilesOpt = "50,90,95,99",
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            "-m",
            help="latency_ms, inference_ms, another numeric field, or "
            "a stage/span name (its duration per request).",
        ),
    ] = "latency_ms",
    status: Annotated[
        StatusChoice,
        typer.Option(
            "--status",
            help="Which requests feed the latency columns; counts and error rates always include all.",
            case_sensitive=False,
        ),
    ] = StatusChoice.all,
    baseline: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--baseline", help="Compare every version with this one.", show_default=False),
    ] = None,
    regression: Annotated[
        str, typer.Option("--regression", help="With --baseline: flag changes worse than this.")
    ] = "10%",
    fmt: FormatOpt = OutputFormat.table,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot",
            help="Draw percentiles over time (with --every) or a "
            "latency histogram per version, below the table.",
        ),
    ] = False,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
    sketch: Annotated[
        bool,
        typer.Option(
            "--sketch",
            help="Bounded memory: approximate percentiles from DDSketch log buckets (relative error "
            "<= --sketch-accuracy); counts, errors, mean and max stay exact. Reads cold in one "
            "process (no cache) and cannot drop duplicate lines (that needs every request id). "
            "Not with --every, --baseline, --plot or a relative --since/--until.",
        ),
    ] = False,
    sketch_accuracy: Annotated[
        float,
        typer.Option("--sketch-accuracy", help="With --sketch: the relative error bound, e.g. 0.01 = 1%."),
    ] = 0.01,
) -> None:
    """Exact latency percentiles, request rates and error rates per model version.

    Percentiles are exact: numpy's default linear interpolation, as Prometheus and Loki use.
    With --sketch they are approximate (bounded relative error) and memory stays bounded.

    Exit 1 when no request matches.
    """
    from mlobs_cli.analysis.latency import parse_percentiles
    from mlobs_cli.analysis.where import parse_where
    from mlobs_cli.durations import parse_duration

    qs = parse_percentiles(percentiles)
    if every is not None:
        parse_duration(every)
    threshold = parse_regression(regression)
    flt = parse_where(where) if where is not None else None
    if plot and fmt is not OutputFormat.table:
        raise UsageError("--plot draws for people", "use it with --format table (the default)")
    keys = group_keys(by)
    if sketch_accuracy != 0.01 and not sketch:
        raise UsageError("--sketch-accuracy only applies with --sketch", "add --sketch")
    if sketch:
        refused = [
            name
            for name, given in (
                ("--every", every is not None),
                ("--baseline", baseline is not None),
                ("--regression", regression != "10%"),
                ("--plot", plot),
            )
            if given
        ]
        if refused:
            raise UsageError(
                f"{refused[0]} needs every request, which --sketch does not keep", "drop --sketch"
            )
        run_sketch(
            sources, keys=keys, qs=qs, since=since, until=until, where=flt, metric=metric,
            status=status.value, fmt=fmt, strict=strict, field=field, config=config,
            accuracy=sketch_accuracy,
        )  # fmt: skip
        return

    from mlobs_cli.cli.common import load_dataset, requests_need
    from mlobs_cli.cli.hygiene import tidy_dataset

    # request_id too: a summary logged twice is counted once only if its id can be compared
    need = requests_need([*keys, *(flt.fields if flt else []), "request_id"], metric)
    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict, need=need))
    run_and_render(
        data,
        keys=keys,
        qs=qs,
        every=every,
        since=since,
        until=until,
        where=flt,
        metric=metric,
        status=status.value,
        baseline=baseline,
        threshold=threshold,
        fmt=fmt,
        plot=plot,
    )


def run_and_render(
    data: Any,
    *,
    keys: list[str],
    qs: list[float],
    every: str | None,
    since: str | None,
    until: str | None,
    where: Any,
    metric: str,
    status: str,
    baseline: str | None,
    threshold: float,
    fmt: OutputFormat,
    plot: bool,
) -> None:
    """Select, compute and print; exit 1 when nothing matched."""
    from mlobs_cli.analysis.latency import latency_table, stage_metric
    from mlobs_cli.analysis.selection import select_requests
    from mlobs_cli.terminal import warn

    requests = data.requests
    if metric not in requests.columns:
        stages, name_col = _stages(data)
        requests = requests.assign(**{metric: stage_metric(requests, stages, metric, name_col=name_col)})
    requests = select_requests(requests, since=since, until=until, where=where)
    table = latency_table(requests, by=keys, percentiles=qs, metric=metric, every=every, status=status)
    table.attrs["every"] = every
    table.attrs["filtered"] = where is not None or since is not None or until is not None
    if table.attrs.get("unbucketed"):
        warn(f"{table.attrs['unbucketed']:,} request(s) without a timestamp left out of --every buckets")
    if baseline is not None:
        versions = sorted({str(v) for v in table[VERSION]})
        if baseline not in versions:
            raise NotFoundError(
                f"baseline version {baseline!r} has no requests here",
                "versions: " + (", ".join(versions) if versions else "none"),
            )
        from mlobs_cli.analysis.baseline import compare_to_baseline

        table = compare_to_baseline(table, baseline, percentiles=qs, regression=threshold)
    render(
        table,
        data,
        qs=qs,
        fmt=fmt,
        plot=plot,
        requests=requests,
        metric=metric,
        status=status,
        threshold=threshold,
    )
    if table.empty:
        warn("no requests matched")
        raise typer.Exit(int(ExitCode.FAILED))


def run_sketch(
    sources: list[str],
    *,
    keys: list[str],
    qs: list[float],
    since: str | None,
    until: str | None,
    where: Any,
    metric: str,
    status: str,
    fmt: OutputFormat,
    strict: bool,
    field: list[str] | None,
    config: Any,
    accuracy: float,
) -> None:
    """`--sketch`: fold the requests into per-group sketches while reading; render as usual."""
    from dataclasses import replace
    from types import SimpleNamespace

    from mlobs_cli.cli.common import report_input, requests_need
    from mlobs_cli.config import load_settings
    from mlobs_cli.sketch_stream import SketchFold, absolute_bound, read_into
    from mlobs_cli.terminal import warn

    if not 0.0 < accuracy < 1.0:
        raise UsageError(f"invalid --sketch-accuracy {accuracy:g}", "use a fraction like 0.01 (1%)")
    need = requests_need([*keys, *(where.fields if where else []), "request_id"], metric)
    if need is None:
        raise UsageError(
            f"--sketch reads request summaries only: --metric {metric} is not one of their fields",
            "use --metric latency_ms or inference_ms, or drop --sketch",
        )
    if strict:
        need = replace(need, prefilter=False)
    fold = SketchFold(
        keys,
        metric,
        status,
        accuracy,
        absolute_bound(since, "--since"),
        absolute_bound(until, "--until"),
        where,
    )
    settings = load_settings(config, field_flags=field or [])
    skipped, lines, notes = read_into(fold, sources, settings, need)
    report_input(notes, skipped, lines, strict=strict)
    if not fold.rows_read and lines:
        warn("note: --sketch reads request summaries only and found none (drop --sketch to use spans)")
    if fold.rows_read and metric not in fold.columns:
        raise UsageError(f"unknown metric {metric!r}", "use latency_ms or inference_ms")
    table = fold.table(qs)
    table.attrs["every"] = None
    table.attrs["filtered"] = where is not None or since is not None or until is not None
    render(
        table,
        SimpleNamespace(skipped=skipped),
        qs=qs,
        fmt=fmt,
        plot=False,
        requests=None,
        metric=metric,
        status=status,
        threshold=0.10,
    )
    if table.empty:
        warn("no requests matched")
        raise typer.Exit(int(ExitCode.FAILED))


def _stages(data: Any) -> tuple[Any, str]:
    """Stage durations of every request: the timeline's (milestone gaps and spans), else the spans."""
    try:
        from mlobs_cli.analysis.timeline import stage_durations
    except ImportError:  # the timeline module is not merged yet: spans and stage lines only
        return data.spans, "name"
    return stage_durations(data.milestones, data.spans, data.requests), "stage"


def render(
    table: Any,
    data: Any,
    *,
    qs: list[float],
    fmt: OutputFormat,
    plot: bool,
    requests: Any,
    metric: str,
    status: str,
    threshold: float,
) -> None:
    """Print the table in the chosen format (and the plot under a human table)."""
    from mlobs_cli.render import latency as rl
    from mlobs_cli.render.machine import write_csv, write_json, write_ndjson

    if fmt is OutputFormat.json:
        doc = rl.json_document(rl.machine_rows(table, qs), data.skipped)
        if table.attrs.get("relative_accuracy") is not None:  # --sketch
            doc.update(approximate=True, relative_accuracy=table.attrs["relative_accuracy"])
        write_json(doc)
        return
    if fmt is OutputFormat.ndjson:
        write_ndjson(rl.machine_rows(table, qs))
        return
    if fmt is OutputFormat.csv:
        write_csv(rl.machine_rows(table, qs), columns=rl.machine_columns(table, qs))
        return
    title = rl.describe(table, table.attrs)
    if fmt is OutputFormat.markdown:
        sys.stdout.write(rl.markdown_document(table, qs, title=title))
        return
    if table.empty:
        return
    from mlobs_cli.render.console import make_console

    console = make_console()
    shown = rl.latency_renderable(table, qs, title=title, regression=threshold)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        # Piped or redirected: never truncate numbers to a guessed 80 columns.
        wide = console.options.update(max_width=10_000)
        needed = console.measure(shown.renderables[0], options=wide).maximum
        if needed > console.width:
            console = make_console(width=needed)
    console.print(shown)
    if plot:
        from mlobs_cli.render.latency_plot import plot_latency

        console.print(plot_latency(table, requests, qs=qs, metric=metric, status=status, width=console.width))
