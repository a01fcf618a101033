"""Stdin for `follow`: read in a daemon thread so the follow loop never blocks on a pipe.

`StdinReader.drain(batch)` adds the complete lines that arrived to a `FollowBatch`; at end of input
the unterminated last line (if any) is a line of its own and `-` is reported as ended.
"""

from __future__ import annotations

import errno
import os
import sys
import threading

from mlobs_cli.follow import CHUNK, FollowBatch, add_lines


class StdinReader(threading.Thread):
    """Reads stdin in a daemon thread so the follow loop never blocks on it."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__(name="mlobs-stdin", daemon=True)
        self._stream = sys.stdin
        self._wake = wake
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._eof = False
        self.done = False  # EOF seen and everything handed out
        self._partial = b""
        self._line_no = 0

    def run(self) -> None:
        stream = self._stream
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            fd = None  # a test runner's in-memory stdin
        while True:
            try:
                data = os.read(fd, CHUNK) if fd is not None else stream.buffer.read1(CHUNK)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                data = b""
            except (AttributeError, ValueError):
                data = b""
            with self._lock:
                if data:
                    self._chunks.append(data)
                else:
                    self._eof = True
            self._wake.set()
            if not data:
                return

    def drain(self, batch: FollowBatch) -> None:
        with self._lock:
            chunks, self._chunks = self._chunks, []
            eof = self._eof
        if self.done:
            return
        buf = self._partial + b"".join(chunks)
        cut = buf.rfind(b"\n") + 1
        if cut:
            self._line_no += add_lines(buf[:cut], "-", self._line_no, batch, False)
        self._partial = buf[cut:]
        if eof:
            if self._partial:
                batch.append(("-", self._line_no + 1, self._partial))
            self._partial = b""
            batch.ended.append("-")
            self.done = True
