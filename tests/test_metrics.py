"""metrics.py and `mlobs tail --serve-metrics`: scraped over loopback, parsed by prometheus_client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlobs_cli.errors import UsageError
from mlobs_cli.metrics import BUCKETS_MS, TailMetrics, parse_listen_address
from tests.logs_from_libraries import write_structlog

REPO = Path(__file__).resolve().parents[1]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def frame(versions, latency, errors):
    return pd.DataFrame(
        {
            "model_version": pd.Series(versions, dtype="category"),
            "latency_ms": np.asarray(latency, dtype=float),
            "error": np.asarray(errors, dtype=bool),
        }
    )


def test_counters_and_histogram_match_the_requests():
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.lognormal(4, 1, 500), [250.0, 1.0, 20_000.0]])
    versions = np.where(np.arange(len(lat)) % 3 == 0, "v2", "v1")
    errors = np.arange(len(lat)) % 11 == 0
    m = TailMetrics()
    half = len(lat) // 2  # two batches: counts accumulate
    m.observe(frame(versions[:half], lat[:half], errors[:half]))
    m.observe(frame(versions[half:], lat[half:], errors[half:]))
    m.set_input(1234, {"not_json": 3})
    got = samples(generate_latest(m.registry).decode())
    for v in ("v1", "v2"):
        sel = versions == v
        lab = (("model_version", v),)
        assert got[("mlobs_requests_total", lab)] == sel.sum()
        assert got[("mlobs_request_errors_total", lab)] == (errors & sel).sum()
        assert got[("mlobs_request_latency_seconds_count", lab)] == sel.sum()
        assert got[("mlobs_request_latency_seconds_sum", lab)] == pytest.approx(lat[sel].sum() / 1000)
        for bound in BUCKETS_MS:
            key = ("mlobs_request_latency_seconds_bucket", (("le", repr(bound / 1000)), *lab))
            le = [k for k in got if k[0] == key[0] and dict(k[1]).get("model_version") == v
                  and float(dict(k[1])["le"]) == bound / 1000]  # fmt: skip
            assert len(le) == 1
            assert got[le[0]] == (lat[sel] <= bound).sum()  # `le` is inclusive
        inf = [k for k in got if k[0] == key[0] and dict(k[1]) == {"le": "+Inf", "model_version": v}]
        assert got[inf[0]] == sel.sum()
    assert got[("mlobs_lines_read_total", ())] == 1234
    assert got[("mlobs_lines_skipped_total", (("reason", "not_json"),))] == 3


def test_own_registry_not_the_global_one():
    from prometheus_client import REGISTRY

    m = TailMetrics()
    m.observe(frame(["v1"], [5.0], [False]))
    assert b"mlobs_requests" not in generate_latest(REGISTRY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9108", ("127.0.0.1", 9108)), ("[::1]:0", ("::1", 0)), (":9108", ("0.0.0.0", 9108))],
)
def test_listen_address(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9108", "host:", "host:99999", "host:port"])
def test_bad_listen_address(text):
    with pytest.raises(UsageError):
        parse_listen_address(text)


def test_tail_serves_metrics_over_loopback(tmp_path):
    reqs = [
        {"request_id": f"r{i}", "model_version": "v2.1" if i % 4 == 0 else "v2.0",
         "latency_ms": float(10 + i), "status": 500 if i % 10 == 0 else 200}
        for i in range(50)
    ]  # fmt: skip
    log = write_structlog(tmp_path / "s.log", reqs)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlobs_cli", "tail", str(log), "--from-start", "--format", "ndjson",
         "--refresh", "100ms", "--serve-metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        line = proc.stderr.readline().decode()
        url = re.search(r"http://127\.0\.0\.1:\d+/metrics", line).group(0)
        proc.stdout.readline()  # the first snapshot: everything has been read
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            body = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    got = samples(body)
    assert got[("mlobs_requests_total", (("model_version", "v2.0"),))] == 37
    assert got[("mlobs_requests_total", (("model_version", "v2.1"),))] == 13
    assert got[("mlobs_request_errors_total", (("model_version", "v2.0"),))] == 2  # r10, r30
    assert got[("mlobs_request_errors_total", (("model_version", "v2.1"),))] == 3  # r0, r20, r40
    assert got[("mlobs_request_latency_seconds_count", (("model_version", "v2.1"),))] == 13
    assert got[("mlobs_lines_read_total", ())] == 250
