"""Frames: parsed event columns -> typed pandas DataFrames, and the `Dataset` every command reads.

Column contracts are in docs/DESIGN.md. Input is streamed: events are turned into frames in chunks, so
peak memory grows with the number of events kept, not with raw bytes or lines. Timestamps are parsed
vectorized here (ISO-8601 with `Z`, offsets, or none = UTC; comma or dot fractions; epoch s/ms/µs/ns by
magnitude), and duration keys without a unit get one from their values (`schema.guess_duration_unit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.config import Settings
from mlobs_cli.records import (
    BAD_TIMESTAMP,
    REQUEST_FIELDS,
    Batch,
    FieldStats,
    Group,
    RecordParser,
    SkipReport,
    paused_gc,
)
from mlobs_cli.request_columns import ColumnBatches, RequestColumns, request_columns
from mlobs_cli.schema import UNIT_FACTORS_MS, guess_duration_unit
from mlobs_cli.values import shared_texts, texts

UNKNOWN_VERSION = "unknown"
TS_DTYPE = "datetime64[ns, UTC]"
REQUEST_BASE_COLUMNS = (*(f for f in REQUEST_FIELDS if f != "level"), "source", "line")


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
    list_keys: list[str] = field(default_factory=list)  # request keys holding lists/objects only
    notes: list[str] = field(default_factory=list)  # about the input, e.g. folder entries not read


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
    obj = np.empty(n, dtype=object)
    obj[:] = values
    kinds_seen = set(map(type, values))
    if kinds_seen == {str}:
        types = None
        is_str = np.ones(n, dtype=bool)
        is_num = np.zeros(n, dtype=bool)
    else:
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
    if types is not None:
        bad |= ~(is_str | is_num) & (types != type(None))
    return pd.Series(pd.to_datetime(out, utc=True)).astype(TS_DTYPE), bad


# ---- frames from one batch ------------------------------------------------------------------
def _version_category(values: Iterable[Any]) -> pd.Categorical:
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return _recode_sorted(pd.Categorical(values), UNKNOWN_VERSION, object)
    series = pd.Series(values, dtype=object).fillna(UNKNOWN_VERSION)
    return pd.Categorical(series)


def _source_category(values: pd.Series) -> pd.Series:
    """`values.astype("category")`, fast when `values` is already categorical (from the cache)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = _recode_sorted(pd.Categorical(values), None, "str")
        return pd.Series(cat, index=values.index, name=values.name)
    return values.astype("category")


def _recode_sorted(cat: pd.Categorical, fill: str | None, dtype: Any) -> pd.Categorical:
    """The categorical that `pd.Categorical` would make of `cat`'s values (missing -> `fill`):
    only the categories in use, sorted. Works on the codes: no hashing of every row."""
    codes = cat.codes
    labels = np.empty(len(cat.categories) + 1, dtype=object)
    labels[:-1] = np.asarray(cat.categories, dtype=object)
    labels[-1] = fill  # code -1 (missing) indexes the last label
    used = np.bincount(codes.astype(np.intp) + 1, minlength=len(labels)) > 0  # [missing, *categories]
    used = np.roll(used, -1)  # -> [*categories, missing], the order of `labels`
    kept = sorted({v for v in labels[used] if v is not None})
    position = {v: i for i, v in enumerate(kept)}
    remap = np.array([position.get(v, -1) if v is not None else -1 for v in labels], dtype=np.int64)
    categories = pd.Index(kept, dtype=dtype)
    return pd.Categorical.from_codes(remap[codes], dtype=pd.CategoricalDtype(categories, ordered=False))


def _group_columns(group: Group) -> dict[str, list[Any]]:
    rows = group.rows
    return {name: list(map(itemgetter(i), rows)) for i, name in enumerate(group.fields)}


def _obj(values: Any, n: int) -> pd.Series:
    """An object column (pandas 3 would otherwise infer its `str` dtype, slowly)."""
    if values is None:
        return pd.Series(np.full(n, None, dtype=object), dtype=object, copy=False)
    return pd.Series(values, dtype=object, copy=False)


