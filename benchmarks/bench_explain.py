"""Benchmark: `mlobs explain`, `mlobs slow` and `mlobs latency --by-version`, cold and warm, same log.

Run by hand (not a test): `python benchmarks/bench_explain.py [--lines 1000000] [--repeat 3]`.
The log is the cached `mlobs simulate` log of bench_read.py (5 lines per request). Cold runs use
`--no-cache`; warm runs use a cache of their own (a temporary XDG_CACHE_HOME) filled by one timed
`mlobs ingest`, which also makes the file's explain snapshot. Each command runs in a fresh process,
output to /dev/null; the figures are the median wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_read import simulated_log  # same folder


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlobs_cli", *args], check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _request_id(path: Path) -> str:
    """The id of a request from the middle of the log (a summary line)."""
    with path.open("rb") as f:
        lines = f.readlines()
    for raw in lines[len(lines) // 2 :]:
        obj = json.loads(raw)
        if "latency_ms" in obj and obj.get("request_id"):
            return str(obj["request_id"])
    raise SystemExit("no request summary found")


def _report(name: str, runs: list[tuple[float, float]]) -> None:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(f"  {name:<32} median wall {wall:6.2f} s   cpu {cpu:6.2f} s   ({len(runs)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-only", action="store_true", help="skip the cold (--no-cache) runs")
    opts = parser.parse_args()
    log = simulated_log(opts.lines)
    rid = _request_id(log)
    commands = {
        "explain": ["explain", rid, str(log)],
        "latency --by-version": ["latency", "--by-version", str(log)],
        "slow": ["slow", str(log)],
    }
    print(f"{log.name}: {opts.lines:,} lines; explain {rid}; load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="mlobs-bench-cache-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules compiled once, not per run
        if not opts.warm_only:
            for name, args in commands.items():
                _report(f"cold {name}", [_run(["--no-cache", *args], env) for _ in range(opts.repeat)])
        _report("mlobs ingest (cache + snapshot)", [_run(["ingest", str(log)], env)])
        for name, args in commands.items():
            _report(f"warm {name}", [_run(args, env) for _ in range(opts.repeat)])
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
