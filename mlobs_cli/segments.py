"""Segments: one parsed byte range of a log file as files, for the cache (`cache.py`).

A segment is a folder of column files (`colstore`: npy arrays, JSON string tables; no pickle) and a
`segment.json` holding the frames' layout, the skip report, field statistics and counts of the range.
Segments store line numbers from their own start; the file's index gives each one its offset.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from mlobs_cli.engine import Need, Partial
from mlobs_cli.records import FieldStats, SkipReport

# Text columns that `FrameBuilder.finish` makes categorical: read back as categoricals from their codes.
CATEGORY_COLUMNS = frozenset({"model_version", "source"})


def skips_to_json(report: SkipReport) -> dict[str, Any]:
    return {
        "by_reason": dict(report.by_reason),
        "examples": [list(e) for e in report.examples],
        "notes": dict(report.notes),
    }


def skips_from_json(doc: dict[str, Any]) -> SkipReport:
    report = SkipReport()
    report.by_reason.update(doc["by_reason"])
    report.examples = [(s, int(n), r) for s, n, r in doc["examples"]]
    report.notes.update(doc["notes"])
    return report


def stats_to_json(stats: FieldStats) -> dict[str, Any]:
    return {
        "formats": dict(stats.formats),
        "events": dict(stats.events),
        "mapping": {c: [[k, u, n] for (k, u), n in cnt.items()] for c, cnt in stats.mapping.items()},
        "blank_lines": stats.blank_lines,
    }


def stats_from_json(doc: dict[str, Any]) -> FieldStats:
    stats = FieldStats()
    stats.formats.update(doc["formats"])
    stats.events.update(doc["events"])
    for canon, rows in doc["mapping"].items():
        stats.mapping[canon] = Counter({(k, u): n for k, u, n in rows})
    stats.blank_lines = doc["blank_lines"]
    return stats


def _coalesce(frames: list[Any]) -> list[Any]:
    """Join consecutive frames of identical columns and dtypes (exact), so a segment has few files."""
    import pandas as pd

    out: list[Any] = []
    run: list[Any] = []
    for frame in frames:
        if run and not (
            list(frame.columns) == list(run[0].columns) and list(frame.dtypes) == list(run[0].dtypes)
        ):
            out.append(run[0] if len(run) == 1 else pd.concat(run, ignore_index=True))
            run = []
        run.append(frame)
    if run:
        out.append(run[0] if len(run) == 1 else pd.concat(run, ignore_index=True))
    return out


class SegmentWriter:
    """Write one segment as its frames arrive (a `parse_partition` sink), so memory stays bounded."""

    def __init__(self, entry: Path) -> None:
        self.name = f"seg-{uuid.uuid4().hex[:12]}"
        self.tmp = entry / f".{self.name}.tmp"
        self.tmp.mkdir(parents=True)
        self.frames: dict[str, list[dict[str, Any]]] = {"requests": [], "milestones": [], "spans": []}
        self.events = 0

    def __call__(self, builder: Any) -> None:
        """Store the builder's frames and drop them from memory."""
        from mlobs_cli.colstore import save_frame

        for kind, lst in (
            ("requests", builder._requests),
            ("milestones", builder._milestones),
            ("spans", builder._spans),
        ):
            out = self.frames[kind]
            for frame in _coalesce(lst):
                out.append(
                    {"rows": len(frame), "columns": save_frame(frame, self.tmp, f"{kind[0]}{len(out)}_")}
                )
                self.events += len(frame)
            lst.clear()

    def finish(self, part: Partial) -> dict[str, Any]:
        """Write the segment's index and move it in place; returns its entry in the file's index."""
        from mlobs_cli.colstore import merge_frames

        for kind, frames in self.frames.items():  # one frame per kind: far fewer files to read back
            self.frames[kind] = merge_frames(frames, self.tmp, f"{kind[0]}m")
        b = part.builder
        doc = {
            "frames": self.frames,
            "skipped": skips_to_json(part.skipped),
            "extra_skips": skips_to_json(b.extra_skips),
            "stats": stats_to_json(part.stats),
            "records": part.records,
            "physical_lines": part.physical_lines,
            "ts_kinds": b.ts_kinds,
            "list_keys": sorted(b.list_keys),
        }
        (self.tmp / "segment.json").write_bytes(orjson.dumps(doc))
        self.tmp.rename(self.tmp.parent / self.name)
        return {
            "name": self.name,
            "lines": part.physical_lines,
            "events": self.events,
            "open": part.open_state,
        }


def _request_columns(need: Need) -> set[str] | None:
    """The stored request columns a narrowed `need` reads (as a cold read with that need keeps)."""
    if need.fields is None:
        return None
    from mlobs_cli.records import REQUIRED_REQUEST_FIELDS

    return (
        set(REQUIRED_REQUEST_FIELDS)
        | set(need.fields)
        | {f"attr.{f}" for f in need.fields}
        | {"source", "line", "latency_guess", "inference_guess"}
    )


def _fill_unread(frame: Any, wanted: set[str]) -> Any:
    """Base columns not read come out empty, in their place, as from a cold read with the same need."""
    import numpy as np

    n = len(frame)
    for pos, (col, empty) in enumerate(
        (("request_id", None), ("trace_id", None), ("inference_ms", np.nan)), start=1
    ):
        if col not in wanted and col not in frame.columns:
            values = np.full(n, empty, dtype=object if empty is None else np.float64)
            frame.insert(min(pos if col != "inference_ms" else 5, len(frame.columns)), col, values)
    return frame


def renamed_source(frame: Any, name: str) -> Any:
    """The frame with its `source` column saying `name` (the file as this run spells its path)."""
    import pandas as pd

    if "source" not in frame.columns or not len(frame):
        return frame
    column = frame["source"]
    if isinstance(column.dtype, pd.CategoricalDtype) and len(column.cat.categories) == 1:
        if column.cat.categories[0] != name:
            frame["source"] = column.cat.rename_categories([name])
    else:
        frame["source"] = column.where(column.isna(), name)
    return frame


def read_segment(seg: Path, need: Need, offset: int = 0, source_name: str | None = None) -> Partial:
    """A stored segment as a `Partial`; `source_name` replaces the name its file had when stored
    (one file may be given as `app.log` once and `./app.log` or an absolute path later)."""
    from mlobs_cli.colstore import load_frame
    from mlobs_cli.frame import FrameBuilder

    doc = orjson.loads((seg / "segment.json").read_bytes())
    kinds = need.kinds
    builder = FrameBuilder()
    targets = {"requests": builder._requests, "milestones": builder._milestones, "spans": builder._spans}
    wanted = _request_columns(need)
    for kind, frames in doc["frames"].items():
        if kinds is not None and kind not in kinds:
            continue
        cols = wanted if kind == "requests" else None
        for f in frames:
            frame = load_frame(f["columns"], f["rows"], seg, cols, CATEGORY_COLUMNS)
            if source_name is not None:
                frame = renamed_source(frame, source_name)
            targets[kind].append(_fill_unread(frame, cols) if cols is not None else frame)
    builder.extra_skips = skips_from_json(doc["extra_skips"])
    builder.ts_kinds = dict(doc["ts_kinds"])
    builder.list_keys = set(doc["list_keys"])
    part = Partial(
        builder,
        skips_from_json(doc["skipped"]),
        stats_from_json(doc["stats"]),
        doc["records"],
        doc["physical_lines"],
    )
    if source_name is not None:
        for report in (part.skipped, builder.extra_skips):
            report.examples = [(source_name, n, r) for _, n, r in report.examples]
    part.shift(offset)  # segments store line numbers from their own start
    return part
