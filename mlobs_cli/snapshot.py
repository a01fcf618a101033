"""Explain snapshot: one cached file's tidied frames and every model version's context, kept in the
file's cache entry, so that `mlobs explain` reads only the rows of the request it explains.

A snapshot is made from the very frames a full read gives (after `tidy_dataset`), by `ingest` or by
the first `explain` of a file, and is tied to the entry's state (size, mtime, hashes, segments) and to
the code that computes it: when either changes it is ignored (and made again). Only a file whose
entry holds every byte has one (a line still being written would be missing from it). Nothing is
pickled: frames are `colstore` files, the rest JSON and `.npy`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlobs_cli.segments import renamed_source

if TYPE_CHECKING:
    import pandas as pd

    from mlobs_cli.analysis.duplicates import DuplicateReport
    from mlobs_cli.analysis.waterfall import VersionContext
    from mlobs_cli.config import Settings
    from mlobs_cli.frame import Dataset
    from mlobs_cli.records import SkipReport
    from mlobs_cli.sources import Source

FOLDER = "explain"
FORMAT = 1
KINDS = ("requests", "milestones", "spans")
ID_COLUMNS = ("request_id", "trace_id")
# The code whose results a snapshot stores (besides the frames' own, in the entry's fingerprint).
_CODE_FILES = (
    "snapshot.py",
    "analysis/waterfall.py",
    "analysis/timeline.py",
    "analysis/lookup.py",
    "analysis/duplicates.py",
    "analysis/critical_path.py",
    "cli/hygiene.py",
)


def _stamp(index: dict[str, Any]) -> str:
    """What a snapshot is valid for: the entry's state and the code that made it."""
    from mlobs_cli.cache import code_fingerprint

    state = [index[k] for k in ("size", "mtime_ns", "end", "head", "tail", "lines")]
    made_from = orjson.dumps([FORMAT, state, [s["name"] for s in index["segments"]]])
    return code_fingerprint(_CODE_FILES, made_from)


def target_of(specs: list[str], settings: Settings) -> tuple[Path, dict[str, Any], str] | None:
    """The cache entry a snapshot of `specs` belongs in: one plain source whose entry is complete;
    with the source's name (its path as given)."""
    from mlobs_cli.cache import complete_entry
    from mlobs_cli.sources import expand_sources, take_notes

    if len(specs) != 1 or specs[0] == "-":
        return None
    take_notes()
    try:
        sources = expand_sources(specs)
    finally:
        notes = take_notes()
    if len(sources) != 1 or notes:
        return None
    found = complete_entry(sources[0], settings)
    return (*found, sources[0].name) if found is not None else None


class SnapshotError(Exception):
    """A snapshot could not be read (removed meanwhile by a newer one, damaged): read the file."""


