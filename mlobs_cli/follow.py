"""Follow growing log files the way `tail -F` does, with stdlib polling (no platform dependency).

`Follower(paths).poll()` returns the complete lines that arrived since the last call as a
`FollowBatch` of `(source, line_no, raw_bytes)`; `follow()` loops over it with a sleep between
empty polls (idle CPU is a few syscalls per file per interval). It survives rotation by rename (the
old file is read to its end, then the new one from its start), copy-truncate, a file deleted and
recreated, and a file that does not exist yet. A partly written last line is held until its newline
arrives, so no line is lost, cut or read twice. `-` reads stdin through a thread.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlobs_cli.errors import InputError

if TYPE_CHECKING:
    from mlobs_cli.follow_stdin import StdinReader

Line = tuple[str, int, bytes]

CHUNK = 1 << 20  # bytes per read() call
POLL_BUDGET = 8 << 20  # bytes read per file per poll, so many busy files share the time fairly
MAX_PARTIAL = 16 << 20  # a "line" longer than this is emitted as is (the parser will skip it)
COUNT_LINES_UP_TO = 1 << 30  # up to this size, starting at the end still counts exact line numbers
SIGNATURE = 32  # bytes before the read position remembered to notice truncate-then-rewrite
SETTLE_S = 0.1  # a rotated-away file quiet this long is finished, and the new file opened


def _pread(fd: int, size: int, offset: int) -> bytes:
    """`os.pread`, or seek-and-read where the platform lacks it (Windows)."""
    if _HAS_PREAD:
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


_HAS_PREAD = hasattr(os, "pread")


class FollowBatch:
    """The lines of one poll, as blocks of consecutive lines per source, plus the sources that
    ended and notices worth telling the user.

    Iterating gives `(source, line_no, raw)` for every non-blank line; `blocks` gives
    `(source, first_line_no, [raw, ...])` runs (blank lines included) for `RecordParser.feed_block`.
    """

    __slots__ = ("blocks", "ended", "notices")

    def __init__(self) -> None:
        self.blocks: list[tuple[str, int, list[bytes]]] = []
        self.ended: list[str] = []  # sources whose current file is finished (call finish_source)
        self.notices: list[str] = []  # "app.log: file truncated; reading it from the start"

    def append(self, line: Line) -> None:
        source, line_no, raw = line
        self.blocks.append((source, line_no, [raw]))

    def __iter__(self) -> Iterator[Line]:
        for source, first, lines in self.blocks:
            for line_no, raw in enumerate(lines, first):
                if raw and not raw.isspace():
                    yield (source, line_no, raw)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(lines for _, _, lines in self.blocks)

    def __eq__(self, other: object) -> bool:
        try:
            return list(self) == list(other)  # type: ignore[call-overload]
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"FollowBatch({list(self)!r}, ended={self.ended!r})"


@dataclass
class _Open:
    """One open generation of a followed path."""

    fd: int
    dev: int
    ino: int
    pos: int
    line_no: int
    partial: bytes = b""
    signature: bytes = b""
    strip_nul: bool = False  # after copy-truncate a writer without O_APPEND leaves a hole of NULs
    last_data: float = 0.0  # time.monotonic() of the last bytes read


@dataclass
class _Path:
    path: str
    current: _Open | None = None
    retiring: _Open | None = None  # the rotated-away file, read to its end before switching
    missing_noticed: bool = False
    error_noticed: bool = False
    seen: bool = False  # the path existed at least once


def add_lines(buf: bytes, source: str, last_no: int, out: FollowBatch, strip_nul: bool) -> int:
    """Add the lines of `buf` (which ends with a newline) to `out` as one block; return how many."""
    parts = buf.split(b"\n")
    parts.pop()  # empty, after the final newline
    return add_parts(parts, source, last_no, out, strip_nul)


def add_parts(parts: list[bytes], source: str, last_no: int, out: FollowBatch, strip_nul: bool) -> int:
    """Add complete lines (without their newlines) to `out` as one block; return how many."""
    if strip_nul and parts and parts[0].startswith(b"\x00"):
        parts[0] = parts[0].lstrip(b"\x00")
    if parts:
        out.blocks.append((source, last_no + 1, parts))
    return len(parts)


class Follower:
    """Follow `paths` (files, or `-` for stdin). Call `poll()` repeatedly; `close()` at the end."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        from_start: bool = False,
        backlog: int = 0,
        settle: float = SETTLE_S,
    ) -> None:
        if not paths:
            raise InputError("nothing to follow", "name one or more files, or - for stdin")
        self._paths: list[_Path] = []
        self._settle = settle
        self._stdin: StdinReader | None = None
        self.wake = threading.Event()  # set when stdin data arrived, so follow() stops sleeping
        self.backlog_notices: list[str] = []
        self.more = False  # a source still had unread data after its budget: poll again at once
        for path in dict.fromkeys(paths):
            if path == "-":
                from mlobs_cli.follow_stdin import StdinReader

                self._stdin = StdinReader(self.wake)
                continue
            self._paths.append(self._start(path, from_start=from_start, backlog=backlog))
        if self._stdin is not None:
            self._stdin.start()

    # ---- opening -------------------------------------------------------------------------
    def _start(self, path: str, *, from_start: bool, backlog: int) -> _Path:
        entry = _Path(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.backlog_notices.append(f"{path}: does not exist yet; waiting for it")
            entry.missing_noticed = True
            return entry
        except OSError as exc:
            raise InputError(f"cannot follow {path}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is a directory", "name the log files inside it")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path} is not a regular file", "pipe it in with - instead")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"cannot follow {path}: {exc.strerror}") from None
        st = os.fstat(fd)
        entry.seen = True
        if from_start:
            pos, line_no = 0, 0
        else:
            pos = _start_of_last_lines(fd, st.st_size, backlog)
            line_no = _count_lines(fd, pos) if st.st_size <= COUNT_LINES_UP_TO else 0
        entry.current = _Open(fd, st.st_dev, st.st_ino, pos, line_no)
        return entry

    def _open_new(self, entry: _Path, batch: FollowBatch) -> None:
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            if not entry.error_noticed:
                batch.notices.append(f"{entry.path}: cannot open ({exc.strerror}); retrying")
                entry.error_noticed = True
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            if not entry.error_noticed:
                batch.notices.append(f"{entry.path}: not a regular file; waiting")
                entry.error_noticed = True
            return
        entry.error_noticed = False
        if entry.missing_noticed:
            batch.notices.append(f"{entry.path}: appeared; following it from its start")
        entry.seen = True
        entry.missing_noticed = False
        entry.current = _Open(fd, st.st_dev, st.st_ino, 0, 0)

    # ---- reading -------------------------------------------------------------------------
    def poll(self) -> FollowBatch:
        """Read what arrived since the last poll, on every followed source."""
        batch = FollowBatch()
        self.more = False
        for entry in self._paths:
            self._poll_path(entry, batch)
        if self._stdin is not None:
            self._stdin.drain(batch)
        return batch

    def _poll_path(self, entry: _Path, batch: FollowBatch) -> None:
        if entry.retiring is not None:
            old = entry.retiring
            self._read(entry.path, old, batch)
            if time.monotonic() - old.last_data >= self._settle:
                self._finish(entry.path, old, batch)
                entry.retiring = None
                self.more = True  # open and read the new file on the next poll, without sleeping
            return  # the new file waits until the old one is finished
        if entry.current is None:
            self._open_new(entry, batch)
            if entry.current is None:
                return
        cur = entry.current
        self._read(entry.path, cur, batch)
        try:
            st = os.stat(entry.path)
        except FileNotFoundError:
            st = None
        except OSError:
            return
        if st is not None and (st.st_ino, st.st_dev) != (cur.ino, cur.dev):
            # Rotated by rename, or deleted and recreated: finish the old file, then switch.
            batch.notices.append(f"{entry.path}: replaced; finishing the old file first")
            entry.retiring = cur
            entry.current = None
            return

    def _read(self, source: str, f: _Open, batch: FollowBatch) -> bool:
        """Read `f` from its position to EOF (within the budget); return whether bytes arrived."""
        try:
            size = os.fstat(f.fd).st_size
        except OSError:
            return False
        if size < f.pos or (size > f.pos and not self._signature_ok(f)):
            # Read the new content on the next poll, so this batch ends with the old content.
            self._truncated(source, f, batch)
            self.more = True
            return True
        if size == f.pos:
            return False
        got = 0
        chunks: list[bytes] = []
        want = min(POLL_BUDGET, size - f.pos)  # what fstat saw, in one read; then on to EOF
        while got < POLL_BUDGET:
            try:
                data = _pread(f.fd, want if not got else min(CHUNK, POLL_BUDGET - got), f.pos + got)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
            got += len(data)
        if not got:
            return False
        if got >= POLL_BUDGET:
            self.more = True
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        f.last_data = time.monotonic()
        f.pos += got
        f.signature = (f.signature + data[-SIGNATURE:])[-SIGNATURE:]
        if b"\n" in data:  # one split of the whole read: its last piece is the unfinished line
            parts = data.split(b"\n")
            if f.partial:  # the line held from the last read ends in this one
                parts[0] = f.partial + parts[0]
            f.partial = parts.pop()
            f.line_no += add_parts(parts, source, f.line_no, batch, f.strip_nul)
            f.strip_nul = False
        else:
            f.partial += data
        if len(f.partial) > MAX_PARTIAL:
            self._flush_partial(source, f, batch)
        return True

    def _signature_ok(self, f: _Open) -> bool:
        """The bytes before our position are still those we read (no truncate-and-rewrite)."""
        if not f.signature:
            return True
        n = len(f.signature)
        try:
            return _pread(f.fd, n, f.pos - n) == f.signature
        except OSError:
            return True

    def _truncated(self, source: str, f: _Open, batch: FollowBatch) -> None:
        batch.notices.append(f"{source}: file truncated; reading it from the start")
        self._flush_partial(source, f, batch)
        batch.ended.append(source)
        f.pos = 0
        f.line_no = 0
        f.signature = b""
        f.strip_nul = True

    @staticmethod
    def _flush_partial(source: str, f: _Open, batch: FollowBatch) -> None:
        if f.partial:
            f.line_no += 1
            batch.append((source, f.line_no, f.partial))
            f.partial = b""

    def _finish(self, source: str, f: _Open, batch: FollowBatch) -> None:
        """A rotated-away file ended: its unterminated last line (if any) is a line of its own."""
        self._flush_partial(source, f, batch)
        batch.ended.append(source)
        os.close(f.fd)

    @property
    def exhausted(self) -> bool:
        """Only stdin was followed and it reached its end: nothing more can arrive."""
        return not self._paths and self._stdin is not None and self._stdin.done

    def close(self) -> None:
        for entry in self._paths:
            for f in (entry.current, entry.retiring):
                if f is not None:
                    try:
                        os.close(f.fd)
                    except OSError:
                        pass
            entry.current = entry.retiring = None


