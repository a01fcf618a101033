"""`mlobs tail`: follow live logs with rolling per-version latency, rates and errors.

Wiring only: `follow` -> `RecordParser` -> `dataset_from_batch` -> `RollingWindow` (+ metrics and
alerts) -> a renderer from `render/tail.py`. Ctrl-C and SIGTERM end the run with a final summary;
a closed stdout ends it silently (the `@command` guard).
"""

from __future__ import annotations

import gc
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, PercentilesOpt, WhereOpt
from mlobs_cli.errors import ExitCode

if TYPE_CHECKING:
    import pandas as pd

    from mlobs_cli.frame import Dataset


# Parsed events framed at once even before the next update (bounds memory when catching up:
# ~0.5 KB each). Framing has a fixed cost of ~25 ms a batch, so a steady 100k lines/s is framed
# once per update, not twice.
FLUSH_EVENTS = 200_000
# Request fields read besides those every summary needs (records.REQUIRED_REQUEST_FIELDS): what
# the window, the slowest list, --events and the metrics show.
TAIL_FIELDS = frozenset({"request_id", "trace_id"})
FULL_COLLECT_EVERY = 60  # updates between full collections (the others collect young objects)
LIVE_MIN_REFRESH_S = 0.25  # the live view redraws at most 4 times a second, whatever --refresh says


def _output_mode(fmt: str, plain: bool) -> str:
    fmt = fmt.lower()
    if fmt not in ("table", "ndjson"):
        from mlobs_cli.errors import UsageError

        raise UsageError(f"tail cannot print --format {fmt}", "use table (live view) or ndjson")
    if fmt == "ndjson":
        return "ndjson"
    if plain or not sys.stdout.isatty():
        return "plain"
    from mlobs_cli.render.console import make_console

    if make_console().is_dumb_terminal:  # TERM=dumb: no redrawing in place, so plain lines
        return "plain"
    return "live"


class _Requests:
    """Which rows of each parsed batch are requests, consistently over the whole stream.

    Request summaries are used when the logs have them. Without summaries, a trace's root span (one
    without a parent) is a request; it is logged when the request ends, so it is counted once.
    Requests made up from milestones alone are not counted (their milestones may straddle batches).
    """

    def __init__(self) -> None:
        self.summaries_seen = False

    def of(self, data: Dataset) -> pd.DataFrame:
        req = data.requests
        if data.requests_from == "summaries":
            if len(req):
                self.summaries_seen = True
            return req
        if data.requests_from == "root spans" and not self.summaries_seen:
            spans = data.spans
            roots = spans[spans["parent_span_id"].isna() & (spans["kind"] != "stage")]
            keys = set(zip(roots["trace_id"], roots["name"], roots["duration_ms"], strict=True))
            mine = [k in keys for k in zip(req["trace_id"], req["name"], req["latency_ms"], strict=True)]
            return req[mine]
        return req.iloc[:0]


