"""Records: raw log lines -> normalized events, accumulated column by column.

`RecordParser` takes raw lines (bytes) source by source and sorts each event into one of three kinds:
request summaries, stage milestones and spans (see docs/DESIGN.md), unwrapping Docker json-file and
Kubernetes CRI envelopes, OTLP JSON batches and the OpenTelemetry SDK's multi-line console spans on the
way. Anything unusable is counted in a `SkipReport` by reason; nothing here prints or raises on input.
Per-line work is kept small: the mapping from a line's keys to canonical fields is computed once per
distinct key set (a "plan") and reused; timestamps and unit guesses are resolved later, vectorized, by
`frame`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from mlobs_cli import otel
from mlobs_cli.schema import (
    UNIT_FACTORS_MS,
    FieldOverride,
    canonical_for_key,
    duration_from_text,
)

MAX_EXAMPLES = 5
MAX_MULTILINE_LINES = 100_000
_BOM = b"\xef\xbb\xbf"
_CRI = re.compile(rb"^(\d{4}-\d\d-\d\dT\S+) (stdout|stderr) ([PF]) ?(.*)$", re.DOTALL)
_SCALARS = (str, int, float, bool)
_ERROR_LEVELS = frozenset({"error", "err", "critical", "fatal", "crit", "alert", "emergency", "severe"})
_ERROR_WORDS = frozenset({"error", "err", "fail", "failed", "failure", "exception", "timeout"})
_OK_WORDS = frozenset({"ok", "success", "succeeded", "done", "completed"})
_CONTAINERS = frozenset({"predictions", "attrs", "attributes", "context", "resource", "events"})

# Skip reasons (stable names: they appear in JSON output and tests).
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TRUNCATED = "truncated_line"
TOO_LONG = "line_too_long"
BAD_LATENCY = "bad_latency"
NEGATIVE_LATENCY = "negative_latency"
MISSING_LATENCY = "missing_latency"
BAD_TIMESTAMP = "bad_timestamp"
BAD_SPAN = "bad_span"
BAD_MULTILINE = "bad_multiline_json"
TRUNCATED_STREAM = "truncated_stream"


class SkipReport:
    """Counts of skipped input by reason, with the first few places as `path:line: reason`."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()
        self.examples: list[tuple[str, int, str]] = []
        self.notes: Counter[str] = Counter()  # repaired, not skipped (e.g. invalid UTF-8 replaced)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, reason: str, source: str, line: int, count: int = 1) -> None:
        self.by_reason[reason] += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((source, line, reason))

    def merge(self, other: SkipReport) -> None:
        self.by_reason.update(other.by_reason)
        self.notes.update(other.notes)
        for ex in other.examples:
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(ex)

    def as_dict(self) -> dict[str, Any]:
        """`{"total": N, "by_reason": {reason: N}}`, reasons sorted by count."""
        return {"total": self.total, "by_reason": dict(self.by_reason.most_common())}

    def example_lines(self) -> list[str]:
        return [f"{src}:{line}: {reason}" for src, line, reason in self.examples]

    def summary_line(self, lines: int) -> str:
        """One stderr line: `skipped 12 of 10,240 lines (not_json 9, bad_latency 3); first at a.log:7`."""
        reasons = ", ".join(f"{r} {n:,}" for r, n in self.by_reason.most_common())
        text = f"skipped {self.total:,} of {lines:,} lines ({reasons})"
        if self.examples:
            src, line, _ = self.examples[0]
            text += f"; first at {src}:{line}"
        if self.notes:
            text += "; " + ", ".join(f"{k} {n:,}" for k, n in self.notes.most_common())
        return text


@dataclass
class _Plan:
    """How to read one shape of event (one distinct key set): which key feeds which field."""

    kind: str  # request | milestone | stage | other
    keys: dict[str, str]  # canonical field -> key
    units: dict[str, str | None]  # duration field -> unit (None: guess at frame time)
    attr_keys: tuple[str, ...]
    dict_keys: tuple[str, ...]  # keys holding nested objects: flatten first
    style: str
    special: str | None = None  # docker | otel: an envelope or span export, not a plain event


