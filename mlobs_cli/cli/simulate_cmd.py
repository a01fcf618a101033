"""`mlobs simulate`: write realistic, deterministic JSON-lines logs of the recommendation model."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlobs_cli.cli.app import command
from mlobs_cli.errors import UsageError

_DEFAULT_START = "2026-11-26T10:00:00Z"

Repeatable = Optional[list[str]]  # noqa: UP045 - typer needs Optional on Python 3.10


@command("simulate")
def simulate(
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=0, help="Number of requests to simulate.")
    ] = 10_000,
    rate: Annotated[
        float, typer.Option("--rate", help="Mean arrival rate in requests per second (Poisson).")
    ] = 50.0,
    start: Annotated[
        str, typer.Option("--start", help="When the traffic starts, ISO-8601 (no offset means UTC).")
    ] = _DEFAULT_START,
    versions: Annotated[
        str,
        typer.Option(
            "--versions",
            help="Model versions and their traffic weights: v2.0:90,v2.1:10 (or v2.0,v2.1).",
        ),
    ] = "v2.0:50,v2.1:50",
    latency: Annotated[
        Repeatable,
        typer.Option(
            "--latency",
            help="Inference latency of a version in ms: v2.0=uniform:50:200, "
            "v2.1=lognormal:median=90,sigma=0.45, normal:MEAN:SD, const:MS. Repeatable. "
            "Defaults: v2.0 uniform 50-200 (the seed service), v2.1 lognormal median 90 sigma "
            "0.45, others uniform 50-200.",
            show_default=False,
        ),
    ] = None,
    slowdown: Annotated[
        Repeatable,
        typer.Option(
            "--slowdown",
            help="Make a version slower: v2.1:20% (or 1.5x, or +15ms). Repeatable.",
            show_default=False,
        ),
    ] = None,
    error_rate: Annotated[
        float, typer.Option("--error-rate", help="Fraction of requests whose inference fails.")
    ] = 0.005,
    slow_features: Annotated[
        float,
        typer.Option(
            "--slow-features",
            help="Fraction of requests that miss the feature cache and take the slow path "
            "(40-120 ms); they log feature_cache=miss.",
        ),
    ] = 0.01,
    spike: Annotated[
        Repeatable,
        typer.Option(
            "--spike",
            help="A latency spike START/DURATION:FACTOR, e.g. +30m/2m:4x (after --start) or "
            "2026-11-26T10:30:00Z/2m:4x; latencies and the error rate are multiplied inside. "
            "Repeatable.",
            show_default=False,
        ),
    ] = None,
    drift: Annotated[
        Repeatable,
        typer.Option(
            "--drift",
            help="A linear latency drift of a version: v2.1:+8ms/h (also /min, /d). Repeatable.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--seed", help="Random seed: the same options and seed give the same bytes."),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help="Write to FILE (gzip when it ends in .gz). Default: stdout.",
            show_default=False,
        ),
    ] = None,
    stages: Annotated[
        bool,
        typer.Option(
            "--stages/--no-stages",
            help="Also log the stage events (request_received ... response_sent) of each request.",
        ),
    ] = True,
) -> None:
    """Write JSON-lines logs of the seed /predict service, sorted by time across requests.

    Per request: the stage events request_received, features_fetched, inference_done (or
    inference_failed) and response_sent, then a `prediction` summary with latency_ms,
    inference_ms, status and the predictions. Same options and --seed: same bytes.
    """
    from mlobs_cli import simspec
    from mlobs_cli.simulate import SimConfig, iter_log_chunks

    if not rate > 0 or rate != rate or rate == float("inf"):
        raise UsageError(f"--rate must be a number above 0, not {rate}")
    for flag, value in (("--error-rate", error_rate), ("--slow-features", slow_features)):
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"{flag} must be a fraction between 0 and 1, not {value}")
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {seed}")
    begin = simspec.parse_start(start)
    version_list = simspec.parse_versions(versions)
    known = {name for name, _ in version_list}
    latencies = dict(simspec.parse_latency(text) for text in latency or [])
    slowdowns = tuple(simspec.parse_slowdown(text) for text in slowdown or [])
    drifts = tuple(simspec.parse_drift(text) for text in drift or [])
    for flag, name in [("--latency", n) for n in latencies] + [
        (flag, item.version) for flag, items in (("--slowdown", slowdowns), ("--drift", drifts))
        for item in items
    ]:  # fmt: skip
        if name not in known:
            raise UsageError(f"{flag}: version {name} is not simulated", f"--versions has {', '.join(known)}")
    config = SimConfig(
        requests=requests,
        rate=rate,
        start=begin,
        versions=version_list,
        latency=latencies,
        slowdowns=slowdowns,
        error_rate=error_rate,
        slow_features=slow_features,
        spikes=tuple(simspec.parse_spike(text, begin) for text in spike or []),
        drifts=drifts,
        seed=seed,
        stages=stages,
    )
    if output is None:
        sink = sys.stdout.buffer
        for chunk in iter_log_chunks(config):
            sink.write(chunk)
        sink.flush()
        return
    from mlobs_cli.outputs import atomic_output

    # All or nothing: a full disk or Ctrl-C leaves no half-written log behind.
    with atomic_output(output) as raw:
        if output.name.endswith(".gz"):
            # mtime=0 and no file name in the header: the same run gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as sink:
                for chunk in iter_log_chunks(config):
                    sink.write(chunk)
        else:
            for chunk in iter_log_chunks(config):
                raw.write(chunk)
