"""Machine formats: JSON, NDJSON, CSV and Markdown from plain rows (lists of flat dicts).

JSON, NDJSON and CSV values keep their exact content (no sanitizing: those formats are for machines);
Markdown, read by people, shows control characters inert. NaN and missing
values become `null` (JSON) or an empty cell (CSV/Markdown); timestamps become ISO-8601 UTC with `Z`.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from mlobs_cli.terminal import inert_text

_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z


def plain_value(value: Any) -> Any:
    """Turn pandas/numpy scalars, NaN/NaT and timestamps into JSON-ready Python values."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, datetime):  # includes pandas.Timestamp
        try:
            if value != value:  # NaT
                return None
        except TypeError:
            pass
        return iso_utc(value)
    kind = type(value).__module__
    if kind.startswith("numpy"):
        if hasattr(value, "item"):
            return plain_value(value.item())
    if kind.startswith("pandas"):
        # pd.NA, pd.NaT and friends
        try:
            if value != value or str(value) in ("<NA>", "NaT"):
                return None
        except (TypeError, ValueError):
            return None
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if hasattr(value, "tolist"):
        return plain_value(value.tolist())
    return value


def iso_utc(ts: datetime) -> str:
    """ISO-8601 in UTC with a `Z` and millisecond precision (microseconds if present)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc)
    text = ts.replace(tzinfo=None).isoformat(timespec="microseconds")
    if text.endswith("000"):
        text = text[:-3]
    return text + "Z"


def to_json_bytes(obj: Any, *, pretty: bool = False) -> bytes:
    """Serialize `obj` (after `plain_value`) with orjson; pretty prints with two-space indents."""
    opts = _JSON_OPTS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(plain_value(obj), option=opts)


def write_json(obj: Any, *, out: Any = None, pretty: bool = True) -> None:
    """Write one JSON document and a newline to stdout."""
    stream = out or sys.stdout
    stream.write(to_json_bytes(obj, pretty=pretty).decode() + "\n")
    stream.flush()


def write_ndjson(rows: Iterable[Mapping[str, Any]], *, out: Any = None) -> None:
    """Write one compact JSON object per line."""
    stream = out or sys.stdout
    for row in rows:
        stream.write(to_json_bytes(row).decode() + "\n")
    stream.flush()


def _cell(value: Any) -> str:
    value = plain_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    return str(value)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def write_csv(
    rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None, out: Any = None
) -> None:
    """Write rows as RFC 4180 CSV with a header line."""
    stream = out or sys.stdout
    cols = list(columns) if columns is not None else columns_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    stream.write(buf.getvalue())
    stream.flush()


def _md_escape(text: str) -> str:
    # Markdown is read by people (often `cat` in a terminal): control characters are made inert
    # (`\\xNN`), unlike the exact values json/ndjson/csv keep.
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return inert_text(text)


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    formatters: Mapping[str, Any] | None = None,
) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    cols = list(columns) if columns is not None else columns_of(rows)
    fmts = formatters or {}
    numeric = {
        c
        for c in cols
        if rows and all(isinstance(plain_value(r.get(c)), (int, float, type(None))) for r in rows)
    }
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |"]
    lines.append("|" + "|".join("---:" if c in numeric else "---" for c in cols) + "|")
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c)
            text = fmts[c](v) if c in fmts else _cell(v)
            cells.append(_md_escape(text))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