def _drop_bad(
    frame: pd.DataFrame, bad: np.ndarray, reasons: list[str | None] | np.ndarray, skipped: SkipReport
) -> pd.DataFrame:
    if not bad.any():
        return frame
    for i in np.flatnonzero(bad):
        skipped.add(str(reasons[i]), str(frame["source"].iat[i]), int(frame["line"].iat[i]))
    return frame[~bad].reset_index(drop=True)


def _requests_from_group(
    group: Group, skipped: SkipReport, kinds: dict[str, int], list_keys: set[str]
) -> pd.DataFrame:
    """Type one group's raw rows into the requests frame contract (rows with bad values dropped)."""
    return _requests_frame(request_columns(group), skipped, kinds, list_keys)


def _int64_series(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values, missing.copy())


def _requests_frame(
    cols: RequestColumns, skipped: SkipReport, kinds: dict[str, int], list_keys: set[str]
) -> pd.DataFrame:
    """The requests frame of one group's typed columns (see `request_columns`), bad rows dropped."""
    n = cols.n
    ts, bad_ts = utc_times(list(cols.ts), kinds)
    reason = cols.reasons if cols.reasons is not None else np.full(n, None, dtype=object)
    bad = reason != None  # noqa: E711 - elementwise on an object array
    reason[~bad & bad_ts] = BAD_TIMESTAMP
    bad |= bad_ts
    if cols.status is not None:
        status = _int64_series(*cols.status)
    else:
        status = pd.array([None] * n, dtype="Int64")
    frame = pd.DataFrame(  # copy=False: one block per column, which `compact_requests` relies on
        {
            "ts": ts,
            "request_id": _obj(cols.request_id, n),
            "trace_id": _obj(cols.trace_id, n),
            "model_version": _obj(cols.model_version, n),
            "latency_ms": cols.latency,
            "inference_ms": cols.inference,
            "status": status,
            "error": cols.error,
            "level": _obj(cols.level, n),
            "source": _obj(cols.sources(), n),
            "line": cols.lines,
        },
        copy=False,
    )
    # Keys whose unit is guessed at finish time; no column when none is (the usual case: less memory).
    if cols.latency_guess.any():
        frame["latency_guess"] = _obj(np.where(cols.latency_guess, cols.latency_key, None), n)
    if cols.inference_guess.any():
        frame["inference_guess"] = _obj(np.where(cols.inference_guess, cols.inference_key, None), n)
    list_keys.update(cols.list_keys)
    for key, (values, missing) in cols.attrs.items():
        if missing is not None:
            column = pd.Series(_int64_series(values, missing))
        elif values.dtype == object:
            column = pd.Series(values, dtype=object)
        else:
            column = pd.Series(values)
        frame[key if key not in frame.columns else f"attr.{key}"] = column
    return _drop_bad(frame, bad, reason, skipped)


def _milestones_from_group(group: Group, skipped: SkipReport, kinds: dict[str, int]) -> pd.DataFrame:
    cols = _group_columns(group)
    n = len(group.rows)
    ts, bad = utc_times(list(cols["ts"]) if "ts" in cols else group.outer, kinds)
    names = cols.get("event") or cols.get("stage") or (None,) * n
    frame = pd.DataFrame(
        {
            "ts": ts,
            "request_id": _obj(texts(cols["request_id"]) if "request_id" in cols else None, n),
            "trace_id": _obj(texts(cols["trace_id"]) if "trace_id" in cols else None, n),
            "event": _obj(shared_texts(names), n),
            "model_version": _obj(
                shared_texts(cols["model_version"]) if "model_version" in cols else None, n
            ),
            "source": _obj(group.sources(), n),
            "line": np.asarray(group.lines, dtype=np.int64),
        }
    )
    bad = bad | frame["ts"].isna().to_numpy() | frame["event"].isna().to_numpy()
    return _drop_bad(frame, bad, np.full(n, BAD_TIMESTAMP, dtype=object), skipped)


