"""Benchmark: `mlobs explain` and `mlobs slow` against a full `mlobs latency` pass, same log.

Run by hand (not a test): `python benchmarks/bench_explain.py [--lines 1000000] [--repeat 3]`.
The log is the cached `mlobs simulate` log of bench_read.py (5 lines per request). Each command runs
in a fresh process, output to /dev/null; the figures are the median wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_read import simulated_log  # same folder


def _run(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlobs_cli", *args], check=True, stdout=subprocess.DEVNULL)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    log = simulated_log(opts.lines)
    rid = _request_id(log)
    commands = {
        "latency": ["latency", str(log)],
        "explain": ["explain", rid, str(log)],
        "slow": ["slow", str(log)],
    }
    print(f"{log.name}: {opts.lines:,} lines; explain {rid}")
    for name, args in commands.items():
        runs = [_run(args) for _ in range(opts.repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"  mlobs {name:<8} median wall {wall:6.2f} s   cpu {cpu:6.2f} s   ({opts.repeat} runs)")


if __name__ == "__main__":
    main()
