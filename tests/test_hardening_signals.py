"""Signals, as a user sends them: Ctrl-C (SIGINT) mid-read exits 130 with one line and no traceback,
and a reader that goes away (`| head -1`, SIGPIPE/EPIPE) ends the command quietly.

Each command runs as a real subprocess reading stdin from a pipe this test holds open: once a
megabyte has gone into the pipe the command is provably inside its read loop, so the interrupt lands
there without any sleep or timing assumption.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs" / "predict-service.jsonl"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("MLOBS_DEBUG", None)
    return env


def _mlobs(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlobs_cli", *args],
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _registered_commands() -> list[str]:
    from mlobs_cli.cli import app

    return sorted(c.name for c in app.registered_commands if c.name)


# Arguments after the source (`-`, stdin) for each command that reads logs.
READERS = {
    "schema": [],
    "latency": [],
    "explain": ["req-anything"],
    "slow": [],
    "check": ["-a", "p99 < 1s"],
    "spikes": [],
    "forecast": [],
    "tail": [],
}


def _argv(name: str) -> list[str]:
    extra = READERS[name]
    if name == "explain":
        return [name, extra[0], "-"]
    return [name, "-", *extra]


READING = [n for n in READERS if n in _registered_commands()]


@pytest.fixture(scope="module")
def interrupted() -> dict[str, tuple[int, str]]:
    """Every log-reading command started at once (they start in parallel), fed 1 MB, then SIGINT."""
    procs = {name: _mlobs(*_argv(name), stdin=subprocess.PIPE) for name in READING}
    chunk = SAMPLE.read_bytes()[: 1 << 20]
    results = {}
    for _name, proc in procs.items():
        assert proc.stdin is not None
        proc.stdin.write(chunk)  # returns once the command has read most of it: it is reading now
        proc.stdin.flush()
        proc.send_signal(signal.SIGINT)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=60)
        results[name] = (proc.returncode, err.decode("utf-8", "replace"))
    return results


@pytest.mark.parametrize("name", READING)
def test_ctrl_c_while_reading_exits_130_without_traceback(name: str, interrupted) -> None:
    code, text = interrupted[name]
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert text.strip().splitlines()[-1] == "mlobs: interrupted"


def test_sigpipe_ndjson_head_1_exits_quietly(tmp_path: Path) -> None:
    # ~2,400 one-second buckets: far more output than a pipe buffer holds.
    proc = _mlobs("latency", str(SAMPLE), "--every", "1s", "--format", "ndjson")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    proc.wait(timeout=60)
    assert first.startswith(b"{")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err
    assert err == ""


def test_sigpipe_through_a_real_shell_pipe() -> None:
    cmd = f"{sys.executable} -m mlobs_cli simulate --requests 20000 --seed 1 | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], env=_env(), cwd=ROOT, capture_output=True, timeout=120
    )
    assert proc.stdout.count(b"\n") == 1
    assert proc.stderr == b""
    assert proc.returncode == 0


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_sigpipe_in_other_output_formats(fmt: str) -> None:
    proc = _mlobs("latency", str(SAMPLE), "--every", "5s", "--format", fmt)
    assert proc.stdout is not None
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    assert err == "", err


def test_ctrl_c_while_simulate_writes_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    proc = _mlobs("simulate", "--requests", "5000000", "--seed", "1", "-o", str(out))
    # wait (on a condition, not a clock) until the temp file beside the target has data in it
    for _ in range(600):
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 0]
        if temps or proc.poll() is not None:
            break
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    assert temps, "simulate never started writing"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    text = err.decode("utf-8", "replace")
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temp file


def test_sigterm_while_simulate_writes_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    proc = _mlobs("simulate", "--requests", "5000000", "--seed", "1", "-o", str(out))
    temps: list[Path] = []
    for _ in range(600):
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 0]
        if temps or proc.poll() is not None:
            break
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    assert temps, "simulate never started writing"
    proc.send_signal(signal.SIGTERM)  # what a CI runner sends when a job times out
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.decode() == "mlobs: terminated\n"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_reaches_the_parallel_reader_and_leaves_no_worker(tmp_path: Path) -> None:
    # a file over the parallel threshold: the reader forks a worker for part of it
    from mlobs_cli.engine import PARALLEL_MIN_BYTES

    log = tmp_path / "big.jsonl"
    requests = PARALLEL_MIN_BYTES // 1100 + 20_000  # ~1.1 kB of log per simulated request
    sim = ["simulate", "--requests", str(requests), "--seed", "2", "-o", str(log)]
    made = subprocess.run(
        [sys.executable, "-m", "mlobs_cli", *sim], env=_env(), cwd=ROOT, capture_output=True, timeout=120
    )
    assert made.returncode == 0 and log.stat().st_size > PARALLEL_MIN_BYTES
    env = _env() | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlobs_cli", "latency", str(log)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    workers: list[str] = []
    for _ in range(1200):  # until the worker exists (or the run ended first on a fast machine)
        workers = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        if workers or proc.poll() is not None:
            break
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is not None:
        pytest.skip("the run ended before its worker could be interrupted")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    text = err.decode("utf-8", "replace")
    assert proc.returncode == 130, text
    assert text.strip().splitlines()[-1] == "mlobs: interrupted" and "Traceback" not in text
    for pid in workers:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            continue
        assert state == "Z" or not state, f"worker {pid} still running"