def _in_log_order(frames: list[pd.DataFrame], order: dict[str, int]) -> pd.DataFrame | None:
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        key = frame["source"].map(order).to_numpy(dtype=np.int64) * (1 << 40) + frame["line"].to_numpy()
        frame = frame.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
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
def resolve_unit_guesses(
    requests: pd.DataFrame,
    guesses: dict[str, dict[str, str]],
    known: dict[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """Give unitless duration keys a unit from their values, and record the reasoning.

    With `known` (a reader that sees the rows chunk by chunk, e.g. `latency --sketch`), a key's unit
    is guessed from the first chunk that has it, stored there, and kept for every later chunk."""
    for col, guess_col in (("latency_ms", "latency_guess"), ("inference_ms", "inference_guess")):
        if guess_col not in requests.columns:
            continue
        keys = requests[guess_col]
        if keys.isna().all():
            continue
        for key, idx in requests.groupby(guess_col, sort=False).groups.items():
            values = requests.loc[idx, col].to_numpy()
            if known is not None and (col, str(key)) in known:
                unit, reason = known[(col, str(key))], "as guessed from earlier rows"
            else:
                sample = values[:: max(1, len(values) // 5000)].tolist()
                unit, reason = guess_duration_unit(sample)
                if known is not None:
                    known[(col, str(key))] = unit
            requests.loc[idx, col] = values * UNIT_FACTORS_MS[unit]
            guesses[col] = {"key": str(key), "unit": unit, "reason": reason}
    return requests.drop(columns=["latency_guess", "inference_guess"], errors="ignore")


def _finish_requests(frame: pd.DataFrame) -> pd.DataFrame:
    frame["model_version"] = _version_category(frame["model_version"])
    frame["source"] = _source_category(frame["source"])
    base = [c for c in REQUEST_BASE_COLUMNS + ("level",) if c in frame.columns]
    rest = [c for c in frame.columns if c not in base]
    return frame[base + rest]


def _empty_milestones() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Series([], dtype=TS_DTYPE),
            **{c: pd.Series([], dtype=object) for c in ("request_id", "trace_id", "event", "model_version")},
            "source": pd.Series([], dtype=object),
            "line": pd.Series([], dtype=np.int64),
        }
    )


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
        missing = ms["model_version"].isna()
        if missing.any():  # the lookup costs a hash of every request id: only when needed
            ms["model_version"] = ms["model_version"].astype(object)  # categorical from the cache
            by_rid = req.dropna(subset=["request_id"]).drop_duplicates("request_id")
            lookup = pd.Series(by_rid["model_version"].astype(object).to_numpy(), index=by_rid["request_id"])
            ms.loc[missing, "model_version"] = ms.loc[missing, "request_id"].map(lookup)
        missing = ms["model_version"].isna()
        if missing.any():
            per_req = ms.groupby("request_id")["model_version"].transform("first")
            ms.loc[missing, "model_version"] = per_req[missing]
    sp = data.spans
    if not sp.empty:
        missing = sp["model_version"].isna()
        if missing.any():
            sp["model_version"] = sp["model_version"].astype(object)  # categorical from the cache
            per_trace = sp.groupby("trace_id")["model_version"].transform("first")
            sp.loc[missing, "model_version"] = per_trace[missing]
    data.milestones["model_version"] = _version_category(ms["model_version"])
    data.spans["model_version"] = _version_category(sp["model_version"])
    for frame in (data.milestones, data.spans):
        frame["source"] = _source_category(frame["source"])


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty
    if len(frames) == 1:
        return frames[0]
    return pd.concat(_shared_categories(frames), ignore_index=True)


def _shared_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Give columns that are categorical in every frame (from the cache) one category list, so that
    `pd.concat` keeps them categorical instead of turning them into slow object columns."""
    first = frames[0]
    columns = [
        c
        for c in first.columns
        if isinstance(first[c].dtype, pd.CategoricalDtype)
        and all(c in f.columns and isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)
    ]
    if not columns:
        return frames
    frames = [f.copy(deep=False) for f in frames]
    for col in columns:
        seen: dict[Any, None] = {}
        for f in frames:
            seen.update(dict.fromkeys(f[col].cat.categories))
        categories = pd.Index(list(seen), dtype=first[col].cat.categories.dtype)
        for f in frames:
            f[col] = f[col].cat.set_categories(categories)
    return frames


def _return_freed_memory() -> None:
    """Hand memory freed in the middle of the heap back to the system (glibc `malloc_trim`): chunk
    columns are small allocations that glibc would otherwise keep, so the peak would not drop."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


class FrameBuilder:
    """Collect batches from a `RecordParser` into frames, chunk by chunk, then finish a `Dataset`."""

    def __init__(self) -> None:
        self._requests: list[pd.DataFrame] = []
        self._milestones: list[pd.DataFrame] = []
        self._spans: list[pd.DataFrame] = []
        self.ts_kinds: dict[str, int] = {}
        self.extra_skips = SkipReport()
        self.list_keys: set[str] = set()

    def absorb(self, other: FrameBuilder) -> None:
        """Append the frames of a later partition (see `engine`), keeping input order."""
        self._requests.extend(other._requests)
        self._milestones.extend(other._milestones)
        self._spans.extend(other._spans)
        for kind, n in other.ts_kinds.items():
            self.ts_kinds[kind] = self.ts_kinds.get(kind, 0) + n
        self.extra_skips.merge(other.extra_skips)
        self.list_keys |= other.list_keys

    def compact_requests(self) -> None:
        """Join the request chunks into one frame column by column, dropping each chunk column once
        copied: memory peaks at the chunks plus one column, not twice the requests (`pd.concat`).

        Chunks are left as they are when their columns or dtypes differ (`finish` concatenates them).
        """
        frames = [f for f in self._requests if len(f)]
        if len(frames) < 2:
            return
        names = list(frames[0].columns)
        dtypes = list(frames[0].dtypes)
        if any(list(f.columns) != names or list(f.dtypes) != dtypes for f in frames):
            return
        joined = {}
        for name in names:
            joined[name] = pd.concat([f[name] for f in frames], ignore_index=True)
            for f in frames:
                del f[name]  # one block per column (see `_requests_frame`): frees it, copies nothing
            _return_freed_memory()
        self._requests = [pd.DataFrame(joined, copy=False)]

    def add(self, batch: Batch) -> None:
        with paused_gc():
            self._add(batch)

    def add_columns(self, pending: ColumnBatches) -> None:
        """Turn the typed request columns of a worker's `ColumnBatches` into frames, batch by batch."""
        skips, kinds = self.extra_skips, self.ts_kinds
        with paused_gc():
            while pending.batches:
                columns, order = pending.batches.pop(0)
                frames = [_requests_frame(c, skips, kinds, self.list_keys) for c in columns]
                req = _in_log_order(frames, order)
                if req is not None:
                    self._requests.append(req)

    def _add(self, batch: Batch) -> None:
        skips, kinds = self.extra_skips, self.ts_kinds
        req = _in_log_order(
            [_requests_from_group(g, skips, kinds, self.list_keys) for g in batch.requests],
            batch.source_order,
        )
        if req is not None:
            self._requests.append(req)
        ms = _in_log_order(
            [_milestones_from_group(g, skips, kinds) for g in batch.milestones], batch.source_order
        )
        if ms is not None:
            self._milestones.append(ms)
        if batch.spans["name"]:
            self._spans.append(_spans_frame(batch, skips, kinds))

    def finish(self, parser: RecordParser) -> Dataset:
        self.add(parser.take())
        skipped = parser.skipped
        skipped.merge(self.extra_skips)
        empty_ms = _empty_milestones()
        empty_sp = _spans_frame(Batch(), SkipReport(), {})
        requests = _concat(self._requests, _empty_requests())
        guesses: dict[str, dict[str, str]] = {}
        requests = resolve_unit_guesses(requests, guesses)
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
            list_keys=sorted(self.list_keys),
        )
        _fill_versions(data)
        return data


def dataset_from_batch(batch: Batch, parser: RecordParser | None = None) -> Dataset:
    """Frames for one batch of events (used by `tail`, which parses incrementally)."""
    builder = FrameBuilder()
    builder.add(batch)
    return builder.finish(parser or RecordParser())


def dataset_from_sources(
    specs: list[str], settings: Settings | None = None, *, keep: frozenset[str] | None = None
) -> Dataset:
    """Read every source, parse it, and build the `Dataset` (streaming, chunked; see `engine`).

    `keep` limits the event kinds stored (`requests`, `milestones`, `spans`): the others are still
    read, checked and counted. Always a fresh read: the cache is used by the CLI's `load_dataset`.
    """
    from mlobs_cli.engine import Need
    from mlobs_cli.engine import dataset_from_sources as read

    return read(specs, settings, Need(kinds=keep), use_cache=False)