def _columns(*names: str) -> dict[str, list[Any]]:
    return {n: [] for n in names}


REQUEST_COLUMNS = (
    "ts",
    "request_id",
    "trace_id",
    "model_version",
    "latency_ms",
    "latency_guess",
    "inference_ms",
    "inference_guess",
    "status",
    "error",
    "level",
    "source",
    "line",
)
MILESTONE_COLUMNS = ("ts", "request_id", "trace_id", "event", "model_version", "source", "line")
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "request_id",
    "name",
    "kind",
    "start",
    "end",
    "duration_ms",
    "error",
    "model_version",
    "attrs",
    "source",
    "line",
)


@dataclass
class Batch:
    """Events parsed since the last `RecordParser.take()`, as lists per column."""

    requests: dict[str, list[Any]] = field(default_factory=lambda: _columns(*REQUEST_COLUMNS))
    request_attrs: dict[str, tuple[list[int], list[Any]]] = field(default_factory=dict)
    milestones: dict[str, list[Any]] = field(default_factory=lambda: _columns(*MILESTONE_COLUMNS))
    spans: dict[str, list[Any]] = field(default_factory=lambda: _columns(*SPAN_COLUMNS))
    n_requests: int = 0


@dataclass
class FieldStats:
    """What `mlobs schema` reports: formats, key -> field mapping use, event kinds, blank lines."""

    formats: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    mapping: dict[str, Counter[tuple[str, str | None]]] = field(default_factory=dict)
    blank_lines: int = 0

    def note_mapping(self, plan: _Plan, count: int = 1) -> None:
        for canon, key in plan.keys.items():
            self.mapping.setdefault(canon, Counter())[(key, plan.units.get(canon))] += count


def _flatten(obj: dict[str, Any], prefix: str = "", depth: int = 0, out: dict | None = None) -> dict:
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 4 and key not in _CONTAINERS:
            _flatten(value, name + ".", depth + 1, out)
        else:
            out[name] = value
    return out


def _style_of(keys: set[str]) -> str:
    if "asctime" in keys or "levelname" in keys:
        return "python-json-logger"
    if "event" in keys and "timestamp" in keys:
        return "structlog"
    return "json-lines"


