"""Cache: parsed partitions of log files kept as columns, so later queries do not parse JSON again.

One entry per (file path, parsing settings, mlobs code): an `index.json` naming the file's identity
(device, inode), size, mtime, a hash of its head and of the last bytes covered, and the segments: byte
ranges `[start, end)` ending at a newline, each stored as a `Partial` (frames in `colstore` files,
skip reports and field statistics as JSON; nothing is pickled). On use, an entry is:
- valid: same identity, size, mtime and hashes -> the segments are read back;
- grown: same identity and head, the covered bytes unchanged, the file longer -> only the new bytes
  are parsed (from the last offset), as a new segment;
- otherwise (rotated: new inode; truncated: shorter; rewritten: mtime or a hash differs) -> rebuilt.
Bytes after the last newline (a line still being written) are parsed on every use, never stored.
Stored in `$XDG_CACHE_HOME/mlobs` (default `~/.cache/mlobs`); `mlobs cache clear` removes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

import mlobs_cli
from mlobs_cli.cachedir import cache_root, is_enabled, set_enabled
from mlobs_cli.config import Settings
from mlobs_cli.engine import EVERYTHING, Need, Partial, parse_partition
from mlobs_cli.segments import SegmentWriter, read_segment
from mlobs_cli.sources import Source, split_points

FORMAT = 1  # also in cachedir.cache_root
__all__ = [
    "cache_root",
    "cached_partials",
    "clear",
    "complete_entry",
    "entries",
    "is_enabled",
    "set_enabled",
]
HASH_BYTES = 64 * 1024
# Data made from one state of the file (`snapshot.py`): removed whenever the index changes.
DERIVED_FOLDERS = ("explain",)
_CODE_FILES = (
    "records.py",
    "frame.py",
    "values.py",
    "schema.py",
    "otel.py",
    "scan.py",
    "colstore.py",
    "segments.py",
    "engine.py",
)


def code_fingerprint(files: tuple[str, ...] = _CODE_FILES, extra: bytes = b"") -> str:
    """SHA-256 of mlobs's version, `extra` and the source of `files` (paths in the package): what
    stored data was made by, so that data made by other code is never read."""
    h = hashlib.sha256(mlobs_cli.__version__.encode())
    h.update(extra)
    here = Path(mlobs_cli.__file__).parent
    for name in files:
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


def _entry_dir(path: Path, settings: Settings) -> Path:
    ovs = sorted((o.canon, o.key, o.unit or "") for o in settings.overrides.values())
    key = orjson.dumps([str(path.resolve()), ovs, settings.max_line_bytes, code_fingerprint()])
    return cache_root() / hashlib.sha256(key).hexdigest()[:32]


def _private_dir(entry: Path) -> None:
    """Create an entry folder; the cache's own folders are private (0700): they hold log content."""
    mlobs_dir = cache_root().parent
    mlobs_dir.parent.mkdir(parents=True, exist_ok=True)
    for folder in (mlobs_dir, cache_root(), entry):
        folder.mkdir(mode=0o700, exist_ok=True)


def _hash_range(path: Path, start: int, end: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(start)
        return hashlib.sha256(fh.read(max(0, end - start))).hexdigest()


def _last_newline_end(path: Path, size: int, start: int) -> int:
    """Offset just after the last newline in `[start, size)`, or `start` when there is none."""
    with open(path, "rb") as fh:
        pos = size
        while pos > start:
            step = min(1 << 16, pos - start)
            fh.seek(pos - step)
            chunk = fh.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
    return start


def _is_compressed(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(6)
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))


def _build_segment(
    source: Source, settings: Settings, entry: Path, start: int = 0, end: int | None = None
) -> dict[str, Any]:
    """Parse bytes `[start, end)` (None: a whole compressed file) in full into a new segment."""
    writer = SegmentWriter(entry)
    part = parse_partition(source, settings, EVERYTHING, start, end, last=False, sink=writer)
    return writer.finish(part)


