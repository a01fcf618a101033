"""Sources: turn user arguments into readable byte streams and numbered lines.

Paths, folders (every log-like file inside), shell globs and `-` (stdin). gzip, bz2 and xz are detected
by their magic bytes, whatever the name. Rotated sets (`app.log`, `app.log.1`, `app.log.2.gz`) are read
oldest first. Lines come out as raw bytes without their newline; a line longer than the cap is never
held whole in memory: it comes out as `None` (the caller counts it as skipped).
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mlobs_cli.errors import InputError

STDIN_NAME = "-"
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
BLOCK_BYTES = 1 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
# Names a folder scan picks up: logs, JSON lines, numbered rotations and dated rotations.
_LOG_NAME = re.compile(
    r"\.(log|jsonl|ndjson|json|txt|out|err)(\.\d+)?(\.(gz|bz2|xz))?$"
    r"|\.log[.-]\d{4}-?\d{2}-?\d{2}(\.(gz|bz2|xz))?$"
    r"|\.\d+(\.(gz|bz2|xz))?$",
    re.IGNORECASE,
)
_ROTATION = re.compile(r"^(?P<base>.+?)\.(?P<n>\d+)(\.(gz|bz2|xz))?$")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    """One input: a file path, or stdin (`path is None`, name `-`)."""

    name: str
    path: Path | None = None

    @property
    def is_stdin(self) -> bool:
        return self.path is None


class TruncatedInputError(Exception):
    """A compressed stream ended early or is corrupt; what was read before it stays valid."""


def _rotation_key(path: Path) -> tuple[str, int, str]:
    """Sort key: by rotation base name, then oldest first (highest number first, live file last)."""
    name = path.name
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _ROTATION.match(name)
    if match:
        return (str(path.parent / match.group("base")), -int(match.group("n")), name)
    return (str(path.parent / name), 0, name)


def order_rotated(paths: Iterable[Path]) -> list[Path]:
    """Order files so that each rotated set reads oldest first (`.2.gz`, `.1`, then the live file)."""
    return sorted(set(paths), key=_rotation_key)


def _is_log_like(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if _LOG_NAME.search(path.name):
        return True
    if "." not in path.name:  # extension-less files, e.g. "current" in some log folders
        return True
    return _compression_of(path) is not None


def _folder_files(folder: Path, notes: list[str] | None = None) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            p = Path(root) / name
            try:
                if p.is_file():
                    if _is_log_like(p):
                        found.append(p)
                elif notes is not None and not name.startswith(".") and _LOG_NAME.search(name):
                    notes.append(f"{p}: not a regular file (a pipe, socket or device), skipped")
            except OSError:
                continue
    return found


_NOTES: list[str] = []


def take_notes() -> list[str]:
    """Notes from the last `expand_sources` calls (log-named folder entries that are not regular
    files: FIFOs, sockets), for the caller to show; the list starts empty again."""
    notes = list(_NOTES)
    _NOTES.clear()
    return notes


def expand_sources(specs: Iterable[str]) -> list[Source]:
    """Resolve command-line source arguments into an ordered list of `Source`s.

    Raises `InputError` naming the argument when it matches nothing or cannot be read. Folder
    entries that look like logs but are not regular files are left out and named in `take_notes()`.
    """
    notes = _NOTES
    out: list[Source] = []
    seen: set[str] = set()
    specs = list(specs)
    if not specs:
        raise InputError("no log sources given", "name files, folders, globs, or - for stdin")
    for spec in specs:
        if spec == STDIN_NAME:
            if STDIN_NAME not in seen:
                out.append(Source(STDIN_NAME))
                seen.add(STDIN_NAME)
            continue
        path = Path(spec)
        if _GLOB_CHARS.search(spec) and not path.exists():
            matches = [Path(p) for p in glob.glob(spec, recursive=True)]
            files: list[Path] = []
            for m in matches:
                files.extend(_folder_files(m, notes) if m.is_dir() else [m])
            if not files:
                raise InputError(f"{spec}: no file matches this pattern")
            paths = order_rotated(files)
        else:
            try:
                st = path.stat()
            except FileNotFoundError:
                raise InputError(f"{spec}: no such file or folder") from None
            except PermissionError:
                raise InputError(f"{spec}: permission denied") from None
            except OSError as exc:
                raise InputError(f"{spec}: {exc.strerror or exc}") from None
            if stat.S_ISDIR(st.st_mode):
                paths = order_rotated(_folder_files(path, notes))
                if not paths:
                    raise InputError(f"{spec}: folder holds no log files")
            else:
                paths = [path]
        for p in paths:
            key = str(p)
            if key not in seen:
                seen.add(key)
                out.append(Source(key, p))
    return out


def _compression_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return None
    return _compression_of_bytes(head)


def _compression_of_bytes(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


class _PeekStream:
    """Wrap a non-seekable stream whose first bytes were already read for sniffing."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n is None or n < 0:
                return head + self._rest.read()
            if len(head) >= n:
                self._head = head[n:]
                return head[:n]
            return head + self._rest.read(n - len(head))
        return self._rest.read(n)

    def close(self) -> None:
        self._rest.close()


