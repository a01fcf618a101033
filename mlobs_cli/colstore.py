"""Column store: pandas frames <-> files of plain arrays, with no pickle anywhere.

Numbers, booleans and times are `.npy` files (`numpy.save`, loaded with `allow_pickle=False`); text
columns are integer codes into a string table kept as JSON; mixed columns (numbers and strings, span
attribute dicts) are JSON. A column of any other kind raises `UnsupportedColumn` (the caller then
does not cache). Each frame is described by a small JSON-able list of column records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

TS_DTYPE = "datetime64[ns, UTC]"


class UnsupportedColumn(Exception):
    """A column this store cannot write exactly."""


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _json_values(values: list[Any], path: Path) -> dict[str, Any]:
    """Write an object column as JSON; NaN floats (JSON has none) are marked apart."""
    nan = [i for i, v in enumerate(values) if type(v) is float and v != v]
    try:
        data = orjson.dumps(values)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise UnsupportedColumn(str(exc)) from None
    path.write_bytes(data)
    return {"nan": nan}


MAX_TABLE_BYTES = 1024  # longer strings keep a JSON table (a fixed-width array would be huge)


def _sorted_table(values: np.ndarray, base: Path, name: str) -> bool:
    """Write a text column as codes into a sorted array of fixed-width UTF-8 bytes (`.table.npy`),
    which can be memory-mapped and binary-searched (`sorted_table_find`); False (nothing written)
    when a value would not survive it (NUL characters, which numpy strips at the end) or is longer
    than MAX_TABLE_BYTES. UTF-8 bytes sort as the strings do, so numpy sorts them, not Python."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    encoded = [s.encode("utf-8", "surrogatepass") for s in uniques]
    width = max(1, max(map(len, encoded), default=1))
    if width > MAX_TABLE_BYTES or any(b"\x00" in e for e in encoded):
        return False
    table = np.array(encoded, dtype=f"S{width}")
    order = np.argsort(table, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    sorted_codes = np.where(codes >= 0, rank[np.maximum(codes, 0)] if len(rank) else -1, -1)
    _save(base / f"{name}.codes.npy", sorted_codes.astype(np.int32, copy=False))
    _save(base / f"{name}.table.npy", table[order])
    return True


def _object_column(values: np.ndarray, base: Path, name: str, sorted_text: bool = False) -> dict[str, Any]:
    types = set(map(type, values))
    if types <= {str, type(None)} and sorted_text and _sorted_table(values, base, name):
        return {"codec": "sorted_strings"}
    if types <= {str, type(None)}:
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        _save(base / f"{name}.codes.npy", codes.astype(np.int32, copy=False))
        (base / f"{name}.strings.json").write_bytes(orjson.dumps(list(uniques)))
        return {"codec": "strings"}
    if not types <= {str, int, float, bool, type(None), dict, list}:
        raise UnsupportedColumn(f"column {name!r} holds {sorted(t.__name__ for t in types)}")
    info = _json_values(values.tolist(), base / f"{name}.json")
    return {"codec": "json", **info}


def save_frame(
    frame: pd.DataFrame, base: Path, prefix: str, *, sorted_text: bool = False
) -> list[dict[str, Any]]:
    """Write every column of `frame` under `base`; returns the column records for the index file.

    With `sorted_text`, text columns get sorted string arrays where they can (see `_sorted_table`):
    faster to look values up in and to read a few rows of, slower to write."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)
    records: list[dict[str, Any]] = []
    for i, col in enumerate(frame.columns):
        if not isinstance(col, str):
            raise UnsupportedColumn(f"column name {col!r}")
        name = f"{prefix}c{i}"
        series = frame[col]
        dtype = series.dtype
        rec: dict[str, Any] = {"name": col, "file": name}
        if str(dtype) == TS_DTYPE:
            _save(base / f"{name}.npy", series.to_numpy(dtype="datetime64[ns]").view(np.int64))
            rec["codec"] = "ts"
        elif isinstance(dtype, pd.CategoricalDtype):
            _save(base / f"{name}.npy", series.cat.codes.to_numpy())
            rec["codec"] = "category"
            rec["categories"] = _object_column(
                np.asarray(series.cat.categories, dtype=object), base, f"{name}.cat"
            )
        elif str(dtype) == "Int64":
            mask = series.isna().to_numpy()
            _save(base / f"{name}.npy", series.fillna(0).to_numpy(dtype=np.int64))
            _save(base / f"{name}.mask.npy", mask)
            rec["codec"] = "Int64"
        elif dtype == object or str(dtype) == "str":
            rec.update(_object_column(series.to_numpy(dtype=object), base, name, sorted_text))
            rec["str_dtype"] = str(dtype) == "str"
        elif dtype.kind in "biuf":
            _save(base / f"{name}.npy", series.to_numpy())
            rec["codec"] = "npy"
        else:
            raise UnsupportedColumn(f"column {col!r} of dtype {dtype}")
        records.append(rec)
    return records


def _load_object(base: Path, name: str, info: dict[str, Any], rows: np.ndarray | None = None) -> np.ndarray:
    if info["codec"] == "sorted_strings":
        path = base / f"{name}.codes.npy"
        codes = _load(path) if rows is None else _rows_of(path, rows)
        table = np.load(base / f"{name}.table.npy", mmap_mode="r", allow_pickle=False)
        out = np.full(len(codes), None, dtype=object)
        known = codes >= 0
        out[known] = [b.decode("utf-8", "surrogatepass") for b in table[codes[known]].tolist()]
        return out
    if info["codec"] == "strings":
        codes = (
            _load(base / f"{name}.codes.npy") if rows is None else _rows_of(base / f"{name}.codes.npy", rows)
        )
        strings = orjson.loads((base / f"{name}.strings.json").read_bytes())
        table = np.empty(len(strings) + 1, dtype=object)
        table[: len(strings)] = strings
        table[-1] = None  # code -1: missing
        return table[codes]
    values = orjson.loads((base / f"{name}.json").read_bytes())
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    for i in info.get("nan", []):
        arr[i] = float("nan")
    return arr if rows is None else arr[rows]


def _strings_category(base: Path, name: str) -> pd.Categorical:
    """A text column as a categorical straight from its stored codes and string table."""
    codes = _load(base / f"{name}.codes.npy")
    strings = orjson.loads((base / f"{name}.strings.json").read_bytes())
    categories = pd.Index(strings, dtype=object)
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories, ordered=False))


def load_frame(
    records: list[dict[str, Any]],
    length: int,
    base: Path,
    columns: set[str] | None = None,
    as_category: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Read a frame written by `save_frame`; with `columns`, only those (the others are absent).

    Text columns named in `as_category` come back categorical (built from the stored codes, with
    the categories in stored order), for callers that make them categorical anyway."""
    data: dict[str, Any] = {}
    for rec in records:
        col, name, codec = rec["name"], rec["file"], rec["codec"]
        if columns is not None and col not in columns:
            continue
        if codec == "strings" and col in as_category and not rec.get("str_dtype"):
            data[col] = _strings_category(base, name)
            continue
        if codec == "ts":
            ints = _load(base / f"{name}.npy")
            data[col] = pd.Series(pd.DatetimeIndex(ints.view("datetime64[ns]")).tz_localize("UTC"))
        elif codec == "category":
            cats = _load_object(base, f"{name}.cat", rec["categories"])
            codes = _load(base / f"{name}.npy")
            data[col] = pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))
        elif codec == "Int64":
            values = _load(base / f"{name}.npy")
            mask = _load(base / f"{name}.mask.npy")
            data[col] = pd.arrays.IntegerArray(values, mask)
        elif codec == "npy":
            data[col] = _load(base / f"{name}.npy")
        else:
            values = _load_object(base, name, rec)
            data[col] = pd.Series(values, dtype="str" if rec.get("str_dtype") else object, copy=False)
    frame = pd.DataFrame(data, index=pd.RangeIndex(length))
    return frame