# ---- entries --------------------------------------------------------------------------------
def _read_index(entry: Path) -> dict[str, Any] | None:
    try:
        doc = orjson.loads((entry / "index.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def _write_index(entry: Path, doc: dict[str, Any]) -> None:
    tmp = entry / f".index-{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, entry / "index.json")
    keep = set(s["name"] for s in doc["segments"])
    for child in entry.iterdir():  # segments of an older state of the file, data derived from it
        if child.is_dir() and (
            (child.name.startswith("seg-") and child.name not in keep) or child.name in DERIVED_FOLDERS
        ):
            shutil.rmtree(child, ignore_errors=True)


def _state_of(path: Path, index: dict[str, Any] | None, st: os.stat_result) -> str:
    """`valid`, `grown` or `stale` (see the module docstring)."""
    if index is None or index["dev"] != st.st_dev or index["ino"] != st.st_ino:
        return "stale"
    if st.st_size < index["size"] or _hash_range(path, 0, index["head_len"]) != index["head"]:
        return "stale"
    end = index["end"]
    if _hash_range(path, max(0, end - HASH_BYTES), end) != index["tail"]:
        return "stale"
    if st.st_size == index["size"]:
        return "valid" if st.st_mtime_ns == index["mtime_ns"] else "stale"
    if index["compressed"] or index.get("open"):
        return "stale"
    return "grown"


def _build_ranges(
    source: Source, settings: Settings, entry: Path, start: int, end: int
) -> list[dict[str, Any]]:
    """Segments for `[start, end)` of a plain file, the second half built by a forked worker when large."""
    from mlobs_cli.engine import PARALLEL_MIN_BYTES

    assert source.path is not None
    single = threading.active_count() == 1  # forking a threaded process can deadlock the child
    if single and end - start >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1 and hasattr(os, "fork"):
        cuts = [c for c in split_points(source.path, 2) if start < c < end]
        if cuts:
            pid, rfd = _fork_builder(source, settings, entry, cuts[0], end)
            first = _build_segment(source, settings, entry, start, cuts[0])
            with os.fdopen(rfd, "rb") as fh:
                payload = fh.read()
            _, status = os.waitpid(pid, 0)
            if status == 0 and payload and not first["open"]:
                return [first, orjson.loads(payload)]
            shutil.rmtree(entry / first["name"], ignore_errors=True)
    return [_build_segment(source, settings, entry, start, end)]


def _fork_builder(source: Source, settings: Settings, entry: Path, start: int, end: int) -> tuple[int, int]:
    """Build the segment of `[start, end)` in a forked child; it reports the segment as JSON."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            payload = orjson.dumps(_build_segment(source, settings, entry, start, end))
        except BaseException:  # noqa: BLE001 - the parent builds this range itself
            payload, code = b"", 1
        try:
            with os.fdopen(wfd, "wb") as out:
                out.write(payload)
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


def cached_partials(
    source: Source, settings: Settings, need: Need, *, build: bool, load: bool = True
) -> tuple[list[Partial], str] | None:
    """The partials of `source` through the cache, and what happened (`hit`, `appended`, `built`).

    None when the source cannot be cached (stdin, unreadable, unusual columns), or when it has no
    entry yet and `build` is false (a command that reads only part of the lines then parses cold).
    With `load` false the entry is only brought up to date (`mlobs ingest`): no partials come back.
    """
    if source.path is None or not is_enabled():
        return None
    path = source.path
    try:
        st = path.stat()
        if not path.is_file():
            return None
        entry = _entry_dir(path, settings)
        index = _read_index(entry)
        if index is None and not build:
            return None
        state = _state_of(path, index, st)
        return _use_entry(source, settings, need, entry, index, state, st, load)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _use_entry(
    source: Source,
    settings: Settings,
    need: Need,
    entry: Path,
    index: dict[str, Any] | None,
    state: str,
    st: os.stat_result,
    load: bool,
) -> tuple[list[Partial], str] | None:
    from mlobs_cli.colstore import UnsupportedColumn

    path = source.path
    assert path is not None
    compressed = _is_compressed(path)
    if state != "stale" and index is not None and index.get("open"):
        return None  # a multi-line object runs past the stored bytes: read this file cold
    outcome = "hit"
    if state != "valid":
        if state == "grown":
            assert index is not None
            start, segments, lines = index["end"], list(index["segments"]), index["lines"]
            outcome = "appended"
        else:
            start, segments, lines = 0, [], 0
            outcome = "built"
        end = st.st_size if compressed else _last_newline_end(path, st.st_size, start)
        _private_dir(entry)
        try:
            if compressed:
                new = [_build_segment(source, settings, entry)]
            else:
                new = _build_ranges(source, settings, entry, start, end) if end > start else []
        except UnsupportedColumn:
            shutil.rmtree(entry, ignore_errors=True)
            return None
        for seg in new:
            seg["offset"] = lines
            lines += seg["lines"]
        segments.extend(new)
        opened = bool(new and new[-1]["open"])
        head_len = min(st.st_size, HASH_BYTES)
        index = {
            "format": FORMAT,
            "path": str(path.resolve()),
            "dev": st.st_dev,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "head_len": head_len,
            "head": _hash_range(path, 0, head_len),
            "end": end,
            "tail": _hash_range(path, max(0, end - HASH_BYTES), end),
            "compressed": compressed,
            "open": opened,
            "lines": lines,
            "segments": segments,
            "written": time.time(),
        }
        _write_index(entry, index)
        if opened and load:
            return None
    assert index is not None
    if not load:
        return [], outcome
    parts = [
        read_segment(entry / s["name"], need, s.get("offset", 0), source.name) for s in index["segments"]
    ]
    # The bytes after the last newline: parsed on every use, never stored.
    tail_start = index["end"]
    if not compressed and st.st_size > tail_start:
        tail = parse_partition(source, settings, need, tail_start, st.st_size, last=True)
        tail.shift(index["lines"])
        parts.append(tail)
    return parts, outcome


def entry_of(source: Source, settings: Settings) -> dict[str, Any] | None:
    """The index of `source`'s cache entry, if it has one."""
    if source.path is None:
        return None
    return _read_index(_entry_dir(source.path, settings))


def complete_entry(source: Source, settings: Settings) -> tuple[Path, dict[str, Any]] | None:
    """The entry folder and index of `source` when its entry is valid and holds every byte of the
    file (no line still being written): data derived from the whole file may then be kept in it."""
    if source.path is None or not is_enabled():
        return None
    try:
        st = source.path.stat()
        entry = _entry_dir(source.path, settings)
        index = _read_index(entry)
        if index is None or index.get("open") or st.st_size != index["end"]:
            return None
        return (entry, index) if _state_of(source.path, index, st) == "valid" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def entries() -> list[dict[str, Any]]:
    """Every cache entry's index (for `mlobs cache info`), with its size on disk."""
    root = cache_root()
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for entry in sorted(root.iterdir()):
        index = _read_index(entry)
        if index is None:
            continue
        index["bytes_on_disk"] = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        out.append(index)
    return sorted(out, key=lambda e: e["path"])


def clear() -> int:
    """Remove every cache entry; returns how many there were."""
    root = cache_root()
    n = len(entries())
    if root.is_dir():
        shutil.rmtree(root, ignore_errors=True)
    return n