@command("tail")
def tail(
    sources: Annotated[
        list[str],
        typer.Argument(help="Log files to follow (they may not exist yet), or - for stdin."),
    ],
    window: Annotated[
        str, typer.Option("--window", "-w", help="Rolling window (event time): 60s, 5m.")
    ] = "60s",
    refresh: Annotated[
        str, typer.Option("--refresh", help="Update interval: 1s, 500ms (the live view: 250ms at least).")
    ] = "1s",
    duration: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("--duration", help="Stop after this long (30s, 5m), with a final summary."),
    ] = None,
    intervals: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--intervals", min=1, help="Stop after this many updates."),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Read existing content first, from the start.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="Start with the last N lines of each file.")
    ] = 0,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table (live view, or plain lines) or ndjson.")
    ] = "table",
    percentiles: PercentilesOpt = "50,90,95,99",
    plain: Annotated[bool, typer.Option("--plain", help="Plain summary lines even on a terminal.")] = False,
    events: Annotated[
        bool, typer.Option("--events", help="Also print each incoming request as one line.")
    ] = False,
    where: WhereOpt = None,
    slow_over: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--slow-over", help="Highlight requests slower than this: 250ms, 0.3s."),
    ] = None,
    alert: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--alert",
            help="Alert when a version meets this check-syntax condition: 'p99 > 250ms'. Repeatable.",
            show_default=False,
        ),
    ] = None,  # fmt: skip
    serve_metrics: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--serve-metrics",
            metavar="HOST:PORT",
            help="Expose Prometheus metrics at http://HOST:PORT/metrics.",
        ),
    ] = None,  # fmt: skip
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Follow live logs (like tail -F): per-version requests/s, errors and p50/p95/p99 over a
    rolling window, the slowest recent requests, alerts, and Prometheus metrics."""
    run_tail(
        sources, window=window, refresh=refresh, duration=duration, intervals=intervals,
        from_start=from_start, lines=lines, fmt=fmt, percentiles=percentiles, plain=plain,
        events=events, where=where, slow_over=slow_over, alerts=alert or [],
        serve_metrics=serve_metrics, fields=field or [], config=config,
    )  # fmt: skip


def run_tail(
    sources: list[str],
    *,
    window: str,
    refresh: str,
    duration: str | None,
    intervals: int | None,
    from_start: bool,
    lines: int,
    fmt: str,
    percentiles: str,
    plain: bool,
    events: bool,
    where: str | None,
    slow_over: str | None,
    alerts: list[str],
    serve_metrics: str | None,
    fields: list[str],
    config: Path | None,
) -> None:
    from mlobs_cli.analysis.alerts import AlertTracker, parse_alert
    from mlobs_cli.analysis.checks import format_value
    from mlobs_cli.analysis.latency import parse_percentiles
    from mlobs_cli.analysis.window import RollingWindow, dominant_stages
    from mlobs_cli.config import load_settings
    from mlobs_cli.durations import parse_duration, parse_latency_ms
    from mlobs_cli.follow import Follower, follow
    from mlobs_cli.frame import dataset_from_batch
    from mlobs_cli.records import RecordParser
    from mlobs_cli.render import tail as view
    from mlobs_cli.render.console import make_console
    from mlobs_cli.terminal import warn

    # Everything the user typed is checked before anything starts.
    window_s = parse_duration(window)
    refresh_s = parse_duration(refresh)
    duration_s = parse_duration(duration) if duration is not None else None
    slow_ms = parse_latency_ms(slow_over) if slow_over is not None else None
    rules = [parse_alert(text) for text in alerts]
    mode = _output_mode(fmt, plain)
    if mode == "live":  # a terminal view redrawn faster than this is not read, only paid for
        refresh_s = max(refresh_s, LIVE_MIN_REFRESH_S)
    expr = None
    if where:
        from mlobs_cli.analysis.where import parse_where

        expr = parse_where(where)
    settings = load_settings(config, field_flags=fields)
    shown_qs = parse_percentiles(percentiles)
    qs = sorted({*shown_qs, *(r.percentile for r in rules if r.percentile is not None)})
    follower = Follower(sources, from_start=from_start, backlog=lines)

    # Only the request fields tail uses are typed (as `latency` does); `--where` may name any field.
    parser = RecordParser(settings.overrides, fields=None if expr is not None else TAIL_FIELDS)
    cap = settings.max_line_bytes
    win = RollingWindow(window_s)
    tracker = AlertTracker(rules)
    picker = _Requests()
    metrics = server = None
    if serve_metrics:
        from mlobs_cli.metrics import TailMetrics
        from mlobs_cli.metrics import serve_metrics as serve

        metrics = TailMetrics()
        server, url = serve(metrics, serve_metrics)
        warn(f"serving Prometheus metrics at {url}")

    if mode == "ndjson":
        renderer: Any = view.NdjsonRenderer()
    elif mode == "plain":
        renderer = view.PlainRenderer(slow_over_ms=slow_ms)
    else:
        renderer = view.LiveRenderer(make_console(), slow_ms)

    stopping = {"signal": False}

    def on_term(signum: int, frame: Any) -> None:
        stopping["signal"] = True

    old_term = _install(signal.SIGTERM, on_term)
    start = time.monotonic()
    deadline = start + duration_s if duration_s is not None else None
    shown = 0
    interval = max(0.01, min(0.25, refresh_s / 4))
    next_refresh = start + refresh_s
    ctx = view.Context(slow_over_ms=slow_ms, percentiles=shown_qs)
    ended_by_intervals = False
    interrupted = False

    def stop() -> bool:
        return stopping["signal"] or (deadline is not None and time.monotonic() >= deadline)

    def context() -> view.Context:
        ctx.lines = parser.lines
        ctx.skipped = parser.skipped.total
        ctx.skipped_by_reason = dict(parser.skipped.by_reason)
        ctx.firing = tracker.firing()
        ctx.firing_rows = tracker.firing_list()
        return ctx

    def take_snapshot(wall: float) -> Any:
        snap = win.snapshot(wall, percentiles=qs)
        for change in tracker.update(snap.table):
            rule = change.rule
            unit = rule.threshold.unit if rule.threshold else "number"
            what = "alert" if change.firing else "recovered"
            label = rule.text if rule.scope else f"{rule.text} [{change.model_version}]"
            warn(
                f"{what}: {label} "
                f"({rule.metric} = {format_value(change.value, unit)} over the "
                f"{window_s:g}s window ending {view.iso_utc(snap.window_end)})"
            )
        return snap

    def feed(batch: Any) -> None:
        """Parse one poll's lines (the events wait in the parser until `flush`)."""
        for notice in batch.notices:
            warn(notice)
        for source, first, block in batch.blocks:
            if sum(map(len, block)) > cap:  # some line may be over the cap
                block = [raw if len(raw) <= cap else None for raw in block]
            parser.feed_block(source, first, block)
        for source in batch.ended:
            parser.finish_source(source)

    def flush() -> None:
        """Frame what was parsed; add its requests to the window, the metrics and the event stream.

        Done once per update (each poll with --events): framing a batch has a fixed cost, so
        fewer, larger batches keep the CPU low at steady rates.
        """
        if not parser.pending_events:
            return
        data = dataset_from_batch(parser.take(), parser)
        req = picker.of(data)
        if expr is not None and len(req):
            req = req[expr.mask(req).to_numpy(dtype=bool)]
        kept = win.add(req, time.time())
        if len(data.spans) or len(data.milestones):
            win.add_stages(dominant_stages(data.milestones, data.spans, kept))
        if metrics is not None:
            metrics.observe(kept)
            metrics.set_input(parser.lines, dict(parser.skipped.by_reason))
        if events and len(kept):
            renderer.events(kept.to_dict("records"))

    # The cyclic collector would walk every parsed row tuple many times a second (~8% of the CPU
    # at 100k lines/s); it is paused for the run and collects once per update instead.
    collector_was_on = gc.isenabled()
    gc.disable()
    try:
        try:
            for batch in follow(sources, interval=interval, stop=stop, follower=follower):
                feed(batch)
                now = time.monotonic()
                due = now >= next_refresh
                if due or events or parser.pending_events >= FLUSH_EVENTS:
                    flush()
                if due:
                    snap = take_snapshot(time.time())
                    shown += 1
                    gc.collect(2 if shown % FULL_COLLECT_EVERY == 0 else 1)
                    while next_refresh <= now:
                        next_refresh += refresh_s
                    if intervals is not None and shown >= intervals:
                        renderer.final(snap, context())
                        ended_by_intervals = True
                        break
                    renderer.snapshot(snap, context())
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C is how a live view is meant to end: the final summary, then 130
        finally:
            _install(signal.SIGTERM, old_term)
        if not ended_by_intervals:
            flush()
            renderer.final(take_snapshot(time.time()), context())
    finally:  # also on a closed pipe or an error: leave the terminal and the port as they were
        if collector_was_on:
            gc.enable()
        renderer.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    if parser.skipped.total:
        warn(parser.skipped.summary_line(parser.lines))
    if interrupted:  # the exit-code contract: interrupted is 130, for every command
        sys.stderr.write("mlobs: interrupted\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED))


def _install(signum: int, handler: Any) -> Any:
    """Set a signal handler when we can (only the main thread may); return the previous one."""
    try:
        return signal.signal(signum, handler)
    except (ValueError, TypeError):
        return None