def _rows_of(path: Path, rows: np.ndarray) -> np.ndarray:
    """Elements `rows` of a stored array, read through a memory map (only their pages are touched)."""
    try:
        stored = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array cannot be mapped
        stored = _load(path)
    return np.asarray(stored[rows])


def load_rows(records: list[dict[str, Any]], base: Path, rows: np.ndarray) -> pd.DataFrame:
    """Rows `rows` (ascending positions) of a frame written by `save_frame`, every column, same dtypes."""
    data: dict[str, Any] = {}
    for rec in records:
        col, name, codec = rec["name"], rec["file"], rec["codec"]
        if codec == "ts":
            ints = _rows_of(base / f"{name}.npy", rows)
            data[col] = pd.Series(pd.DatetimeIndex(ints.view("datetime64[ns]")).tz_localize("UTC"))
        elif codec == "category":
            cats = _load_object(base, f"{name}.cat", rec["categories"])
            codes = _rows_of(base / f"{name}.npy", rows)
            data[col] = pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))
        elif codec == "Int64":
            values = _rows_of(base / f"{name}.npy", rows)
            mask = _rows_of(base / f"{name}.mask.npy", rows)
            data[col] = pd.arrays.IntegerArray(values, mask)
        elif codec == "npy":
            data[col] = _rows_of(base / f"{name}.npy", rows)
        else:
            values = _load_object(base, name, rec, rows)
            data[col] = pd.Series(values, dtype="str" if rec.get("str_dtype") else object, copy=False)
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def sorted_table_find(table: np.ndarray, prefix: str, *, exact: bool) -> list[tuple[int, str]]:
    """The (code, string) entries of a sorted table (`load_sorted_strings`) equal to `prefix`, or
    with `exact` false, starting with it: a binary search, then a walk along the matches."""
    key = prefix.encode("utf-8", "surrogatepass")
    i = int(np.searchsorted(table, key))
    out = []
    while i < len(table):
        value = bytes(table[i])
        if value == key or (not exact and value.startswith(key)):
            out.append((i, value.decode("utf-8", "surrogatepass")))
            i += 1
            if exact:
                break
        else:
            break
    return out


