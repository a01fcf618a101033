"""Frames: parsed event columns -> typed pandas DataFrames, and the `Dataset` every command reads.

Column contracts are in docs/DESIGN.md. Input is streamed: events are turned into frames in chunks, so
peak memory grows with the number of events kept, not with raw bytes or lines. Timestamps are parsed
vectorized here (ISO-8601 with `Z`, offsets, or none = UTC; comma or dot fractions; epoch s/ms/µs/ns by
magnitude), and duration keys without a unit get one from their values (`schema.guess_duration_unit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.config import Settings
from mlobs_cli.records import (
    BAD_TIMESTAMP,
    Batch,
    FieldStats,
    RecordParser,
    SkipReport,
)
from mlobs_cli.schema import UNIT_FACTORS_MS, guess_duration_unit
from mlobs_cli.sources import TruncatedInputError, expand_sources, iter_line_blocks, open_source

UNKNOWN_VERSION = "unknown"
CHUNK_EVENTS = 250_000
TS_DTYPE = "datetime64[ns, UTC]"
REQUEST_BASE_COLUMNS = (
    "ts",
    "request_id",
    "trace_id",
    "model_version",
    "latency_ms",
    "inference_ms",
    "status",
    "error",
    "source",
    "line",
)


@dataclass
class Dataset:
    """Everything a command needs: the three frames, what was skipped, and how fields were mapped."""

    requests: pd.DataFrame
    milestones: pd.DataFrame
    spans: pd.DataFrame
    skipped: SkipReport
    formats: list[str]
    lines: int
    stats: FieldStats = field(default_factory=FieldStats)
    unit_guesses: dict[str, dict[str, str]] = field(default_factory=dict)
    ts_kinds: dict[str, int] = field(default_factory=dict)
    requests_from: str = "summaries"  # summaries | root spans | milestones


# ---- timestamps -----------------------------------------------------------------------------
def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Epoch numbers in s/ms/µs/ns (by magnitude) -> int64 ns; NaN stays NaN (as float)."""
    mag = np.abs(values)
    factor = np.where(mag < 1e11, 1e9, np.where(mag < 1e14, 1e6, np.where(mag < 1e17, 1e3, 1.0)))
    return values * factor