def _start_of_last_lines(fd: int, size: int, n: int) -> int:
    """Offset where the last `n` complete lines begin (n=0: after the last complete line)."""
    pos = size
    need = n + 1  # the newline ending the last complete line, then n more before it
    block = 1 << 16
    while pos > 0:
        start = max(0, pos - block)
        data = _pread(fd, pos - start, start)
        idx = len(data)
        while True:
            idx = data.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            need -= 1
            if need == 0:
                return start + idx + 1
        pos = start
    return 0


def _count_lines(fd: int, end: int) -> int:
    count = 0
    pos = 0
    while pos < end:
        data = _pread(fd, min(CHUNK * 4, end - pos), pos)
        if not data:
            break
        count += data.count(b"\n")
        pos += len(data)
    return count


def follow(
    paths: Sequence[str],
    *,
    from_start: bool = False,
    backlog: int = 0,
    interval: float = 0.25,
    stop: Callable[[], bool] = lambda: False,
    follower: Follower | None = None,
) -> Iterator[FollowBatch]:
    """Yield a batch at least every `interval` seconds (empty when nothing arrived) until `stop()`.

    Ends by itself only when the sole source is stdin and it reached its end.
    """
    f = follower or Follower(paths, from_start=from_start, backlog=backlog)
    try:
        first = True
        while not stop():
            started = time.monotonic()
            batch = f.poll()
            if first:
                batch.notices[:0] = f.backlog_notices
                first = False
            yield batch
            if f.exhausted:
                return
            if f.more:
                continue  # a source had more than one poll's budget: read on at once
            # Sleep what is left of the interval after the consumer's work on this batch: a busy
            # stream is read again at once when its batch took a whole interval to handle.
            pause = interval - (time.monotonic() - started)
            if pause > 0:
                f.wake.wait(pause)
            f.wake.clear()
    finally:
        f.close()


__all__ = ["FollowBatch", "Follower", "follow", "Line"]
