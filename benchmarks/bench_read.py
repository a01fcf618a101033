"""Benchmark: read a simulated 1,000,000-line log into frames; report lines/s and peak memory.

Run by hand (not a test): `python benchmarks/bench_read.py [--lines 1000000] [--repeat 3]`.
The log is made by `mlobs simulate` (5 lines per request: 4 stage events and a summary) and cached
in benchmarks/data/. Each repetition runs in a fresh process so peak RSS is that run's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = simulated_log(args.lines)
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


if __name__ == "__main__":
    main()
