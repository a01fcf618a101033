"""Files that misbehave: permission denied, a folder of thousands of files, a file removed or cut
short while being read, FIFOs, symlink loops, and report paths on a full disk. Each gives a clear
message naming the path and the right exit code, never a hang, and never a partial report file.
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlobs_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def line(i: int, latency: float = 10.0) -> str:
    return json.dumps(
        {"ts": f"2026-11-26T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "event": "prediction",
         "request_id": f"r{i}", "model_version": "v1", "latency_ms": latency + i % 50, "status": 200}
    )  # fmt: skip


def write_log(path: Path, n: int, first: int = 0) -> Path:
    path.write_text("".join(line(first + i) + "\n" for i in range(n)))
    return path


def requests_of(result) -> int:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["rows"][0]["requests"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


# ---- permission denied -------------------------------------------------------------------------


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch):
    """Paths whose open() fails with EACCES, as for a non-root user (tests run as root)."""
    denied: set[str] = set()
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    return lambda p: denied.add(os.path.abspath(p))


def test_permission_denied_names_the_file_and_exits_2(tmp_path: Path, unreadable) -> None:
    log = write_log(tmp_path / "secret.log", 5)
    unreadable(log)
    result = _run("latency", log)
    assert result.exit_code == 2
    assert result.stderr == f"mlobs: error: {log}: permission denied\n"


def test_permission_denied_inside_a_folder_names_the_file(tmp_path: Path, unreadable) -> None:
    write_log(tmp_path / "a.log", 5)
    bad = write_log(tmp_path / "b.log", 5)
    unreadable(bad)
    result = _run("latency", tmp_path)
    assert result.exit_code == 2
    assert f"{bad}: permission denied" in result.stderr and "Traceback" not in result.stderr


def test_unreadable_settings_file(tmp_path: Path, unreadable) -> None:
    log = write_log(tmp_path / "a.log", 5)
    cfg = tmp_path / "mlobs.toml"
    cfg.write_text("")
    unreadable(cfg)
    result = _run("latency", log, "--config", cfg)
    assert result.exit_code == 2 and f"{cfg}: permission denied" in result.stderr


# ---- a folder of thousands of files ------------------------------------------------------------


def test_a_folder_of_3000_files_is_read_with_few_open_files(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3000):
        (folder / f"part-{i:05d}.log").write_text(line(i) + "\n")
    (folder / "README.md").write_text("not a log\n")  # not log-like: not read

    def limit() -> None:  # 64 descriptors: files must be closed one by one
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    p = subprocess.run(
        [sys.executable, "-m", "mlobs_cli", "latency", str(folder), "--format", "json"],
        env=_env(), capture_output=True, timeout=120, preexec_fn=limit,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["rows"][0]["requests"] == 3000
    assert p.stderr == b""


# ---- a file removed or cut short while it is read ----------------------------------------------


class _Racing:
    """A file object that runs `action` right after its first read: the race, made deterministic."""

    def __init__(self, fh, action) -> None:
        self._fh, self._action = fh, action

    def _after_first(self, value):
        if self._action is not None:
            action, self._action = self._action, None
            action()
        return value

    def read(self, *a):
        return self._after_first(self._fh.read(*a))

    def read1(self, *a):
        return self._after_first(self._fh.read1(*a))

    def readinto(self, b):
        return self._after_first(self._fh.readinto(b))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __iter__(self):
        return iter(self._fh)


@pytest.fixture
def race(monkeypatch: pytest.MonkeyPatch):
    real_open = builtins.open
    plans: dict[str, object] = {}

    def racing_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        key = os.path.abspath(file) if isinstance(file, (str, os.PathLike)) else None
        if key in plans and "r" in mode:
            return _Racing(fh, plans.pop(key))
        return fh

    monkeypatch.setattr(builtins, "open", racing_open)
    return lambda path, action: plans.__setitem__(os.path.abspath(path), action)


def test_a_file_removed_while_read_is_read_to_its_end(tmp_path: Path, race) -> None:
    log = write_log(tmp_path / "big.log", 40_000)  # several read blocks
    race(log, lambda: log.unlink())
    assert requests_of(_run("latency", log, "--format", "json")) == 40_000
    assert not log.exists()


def test_a_file_cut_short_while_read_keeps_what_was_read(tmp_path: Path, race) -> None:
    log = write_log(tmp_path / "big.log", 40_000)
    race(log, lambda: os.truncate(log, 0))
    result = _run("latency", log, "--format", "json")
    got = requests_of(result)
    assert 0 < got < 40_000
    assert "Traceback" not in result.stderr


def test_a_file_removed_before_it_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlobs_cli import sources

    a = write_log(tmp_path / "a.log", 5)
    gone = write_log(tmp_path / "b.log", 5)
    real = sources.expand_sources

    def expand_then_rotate(specs):
        found = real(specs)
        gone.unlink()  # logrotate deletes it between the folder listing and the open
        return found

    monkeypatch.setattr(sources, "expand_sources", expand_then_rotate)
    monkeypatch.setattr("mlobs_cli.frame.expand_sources", expand_then_rotate, raising=False)
    result = _run("latency", a, gone)
    assert result.exit_code == 2
    assert f"{gone}: no such file (was it removed?)" in result.stderr


# ---- FIFOs --------------------------------------------------------------------------------------


def test_a_fifo_inside_a_folder_is_skipped_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_log(folder / "a.log", 10)
    os.mkfifo(folder / "pipe.log")  # nobody ever writes to it: opening it would block forever
    p = subprocess.run(
        [sys.executable, "-m", "mlobs_cli", "latency", str(folder), "--format", "json"],
        env=_env(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["rows"][0]["requests"] == 10


def test_a_fifo_inside_a_folder_is_named_in_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_log(folder / "a.log", 10)
    os.mkfifo(folder / "pipe.log")
    result = _run("latency", folder)
    assert "pipe.log" in result.stderr


def test_a_fifo_named_on_the_command_line_is_streamed(tmp_path: Path) -> None:
    fifo = tmp_path / "live.log"
    os.mkfifo(fifo)
    body = "".join(line(i) + "\n" for i in range(100)).encode()

    def writer() -> None:
        with open(fifo, "wb") as fh:  # blocks until mlobs opens the other end
            fh.write(body)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    result = _run("latency", fifo, "--format", "json")
    t.join(timeout=10)
    assert requests_of(result) == 100


# ---- symlink loops ------------------------------------------------------------------------------


def test_a_symlink_loop_named_on_the_command_line(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.symlink_to(b)
    b.symlink_to(a)
    result = _run("latency", a)
    assert result.exit_code == 2
    assert result.stderr == f"mlobs: error: {a}: Too many levels of symbolic links\n"


def test_symlink_loops_inside_a_folder_are_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_log(folder / "a.log", 10)
    (folder / "x.log").symlink_to(folder / "y.log")
    (folder / "y.log").symlink_to(folder / "x.log")
    (folder / "again").symlink_to(folder)  # a folder that contains itself
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)
    p = subprocess.run(
        [sys.executable, "-m", "mlobs_cli", "latency", str(folder), "--format", "json"],
        env=_env(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["rows"][0]["requests"] == 10


# ---- report paths on a full disk ----------------------------------------------------------------


@pytest.fixture
def log10(tmp_path: Path) -> Path:
    return write_log(tmp_path / "a.log", 10)


def test_junit_on_dev_full(log10: Path) -> None:
    result = _run("check", log10, "-a", "p99 < 10s", "--junit", "/dev/full")
    assert result.exit_code == 2
    assert "mlobs: error: cannot write /dev/full: No space left on device" in result.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # written through, never replaced


def test_junit_under_dev_full(log10: Path) -> None:
    result = _run("check", log10, "-a", "p99 < 10s", "--junit", "/dev/full/x.xml")
    assert result.exit_code == 2
    assert "mlobs: error: cannot write /dev/full/x.xml:" in result.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_junit_to_a_device_never_replaces_the_device(log10: Path) -> None:
    # as root, renaming a temp file over /dev/null would have replaced the device with a file
    result = _run("check", log10, "-a", "p99 < 10s", "--junit", "/dev/null")
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _file_size_limited() -> None:
    """A full disk, for real: writes past 2 KiB fail with EFBIG (SIGXFSZ ignored)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


