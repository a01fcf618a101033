"""Prometheus metrics of what `mlobs tail` reads, like Google's mtail: `--serve-metrics HOST:PORT`.

`TailMetrics` is a collector on its own `CollectorRegistry` (never the global one): request and
error counters and a latency histogram labelled by `model_version`, plus lines read and skipped.
Batches are counted vectorized (numpy), and the official client `prometheus_client` builds the
exposition; it is imported only when metrics are served, so `mlobs --help` does not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mlobs_cli.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

#: histogram bucket upper bounds, in ms (exposed in seconds, the Prometheus base unit)
BUCKETS_MS = (
    1, 2.5, 5, 10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750,
    1_000, 1_500, 2_500, 5_000, 10_000,
)  # fmt: skip


class TailMetrics:
    """Counters and histograms per model version, updated one batch at a time, read on scrape."""

    def __init__(self, buckets_ms: tuple[float, ...] = BUCKETS_MS) -> None:
        from prometheus_client import CollectorRegistry

        self._bounds = np.asarray(sorted(buckets_ms), dtype=np.float64)
        self._lock = threading.Lock()
        self._versions: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._skipped: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def observe(self, requests: pd.DataFrame) -> None:
        """Count a batch of request rows (`model_version`, `latency_ms`, `error`)."""
        if requests is None or len(requests) == 0:
            return
        import pandas as pd

        codes, uniques = pd.factorize(requests["model_version"].astype(str), sort=False)
        latency = requests["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
        errors = requests["error"].to_numpy(dtype=bool, na_value=False)
        slot = np.searchsorted(self._bounds, latency, side="left")  # value <= bound: that bucket
        n_slots = len(self._bounds) + 1
        with self._lock:
            for i, version in enumerate(uniques):
                sel = codes == i
                lat = latency[sel]
                ok = ~np.isnan(lat)
                state = self._versions.setdefault(
                    str(version),
                    {"requests": 0, "errors": 0, "count": 0, "sum": 0.0,
                     "buckets": np.zeros(n_slots, dtype=np.int64)},
                )  # fmt: skip
                state["requests"] += int(sel.sum())
                state["errors"] += int(errors[sel].sum())
                state["count"] += int(ok.sum())
                state["sum"] += float(lat[ok].sum())
                state["buckets"] += np.bincount(slot[sel][ok], minlength=n_slots)

    def set_input(self, lines: int, skipped_by_reason: dict[str, int]) -> None:
        """Running totals of lines read and skipped (by reason)."""
        with self._lock:
            self._lines = int(lines)
            self._skipped = {str(k): int(v) for k, v in skipped_by_reason.items()}

    def collect(self) -> Iterator[Any]:
        """Called by prometheus_client on each scrape."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        requests = CounterMetricFamily(
            "mlobs_requests", "Requests read from the logs.", labels=["model_version"]
        )
        errors = CounterMetricFamily(
            "mlobs_request_errors", "Requests that failed (status >= 500 or an error marker).",
            labels=["model_version"],
        )  # fmt: skip
        latency = HistogramMetricFamily(
            "mlobs_request_latency_seconds", "Request latency as logged.", labels=["model_version"]
        )
        lines = CounterMetricFamily("mlobs_lines_read", "Log lines read.")
        skipped = CounterMetricFamily(
            "mlobs_lines_skipped", "Log lines that could not be used, by reason.", labels=["reason"]
        )
        with self._lock:
            for version, s in sorted(self._versions.items()):
                requests.add_metric([version], s["requests"])
                errors.add_metric([version], s["errors"])
                cumulative = np.cumsum(s["buckets"])
                buckets = [
                    (floatToGoString(b / 1000.0), float(c))
                    for b, c in zip(self._bounds, cumulative[:-1], strict=True)
                ]
                buckets.append(("+Inf", float(cumulative[-1])))
                latency.add_metric([version], buckets, sum_value=s["sum"] / 1000.0)
            lines.add_metric([], self._lines)
            for reason, n in sorted(self._skipped.items()):
                skipped.add_metric([reason], n)
        yield from (requests, errors, latency, lines, skipped)

    def describe(self) -> list[Any]:
        return []


def parse_listen_address(text: str) -> tuple[str, int]:
    """`127.0.0.1:9108`, `[::1]:9108`, `:9108` (all interfaces) -> (host, port)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--serve-metrics {text!r} is not HOST:PORT", "e.g. --serve-metrics 127.0.0.1:9108")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def serve_metrics(metrics: TailMetrics, address: str) -> tuple[Any, str]:
    """Start the exposition HTTP server in a daemon thread; return (server, its URL)."""
    from prometheus_client import start_http_server

    host, port = parse_listen_address(address)
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {address}: {exc.strerror or exc}",
            "pick a free port, or 127.0.0.1:0 for any",
        ) from None
    bound_port = server.server_port
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{bound_port}/metrics"
