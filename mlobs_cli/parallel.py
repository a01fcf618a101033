"""Parallel reading: one large plain file parsed by this process and one forked worker.

The file is cut into byte ranges (at line starts) whose indices wait in a pipe; each process takes
the next index when it is free, so the two stay busy whatever else each has to do. The worker is
forked before the parent imports pandas: when only summaries are needed it stops at numpy columns
(`request_columns`) and never imports pandas, so it parses while the parent imports. It sends each
range's partial as soon as it is parsed; a thread of the parent receives it at once (the worker never
waits), and the parent turns it into frames between its own ranges. See `engine` for partials.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import sys
import threading
from typing import TYPE_CHECKING

from mlobs_cli.request_columns import ColumnBatches
from mlobs_cli.sources import Source, split_points

if TYPE_CHECKING:
    from pathlib import Path

    from mlobs_cli.config import Settings
    from mlobs_cli.engine import Need, Partial

MAX_RANGES = 255  # range indices travel as single bytes
_HEADER = struct.Struct("<IQ")  # range index, pickle length
_F_SETPIPE_SZ = 1031  # Linux: a larger pipe lets the worker write a whole partial without waiting


def byte_ranges(path: Path, range_bytes: int) -> list[tuple[int, int]]:
    """`[start, end)` ranges of about `range_bytes` (at least two), each starting at a line start."""
    parts = max(2, min(MAX_RANGES, path.stat().st_size // max(1, range_bytes)))
    cuts = split_points(path, parts)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def parallel_partials(
    source: Source, settings: Settings, need: Need, ranges: list[tuple[int, int]]
) -> list[Partial] | None:
    """The partials of `ranges` of `source` (in order, line numbers shifted), parsed by two processes.

    None when the file must be read in one pass instead: the worker failed, or something spans a cut
    (a multi-line object, a split Docker line).
    """
    from mlobs_cli.engine import columns_only

    tasks, fill = os.pipe()
    os.write(fill, bytes(range(len(ranges))))
    os.close(fill)
    try:
        pid, results = _fork_worker(source, settings, need, ranges, tasks, frames=not columns_only(need))
        inbox = _Inbox(results)
        try:
            done = _parse_own(source, settings, need, ranges, tasks, inbox)
        except BaseException:
            _stop(pid)
            raise
        finally:
            inbox.thread.join()
    finally:
        os.close(tasks)
    _, status = os.waitpid(pid, 0)
    if status != 0 or inbox.failed or sorted(done) != list(range(len(ranges))):
        return None
    ordered = [done[i] for i in range(len(ranges))]
    if any(part.open_state for part in ordered[:-1]):
        return None
    offset = 0
    for part in ordered:
        part.shift(offset)
        offset += part.physical_lines
    return ordered


def _claim(tasks: int) -> int | None:
    """The next range index from the task pipe (one byte per range), None when it is empty."""
    got = os.read(tasks, 1)
    return got[0] if got else None


def _parse_range(
    source: Source, settings: Settings, need: Need, ranges: list[tuple[int, int]], i: int, *, frames: bool
) -> Partial:
    from mlobs_cli.engine import parse_partition

    start, end = ranges[i]
    return parse_partition(source, settings, need, start, end, last=i == len(ranges) - 1, frames=frames)


def _parse_own(
    source: Source, settings: Settings, need: Need, ranges: list[tuple[int, int]], tasks: int, inbox: _Inbox
) -> dict[int, Partial]:
    """The parent's share: claim and parse ranges, taking in the worker's between them, then the rest."""
    from mlobs_cli.frame import FrameBuilder  # imports pandas: the worker is parsing meanwhile

    done: dict[int, Partial] = {}
    finished = False

    def take_in(block: bool) -> None:
        nonlocal finished
        while not finished:
            try:
                item = inbox.messages.get(block=block)
            except queue.Empty:
                return
            if item is None:  # the worker has finished
                finished = True
                return
            i, part = item
            if isinstance(part.builder, ColumnBatches):
                frames = FrameBuilder()
                frames.add_columns(part.builder)
                part.builder = frames
            done[i] = part

    while (i := _claim(tasks)) is not None:
        done[i] = _parse_range(source, settings, need, ranges, i, frames=True)
        take_in(block=False)
    take_in(block=True)
    return done


def _fork_worker(
    source: Source, settings: Settings, need: Need, ranges: list[tuple[int, int]], tasks: int, *, frames: bool
) -> tuple[int, int]:
    """Fork the worker; returns (pid, read end of its result pipe)."""
    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(wfd, _F_SETPIPE_SZ, 1 << 20)
    except (ImportError, OSError):
        pass
    pid = os.fork()
    if pid == 0:  # worker: parse ranges, send each partial (a pickle read only by our parent), exit
        os.close(rfd)
        code = 1
        try:
            with os.fdopen(wfd, "wb") as out:
                while (i := _claim(tasks)) is not None:
                    part = _parse_range(source, settings, need, ranges, i, frames=frames)
                    payload = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
                    out.write(_HEADER.pack(i, len(payload)))
                    out.write(payload)
                    out.flush()
            code = 0
        except BaseException:  # noqa: BLE001, S110 - the parent then reads the file itself
            pass
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


class _Inbox:
    """Receives the worker's partials on a thread, so the worker never waits for the parent."""

    def __init__(self, fd: int) -> None:
        self.messages: queue.SimpleQueue[tuple[int, Partial] | None] = queue.SimpleQueue()
        self.failed = False
        self.thread = threading.Thread(target=self._receive, args=(fd,), daemon=True)
        self.thread.start()

    def _receive(self, fd: int) -> None:
        try:
            with os.fdopen(fd, "rb") as fh:
                while head := fh.read(_HEADER.size):
                    i, size = _HEADER.unpack(head)
                    payload = fh.read(size)
                    if len(payload) != size:
                        self.failed = True
                        break
                    self.messages.put((i, pickle.loads(payload)))  # noqa: S301 - our own worker's
        except Exception:  # noqa: BLE001 - a broken worker: the parent reads the file itself
            self.failed = True
        finally:
            self.messages.put(None)


def _stop(pid: int) -> None:
    """End the worker (the parent was interrupted) and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