@pytest.mark.parametrize("command", ["junit", "simulate"])
def test_a_report_that_does_not_fit_leaves_no_partial_file(command: str, tmp_path: Path, log10: Path) -> None:
    out = tmp_path / "reports" / ("junit.xml" if command == "junit" else "sim.jsonl")
    out.parent.mkdir()
    out.write_text("the previous report\n")
    rules = [a for i in range(40) for a in ("-a", f"p{50 + i}.5 < {i + 1}0s")]  # a report > 2 KiB
    args = (
        ["check", str(log10), *rules, "--junit", str(out), "--format", "json"]
        if command == "junit"
        else ["simulate", "--requests", "200", "-o", str(out)]
    )
    p = subprocess.run(
        [sys.executable, "-m", "mlobs_cli", *args],
        env=_env(), capture_output=True, timeout=60, preexec_fn=_file_size_limited,
    )  # fmt: skip
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert f"mlobs: error: cannot write {out}: File too large" in err
    assert "Traceback" not in err
    assert out.read_text() == "the previous report\n"  # all or nothing: the old one is intact
    assert sorted(x.name for x in out.parent.iterdir()) == [out.name]  # no temp file left


def test_stdout_on_a_full_disk_is_one_clear_error(log10: Path) -> None:
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            [sys.executable, "-m", "mlobs_cli", "latency", str(log10)],
            env=_env(), stdout=full, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.decode() == "mlobs: error: cannot write the output: No space left on device\n"


def test_a_report_through_a_symlink_replaces_the_file_and_keeps_the_link(tmp_path: Path, log10: Path) -> None:
    real = tmp_path / "reports" / "junit.xml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.xml"
    link.symlink_to(real)
    result = _run("check", log10, "-a", "p99 < 10s", "--junit", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text().startswith("<?xml")


def test_a_report_path_that_is_a_folder(tmp_path: Path, log10: Path) -> None:
    result = _run("check", log10, "-a", "p99 < 10s", "--junit", tmp_path)
    assert result.exit_code == 2
    assert f"mlobs: error: cannot write {tmp_path}: it is a folder" in result.stderr


def test_a_report_path_naming_an_input_log_is_refused(tmp_path: Path, log10: Path) -> None:
    before = log10.read_bytes()
    alias = tmp_path / "alias.log"
    alias.symlink_to(log10)
    for target in (log10, alias):
        result = _run("check", log10, "-a", "p99 < 10s", "--junit", target)
        assert result.exit_code == 2
        assert f"--junit {target} is one of the logs being read" in result.stderr
    assert log10.read_bytes() == before
