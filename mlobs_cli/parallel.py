"""Parallel reading: one large plain file parsed by this process and one forked worker.

The file is cut into byte ranges (at line starts) whose indices wait in a pipe; each process takes
the next index when it is free, so the two stay busy whatever else each has to do. The worker is
forked before the parent imports pandas: when only summaries are needed it stops at numpy columns
(`request_columns`) and never imports pandas, so it parses while the parent imports. It writes each
range's partial to an unnamed temporary file as soon as it is parsed and says where in a pipe, so it
never waits for the parent; the parent turns it into frames between its own ranges. See `engine`.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import tempfile
from typing import TYPE_CHECKING

from mlobs_cli.request_columns import ColumnBatches
from mlobs_cli.sources import Source, split_points

if TYPE_CHECKING:
    from pathlib import Path

    from mlobs_cli.config import Settings
    from mlobs_cli.engine import Need, Partial

MAX_RANGES = 255  # range indices travel as single bytes
_NOTE = struct.Struct("<IQQ")  # range index, offset and length of its pickle in the spool file


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
        with tempfile.TemporaryFile() as spool:  # unnamed: gone when closed, whatever happens
            pid, notes = _fork_worker(
                source, settings, need, ranges, tasks, spool.fileno(), frames=not columns_only(need)
            )
            try:
                done, complete = _parse_own(source, settings, need, ranges, tasks, notes, spool.fileno())
            except BaseException:
                _stop(pid)
                raise
            finally:
                os.close(notes)
    finally:
        os.close(tasks)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not complete or sorted(done) != list(range(len(ranges))):
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
    source: Source,
    settings: Settings,
    need: Need,
    ranges: list[tuple[int, int]],
    tasks: int,
    notes: int,
    spool: int,
) -> tuple[dict[int, Partial], bool]:
    """The parent's share: claim and parse ranges, taking in the worker's between them, then the rest.
    Returns the partials by range index, and whether the worker's notes ended cleanly."""
    from mlobs_cli.frame import FrameBuilder  # imports pandas: the worker is parsing meanwhile

    done: dict[int, Partial] = {}
    held = b""

    def take_in(block: bool) -> bool:
        """Read the worker's notes (all there are; with `block`, up to its end): False at its end."""
        nonlocal held
        os.set_blocking(notes, block)
        while True:
            try:
                got = os.read(notes, 1 << 16)
            except BlockingIOError:
                return True
            if not got:
                return False
            held += got
            while len(held) >= _NOTE.size:
                i, offset, size = _NOTE.unpack_from(held)
                held = held[_NOTE.size :]
                part = pickle.loads(os.pread(spool, size, offset))  # noqa: S301 - our worker's
                if isinstance(part.builder, ColumnBatches):
                    frames = FrameBuilder()
                    frames.add_columns(part.builder)
                    part.builder = frames
                done[i] = part

    while (i := _claim(tasks)) is not None:
        done[i] = _parse_range(source, settings, need, ranges, i, frames=True)
        take_in(block=False)
    take_in(block=True)
    return done, not held


def _fork_worker(
    source: Source,
    settings: Settings,
    need: Need,
    ranges: list[tuple[int, int]],
    tasks: int,
    spool: int,
    *,
    frames: bool,
) -> tuple[int, int]:
    """Fork the worker; returns (pid, read end of the pipe of its notes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # worker: parse ranges, spool each partial (a pickle read only by our parent), exit
        os.close(rfd)
        code = 1
        try:
            offset = 0
            while (i := _claim(tasks)) is not None:
                part = _parse_range(source, settings, need, ranges, i, frames=frames)
                payload = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
                written = 0
                while written < len(payload):
                    written += os.pwrite(spool, memoryview(payload)[written:], offset + written)
                os.write(wfd, _NOTE.pack(i, offset, len(payload)))  # under PIPE_BUF: one piece
                offset += len(payload)
            code = 0
        except BaseException:  # noqa: BLE001, S110 - the parent then reads the file itself
            pass
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


def _stop(pid: int) -> None:
    """End the worker (the parent was interrupted) and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
