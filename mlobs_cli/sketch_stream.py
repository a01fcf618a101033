"""`mlobs latency --sketch`: read request summaries chunk by chunk into per-group latency sketches.

Each chunk of parsed request rows is finished into a frame, filtered (`--since`/`--until` absolute
bounds, `--where`), folded into one `LatencySketch` per group plus exact counts, errors, sums, min/max
and time span, and dropped: memory holds one chunk and the sketches, whatever the input size. Exact
duplicate lines are not dropped (that needs every request id). One process, no cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlobs_cli.analysis.sketch import LatencySketch
from mlobs_cli.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlobs_cli.analysis.where import Where
    from mlobs_cli.config import Settings
    from mlobs_cli.engine import Need
    from mlobs_cli.frame import FrameBuilder
    from mlobs_cli.records import SkipReport

NAT = np.iinfo(np.int64).min


@dataclass
class GroupFold:
    """What one group's rows add up to: exact counts and span, approximate latency distribution."""

    sketch: LatencySketch
    requests: int = 0
    errors: int = 0
    timed: int = 0
    first_ns: int = np.iinfo(np.int64).max
    last_ns: int = NAT


@dataclass
class SketchFold:
    """A `sink` for `engine.parse_partition`: folds the builder's request rows into group sketches."""

    keys: list[str]
    metric: str
    status: str
    accuracy: float
    since: Any = None  # tz-aware pd.Timestamp or None
    until: Any = None
    where: Where | None = None
    groups: dict[tuple[Any, ...], GroupFold] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)
    rows_read: int = 0
    units: dict[tuple[str, str], str] = field(default_factory=dict)  # unitless keys: one guess per run

    def __call__(self, builder: FrameBuilder) -> None:
        from mlobs_cli.frame import FrameBuilder
        from mlobs_cli.records import RecordParser

        frames, builder._requests = builder._requests, []
        builder._milestones, builder._spans = [], []
        if not frames:
            return
        from mlobs_cli.frame import resolve_unit_guesses

        # A unitless duration key keeps the unit guessed from its first chunk, so that every chunk
        # reads it alike (exact mode guesses once over all rows).
        frames = [resolve_unit_guesses(f, {}, self.units) for f in frames]
        chunk = FrameBuilder()
        chunk._requests = frames
        self.fold(chunk.finish(RecordParser()).requests)

    def fold(self, requests: pd.DataFrame) -> None:
        """Add the selected rows of one finished request frame to their groups."""
        import pandas as pd

        self.rows_read += len(requests)
        self.columns.update(str(c) for c in requests.columns)
        if self.since is not None or self.until is not None or self.where is not None:
            mask = pd.Series(True, index=requests.index)
            if self.since is not None:
                mask &= (requests["ts"] >= self.since).fillna(False).astype(bool)
            if self.until is not None:
                mask &= (requests["ts"] < self.until).fillna(False).astype(bool)
            if self.where is not None:
                mask &= self.where.mask(requests)
            requests = requests[mask]
        if requests.empty:
            return
        key_frame = pd.DataFrame(
            {k: _hashable(requests[k]) if k in requests.columns else None for k in self.keys},
            index=requests.index,
        )
        codes = key_frame.groupby(self.keys, dropna=False, sort=False, observed=True).ngroup().to_numpy()
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        errors = requests["error"].to_numpy(dtype=bool, na_value=False)
        ts = requests["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        if self.metric in requests.columns:
            values = requests[self.metric].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.full(len(requests), np.nan)
        select = ~np.isnan(values)
        if self.status == "ok":
            select &= ~errors
        elif self.status == "error":
            select &= errors
        for rows in np.split(order, bounds):
            first = key_frame.iloc[rows[0]]
            key = tuple(_plain_key(first[k]) for k in self.keys)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = GroupFold(LatencySketch(self.accuracy))
            group.requests += len(rows)
            group.errors += int(errors[rows].sum())
            stamps = ts[rows]
            stamps = stamps[stamps != NAT]
            if len(stamps):
                group.timed += len(stamps)
                group.first_ns = min(group.first_ns, int(stamps.min()))
                group.last_ns = max(group.last_ns, int(stamps.max()))
            group.sketch.add_many(values[rows][select[rows]])

    def table(self, percentiles: list[float]) -> pd.DataFrame:
        """One row per group, in `latency_table`'s columns; percentiles approximate, the rest exact."""
        import pandas as pd

        from mlobs_cli.analysis.latency import percentile_key

        missing = [k for k in self.keys if k not in self.columns]
        if missing and self.rows_read:
            known = ", ".join(sorted(self.columns))
            raise UsageError(f"unknown field {missing[0]!r} to group by", f"known fields: {known}")
        ordered = sorted(self.groups.items(), key=lambda item: _sort_key(item[0]))
        rows: list[dict[str, Any]] = []
        for key, g in ordered:
            row: dict[str, Any] = dict(zip(self.keys, key, strict=True))
            span = (g.last_ns - g.first_ns) / 1e9 if g.timed else 0.0
            row["requests"] = g.requests
            row["errors"] = g.errors
            row["error_rate"] = g.errors / g.requests
            row["rate_per_s"] = g.timed / span if span > 0 else math.nan
            row["mean_ms"] = g.sketch.mean
            quant = g.sketch.quantiles([q / 100.0 for q in percentiles])
            for q, value in zip(percentiles, quant, strict=True):
                row[percentile_key(q)] = float(value)
            row["max_ms"] = g.sketch.max if g.sketch.count else math.nan
            row["samples"] = g.sketch.count
            rows.append(row)
        columns = [*self.keys, "requests", "errors", "error_rate", "rate_per_s", "mean_ms"]
        columns += [percentile_key(q) for q in percentiles] + ["max_ms", "samples"]
        table = pd.DataFrame(rows, columns=columns)
        for col in ("requests", "errors", "samples"):
            table[col] = table[col].astype(np.int64)
        table.attrs.update(
            unbucketed=0,
            percentiles=list(percentiles),
            metric=self.metric,
            status=self.status,
            relative_accuracy=self.accuracy,
        )
        return table


def _hashable(column: pd.Series) -> pd.Series:
    """Group keys as hashable values: lists and dicts by their text, as `latency_table` groups them."""
    if column.dtype != object:
        return column
    return column.map(lambda v: repr(v) if isinstance(v, (list, dict)) else v)


def _plain_key(value: Any) -> Any:
    """A key value with every kind of missing (NaN, NA, NaT) as None."""
    import pandas as pd

    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if isinstance(value, np.generic) else value


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Rows ordered by keys, missing last; numbers by value before other values by text."""
    return tuple(
        (v is None, not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else 0, str(v))
        for v in key
    )


def absolute_bound(text: str | None, option: str) -> Any:
    """`--since`/`--until` as a UTC time; a relative bound (`15m`) needs the newest request first."""
    from mlobs_cli.durations import parse_time_bound

    if text is None:
        return None
    bound = parse_time_bound(text, None)  # type: ignore[arg-type]
    if bound is None or bound != bound:  # NaT: relative to the newest request
        raise UsageError(
            f"{option} {text} counts back from the newest request, which --sketch cannot know while reading",
            f"give {option} an absolute ISO time, or drop --sketch",
        )
    return bound


def read_into(
    fold: SketchFold, specs: list[str], settings: Settings, need: Need
) -> tuple[SkipReport, int, list[str]]:
    """Parse every source in one process with `fold` as the sink: (skip report, records, notes)."""
    from mlobs_cli.engine import parse_partition
    from mlobs_cli.records import SkipReport
    from mlobs_cli.sources import expand_sources, take_notes

    take_notes()
    sources = expand_sources(specs)
    notes = take_notes()
    skipped = SkipReport()
    records = 0
    for source in sources:
        part = parse_partition(source, settings, need, sink=fold)
        skipped.merge(part.skipped)
        skipped.merge(part.builder.extra_skips)
        records += part.records
    return skipped, records, notes