def open_source(source: Source) -> BinaryIO:
    """Open a source for binary reading, decompressing transparently (detected by magic bytes)."""
    if source.is_stdin:
        raw = sys.stdin.buffer
        head = raw.read(6)
        stream: BinaryIO = _PeekStream(head, raw)  # type: ignore[assignment]
        kind = _compression_of_bytes(head)
    else:
        assert source.path is not None
        try:
            stream = open(source.path, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise InputError(f"{source.name}: no such file (was it removed?)") from None
        except PermissionError:
            raise InputError(f"{source.name}: permission denied") from None
        except IsADirectoryError:
            raise InputError(f"{source.name}: is a folder") from None
        except OSError as exc:
            raise InputError(f"{source.name}: {exc.strerror or exc}") from None
        head = stream.read(6)
        if stream.seekable():
            stream.seek(0)
        else:  # a FIFO or a character device: keep the sniffed bytes in front, as for stdin
            stream = _PeekStream(head, stream)  # type: ignore[assignment]
        kind = _compression_of_bytes(head)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.BZ2File(stream, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(stream, mode="rb")  # type: ignore[return-value]
    return stream


def _read_block(stream: BinaryIO, size: int) -> bytes:
    read = (
        getattr(stream, "read1", None)
        if isinstance(stream, (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile))
        else None
    )
    try:
        # read1 on decompressors hands out what is decoded so far, so a stream cut short loses
        # only its damaged tail.
        return read(size) if read is not None else stream.read(size)
    except (EOFError, zlib.error, OSError, lzma.LZMAError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (EOFError,)) and exc.errno:
            raise InputError(f"read error: {exc.strerror or exc}") from None
        raise TruncatedInputError(str(exc) or type(exc).__name__) from None


def iter_line_blocks(
    stream: BinaryIO,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[list[bytes | None]]:
    """Yield lists of lines (bytes without `\\n`; `None` for a line over the cap), block by block.

    The last line of the stream is yielded even without a newline. A corrupt or truncated compressed
    stream raises `TruncatedInputError` after every complete line before the damage was yielded.
    """
    for raw in iter_raw_blocks(stream, max_line_bytes=max_line_bytes, block_bytes=block_bytes):
        if raw is None:
            yield [None]
            continue
        lines: list[bytes | None] = raw.split(b"\n")
        if raw.endswith(b"\n"):
            lines.pop()  # the empty piece after the final newline
        if _has_long_line(lines, max_line_bytes):
            lines = [None if ln is not None and len(ln) > max_line_bytes else ln for ln in lines]
        yield lines


def iter_raw_blocks(
    stream: BinaryIO,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[bytes | None]:
    """Yield runs of whole lines as one bytes object each (ending in `\n`, except a last line
    without one), or `None` for a line over the cap, which is never held whole in memory.

    Same lines as `iter_line_blocks`, left unsplit so that callers can work on whole blocks.
    """
    pending = b""
    skipping = False
    while True:
        block = _read_block(stream, block_bytes)
        if not block:
            break
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            block = block[nl + 1 :]
            skipping = False
            yield None
        cut = block.rfind(b"\n") + 1
        rest = block[cut:] if cut < len(block) else b""
        if cut:  # whole lines end here: one copy at most (joining the held start of a line)
            whole = b"".join((pending, memoryview(block)[:cut])) if pending or rest else block
            pending = rest
        else:  # still inside one line
            whole = b""
            pending += rest
        if len(pending) > max_line_bytes:
            skipping = True
            pending = b""
        if whole:
            yield whole
    if skipping:
        yield None
    elif pending:
        yield pending


class RangeReader:
    """A file's bytes `[start, end)` as a readable stream (a partition of a large file)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(start)
        self._left = end - start

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._fh.close()


def split_points(path: Path, parts: int) -> list[int]:
    """Byte offsets cutting a plain file into `parts` ranges of about equal size, each at a line start."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            fh.seek(max(cuts[-1], size * i // parts))
            while True:
                chunk = fh.read(1 << 16)
                if not chunk:
                    return cuts + [size]
                nl = chunk.find(b"\n")
                if nl >= 0:
                    cuts.append(fh.tell() - len(chunk) + nl + 1)
                    break
    return cuts + [size]


def _has_long_line(lines: list[bytes | None], cap: int) -> bool:
    return any(ln is not None and len(ln) > cap for ln in lines)


def lines_at(source_name: str, line_numbers: Iterable[int]) -> dict[int, bytes]:
    """Re-read the given 1-based line numbers of a file source (for showing raw log lines).

    Stdin cannot be re-read: raises `InputError` for `-`.
    """
    wanted = sorted(set(int(n) for n in line_numbers))
    if source_name == STDIN_NAME:
        raise InputError("raw lines from stdin cannot be re-read", "save the input to a file first")
    found: dict[int, bytes] = {}
    if not wanted:
        return found
    stream = open_source(Source(source_name, Path(source_name)))
    try:
        n = 0
        targets = iter(wanted)
        target = next(targets)
        for block in iter_line_blocks(stream):
            for line in block:
                n += 1
                if n == target:
                    found[n] = line if line is not None else b"<line over the size cap>"
                    target = next(targets, -1)
                    if target < 0:
                        return found
    except TruncatedInputError:
        pass
    finally:
        stream.close()
    return found
