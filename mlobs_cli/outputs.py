"""Report files written all or nothing: a temp file beside the target, renamed over it at the end.

`atomic_output(path)` is a context manager yielding a binary file. On success the temp file
replaces the target; on any failure (disk full, file too large, Ctrl-C) the temp file is removed and
no partial report is left. A target that exists and is not a regular file (`/dev/stdout`, `/dev/null`,
a FIFO, a terminal) is written in place, never replaced: renaming over a device would destroy it.
Failures become `InputError` naming the path (exit 2).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mlobs_cli.errors import InputError


def _fail(target: Path, exc: OSError) -> InputError:
    return InputError(f"cannot write {target}: {exc.strerror or exc}")


def _existing_kind(target: Path) -> int | None:
    """The st_mode of what `target` names (following symlinks), or None when it does not exist."""
    try:
        return os.stat(target).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _fail(target, exc) from None


@contextmanager
def atomic_output(path: Path | str, *, make_parents: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file whose content lands at `path` only if the block completes.

    `make_parents` creates missing folders first (report paths like `reports/junit.xml`).
    """
    target = Path(path)
    mode = _existing_kind(target)
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"cannot write {target}: it is a folder")
    if mode is not None and not stat.S_ISREG(mode):
        try:
            with open(target, "wb") as fh:  # a device or FIFO: write through, never replace it
                yield fh
                fh.flush()
        except OSError as exc:
            raise _fail(target, exc) from None
        return
    real = Path(os.path.realpath(target))  # through a symlink: replace the file, keep the link
    parent = real.parent
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InputError(f"cannot write {target}: {blocker} is not a folder")
    try:
        if make_parents:
            parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise _fail(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, real)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _fail(target, exc) from None
        raise
