"""Time `mlobs latency --by-version` against DuckDB on the same simulated log, as whole processes.

    python benchmarks/latency_vs_duckdb.py --lines 1000000 [--repeat 3] [--keep FILE]

The log comes from `mlobs simulate` (request summaries mixed with stage events, as the service writes
them). DuckDB (a bench-only dependency: `pip install .[bench]`) reads it with `read_ndjson` and
computes the same percentiles with `quantile_cont` grouped by version. Each tool runs as its own
process (interpreter start, imports, reading and parsing included); wall time is the median of
`--repeat` runs and peak memory is the child's max RSS from `wait4`. Prints a Markdown table and the
mlobs/DuckDB ratios; also checks that both tools agree on the request counts and p50/p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERCENTILES = [50, 90, 95, 99]

DUCKDB_SCRIPT = """
import json, sys, duckdb
qs = [q / 100 for q in {percentiles!r}]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")  # it would write to stdout on long queries
rows = con.sql(f'''
    SELECT CAST(model_version AS VARCHAR) AS model_version, count(*) AS requests,
           quantile_cont(latency_ms, {{qs}}) AS pct
    FROM read_ndjson(?, ignore_errors = true, maximum_object_size = 16777216)
    WHERE latency_ms IS NOT NULL
    GROUP BY 1 ORDER BY 1
''', params=[sys.argv[1]]).fetchall()
print(json.dumps([{{"model_version": v, "requests": n, "pct": list(p)}} for v, n, p in rows]))
"""


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise SystemExit(f"{cmd[:4]}... exited {proc.returncode}")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return wall, rss, out.decode()


def simulate(path: Path, lines: int, seed: int) -> None:
    """Write a simulated log of about `lines` lines with `mlobs simulate`."""
    # About 5 lines per request (4 stage events + 1 summary); adjust after a first small run if needed.
    requests = max(1, lines // 5)
    cmd = [
        sys.executable,
        "-m",
        "mlobs_cli",
        "simulate",
        "--requests",
        str(requests),
        "--seed",
        str(seed),
        "-o",
        str(path),
    ]
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="reuse/keep the simulated log at this path")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = args.keep or Path(tmp.name) / "sim.log"
    if not path.exists():
        simulate(path, args.lines, args.seed)
    with path.open("rb") as fh:
        n_lines = sum(1 for _ in fh)
    size_mb = path.stat().st_size / 1e6

    p_arg = ",".join(str(q) for q in PERCENTILES)
    mlobs_cmd = [
        sys.executable,
        "-m",
        "mlobs_cli",
        "latency",
        "--by-version",
        str(path),
        "-p",
        p_arg,
        "--format",
        "json",
    ]
    duck_cmd = [sys.executable, "-c", DUCKDB_SCRIPT.format(percentiles=PERCENTILES), str(path)]

    results: dict[str, tuple[list[float], list[int], str]] = {"mlobs": ([], [], ""), "duckdb": ([], [], "")}
    for _ in range(args.repeat):
        for name, cmd in (("mlobs", mlobs_cmd), ("duckdb", duck_cmd)):
            wall, rss, out = run_measured(cmd)
            walls, rsss, _ = results[name]
            walls.append(wall)
            rsss.append(rss)
            results[name] = (walls, rsss, out)

    mine = {r["model_version"]: r for r in json.loads(results["mlobs"][2])["rows"]}
    theirs = {r["model_version"]: r for r in json.loads(results["duckdb"][2])}
    agree = set(mine) == set(theirs) and all(
        mine[v]["requests"] == theirs[v]["requests"]
        and abs(mine[v]["p50_ms"] - theirs[v]["pct"][0]) <= 1e-9 * max(1.0, abs(theirs[v]["pct"][0]))
        and abs(mine[v]["p99_ms"] - theirs[v]["pct"][3]) <= 1e-9 * max(1.0, abs(theirs[v]["pct"][3]))
        for v in mine
    )

    m_wall, d_wall = statistics.median(results["mlobs"][0]), statistics.median(results["duckdb"][0])
    m_rss, d_rss = max(results["mlobs"][1]), max(results["duckdb"][1])
    print(
        f"input: {n_lines:,} lines, {size_mb:,.0f} MB, {sum(r['requests'] for r in mine.values()):,} "
        f"requests; median of {args.repeat} runs; {os.cpu_count()} CPUs\n"
    )
    print("| tool | wall time | peak memory |")
    print("| --- | ---: | ---: |")
    print(f"| `mlobs latency --by-version` | {m_wall:.2f} s | {m_rss / 2**20:,.0f} MiB |")
    print(f"| DuckDB `read_ndjson` + `quantile_cont` | {d_wall:.2f} s | {d_rss / 2**20:,.0f} MiB |")
    print(f"| ratio mlobs / DuckDB | {m_wall / d_wall:.2f}x | {m_rss / d_rss:.2f}x |")
    print(f"\nsame versions, request counts, p50 and p99: {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
