"""Benchmark: peak memory of `mlobs latency` against the raw size of the log it reads.

Run by hand (not a test): `python benchmarks/bench_memory.py [--requests 200000 1000000]`.
For each size, `mlobs simulate --requests N` writes a log of 5 lines per request (4 stage events
and a summary; 1,000,000 requests = 5,000,000 lines) to benchmarks/data/ (cached), then
`mlobs latency LOG --format json` runs in a fresh process, and the peak resident memory of that
process alone is read with `os.wait4` (its `ru_maxrss`), with the wall time. The claim checked:
peak memory stays far below the raw size and grows with the number of requests kept, not with the
bytes read (the reader streams 1 MiB blocks; over-long lines are never held whole).
Each log is also read with `mlobs latency --sketch` (approximate percentiles, rows dropped chunk by
chunk), whose peak should not grow with the number of requests. `--logs A B` measures existing logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"


_CACHE = tempfile.mkdtemp(prefix="mlobs-bench-cache-")  # a cold cache: no earlier run helps


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=_CACHE)


def simulated_log(requests: int) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"memory-{requests}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run(
            [sys.executable, "-m", "mlobs_cli", "simulate", "--requests", str(requests), "--seed", "7",
             "-o", str(tmp)],
            check=True, env=_env(),
        )  # fmt: skip
        tmp.replace(path)
    return path


def measure(args: list[str]) -> dict[str, float]:
    """Run `mlobs ARGS` in a fresh process: exit code, wall seconds and its own peak RSS (MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlobs_cli", *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"mlobs {' '.join(args)} failed: {err.decode(errors='replace')}")
    rows = json.loads(out)["rows"]
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "requests": sum(r["requests"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--logs", type=Path, nargs="+", help="measure these logs instead of simulating")
    args = parser.parse_args()
    base = measure(["latency", str(ROOT / "sample_logs" / "predict-service.jsonl"), "--format", "json"])
    print(f"baseline (1,500 requests, 1.7 MB): peak {base['peak_rss_mib']:,.0f} MiB, {base['wall_s']} s")
    results = []
    for log in args.logs or [simulated_log(n) for n in args.requests]:
        size = log.stat().st_size
        with open(log, "rb") as fh:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
        for mode in ([], ["--sketch"]):
            r = measure(["latency", str(log), "--format", "json", *mode])
            r.update({"log": log.name, "mode": "sketch" if mode else "exact"})
            r.update({"lines": lines, "raw_mib": round(size / 2**20, 1)})
            results.append(r)
            print(
                f"{r['mode']:>6} {lines:>11,} lines  {r['raw_mib']:>9,.1f} MiB raw  ->  peak "
                f"{r['peak_rss_mib']:>7,.1f} MiB ({r['peak_rss_mib'] / r['raw_mib']:.2f} x raw), "
                f"{r['wall_s']:>6.1f} s, {r['requests']:,} requests"
            )
    print(json.dumps({"baseline": base, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