class RecordParser:
    """Incremental parser: `feed`/`feed_block` lines, `take()` the events, read `skipped` and `stats`."""

    def __init__(self, overrides: dict[str, FieldOverride] | None = None) -> None:
        self.overrides = overrides or {}
        self.skipped = SkipReport()
        self.stats = FieldStats()
        self.lines = 0
        self._batch = Batch()
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._plan_use: Counter[int] = Counter()
        self._plan_by_id: dict[int, _Plan] = {}
        self._partial: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._multi: dict[str, list[Any]] = {}

    # ---- public API -------------------------------------------------------------------------
    @property
    def pending_events(self) -> int:
        """Request summaries and milestones parsed but not yet taken (to decide when to chunk)."""
        return self._batch.n_requests + len(self._batch.milestones["event"]) + len(self._batch.spans["name"])

    def take(self) -> Batch:
        """Return the events accumulated since the last call, and start a new batch."""
        self._fold_plan_use()
        batch, self._batch = self._batch, Batch()
        return batch

    def feed(self, source: str, line_no: int, raw: bytes | None) -> None:
        """Parse one raw line (without its newline); `None` means the line was over the size cap."""
        self.lines += 1
        if raw is None:
            self.skipped.add(TOO_LONG, source, line_no)
            return
        multi = self._multi.get(source)
        if multi is not None:
            self._continue_multiline(source, line_no, raw, multi)
            return
        if raw.startswith(_BOM):
            raw = raw[3:]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        stripped = raw.strip()
        if not stripped:
            self.stats.blank_lines += 1
            return
        if stripped[:1] == b"{":
            try:
                obj = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                self._not_json(source, line_no, stripped)
                return
            if type(obj) is dict:
                self._feed_dict(obj, source, line_no, None)
            else:
                self.skipped.add(NOT_OBJECT, source, line_no)
            return
        cri = _CRI.match(stripped)
        if cri is not None:
            self._feed_cri(source, line_no, cri)
            return
        if stripped[:1] == b"[":
            if stripped == b"[":
                self._start_multiline(source, line_no, stripped)
                return
            try:
                orjson.loads(stripped)
                self.skipped.add(NOT_OBJECT, source, line_no)
            except orjson.JSONDecodeError:
                self.skipped.add(NOT_JSON, source, line_no)
            return
        if stripped[:1] in b'"-0123456789tfn':  # a JSON scalar is JSON, but not an event
            try:
                orjson.loads(stripped)
                self.skipped.add(NOT_OBJECT, source, line_no)
                return
            except orjson.JSONDecodeError:
                pass
        self.skipped.add(NOT_JSON, source, line_no)

    def feed_block(self, source: str, first_line_no: int, lines: list[bytes | None]) -> int:
        """Parse a block of consecutive lines; returns the next line number. The fast path."""
        feed = self.feed
        loads = orjson.loads
        feed_dict = self._feed_dict
        n = first_line_no
        for raw in lines:
            # Fast path: a plain JSON object line with nothing to strip.
            if raw and raw[:1] == b"{" and raw[-1:] == b"}" and source not in self._multi:
                try:
                    obj = loads(raw)
                except orjson.JSONDecodeError:
                    feed(source, n, raw)
                    n += 1
                    continue
                self.lines += 1
                feed_dict(obj, source, n, None)
            else:
                feed(source, n, raw)
            n += 1
        return n

    def finish_source(self, source: str, *, truncated: bool = False, line_no: int = 0) -> None:
        """End of a source: flush held partial lines and unfinished multi-line objects as skips."""
        multi = self._multi.pop(source, None)
        if multi is not None:
            self.skipped.add(BAD_MULTILINE, source, multi[0])
        for key in [k for k in self._partial if k[0] == source]:
            start, _ = self._partial.pop(key)
            self.skipped.add(TRUNCATED, source, start)
        if truncated:
            self.skipped.add(TRUNCATED_STREAM, source, line_no)

    # ---- envelopes --------------------------------------------------------------------------
    def _not_json(self, source: str, line_no: int, stripped: bytes) -> None:
        if stripped == b"{":
            self._start_multiline(source, line_no, stripped)
            return
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError:
            repaired = stripped.decode("utf-8", "replace")
            try:
                obj = orjson.loads(repaired)
            except orjson.JSONDecodeError:
                self.skipped.add(NOT_JSON, source, line_no)
                return
            if type(obj) is dict:
                self.skipped.notes["invalid_utf8_repaired"] += 1
                self._feed_dict(obj, source, line_no, None)
            else:
                self.skipped.add(NOT_OBJECT, source, line_no)
            return
        # A JSON object cut short (e.g. the last line of a file still being written).
        self.skipped.add(TRUNCATED if text.count("{") > text.count("}") else NOT_JSON, source, line_no)

    def _feed_inner(self, source: str, line_no: int, inner: bytes, outer_ts: Any, fmt: str) -> None:
        self.stats.formats[fmt] += 1
        stripped = inner.strip()
        if not stripped:
            self.stats.blank_lines += 1
            return
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            try:
                obj = orjson.loads(stripped.decode("utf-8", "replace"))
                self.skipped.notes["invalid_utf8_repaired"] += 1
            except (orjson.JSONDecodeError, UnicodeDecodeError):
                self.skipped.add(NOT_JSON, source, line_no)
                return
        if type(obj) is not dict:
            self.skipped.add(NOT_OBJECT, source, line_no)
            return
        self._feed_dict(obj, source, line_no, outer_ts, counted=True)

    def _feed_docker(self, obj: dict[str, Any], source: str, line_no: int) -> None:
        log = obj.get("log")
        if not isinstance(log, str):
            self.skipped.add(NOT_JSON, source, line_no)
            return
        key = (source, str(obj.get("stream")))
        data = log.encode("utf-8", "surrogatepass")
        held = self._partial.pop(key, None)
        start = line_no
        if held is not None:
            start, prefix = held
            data = prefix + data
        if not data.endswith(b"\n"):  # Docker split a long line: the rest follows
            self._partial[key] = (start, data)
            return
        self._feed_inner(source, start, data, obj.get("time"), "docker-json-file")

    def _feed_cri(self, source: str, line_no: int, match: re.Match[bytes]) -> None:
        ts, stream, tag, content = match.groups()
        key = (source, stream.decode())
        held = self._partial.pop(key, None)
        start = line_no
        if held is not None:
            start, prefix = held
            content = prefix + content
        if tag == b"P":
            self._partial[key] = (start, content)
            return
        self._feed_inner(source, start, content, ts.decode(), "cri")

    # ---- multi-line JSON (ConsoleSpanExporter, pretty-printed OTLP documents) ---------------
    def _start_multiline(self, source: str, line_no: int, stripped: bytes) -> None:
        self._multi[source] = [line_no, [stripped], 0]
        self._multi[source][2] = _depth_change(stripped)

    def _continue_multiline(self, source: str, line_no: int, raw: bytes, state: list[Any]) -> None:
        start, parts, depth = state
        parts.append(raw)
        depth += _depth_change(raw)
        state[2] = depth
        if depth > 0 and len(parts) < MAX_MULTILINE_LINES:
            return
        del self._multi[source]
        text = b"\n".join(parts)
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:
                obj = orjson.loads(text.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                self.skipped.add(BAD_MULTILINE, source, start, count=len(parts))
                return
        self.lines -= len(parts) - 1  # a multi-line object counts as one record
        if type(obj) is dict:
            self._feed_dict(obj, source, start, None)
        elif type(obj) is list:
            for item in obj:
                if type(item) is dict:
                    self._feed_dict(item, source, start, None)
        else:
            self.skipped.add(NOT_OBJECT, source, start)

    # ---- events -----------------------------------------------------------------------------
    def _plan_for(self, obj: dict[str, Any]) -> _Plan:
        keys = tuple(obj)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._make_plan(obj)
            self._plans[keys] = plan
            self._plan_by_id[id(plan)] = plan
        return plan

    def _make_plan(self, obj: dict[str, Any]) -> _Plan:
        if otel.is_otlp_traces(obj) or otel.is_otlp_logs(obj) or otel.is_console_span(obj):
            return _Plan("other", {}, {}, (), (), "otel", special="otel")
        if "log" in obj and "stream" in obj and isinstance(obj.get("log"), str):
            return _Plan("other", {}, {}, (), (), "docker-json-file", special="docker")
        dict_keys = tuple(k for k, v in obj.items() if isinstance(v, dict) and k not in _CONTAINERS)
        best: dict[str, tuple[int, str, str | None]] = {}
        for key in obj:
            hit = canonical_for_key(key)
            if hit is None:
                continue
            canon, prio, unit = hit
            if canon not in best or prio < best[canon][0]:
                best[canon] = (prio, key, unit)
        keys = {canon: key for canon, (_, key, _) in best.items()}
        units: dict[str, str | None] = {
            canon: unit for canon, (_, _, unit) in best.items() if canon in ("latency_ms", "inference_ms")
        }
        for ov in self.overrides.values():
            if ov.key in obj:
                keys[ov.canon] = ov.key
                if ov.canon in ("latency_ms", "inference_ms"):
                    units[ov.canon] = ov.unit or units.get(ov.canon)
        used = set(keys.values())
        attr_keys = tuple(k for k in obj if k not in used and k not in dict_keys)
        has_id = "request_id" in keys or "trace_id" in keys
        if "stage" in keys and "latency_ms" in keys:
            kind = "stage"
        elif "latency_ms" in keys:
            kind = "request"
        elif has_id and ("event" in keys or "stage" in keys):
            kind = "milestone"
        else:
            kind = "other"
        return _Plan(kind, keys, units, attr_keys, dict_keys, _style_of(set(obj)))

    def _feed_dict(
        self, obj: dict[str, Any], source: str, line_no: int, outer_ts: Any, counted: bool = False
    ) -> None:
        plan = self._plan_for(obj)
        if plan.special:
            if plan.special == "docker":
                self._feed_docker(obj, source, line_no)
            else:
                self._feed_otel(obj, source, line_no)
            return
        if plan.dict_keys:
            obj = _flatten(obj)
            plan = self._plan_for(obj)
        if not counted:
            self.stats.formats[plan.style] += 1
        self._plan_use[id(plan)] += 1
        kind = plan.kind
        self.stats.events[kind] += 1
        if kind == "request":
            self._add_request(obj, plan, source, line_no, outer_ts)
        elif kind == "milestone":
            self._add_milestone(obj, plan, source, line_no, outer_ts)
        elif kind == "stage":
            self._add_stage(obj, plan, source, line_no, outer_ts)

    def _duration(
        self, value: Any, unit: str | None, source: str, line_no: int
    ) -> tuple[float, str | None] | None:
        """(value in ms or raw, unit-guess marker) or None when the line must be skipped."""
        if type(value) is str:
            parsed = duration_from_text(value)
            if parsed is None:
                self.skipped.add(BAD_LATENCY, source, line_no)
                return None
            value, text_unit = parsed
            unit = text_unit or unit
        elif value is None:
            self.skipped.add(MISSING_LATENCY, source, line_no)
            return None
        elif type(value) is bool or not isinstance(value, (int, float)):
            self.skipped.add(BAD_LATENCY, source, line_no)
            return None
        value = float(value)
        if value < 0 or value != value or value in (float("inf"), float("-inf")):
            self.skipped.add(NEGATIVE_LATENCY if value < 0 else BAD_LATENCY, source, line_no)
            return None
        if unit is None:
            return value, "?"
        return value * UNIT_FACTORS_MS[unit], None

    def _add_request(
        self, obj: dict[str, Any], plan: _Plan, source: str, line_no: int, outer_ts: Any
    ) -> None:
        keys = plan.keys
        lat_key = keys["latency_ms"]
        lat = self._duration(obj.get(lat_key), plan.units.get("latency_ms"), source, line_no)
        if lat is None:
            self.stats.events["request"] -= 1
            return
        inf_ms, inf_guess = None, None
        inf_key = keys.get("inference_ms")
        if inf_key is not None:
            raw_inf = obj.get(inf_key)
            if raw_inf is not None:
                parsed = self._duration_quiet(raw_inf, plan.units.get("inference_ms"))
                if parsed is not None:
                    inf_ms, inf_guess = parsed
        g = obj.get
        status_key = keys.get("status")
        status, status_error = _status_of(g(status_key)) if status_key else (None, None)
        err_key = keys.get("error")
        level_key = keys.get("level")
        level = g(level_key) if level_key else None
        error = bool(status_error) or (status is not None and status >= 500)
        if err_key is not None and _is_error_marker(g(err_key)):
            error = True
        if type(level) is str and level.lower() in _ERROR_LEVELS:
            error = True
        cols = self._batch.requests
        ts_key = keys.get("ts")
        cols["ts"].append(g(ts_key) if ts_key else outer_ts)
        cols["request_id"].append(_id_text(g(keys["request_id"])) if "request_id" in keys else None)
        cols["trace_id"].append(_id_text(g(keys["trace_id"])) if "trace_id" in keys else None)
        cols["model_version"].append(
            _version_text(g(keys["model_version"])) if "model_version" in keys else None
        )
        cols["latency_ms"].append(lat[0])
        cols["latency_guess"].append(lat_key if lat[1] else None)
        cols["inference_ms"].append(inf_ms)
        cols["inference_guess"].append(inf_key if inf_guess else None)
        cols["status"].append(status)
        cols["error"].append(error)
        cols["level"].append(level if type(level) is str else None)
        cols["source"].append(source)
        cols["line"].append(line_no)
        row = self._batch.n_requests
        self._batch.n_requests = row + 1
        attrs = self._batch.request_attrs
        for key in plan.attr_keys:
            value = obj[key]
            if type(value) in _SCALARS:
                slot = attrs.get(key)
                if slot is None:
                    slot = attrs[key] = ([], [])
                slot[0].append(row)
                slot[1].append(value)

    def _duration_quiet(self, value: Any, unit: str | None) -> tuple[float, str | None] | None:
        if type(value) is str:
            parsed = duration_from_text(value)
            if parsed is None:
                return None
            value, text_unit = parsed
            unit = text_unit or unit
        if type(value) is bool or not isinstance(value, (int, float)):
            return None
        value = float(value)
        if value < 0 or value != value:
            return None
        if unit is None:
            return value, "?"
        return value * UNIT_FACTORS_MS[unit], None

    def _add_milestone(
        self, obj: dict[str, Any], plan: _Plan, source: str, line_no: int, outer_ts: Any
    ) -> None:
        keys = plan.keys
        g = obj.get
        name = g(keys["event"]) if "event" in keys else g(keys["stage"])
        if name is None:
            self.stats.events["milestone"] -= 1
            self.stats.events["other"] += 1
            return
        cols = self._batch.milestones
        ts_key = keys.get("ts")
        cols["ts"].append(g(ts_key) if ts_key else outer_ts)
        cols["request_id"].append(_id_text(g(keys["request_id"])) if "request_id" in keys else None)
        cols["trace_id"].append(_id_text(g(keys["trace_id"])) if "trace_id" in keys else None)
        cols["event"].append(str(name))
        cols["model_version"].append(
            _version_text(g(keys["model_version"])) if "model_version" in keys else None
        )
        cols["source"].append(source)
        cols["line"].append(line_no)

    def _add_stage(self, obj: dict[str, Any], plan: _Plan, source: str, line_no: int, outer_ts: Any) -> None:
        keys = plan.keys
        g = obj.get
        dur = self._duration(g(keys["latency_ms"]), plan.units.get("latency_ms"), source, line_no)
        if dur is None:
            self.stats.events["stage"] -= 1
            return
        ms = dur[0] if dur[1] is None else dur[0] * 1000.0  # unitless stage durations: seconds
        ts_key = keys.get("ts")
        end = g(ts_key) if ts_key else outer_ts
        attrs = {k: obj[k] for k in plan.attr_keys if type(obj[k]) in _SCALARS}
        status_key = keys.get("status")
        status, status_error = _status_of(g(status_key)) if status_key else (None, None)
        error = bool(status_error) or (status is not None and status >= 500)
        if "error" in keys and _is_error_marker(g(keys["error"])):
            error = True
        self._append_span(
            trace_id=_id_text(g(keys["trace_id"])) if "trace_id" in keys else None,
            span_id=_id_text(g(keys["span_id"])) if "span_id" in keys else None,
            parent=_id_text(g(keys["parent_span_id"])) if "parent_span_id" in keys else None,
            request_id=_id_text(g(keys["request_id"])) if "request_id" in keys else None,
            name=str(g(keys["stage"])),
            kind="stage",
            start=None,
            end=end,
            duration_ms=ms,
            error=error,
            model_version=_version_text(g(keys["model_version"])) if "model_version" in keys else None,
            attrs=attrs,
            source=source,
            line_no=line_no,
        )

    def _append_span(self, **kw: Any) -> None:
        cols = self._batch.spans
        cols["trace_id"].append(kw["trace_id"])
        cols["span_id"].append(kw["span_id"])
        cols["parent_span_id"].append(kw["parent"])
        cols["request_id"].append(kw["request_id"])
        cols["name"].append(kw["name"])
        cols["kind"].append(kw["kind"])
        cols["start"].append(kw["start"])
        cols["end"].append(kw["end"])
        cols["duration_ms"].append(kw["duration_ms"])
        cols["error"].append(kw["error"])
        cols["model_version"].append(kw["model_version"])
        cols["attrs"].append(kw["attrs"])
        cols["source"].append(kw["source"])
        cols["line"].append(kw["line_no"])

    def _feed_otel(self, obj: dict[str, Any], source: str, line_no: int) -> None:
        if otel.is_otlp_logs(obj):
            self.stats.formats["otlp-json-logs"] += 1
            for event in otel.records_from_otlp_logs(obj):
                self._feed_dict(_flatten(event), source, line_no, None, counted=True)
            return
        if otel.is_otlp_traces(obj):
            self.stats.formats["otlp-json"] += 1
            spans = list(otel.spans_from_otlp(obj))
        else:
            self.stats.formats["otel-console"] += 1
            spans = [otel.span_from_console(obj)]
        if not spans:
            self.skipped.add(BAD_SPAN, source, line_no)
        for span in spans:
            if not span["span_id"] or not span["trace_id"] or span["start"] is None or span["end"] is None:
                self.skipped.add(BAD_SPAN, source, line_no)
                continue
            self.stats.events["span"] += 1
            attrs = span["attrs"]
            self._append_span(
                trace_id=span["trace_id"],
                span_id=span["span_id"],
                parent=span["parent_span_id"],
                request_id=_first_attr(attrs, "request_id"),
                name=str(span["name"]),
                kind=span["kind"],
                start=span["start"],
                end=span["end"],
                duration_ms=None,
                error=bool(span["error"]) or _span_status_error(attrs),
                model_version=_first_attr(attrs, "model_version"),
                attrs=attrs,
                source=source,
                line_no=line_no,
            )

    def _fold_plan_use(self) -> None:
        for plan_id, count in self._plan_use.items():
            plan = self._plan_by_id[plan_id]
            if plan.kind != "other":
                self.stats.note_mapping(plan, count)
        self._plan_use.clear()


def _first_attr(attrs: dict[str, Any], canon: str) -> str | None:
    best: tuple[int, Any] | None = None
    for key, value in attrs.items():
        hit = canonical_for_key(key)
        if hit is not None and hit[0] == canon and value not in (None, ""):
            if best is None or hit[1] < best[0]:
                best = (hit[1], value)
    if best is None:
        return None
    return _version_text(best[1]) if canon == "model_version" else _id_text(best[1])


def _span_status_error(attrs: dict[str, Any]) -> bool:
    for key in ("http.response.status_code", "http.status_code"):
        value = attrs.get(key)
        if isinstance(value, int) and value >= 500:
            return True
    return False


def _depth_change(line: bytes) -> int:
    """Net `{`/`[` nesting change of a line, ignoring brackets inside JSON strings."""
    if b'"' not in line:
        return line.count(b"{") + line.count(b"[") - line.count(b"}") - line.count(b"]")
    depth = 0
    in_str = False
    escape = False
    for ch in line:
        if in_str:
            if escape:
                escape = False
            elif ch == 0x5C:  # backslash
                escape = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x7B, 0x5B):
            depth += 1
        elif ch in (0x7D, 0x5D):
            depth -= 1
    return depth


def _id_text(value: Any) -> str | None:
    if value is None or value == "" or type(value) is bool:
        return None
    if type(value) is str:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _version_text(value: Any) -> str | None:
    if value is None or value == "" or type(value) is bool:
        return None
    if type(value) is str:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _status_of(value: Any) -> tuple[int | None, bool | None]:
    """(HTTP-like code or None, error flag from a word status or None)."""
    if type(value) is int:
        return value, None
    if type(value) is float and value.is_integer():
        return int(value), None
    if type(value) is str:
        text = value.strip().lower()
        if text.isdigit():
            return int(text), None
        if text in _OK_WORDS:
            return None, False
        if text in _ERROR_WORDS or text.startswith(("error", "fail")):
            return None, True
    return None, None


def _is_error_marker(value: Any) -> bool:
    if value is None or value is False or value == "" or value == 0:
        return False
    if type(value) is str and value.strip().lower() in ("none", "null", "false", "no", "0"):
        return False
    return True