@dataclass
class Snapshot:
    """A stored snapshot: read its rows by id, its versions' contexts and its input reports."""

    folder: Path
    doc: dict[str, Any]
    name: str  # the file's name in this run (frames say the name it had when the snapshot was made)
    _tables: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None
    _rows: tuple[Any, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] | None = None

    @property
    def searched(self) -> int:
        return sum(f["rows"] for f in self.doc["frames"].values())

    def input_report(self) -> tuple[list[str], SkipReport, int]:
        """The notes, skip report and line count of the full read (for `report_input`)."""
        from mlobs_cli.segments import skips_from_json

        skipped = skips_from_json(self.doc["skipped"])
        skipped.examples = [(self.name, n, r) for _, n, r in skipped.examples]
        return list(self.doc["notes"]), skipped, int(self.doc["lines"])

    def duplicates(self) -> DuplicateReport:
        from mlobs_cli.analysis.duplicates import DuplicateReport

        return DuplicateReport(**self.doc["duplicates"])

    def clock_frame(self) -> pd.DataFrame:
        """The requests' `ts`, `source` and `line` (what `clock_report` reads; "now" moves on)."""
        from mlobs_cli.colstore import load_frame

        frame = self.doc["frames"]["requests"]
        columns = load_frame(frame["columns"], frame["rows"], self.folder, {"ts", "source", "line"})
        return renamed_source(columns, self.name)

    def _id_tables(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        """(frame, id column) -> (codes, sorted string array) of every id column."""
        if self._tables is None:
            from mlobs_cli.colstore import load_sorted_strings

            self._tables = {}
            for kind in KINDS:
                for column in ID_COLUMNS:
                    found = load_sorted_strings(self.doc["frames"][kind]["columns"], self.folder, column)
                    if found is not None:
                        self._tables[(kind, column)] = found
        return self._tables

    def ids_starting_with(self, query: str, trace_query: str) -> set[str]:
        """Request ids starting with `query` and trace ids starting with `trace_query` (any frame):
        a binary search in each sorted id table, then a walk along the matches."""
        from mlobs_cli.colstore import sorted_table_find

        out: set[str] = set()
        for (_, column), (_, table) in self._id_tables().items():
            prefix = query if column == "request_id" else trace_query
            if not prefix:
                continue
            out.update(value for _, value in sorted_table_find(table, prefix, exact=False))
        return out

    def rows_with_ids(self, ids: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Every row whose request id or trace id is in `ids`, of each frame, in frame order."""
        from mlobs_cli.colstore import load_rows, sorted_table_find

        positions = []
        for kind in KINDS:
            hit = np.zeros(self.doc["frames"][kind]["rows"], dtype=bool)
            for column in ID_COLUMNS:
                found = self._id_tables().get((kind, column))
                if found is None:
                    continue
                codes, table = found
                wanted = [code for i in ids for code, _ in sorted_table_find(table, i, exact=True)]
                if wanted:
                    hit |= np.isin(codes, np.asarray(wanted, dtype=codes.dtype))
            positions.append(np.flatnonzero(hit))
        key = tuple(p.tobytes() for p in positions)
        if self._rows is None or self._rows[0] != key:  # the same rows as last time: read once
            frames = tuple(
                renamed_source(load_rows(self.doc["frames"][kind]["columns"], self.folder, rows), self.name)
                for kind, rows in zip(KINDS, positions)
            )
            self._rows = (key, frames)
        return self._rows[1]

    def rows_around(self, ids: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The rows carrying `ids`, and the rows carrying any id those rows carry, and so on until
        no id is new: everything `find_request`, `rows_of_request` and `timeline_for` look at for
        any of `ids` (partner ids, all spans of a trace)."""
        known = set(ids)
        while True:
            frames = self.rows_with_ids(known)
            found = set()
            for frame in frames:
                for column in ID_COLUMNS:
                    if column in frame:
                        found.update(v for v in frame[column].dropna() if isinstance(v, str))
            if found <= known:
                return frames
            known |= found

    def contexts_of(self, frames: tuple[pd.DataFrame, ...]) -> dict[str, VersionContext]:
        """The contexts of every version these rows can be explained in (theirs and "unknown")."""
        versions = {"unknown"}
        for frame in frames:
            versions.update(str(v) for v in frame["model_version"].dropna().unique())
        contexts = {v: self.context(v) for v in versions}
        missing = [v for v, ctx in contexts.items() if ctx is None]
        if missing:
            raise SnapshotError(f"no context for version {missing[0]!r}")
        return contexts  # type: ignore[return-value]

    def context(self, version: str) -> VersionContext | None:
        from mlobs_cli.analysis.waterfall import VersionContext

        found = self.doc["versions"].get(version)
        if found is None:
            return None
        latencies = np.load(self.folder / found["latencies"], allow_pickle=False)
        medians = np.load(self.folder / found["medians"], allow_pickle=False)
        return VersionContext(
            version,
            int(found["requests"]),
            latencies,
            {name: (float(m[0]), float(m[1])) for name, m in zip(found["stages"], medians)},
        )


def open_snapshot(entry: Path, index: dict[str, Any], name: str) -> Snapshot | None:
    """The entry's snapshot when it was made for the entry's current state by this code; `name`:
    the file's name in this run."""
    folder = entry / FOLDER
    try:
        doc = orjson.loads((folder / "snapshot.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("stamp") != _stamp(index):
        return None
    return Snapshot(folder, doc, name)


def refresh_snapshot(source: Source, settings: Settings) -> bool:
    """Make the explain snapshot of `source` (read from its complete cache entry) unless it is up to
    date; False when the file cannot have one."""
    from mlobs_cli.cache import complete_entry
    from mlobs_cli.cli.hygiene import tidy_dataset
    from mlobs_cli.engine import dataset_from_sources

    target = complete_entry(source, settings)
    if target is None:
        return False
    if open_snapshot(*target, source.name) is not None:
        return True
    data = tidy_dataset(dataset_from_sources([source.name], settings), quiet=True)
    if complete_entry(source, settings) != target:  # the file changed while it was read
        return False
    return save_snapshot(*target, data)


def version_contexts(data: Dataset) -> dict[str, VersionContext]:
    """The context of every version a request of `data` can be explained in."""
    from mlobs_cli.analysis.waterfall import version_context

    versions = {"unknown"}
    for frame in (data.requests, data.milestones, data.spans):
        versions |= {str(v) for v in frame["model_version"].dropna().unique()}
    return {v: version_context(data.requests, data.milestones, data.spans, v) for v in sorted(versions)}


def save_snapshot(entry: Path, index: dict[str, Any], data: Dataset) -> bool:
    """Store the snapshot of `data` (tidied, as read from the entry); False when it cannot be."""
    from mlobs_cli.cli.hygiene import reports_of
    from mlobs_cli.colstore import UnsupportedColumn, save_frame
    from mlobs_cli.segments import skips_to_json

    tmp = entry / f".{FOLDER}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir(mode=0o700)
        frames = {}
        for kind in KINDS:
            frame = getattr(data, kind)
            columns = save_frame(frame, tmp, f"{kind[0]}_", sorted_text=True)
            if any(c["name"] in ID_COLUMNS and c["codec"] != "sorted_strings" for c in columns):
                raise ValueError("ids that a sorted string array cannot hold")  # looked up by search
            frames[kind] = {"rows": len(frame), "columns": columns}
        versions = {}
        for i, (version, ctx) in enumerate(version_contexts(data).items()):
            np.save(tmp / f"lat{i}.npy", np.asarray(ctx.latencies, dtype=np.float64), allow_pickle=False)
            medians = np.array(list(ctx.medians.values()), dtype=np.float64).reshape(-1, 2)
            np.save(tmp / f"med{i}.npy", medians, allow_pickle=False)
            versions[version] = {
                "requests": ctx.requests,
                "latencies": f"lat{i}.npy",
                "medians": f"med{i}.npy",
                "stages": list(ctx.medians),
            }
        dups = reports_of(data)[0]
        doc = {
            "stamp": _stamp(index),
            "frames": frames,
            "versions": versions,
            "notes": list(data.notes),
            "skipped": skips_to_json(data.skipped),
            "lines": data.lines,
            "duplicates": {k: getattr(dups, k) for k in dups.__dataclass_fields__},
        }
        (tmp / "snapshot.json").write_bytes(orjson.dumps(doc))
        _move_in(tmp, entry / FOLDER)
        return True
    except (OSError, UnsupportedColumn, TypeError, ValueError):
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def _move_in(tmp: Path, folder: Path) -> None:
    """Replace `folder` by `tmp` (readers see the old snapshot or the new one, never half of one)."""
    old: Path | None = folder.parent / f".{FOLDER}-old-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, old)  # type: ignore[arg-type]
    except FileNotFoundError:
        old = None
    try:
        os.rename(tmp, folder)  # fails when another run put its snapshot there meanwhile
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