def load_sorted_strings(
    records: list[dict[str, Any]], base: Path, column: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """A text column's codes (-1: missing) and its sorted string array (memory-mapped), when it was
    stored with `sorted_text`; None otherwise."""
    for rec in records:
        if rec["name"] == column and rec["codec"] == "sorted_strings":
            codes = _load(base / f"{rec['file']}.codes.npy")
            table = np.load(base / f"{rec['file']}.table.npy", mmap_mode="r", allow_pickle=False)
            return codes, table
    return None


_MERGEABLE = frozenset({"ts", "npy", "Int64", "strings", "json"})


def _layout(frame: dict[str, Any]) -> list[tuple[str, str, bool]] | None:
    """What must match for stored frames to be merged: column names, codecs and text dtypes."""
    cols = frame["columns"]
    if not all(c["codec"] in _MERGEABLE for c in cols):
        return None
    return [(c["name"], c["codec"], bool(c.get("str_dtype"))) for c in cols]


def merge_frames(frames: list[dict[str, Any]], base: Path, prefix: str) -> list[dict[str, Any]]:
    """Merge consecutive stored frames (`{"rows", "columns"}`, columns as from `save_frame`) of the
    same layout into one, rewriting their files under `prefix`; frames that differ stay apart.

    A frame read back is then what `pd.concat` of the frames read back gives, with one file per
    column instead of one per column and frame (faster to read). Works column by column: memory
    holds one column of the run at a time."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(frames):
        layout = _layout(frames[i])
        j = i + 1
        while layout is not None and j < len(frames) and _layout(frames[j]) == layout:
            j += 1
        run = frames[i:j]
        merged = _merge_run(run, base, f"{prefix}{len(out)}_") if len(run) > 1 else None
        if merged is None:
            out.extend(run)
        else:
            out.append(merged)
            for frame in run:
                for rec in frame["columns"]:
                    for path in base.glob(f"{rec['file']}.*"):
                        path.unlink()
        i = j
    return out


def _merge_run(run: list[dict[str, Any]], base: Path, prefix: str) -> dict[str, Any] | None:
    """One frame of the run's rows (see `merge_frames`); None when a number column's dtype differs
    between frames (pandas would widen it: left as it is)."""
    written: list[Path] = []
    records = []
    for k, first in enumerate(run[0]["columns"]):
        recs = [frame["columns"][k] for frame in run]
        name, codec = f"{prefix}c{k}", first["codec"]
        rec: dict[str, Any] = {"name": first["name"], "file": name, "codec": codec}
        if codec in ("ts", "npy", "Int64"):
            parts = [_load(base / f"{r['file']}.npy") for r in recs]
            if len({p.dtype for p in parts}) > 1:
                for path in written:
                    path.unlink()
                return None
            written.append(base / f"{name}.npy")
            _save(written[-1], np.concatenate(parts))
            if codec == "Int64":
                written.append(base / f"{name}.mask.npy")
                _save(written[-1], np.concatenate([_load(base / f"{r['file']}.mask.npy") for r in recs]))
        elif codec == "strings":
            table: dict[str, int] = {}
            codes = []
            for r in recs:
                strings = orjson.loads((base / f"{r['file']}.strings.json").read_bytes())
                remap = np.array([table.setdefault(s, len(table)) for s in strings] + [-1], dtype=np.int32)
                codes.append(remap[_load(base / f"{r['file']}.codes.npy")])  # -1 (missing) stays -1
            written += [base / f"{name}.codes.npy", base / f"{name}.strings.json"]
            _save(written[-2], np.concatenate(codes).astype(np.int32, copy=False))
            written[-1].write_bytes(orjson.dumps(list(table)))
            rec["str_dtype"] = bool(first.get("str_dtype"))
        else:  # json
            values: list[Any] = []
            nan: list[int] = []
            for r in recs:
                nan += [len(values) + n for n in r.get("nan", [])]
                values += orjson.loads((base / f"{r['file']}.json").read_bytes())
            written.append(base / f"{name}.json")
            written[-1].write_bytes(orjson.dumps(values))
            rec["nan"] = nan
        records.append(rec)
    return {"rows": sum(frame["rows"] for frame in run), "columns": records}
