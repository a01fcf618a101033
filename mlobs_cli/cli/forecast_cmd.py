"""`mlobs forecast`: per-version trend of a metric, time to an SLO breach, and burn rates."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.cli.common import ConfigOpt, FieldOpt, FormatOpt, OutputFormat, SourcesArg, StrictOpt


@command("forecast")
def forecast(
    sources: SourcesArg,
    metric: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional
        typer.Option(
            "--metric",
            "-m",
            help="p50/p95/p99, mean, max, error_rate, rate. Default: the SLO's, else p99.",
        ),
    ] = None,
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead: 30m, 6h, 1d.")] = "6h",
    slo: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--slo",
            help='"p99 < 250ms" (time to breach) or "error_rate < 1%" (burn rate). Repeatable.',
            show_default=False,
        ),
    ] = None,
    every: Annotated[str, typer.Option("--every", help="Bucket width of the fitted series.")] = "5m",
    history: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--history",
            help="Fit only the newest part of the logs (e.g. 12h). Default: all of it.",
            show_default=False,
        ),
    ] = None,
    min_buckets: Annotated[
        int, typer.Option("--min-buckets", help="Refuse to fit fewer buckets than this.")
    ] = 10,
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Buckets with fewer requests are left out.")
    ] = 20,
    fmt: FormatOpt = OutputFormat.table,
    strict: StrictOpt = False,
    field: FieldOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Project each model version's latency (or error rate) trend and the time to an SLO breach."""
    from mlobs_cli.analysis.forecast import burn_rates, forecast_metric, parse_slo
    from mlobs_cli.cli.common import load_dataset, timed_requests
    from mlobs_cli.durations import parse_duration
    from mlobs_cli.errors import NotFoundError, UsageError
    from mlobs_cli.terminal import warn

    horizon_s = parse_duration(horizon)
    parse_duration(every)
    history_s = parse_duration(history) if history else None
    if min_buckets < 3 or min_requests < 1:
        raise UsageError("--min-buckets must be at least 3 and --min-requests at least 1")
    slos = [parse_slo(text) for text in slo or []]
    burn_slos = [s for s in slos if s.metric.name == "error_rate"]
    if len(burn_slos) > 1:
        raise UsageError("give at most one error_rate SLO")
    for s in burn_slos:
        if s.op not in ("<", "<="):
            raise UsageError(f"an availability SLO reads error_rate < X, not {s.text!r}")
    metrics: list[tuple[str, object]] = []
    if metric:
        match = [s for s in slos if s.metric.name == metric.strip().lower()]
        metrics.append((metric, match[0] if match else None))
    for s in slos:
        if s.metric.name not in [m for m, _ in metrics] and s not in burn_slos:
            metrics.append((s.metric.name, s))
    if not metrics:
        metrics.append(("p99", None))

    from mlobs_cli.cli.hygiene import tidy_dataset

    data = tidy_dataset(load_dataset(sources, fields=field, config=config, strict=strict))
    requests = timed_requests(data)
    forecasts = []
    for name, rule in metrics:
        forecasts += forecast_metric(
            requests,
            metric=name,
            horizon_s=horizon_s,
            every=every,
            history_s=history_s,
            slo=rule,
            min_buckets=min_buckets,
            min_requests=min_requests,
        )
    made = [f for f in forecasts if f.refused is None]
    refused = [f for f in forecasts if f.refused is not None]
    if not made:
        reasons = "; ".join(f"{f.model_version} {f.metric}: {f.refused}" for f in refused)
        raise NotFoundError(
            f"too little history to forecast ({reasons or 'no data'})",
            "collect a longer stretch of logs, or shorten --horizon/--every",
        )
    for f in refused:
        warn(f"not forecasting {f.model_version} {f.metric}: {f.refused}")
    burn_slo = burn_slos[0] if burn_slos else None
    burns = burn_rates(requests, budget=burn_slo.threshold) if burn_slo else []
    if burn_slo is not None and burn_slo.scope is not None:
        burns = [b for b in burns if b["model_version"] == burn_slo.scope]
    doc = {
        "forecasts": [f.to_dict() for f in made],
        "refused": [
            {"model_version": f.model_version, "metric": f.metric, "reason": f.refused} for f in refused
        ],
    }
    if burn_slo is not None:
        doc["burn_rates"] = [dict(b, slo=burn_slo.text) for b in burns]
    if fmt is OutputFormat.table:
        from mlobs_cli.render.console import make_console
        from mlobs_cli.render.forecast import render_forecast_human

        render_forecast_human(made, burns, burn_slo.text if burn_slo else None, console=make_console())
    else:
        from mlobs_cli.render.forecast import render_forecast_machine

        render_forecast_machine(doc, fmt.value)
