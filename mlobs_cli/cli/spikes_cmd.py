"""`mlobs spikes`: anomalous time windows per model version, and the requests inside them."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, FormatOpt, OutputFormat, SourcesArg, StrictOpt


def parse_fraction(text: str) -> float:
    """`20%` or `0.2` -> 0.2; UsageError otherwise."""
    from mlobs_cli.errors import UsageError

    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"not a fraction: {text!r}", "write it like 20% or 0.2") from None
    if not 0 <= value < 1000:
        raise UsageError(f"fraction out of range: {text!r}", "write it like 20% or 0.2")
    return value


@command("spikes")
def spikes(
    sources: SourcesArg,
    every: Annotated[str, typer.Option("--every", help="Bucket width: 10s, 30s, 1m.")] = "30s",
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="p50/p95/p99/p99.9, mean, max, error_rate, rate.")
    ] = "p99",
    by_version: Annotated[
        bool,
        typer.Option(
            "--by-version/--all-versions",
            help="One series per model version (default), or all versions pooled.",
        ),
    ] = True,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Modified z-score above which a bucket is odd.")
    ] = 3.5,
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Buckets with fewer requests are never flagged.")
    ] = 20,
    min_change: Annotated[
        str, typer.Option("--min-change", help="Minimum change vs the baseline too (20% or 0.2).")
    ] = "20%",
    window: Annotated[
        int, typer.Option("--window", help="Baseline: this many buckets either side of a bucket.")
    ] = 20,
    top: Annotated[int, typer.Option("--top", help="Slowest requests listed per window.")] = 5,
    plot: Annotated[bool, typer.Option("--plot", help="Chart the metric with the windows.")] = False,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Find latency, error or traffic spikes per model version, with the requests inside them."""
    from mlobs_cli.analysis.spikes import SpikeSettings, find_spikes
    from mlobs_cli.cli.common import load_dataset, timed_requests
    from mlobs_cli.durations import parse_duration
    from mlobs_cli.errors import UsageError
    from mlobs_cli.terminal import warn

    parse_duration(every)
    if threshold <= 0 or min_requests < 1 or window < 1 or top < 0:
        raise UsageError("--threshold, --min-requests and --window must be positive")
    settings = SpikeSettings(
        threshold=threshold,
        min_requests=min_requests,
        min_change=parse_fraction(min_change),
        min_delta=0.01 if metric.strip().lower() == "error_rate" else 0.0,
        half_window=window,
    )
    from mlobs_cli.cli.hygiene import tidy_dataset

    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    requests = timed_requests(data)
    report = find_spikes(requests, metric=metric, every=every, by_version=by_version, settings=settings)
    for note in report.notes:
        warn(note)
    _attach_requests(report, data, top)
    explain_cmds = {
        i: "mlobs explain " + shlex.join([w.worst_request_id, *sources])
        for i, w in enumerate(report.windows)
        if w.worst_request_id
    }
    rows = []
    for i, w in enumerate(report.windows):
        row = w.to_dict()
        row["explain"] = explain_cmds.get(i)
        rows.append(row)
    if fmt is OutputFormat.table:
        from mlobs_cli.render.console import make_console
        from mlobs_cli.render.spikes import render_spikes_human

        render_spikes_human(report, console=make_console(), plot=plot, explain_cmds=explain_cmds)
    else:
        from mlobs_cli.render.spikes import render_spikes_machine

        render_spikes_machine(rows, fmt.value)


def _attach_requests(report: Any, data: Any, top: int) -> None:
    """Fill each window's slowest requests (dominant stage from the stages of just those requests)
    and its over-represented attribute values, with `analysis.spike_context`."""
    from mlobs_cli.analysis.spike_context import describe_windows, window_keys
    from mlobs_cli.analysis.timeline import stage_durations

    if not report.windows:
        return
    keys = window_keys(report, data.requests, top) if top else set()
    stages = None
    if keys:
        ms, sp = data.milestones, data.spans
        ms = ms[ms["request_id"].isin(keys) | ms["trace_id"].isin(keys)]
        sp = sp[sp["request_id"].isin(keys) | sp["trace_id"].isin(keys)]
        stages = stage_durations(ms, sp, data.requests)
    describe_windows(report, data.requests, stages, top=top)