def _iso_to_ns(strs: pd.Series) -> np.ndarray:
    """ISO-8601 strings (any offset, or none = UTC) -> naive UTC datetime64[ns]; NaT when unparseable."""
    parsed = pd.to_datetime(strs, format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_convert("UTC").dt.as_unit("ns").dt.tz_localize(None).to_numpy().copy()


def utc_times(values: list[Any], kinds: dict[str, int] | None = None) -> tuple[pd.Series, np.ndarray]:
    """Parse raw timestamp values -> (datetime64[ns, UTC] Series, bool array of 'present but bad')."""
    n = len(values)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return pd.Series(pd.to_datetime(out, utc=True)), bad
    obj = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    types = np.fromiter((type(v) for v in obj), dtype=object, count=n)
    is_str = types == str
    is_num = (types == int) | (types == float)
    if is_num.any():
        nums = obj[is_num].astype(np.float64)
        ns = _epoch_to_ns(nums)
        ok = np.isfinite(ns) & (np.abs(ns) < 9.2e18)
        vals = np.full(ns.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
        vals[ok] = ns[ok].astype(np.int64).view("datetime64[ns]")
        out[is_num] = vals
        bad_idx = np.flatnonzero(is_num)[~ok]
        bad[bad_idx] = True
        if kinds is not None:
            kinds["epoch"] = kinds.get("epoch", 0) + int(is_num.sum())
    if is_str.any():
        strs = pd.Series(obj[is_str], dtype=object)
        str_vals = _iso_to_ns(strs)
        missing = np.isnat(str_vals)
        if missing.any():  # comma fractions (`2026-11-26 10:40:41,478`), stray spaces
            retry = strs[missing].str.strip().str.replace(",", ".", n=1, regex=False)
            str_vals[missing] = _iso_to_ns(retry)
            missing = np.isnat(str_vals)
        if missing.any():  # epoch numbers written as strings
            as_num = pd.to_numeric(strs[missing], errors="coerce").to_numpy(dtype=np.float64)
            ns = _epoch_to_ns(as_num)
            ok = np.isfinite(ns) & (np.abs(ns) < 9.2e18)
            fill = np.full(ns.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
            fill[ok] = ns[ok].astype(np.int64).view("datetime64[ns]")
            str_vals[missing] = fill
        out[is_str] = str_vals
        bad[np.flatnonzero(is_str)[np.isnat(str_vals)]] = True
        if kinds is not None:
            kinds["iso8601"] = kinds.get("iso8601", 0) + int(is_str.sum())
    other = ~(is_str | is_num) & (types != type(None))
    bad |= other
    return pd.Series(pd.to_datetime(out, utc=True)).astype(TS_DTYPE), bad


# ---- frames from one batch ------------------------------------------------------------------
def _version_category(values: Iterable[Any]) -> pd.Categorical:
    series = pd.Series(values, dtype=object).fillna(UNKNOWN_VERSION)
    return pd.Categorical(series)


def _typed_attr(col: np.ndarray) -> pd.Series:
    present = [v for v in col if v is not None]
    if present and all(type(v) in (int, float) for v in present):
        if all(type(v) is int for v in present):
            return pd.Series(pd.array(list(col), dtype="Int64"))
        return pd.Series(np.array([np.nan if v is None else v for v in col], dtype=np.float64))
    return pd.Series(col, dtype=object)


def _requests_frame(batch: Batch, skipped: SkipReport, kinds: dict[str, int]) -> pd.DataFrame:
    cols = batch.requests
    n = len(cols["latency_ms"])
    ts, bad = utc_times(cols["ts"], kinds)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "request_id": pd.Series(cols["request_id"], dtype=object),
            "trace_id": pd.Series(cols["trace_id"], dtype=object),
            "model_version": pd.Series(cols["model_version"], dtype=object),
            "latency_ms": np.asarray(cols["latency_ms"], dtype=np.float64),
            "inference_ms": np.asarray(
                [np.nan if v is None else v for v in cols["inference_ms"]], dtype=np.float64
            ),
            "status": pd.array(cols["status"], dtype="Int64"),
            "error": np.asarray(cols["error"], dtype=bool),
            "level": pd.Series(cols["level"], dtype=object),
            "source": pd.Series(cols["source"], dtype=object),
            "line": np.asarray(cols["line"], dtype=np.int64),
            "latency_guess": pd.Series(cols["latency_guess"], dtype=object),
            "inference_guess": pd.Series(cols["inference_guess"], dtype=object),
        }
    )
    for key, (rows, values) in batch.request_attrs.items():
        if key in frame.columns:
            key = f"attr.{key}"
        col = np.full(n, None, dtype=object)
        col[np.asarray(rows, dtype=np.int64)] = values
        frame[key] = _typed_attr(col)
    if bad.any():
        for src, line in zip(frame["source"][bad], frame["line"][bad]):
            skipped.add(BAD_TIMESTAMP, src, int(line))
        frame = frame[~bad].reset_index(drop=True)
    return frame


def _milestones_frame(batch: Batch, skipped: SkipReport, kinds: dict[str, int]) -> pd.DataFrame:
    cols = batch.milestones
    ts, bad = utc_times(cols["ts"], kinds)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "request_id": pd.Series(cols["request_id"], dtype=object),
            "trace_id": pd.Series(cols["trace_id"], dtype=object),
            "event": pd.Series(cols["event"], dtype=object),
            "model_version": pd.Series(cols["model_version"], dtype=object),
            "source": pd.Series(cols["source"], dtype=object),
            "line": np.asarray(cols["line"], dtype=np.int64),
        }
    )
    bad |= frame["ts"].isna().to_numpy()  # a milestone without a time is no milestone
    if bad.any():
        for src, line in zip(frame["source"][bad], frame["line"][bad]):
            skipped.add(BAD_TIMESTAMP, src, int(line))
        frame = frame[~bad].reset_index(drop=True)
    return frame


def _spans_frame(batch: Batch, skipped: SkipReport, kinds: dict[str, int]) -> pd.DataFrame:
    cols = batch.spans
    start, bad_s = utc_times(cols["start"], kinds)
    end, bad_e = utc_times(cols["end"], kinds)
    dur = np.asarray([np.nan if v is None else v for v in cols["duration_ms"]], dtype=np.float64)
    has_dur = ~np.isnan(dur)
    # Stage lines: the span ends at the line's time and lasts its duration.
    start_filled = start.where(~has_dur, end - pd.to_timedelta(dur, unit="ms"))
    measured = (end - start_filled).dt.total_seconds().to_numpy() * 1000.0
    dur = np.where(has_dur, dur, measured)
    frame = pd.DataFrame(
        {
            "trace_id": pd.Series(cols["trace_id"], dtype=object),
            "span_id": pd.Series(cols["span_id"], dtype=object),
            "parent_span_id": pd.Series(cols["parent_span_id"], dtype=object),
            "request_id": pd.Series(cols["request_id"], dtype=object),
            "name": pd.Series(cols["name"], dtype=object),
            "kind": pd.Series(cols["kind"], dtype=object),
            "start": start_filled,
            "end": end,
            "duration_ms": dur,
            "error": np.asarray(cols["error"], dtype=bool),
            "model_version": pd.Series(cols["model_version"], dtype=object),
            "attrs": pd.Series(cols["attrs"], dtype=object),
            "source": pd.Series(cols["source"], dtype=object),
            "line": np.asarray(cols["line"], dtype=np.int64),
        }
    )
    bad = bad_s | bad_e | frame["end"].isna().to_numpy() | ~(frame["duration_ms"].to_numpy() >= 0)
    if bad.any():
        for src, line in zip(frame["source"][bad], frame["line"][bad]):
            skipped.add(BAD_TIMESTAMP, src, int(line))
        frame = frame[~bad].reset_index(drop=True)
    return frame


