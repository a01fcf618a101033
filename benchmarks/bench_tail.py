"""Benchmark `mlobs tail`: CPU while a writer appends at a steady rate, and the highest rate it keeps up with.

    PYTHONPATH=. python benchmarks/bench_tail.py [--rate 10000] [--seconds 20] [--catchup-lines 1000000]
                                                [--sustain RATE ...] [--sustain-seconds 10]

1. steady: a writer process appends `--rate` request-summary lines/s (in 10 ms slices) for
   `--seconds`, while `mlobs tail FILE --format ndjson --refresh 1s --window 60s` follows it. The
   follower's CPU (user+system, from /proc/PID/stat) is measured over the writing period only (its
   start-up is excluded), and the run checks that every line was counted.
2. catch-up: `mlobs tail --from-start` on a file of `--catchup-lines` lines; lines / CPU seconds is
   the most it can process on one core.
3. sustain: for each `--sustain RATE`, a writer appends at RATE for `--sustain-seconds` (10); the
   rate is kept up with when the follower's backlog at the end of writing is under one second of
   input. Also printed: lines handled per CPU second of the follower (on a shared machine the
   follower may be starved of CPU: this figure says what it needs, the verdict what it got).
   Over 60 s the 60 s window is full, so each snapshot covers RATE x 60 requests: the steady
   state (the lines are made beforehand: ~0.3 GB of memory per million).
Linux only (/proc). Numbers depend on the machine; report them with its CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
VERSIONS = ("v2.0", "v2.1", "v3.0-canary")


def line(i: int, ts: float) -> bytes:
    version = VERSIONS[i % 7 % 3]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1e6) % 1_000_000:06d}Z"
    return (
        b'{"timestamp": "%s", "level": "info", "event": "prediction", "request_id": "req-%d", '
        b'"model_version": "%s", "user_id": "user_%d", "latency_ms": %.3f, "inference_ms": %.3f, '
        b'"status": %d}\n'
        % (stamp.encode(), i, version.encode(), i % 5000, 20 + (i * 37) % 180 + (i % 97) / 10,
           8 + (i * 13) % 40 / 3, 500 if i % 200 == 0 else 200)
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Tail:
    """`mlobs tail` in a subprocess; a reader thread keeps the latest NDJSON snapshot."""

    def __init__(self, path: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlobs_cli", "tail", str(path), "--format", "ndjson",
             "--refresh", "1s", "--window", "60s", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.last: dict = {}
        self.snapshots = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.last = json.loads(raw)
            self.snapshots += 1

    def wait_ready(self) -> None:
        while self.snapshots == 0:
            time.sleep(0.05)

    def stop(self) -> dict:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return self.last


def make_lines(rate: float, seconds: float) -> list[bytes]:
    """The lines a writer will append, made beforehand and stamped with their planned write time,
    so the writer itself costs little CPU and does not starve the follower on a small machine."""
    total = int(rate * seconds)
    base = time.time() + 0.5 + total * 3e-6
    return [line(i, base + i / rate) for i in range(total)]


def write_steady(path: Path, rate: float, lines: list[bytes]) -> int:
    """Append `lines` at `rate` lines/s, 10 ms at a time; return how many were written."""
    total = len(lines)
    n = 0
    t0 = time.monotonic()
    with open(path, "ab", buffering=0) as fh:
        while n < total:
            due = min(total, int((time.monotonic() - t0) * rate))
            if due > n:
                fh.write(b"".join(lines[n:due]))
                n = due
            time.sleep(0.01)
    return n


def steady(rate: float, seconds: float, tmp: Path) -> None:
    path = tmp / "steady.log"
    path.write_bytes(b"")
    lines = make_lines(rate, seconds)
    tail = Tail(path)
    tail.wait_ready()
    cpu0, t0 = cpu_seconds(tail.proc.pid), time.monotonic()
    written = write_steady(path, rate, lines)
    cpu1, t1 = cpu_seconds(tail.proc.pid), time.monotonic()
    time.sleep(2.5)
    final = tail.stop()
    share = (cpu1 - cpu0) / (t1 - t0)
    print(f"steady: {written:,} lines in {t1 - t0:.1f} s ({written / (t1 - t0):,.0f} lines/s): "
          f"follower CPU {share * 100:.1f}% of one core; counted {final.get('requests_total'):,} "
          f"of {written:,}")  # fmt: skip


def catchup(lines: int, tmp: Path) -> float:
    path = tmp / "catchup.log"
    now = time.time() - lines / 10_000
    with open(path, "wb") as fh:
        for start in range(0, lines, 50_000):
            fh.write(b"".join(line(i, now + i / 10_000) for i in range(start, min(lines, start + 50_000))))
    tail = Tail(path, "--from-start")
    while tail.last.get("lines", 0) < lines:
        time.sleep(0.05)
    cpu = cpu_seconds(tail.proc.pid)
    tail.stop()
    # start-up (imports) is included in `cpu`; measure it alone and take it out
    empty = tmp / "empty.log"
    empty.write_bytes(b"")
    idle = Tail(empty)
    idle.wait_ready()
    startup = cpu_seconds(idle.proc.pid)
    idle.stop()
    rate = lines / max(1e-9, cpu - startup)
    print(f"catch-up: {lines:,} lines in {cpu - startup:.2f} CPU s (start-up {startup:.2f} s excluded): "
          f"{rate:,.0f} lines per CPU second")  # fmt: skip
    return rate


def sustain(rate: float, tmp: Path, seconds: float = 10.0) -> None:
    path = tmp / f"sustain-{int(rate)}.log"
    path.write_bytes(b"")
    lines = make_lines(rate, seconds)
    tail = Tail(path)
    tail.wait_ready()
    cpu0, t0 = cpu_seconds(tail.proc.pid), time.monotonic()
    written = write_steady(path, rate, lines)
    cpu1, t1 = cpu_seconds(tail.proc.pid), time.monotonic()
    time.sleep(1.1)  # one refresh later
    seen = tail.last.get("lines", 0)
    cpu2 = cpu_seconds(tail.proc.pid)
    backlog = written - seen
    final = tail.stop()
    kept = backlog < written / (t1 - t0)
    # Lines handled per CPU second: what the follower could keep up with on a core of its own,
    # whatever else the machine runs (a busy machine starves it of CPU, not of speed per line).
    per_cpu = seen / max(1e-9, cpu2 - cpu0)
    print(f"sustain {rate:,.0f}/s for {seconds:g} s: wrote {written / (t1 - t0):,.0f} lines/s, follower CPU "
          f"{(cpu1 - cpu0) / (t1 - t0) * 100:.0f}%, backlog 1 s after the writer stopped "
          f"{max(0, backlog):,} lines -> {'kept up' if kept else 'fell behind'} "
          f"(final count {final.get('lines', 0):,}); {per_cpu:,.0f} lines per CPU second")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--catchup-lines", type=int, default=1_000_000)
    ap.add_argument("--sustain", type=float, nargs="*", default=[])
    ap.add_argument("--sustain-seconds", type=float, default=10.0)
    ap.add_argument("--skip-steady", action="store_true")
    args = ap.parse_args()
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(f"machine: {cpu}, {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_steady:
            steady(args.rate, args.seconds, tmp)
        if args.catchup_lines:
            catchup(args.catchup_lines, tmp)
        for rate in args.sustain:
            sustain(rate, tmp, args.sustain_seconds)


if __name__ == "__main__":
    main()
