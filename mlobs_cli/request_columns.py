"""Request columns: one group of raw summary rows -> typed numpy columns, without pandas.

The first half of turning parsed summaries into the requests frame: durations, status codes, error
flags, ids and attributes become arrays here; `frame` adds the pandas half (times, nullable ints, the
DataFrame, dropping bad rows). A forked reader worker (`engine`) stops at these columns, so it never
imports pandas and its results travel to the parent as compact arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlobs_cli.records import REQUEST_FIELDS, Batch, Group
from mlobs_cli.values import (
    durations_ms,
    error_levels,
    error_markers,
    optional_durations_ms,
    scalars,
    shared_texts,
    status_codes,
    texts,
)


@dataclass
class RequestColumns:
    """The typed columns of one group of summaries (rows still include those with bad values).

    `ts` holds the raw logged times (or the envelopes' times): `frame` parses them. `reasons` is None
    when every latency is usable, else a skip reason (or None) per row. `status` is None when the
    shape has no status key; `attrs` maps attribute keys to `(values, missing mask or None)`.
    """

    n: int
    ts: list[Any]
    latency: np.ndarray
    latency_guess: np.ndarray
    reasons: np.ndarray | None
    inference: np.ndarray
    inference_guess: np.ndarray
    status: tuple[np.ndarray, np.ndarray] | None
    error: np.ndarray
    request_id: np.ndarray | None
    trace_id: np.ndarray | None
    model_version: np.ndarray | None
    level: np.ndarray | None
    runs: list[tuple[int, str]]
    lines: np.ndarray
    latency_key: str | None
    inference_key: str | None
    attrs: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    list_keys: list[str] = field(default_factory=list)  # attributes holding lists/objects only

    def sources(self) -> list[str]:
        """The source of every row, expanded from the runs."""
        out: list[str] = []
        for i, (start, src) in enumerate(self.runs):
            end = self.runs[i + 1][0] if i + 1 < len(self.runs) else self.n
            out.extend([src] * (end - start))
        return out

    def shift(self, offset: int) -> None:
        """Renumber lines: the rows came from a partition starting `offset` lines into its source."""
        self.lines += offset


def group_columns(group: Group) -> dict[str, tuple[Any, ...]]:
    """The raw rows of `group` as one tuple per field."""
    if not group.rows:
        return {name: () for name in group.fields}
    return dict(zip(group.fields, zip(*group.rows)))


def request_columns(group: Group) -> RequestColumns:
    """Type one group's raw summary rows (see `RequestColumns`)."""
    plan = group.plan
    n = len(group.rows)
    cols = group_columns(group)
    lat, lat_guess, reasons = durations_ms(cols["latency_ms"], plan.units.get("latency_ms"))
    if "inference_ms" in cols:
        inf, inf_guess = optional_durations_ms(cols["inference_ms"], plan.units.get("inference_ms"))
    else:
        inf, inf_guess = np.full(n, np.nan), np.zeros(n, dtype=bool)
    error = np.zeros(n, dtype=bool)
    status = None
    if "status" in cols:
        codes, missing, error = status_codes(cols["status"])
        status = (codes, missing)
        error = error | ((codes >= 500) & ~missing)
    if "error" in cols:
        error |= error_markers(cols["error"])
    if "level" in cols:
        error |= error_levels(cols["level"])
    out = RequestColumns(
        n=n,
        ts=cols["ts"] if "ts" in cols else group.outer,
        latency=lat,
        latency_guess=lat_guess,
        reasons=None if reasons is None else np.asarray(reasons, dtype=object),
        inference=inf,
        inference_guess=inf_guess,
        status=status,
        error=error,
        request_id=texts(cols["request_id"]) if "request_id" in cols else None,
        trace_id=texts(cols["trace_id"]) if "trace_id" in cols else None,
        model_version=shared_texts(cols["model_version"]) if "model_version" in cols else None,
        level=shared_texts(cols["level"]) if "level" in cols else None,
        runs=list(group.runs),
        lines=np.asarray(group.lines, dtype=np.int64),
        latency_key=plan.keys.get("latency_ms"),
        inference_key=plan.keys.get("inference_ms"),
    )
    n_canon = len([f for f in group.fields if f in REQUEST_FIELDS])
    for key in group.fields[n_canon:]:
        raw = cols[key]
        values, missing = scalars(raw)
        if values.dtype == object and all(v is None for v in values) and any(v is not None for v in raw):
            out.list_keys.append(key)  # lists/objects (e.g. predictions): not kept in the frame
            continue
        out.attrs[key] = (values, missing)
    return out


class ColumnBatches:
    """A pandas-free stand-in for `frame.FrameBuilder` while reading summaries only: each batch of
    events becomes `RequestColumns`, turned into frames later by `FrameBuilder.add_columns`."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[RequestColumns], dict[str, int]]] = []

    def add(self, batch: Batch) -> None:
        if batch.milestones or batch.spans["name"]:
            raise ValueError("ColumnBatches holds request summaries only")
        if batch.requests:
            self.batches.append(([request_columns(g) for g in batch.requests], batch.source_order))

    def shift(self, offset: int) -> None:
        for columns, _ in self.batches:
            for c in columns:
                c.shift(offset)