# ---- finishing ------------------------------------------------------------------------------
def _resolve_unit_guesses(requests: pd.DataFrame, guesses: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Give unitless duration keys a unit from their values, and record the reasoning."""
    for col, guess_col in (("latency_ms", "latency_guess"), ("inference_ms", "inference_guess")):
        if guess_col not in requests.columns:
            continue
        keys = requests[guess_col]
        if keys.isna().all():
            continue
        for key, idx in requests.groupby(guess_col, sort=False).groups.items():
            values = requests.loc[idx, col].to_numpy()
            sample = values[:: max(1, len(values) // 5000)].tolist()
            unit, reason = guess_duration_unit(sample)
            requests.loc[idx, col] = values * UNIT_FACTORS_MS[unit]
            guesses[col] = {"key": str(key), "unit": unit, "reason": reason}
    return requests.drop(columns=["latency_guess", "inference_guess"], errors="ignore")


def _finish_requests(frame: pd.DataFrame) -> pd.DataFrame:
    frame["model_version"] = _version_category(frame["model_version"])
    frame["source"] = frame["source"].astype("category")
    base = [c for c in REQUEST_BASE_COLUMNS + ("level",) if c in frame.columns]
    rest = [c for c in frame.columns if c not in base]
    return frame[base + rest]


def _empty_requests() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ts": pd.Series([], dtype=TS_DTYPE),
            "request_id": pd.Series([], dtype=object),
            "trace_id": pd.Series([], dtype=object),
            "model_version": pd.Series([], dtype=object),
            "latency_ms": pd.Series([], dtype=np.float64),
            "inference_ms": pd.Series([], dtype=np.float64),
            "status": pd.array([], dtype="Int64"),
            "error": pd.Series([], dtype=bool),
            "level": pd.Series([], dtype=object),
            "source": pd.Series([], dtype=object),
            "line": pd.Series([], dtype=np.int64),
        }
    )
    return frame


def _requests_from_spans(spans: pd.DataFrame) -> pd.DataFrame:
    """No request summaries: each trace's root span (no parent, or parent not logged) is a request."""
    real = spans[spans["kind"] != "stage"]
    if real.empty:
        return _empty_requests()
    known = set(zip(real["trace_id"], real["span_id"]))
    parent_known = np.fromiter(
        ((t, p) in known for t, p in zip(real["trace_id"], real["parent_span_id"])),
        dtype=bool,
        count=len(real),
    )
    roots = real[~parent_known]
    status = []
    for attrs in roots["attrs"]:
        code = None
        if isinstance(attrs, dict):
            for key in ("http.response.status_code", "http.status_code"):
                if isinstance(attrs.get(key), int):
                    code = attrs[key]
                    break
        status.append(code)
    frame = pd.DataFrame(
        {
            "ts": roots["end"].to_numpy(),
            "request_id": roots["request_id"].where(roots["request_id"].notna(), roots["trace_id"]),
            "trace_id": roots["trace_id"],
            "model_version": roots["model_version"],
            "latency_ms": roots["duration_ms"],
            "inference_ms": np.nan,
            "status": pd.array(status, dtype="Int64"),
            "error": roots["error"].to_numpy(),
            "level": None,
            "source": roots["source"],
            "line": roots["line"],
        }
    ).reset_index(drop=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype(TS_DTYPE)
    frame["name"] = roots["name"].to_numpy()
    return frame


def _requests_from_milestones(milestones: pd.DataFrame) -> pd.DataFrame:
    """No summaries and no spans: a request lasts from its first to its last milestone."""
    with_id = milestones[milestones["request_id"].notna()]
    if with_id.empty:
        return _empty_requests()
    grouped = with_id.groupby("request_id", sort=False)
    first = grouped["ts"].min()
    last = grouped["ts"].max()
    agg = grouped.agg(
        trace_id=("trace_id", "first"),
        model_version=("model_version", "first"),
        source=("source", "first"),
        line=("line", "max"),
        events=("event", "count"),
        failed=("event", lambda s: s.str.contains("fail|error", case=False, regex=True).any()),
    )
    agg = agg[agg["events"] >= 2]
    frame = pd.DataFrame(
        {
            "ts": last.loc[agg.index],
            "request_id": agg.index.to_numpy(dtype=object),
            "trace_id": agg["trace_id"],
            "model_version": agg["model_version"],
            "latency_ms": (last - first).loc[agg.index].dt.total_seconds() * 1000.0,
            "inference_ms": np.nan,
            "status": pd.array([None] * len(agg), dtype="Int64"),
            "error": agg["failed"].astype(bool),
            "level": None,
            "source": agg["source"],
            "line": agg["line"],
        }
    ).reset_index(drop=True)
    return frame


def _fill_versions(data: Dataset) -> None:
    """Stage events and spans inherit the model version of their request or trace when they lack one."""
    req = data.requests
    ms = data.milestones
    if not ms.empty:
        by_rid = req.dropna(subset=["request_id"]).drop_duplicates("request_id")
        lookup = pd.Series(by_rid["model_version"].astype(object).to_numpy(), index=by_rid["request_id"])
        missing = ms["model_version"].isna()
        if missing.any():
            ms.loc[missing, "model_version"] = ms.loc[missing, "request_id"].map(lookup)
        missing = ms["model_version"].isna()
        if missing.any():
            per_req = ms.groupby("request_id")["model_version"].transform("first")
            ms.loc[missing, "model_version"] = per_req[missing]
    sp = data.spans
    if not sp.empty:
        missing = sp["model_version"].isna()
        if missing.any():
            per_trace = sp.groupby("trace_id")["model_version"].transform("first")
            sp.loc[missing, "model_version"] = per_trace[missing]
    data.milestones["model_version"] = _version_category(ms["model_version"])
    data.spans["model_version"] = _version_category(sp["model_version"])
    for frame in (data.milestones, data.spans):
        frame["source"] = frame["source"].astype("category")


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


class FrameBuilder:
    """Collect batches from a `RecordParser` into frames, chunk by chunk, then finish a `Dataset`."""

    def __init__(self) -> None:
        self._requests: list[pd.DataFrame] = []
        self._milestones: list[pd.DataFrame] = []
        self._spans: list[pd.DataFrame] = []
        self.ts_kinds: dict[str, int] = {}
        self.extra_skips = SkipReport()

    def add(self, batch: Batch) -> None:
        if batch.requests["latency_ms"]:
            self._requests.append(_requests_frame(batch, self.extra_skips, self.ts_kinds))
        if batch.milestones["event"]:
            self._milestones.append(_milestones_frame(batch, self.extra_skips, self.ts_kinds))
        if batch.spans["name"]:
            self._spans.append(_spans_frame(batch, self.extra_skips, self.ts_kinds))

    def finish(self, parser: RecordParser) -> Dataset:
        self.add(parser.take())
        skipped = parser.skipped
        skipped.merge(self.extra_skips)
        empty_ms = _milestones_frame(Batch(), SkipReport(), {})
        empty_sp = _spans_frame(Batch(), SkipReport(), {})
        requests = _concat(self._requests, _empty_requests())
        guesses: dict[str, dict[str, str]] = {}
        requests = _resolve_unit_guesses(requests, guesses)
        milestones = _concat(self._milestones, empty_ms)
        spans = _concat(self._spans, empty_sp)
        requests_from = "summaries"
        if requests.empty and not spans.empty:
            requests, requests_from = _requests_from_spans(spans), "root spans"
        elif requests.empty and not milestones.empty:
            requests, requests_from = _requests_from_milestones(milestones), "milestones"
        requests = _finish_requests(requests)
        formats = [name for name, _ in parser.stats.formats.most_common() if _]
        data = Dataset(
            requests=requests,
            milestones=milestones,
            spans=spans,
            skipped=skipped,
            formats=formats,
            lines=parser.lines,
            stats=parser.stats,
            unit_guesses=guesses,
            ts_kinds=self.ts_kinds,
            requests_from=requests_from,
        )
        _fill_versions(data)
        return data


def dataset_from_batch(batch: Batch, parser: RecordParser | None = None) -> Dataset:
    """Frames for one batch of events (used by `tail`, which parses incrementally)."""
    builder = FrameBuilder()
    builder.add(batch)
    return builder.finish(parser or RecordParser())


def dataset_from_sources(specs: list[str], settings: Settings | None = None) -> Dataset:
    """Read every source, parse it, and build the `Dataset` (streaming, chunked)."""
    settings = settings or Settings()
    parser = RecordParser(settings.overrides)
    builder = FrameBuilder()
    for source in expand_sources(specs):
        stream = open_source(source)
        line_no = 1
        try:
            for block in iter_line_blocks(stream, max_line_bytes=settings.max_line_bytes):
                line_no = parser.feed_block(source.name, line_no, block)
                if parser.pending_events >= CHUNK_EVENTS:
                    builder.add(parser.take())
            parser.finish_source(source.name)
        except TruncatedInputError:
            parser.finish_source(source.name, truncated=True, line_no=line_no)
        finally:
            stream.close()
    return builder.finish(parser)
