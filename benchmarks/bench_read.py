"""Benchmark: read a simulated 1,000,000-line log into frames; report lines/s and peak memory.

Run by hand (not a test): `python benchmarks/bench_read.py [--lines 1000000] [--repeat 3] [--log F]`.
The log is made by `mlobs simulate` (5 lines per request: 4 stage events and a summary) and cached
in benchmarks/data/ (or given with --log). Each repetition runs in a fresh process so peak RSS is
that run's own. Then the cold command a user runs, `mlobs --no-cache latency --by-version LOG`:
median wall, CPU of the process and its reader worker (`os.wait4`), and peak RSS of the larger.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
from mlobs_cli.frame import dataset_from_sources
keep = None if sys.argv[2] == "all" else frozenset(sys.argv[2].split(","))
data = dataset_from_sources([sys.argv[1]], keep=keep)
wall = time.perf_counter() - t0
print(json.dumps({
    "wall_s": wall, "cpu_s": time.process_time() - c0, "lines": data.lines,
    "requests": len(data.requests), "milestones": len(data.milestones),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def simulated_log(lines: int) -> Path:
    """A cached `mlobs simulate` log of about `lines` lines (5 per request)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"simulated-{lines}.jsonl"
    if not path.exists():
        requests = lines // 5
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlobs_cli",
                "simulate",
                "--requests",
                str(requests),
                "--rate",
                "200",
                "--seed",
                "1",
                "-o",
                str(path),
            ],
            check=True,
        )
    return path


def cold_latency(path: Path) -> dict[str, float]:
    """One `mlobs --no-cache latency --by-version` run in a fresh process: wall, CPU, peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "mlobs_cli", "--no-cache", "latency", "--by-version", str(path)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # CPU includes the worker the process waited for
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--log", type=Path, help="Read this log instead of a simulated one.")
    args = parser.parse_args()
    path = args.log or simulated_log(args.lines)
    size_mb = path.stat().st_size / 1e6
    print(f"file: {path.name}, {size_mb:,.0f} MB")
    for keep in ("all", "requests"):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), keep],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout))
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["peak_rss_mib"] for r in runs)
        lines = runs[0]["lines"]
        print(
            f"keep={keep:<9} lines={lines:,} requests={runs[0]['requests']:,} "
            f"milestones={runs[0]['milestones']:,}  median wall {wall:.2f} s "
            f"({lines / wall:,.0f} lines/s), cpu {cpu:.2f} s, peak RSS {rss:,.0f} MiB"
        )
    runs = [cold_latency(path) for _ in range(args.repeat)]
    print(
        f"mlobs --no-cache latency --by-version: median wall "
        f"{statistics.median(r['wall_s'] for r in runs):.2f} s, "
        f"cpu {statistics.median(r['cpu_s'] for r in runs):.2f} s, "
        f"peak RSS {max(r['peak_rss_mib'] for r in runs):,.0f} MiB (load average {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
