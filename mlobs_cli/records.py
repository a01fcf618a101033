"""Records: raw log lines -> normalized events, grouped by event shape.

`RecordParser` takes raw lines (bytes) source by source and sorts each event into one of three kinds:
request summaries, stage milestones and spans (see docs/DESIGN.md), unwrapping Docker json-file and
Kubernetes CRI envelopes, OTLP JSON batches and the OpenTelemetry SDK's multi-line console spans.
Unparseable input is counted in a `SkipReport` by reason; nothing here prints or raises on input.

Per-line work is minimal by design: the mapping from a line's keys to canonical fields is computed once
per distinct key set (a "plan"), and each line of that shape costs one orjson parse, one dict lookup
and one `itemgetter` call whose tuple is kept raw. Values are typed later, a whole column at a time
(`values`, `frame`).
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from mlobs_cli import otel
from mlobs_cli.schema import FieldOverride, canonical_for_key
from mlobs_cli.values import _one_duration

MAX_EXAMPLES = 5
MAX_MULTILINE_LINES = 100_000
_BOM = b"\xef\xbb\xbf"
_CRI = re.compile(rb"^(\d{4}-\d\d-\d\dT\S+) (stdout|stderr) ([PF]) ?(.*)$", re.DOTALL)
_SCALARS = (str, int, float, bool)
_CONTAINERS = frozenset({"predictions", "attrs", "attributes", "context", "resource", "events"})

# Skip reasons decided while reading lines (stable names: they appear in JSON output and tests).
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TRUNCATED = "truncated_line"
TOO_LONG = "line_too_long"
BAD_TIMESTAMP = "bad_timestamp"
BAD_SPAN = "bad_span"
BAD_MULTILINE = "bad_multiline_json"
TRUNCATED_STREAM = "truncated_stream"

# The canonical fields each kind of event keeps, in the order of the group's tuples.
REQUEST_FIELDS = (
    "ts",
    "request_id",
    "trace_id",
    "model_version",
    "latency_ms",
    "inference_ms",
    "status",
    "error",
    "level",
)
# Kept even when a caller names fewer fields: they decide a summary's validity, version and failure.
REQUIRED_REQUEST_FIELDS = frozenset({"ts", "model_version", "latency_ms", "status", "error", "level"})
MILESTONE_FIELDS = ("ts", "request_id", "trace_id", "event", "stage", "model_version")
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


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of flat, acyclic rows.

    Each collection would walk every row kept so far, making parsing quadratic in practice.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
        """`{"total": N, "by_reason": {reason: N}}`, reasons by count."""
        return {"total": self.total, "by_reason": dict(self.by_reason.most_common())}

    def example_lines(self) -> list[str]:
        return [f"{src}:{line}: {reason}" for src, line, reason in self.examples]

    def summary_line(self, lines: int) -> str:
        """One stderr line: `skipped 12 of 10,240 lines (not_json 9, ...); first at a.log:7`."""
        reasons = ", ".join(f"{r} {n:,}" for r, n in self.by_reason.most_common())
        text = f"skipped {self.total:,} of {lines:,} lines ({reasons})"
        if self.examples:
            src, line, _ = self.examples[0]
            text += f"; first at {src}:{line}"
        if self.notes:
            text += "; " + ", ".join(f"{k} {n:,}" for k, n in self.notes.most_common())
        return text


@dataclass
class Plan:
    """How to read one shape of event (one distinct key set): which key feeds which field."""

    kind: str  # request | milestone | stage | other
    keys: dict[str, str]  # canonical field -> key
    units: dict[str, str | None]  # duration field -> unit (None: guess at frame time)
    attr_keys: tuple[str, ...]
    dict_keys: tuple[str, ...]  # keys holding nested objects: flatten first
    style: str
    special: str | None = None  # docker | otel: an envelope or span export, not a plain event
    group: Group | None = None

    @property
    def fast(self) -> bool:
        """Lines of this shape can take the fast path (no envelope, no nesting, has a time)."""
        return self.group is not None and not self.dict_keys and "ts" in self.keys


class Group:
    """The raw rows of one event shape: a tuple of values per line, its line number and source."""

    __slots__ = ("plan", "fields", "getter", "rows", "lines", "runs", "outer", "last_source")

    def __init__(self, plan: Plan, fields: tuple[str, ...], keys: tuple[str, ...]) -> None:
        self.plan = plan
        self.fields = fields  # names of the tuple's items: canonical fields, then attribute keys
        getter = itemgetter(*keys) if len(keys) > 1 else None
        self.getter = getter if getter is not None else (lambda obj, _k=keys[0]: (obj[_k],))
        self.rows: list[tuple[Any, ...]] = []
        self.lines: list[int] = []
        self.runs: list[tuple[int, str]] = []  # (first row, source) whenever the source changes
        self.outer: list[Any] = []  # envelope times, for shapes that log no time of their own
        self.last_source: str | None = None

    def add(self, obj: dict[str, Any], source: str, line_no: int, outer_ts: Any = None) -> None:
        if source is not self.last_source:
            self.runs.append((len(self.rows), source))
            self.last_source = source
        self.rows.append(self.getter(obj))
        self.lines.append(line_no)
        if "ts" not in self.plan.keys:
            self.outer.append(outer_ts)

    def sources(self) -> list[str]:
        """The source of every row, expanded from the runs."""
        out: list[str] = []
        for i, (start, src) in enumerate(self.runs):
            end = self.runs[i + 1][0] if i + 1 < len(self.runs) else len(self.rows)
            out.extend([src] * (end - start))
        return out

    def take(self) -> Group:
        """A copy holding the rows so far; this group starts empty."""
        taken = Group.__new__(Group)
        taken.plan, taken.fields, taken.getter = self.plan, self.fields, self.getter
        taken.rows, taken.lines, taken.runs, taken.outer = self.rows, self.lines, self.runs, self.outer
        taken.last_source = None
        self.rows, self.lines, self.runs, self.outer = [], [], [], []
        self.last_source = None
        return taken


def _span_columns() -> dict[str, list[Any]]:
    return {n: [] for n in SPAN_COLUMNS}


@dataclass
class Batch:
    """Events parsed since the last `RecordParser.take()`: raw groups of rows, and span columns."""

    requests: list[Group] = field(default_factory=list)
    milestones: list[Group] = field(default_factory=list)
    spans: dict[str, list[Any]] = field(default_factory=_span_columns)
    source_order: dict[str, int] = field(default_factory=dict)


@dataclass
class FieldStats:
    """What `mlobs schema` reports: formats, key -> field mapping use, event kinds, blank lines."""

    formats: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    mapping: dict[str, Counter[tuple[str, str | None]]] = field(default_factory=dict)
    blank_lines: int = 0

    def note_mapping(self, plan: Plan, count: int = 1) -> None:
        for canon, key in plan.keys.items():
            self.mapping.setdefault(canon, Counter())[(key, plan.units.get(canon))] += count

    def merge(self, other: FieldStats) -> None:
        """Add the statistics of a later partition of the input."""
        self.formats.update(other.formats)
        self.events.update(other.events)
        for canon, counts in other.mapping.items():
            self.mapping.setdefault(canon, Counter()).update(counts)
        self.blank_lines += other.blank_lines


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
    """Incremental parser: `feed`/`feed_block` lines, `take()` the events, read `skipped` and `stats`.

    `keep` names the event kinds to keep (`requests`, `milestones`, `spans`); lines of other kinds
    are still parsed, checked and counted, but not stored. `fields` (None: all) names the request
    columns a caller needs: canonical fields and attribute keys; the others are not stored, and the
    base columns that are not kept come out empty (None/NaN) in the frame. The fields that decide
    whether a summary is usable and whether it failed (`REQUIRED_REQUEST_FIELDS`) are always kept.
    """

    def __init__(
        self,
        overrides: dict[str, FieldOverride] | None = None,
        keep: frozenset[str] | None = None,
        fields: frozenset[str] | None = None,
    ) -> None:
        self.overrides = overrides or {}
        self.keep = keep if keep is not None else frozenset({"requests", "milestones", "spans"})
        self.fields = None if fields is None else frozenset(fields) | REQUIRED_REQUEST_FIELDS
        self.skipped = SkipReport()
        self.stats = FieldStats()
        self.lines = 0
        self._plans: dict[tuple[str, ...], Plan] = {}
        self._groups: list[Group] = []
        self._fast: dict[tuple[str, ...], Group] = {}  # key tuple -> group, for fast-path shapes
        self._flat_plans: dict[tuple[str, ...], Plan] = {}  # plans of flattened nested objects
        self._spans = _span_columns()
        self._source_order: dict[str, int] = {}
        self._partial: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._multi: dict[str, list[Any]] = {}

    # ---- public API -------------------------------------------------------------------------
    @property
    def pending_events(self) -> int:
        """Events parsed but not yet taken (to decide when to turn them into frames)."""
        return sum(len(g.rows) for g in self._groups) + len(self._spans["name"])

    def take(self) -> Batch:
        """Return the events accumulated since the last call, and start a new batch."""
        batch = Batch(source_order=dict(self._source_order))
        for group in self._groups:
            if not group.rows:
                continue
            self.stats.note_mapping(group.plan, len(group.rows))
            target = batch.requests if group.plan.kind == "request" else batch.milestones
            target.append(group.take())
        batch.spans, self._spans = self._spans, _span_columns()
        return batch

    def feed(self, source: str, line_no: int, raw: bytes | None) -> None:
        """Parse one raw line (without its newline); `None` means the line was over the size cap."""
        self.lines += 1
        if source not in self._source_order:
            self._source_order[source] = len(self._source_order)
        if raw is None:
            self.skipped.add(TOO_LONG, source, line_no)
            return
        multi = self._multi.get(source)
        if multi is not None:
            self._continue_multiline(source, line_no, raw, multi)
            return
        if raw.startswith(_BOM):
            raw = raw[3:]
        stripped = raw.strip()
        if not stripped:
            self.stats.blank_lines += 1
            return
        first = stripped[:1]
        if first == b"{":
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
        if stripped == b"[":
            self._start_multiline(source, line_no, stripped)
            return
        if first in b'["-0123456789tfn':  # JSON that is not an object is not an event
            try:
                orjson.loads(stripped)
                self.skipped.add(NOT_OBJECT, source, line_no)
                return
            except orjson.JSONDecodeError:
                pass
        self.skipped.add(NOT_JSON, source, line_no)

    def feed_block(self, source: str, first_line_no: int, lines: list[bytes | None]) -> int:
        """Parse a block of consecutive lines; returns the next line number. The fast path."""
        self._feed_numbered(source, enumerate(lines, first_line_no))
        return first_line_no + len(lines)

    def feed_selected(self, source: str, numbered: list[tuple[int, bytes | None]], passed: int) -> None:
        """Parse only the given `(line number, raw line)` pairs of a stretch of input.

        `passed` lines of the stretch were left out by a caller's prefilter (`scan`): they count as
        read, and are neither parsed nor checked.
        """
        self.lines += passed
        self._feed_numbered(source, numbered)

    def _feed_numbered(self, source: str, numbered: Iterable[tuple[int, bytes | None]]) -> None:
        """The per-line loop: one orjson parse, one dict lookup by key tuple, one getter call.

        Lines of a shape already planned and simple (no envelope, no nesting, own time) go straight
        to their group's rows; anything else takes the general path (`feed`, `_feed_dict`).
        """
        if source not in self._source_order:
            self._source_order[source] = len(self._source_order)
        feed = self.feed
        feed_dict = self._feed_dict
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        multi = self._multi
        lanes = {}  # key tuple -> (group, rows.append, lines.append, getter), this call only
        for keys, group in self._fast.items():
            if group.last_source is not source:  # rows from here on come from `source`
                group.runs.append((len(group.rows), source))
                group.last_source = source
            lanes[keys] = (group, group.rows.append, group.lines.append, group.getter, len(group.rows))
        lane_get = lanes.get
        with paused_gc():  # rows kept are flat tuples of scalars: nothing for the collector
            for n, raw in numbered:
                if raw and raw[:1] == b"{" and raw[-1:] == b"}" and source not in multi:
                    try:
                        obj = loads(raw)
                    except decode_error:
                        feed(source, n, raw)
                        continue
                    keys = tuple(obj)
                    lane = lane_get(keys)
                    if lane is not None:
                        lane[1](lane[3](obj))
                        lane[2](n)
                    else:
                        self.lines += 1
                        feed_dict(obj, source, n, None)
                        group = self._fast.get(keys)
                        if group is not None and group.last_source is source:
                            rows = group.rows
                            lanes[keys] = (group, rows.append, group.lines.append, group.getter, len(rows))
                else:
                    feed(source, n, raw)
        events = self.stats.events
        formats = self.stats.formats
        for group, _, _, _, start in lanes.values():
            count = len(group.rows) - start
            plan = group.plan
            events[plan.kind] += count
            formats[plan.style] += count
            self.lines += count

    def in_open_state(self, source: str) -> bool:
        """A multi-line object or a split envelope line of `source` is still open."""
        return source in self._multi or any(k[0] == source for k in self._partial)

    def finish_source(self, source: str, *, truncated: bool = False, line_no: int = 0) -> None:
        """End of a source: flush held partial lines and unfinished multi-line objects as skips."""
        multi = self._multi.pop(source, None)
        if multi is not None:
            self.skipped.add(BAD_MULTILINE, source, multi[0], count=len(multi[1]))
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
        self._multi[source] = [line_no, [stripped], _depth_change(stripped)]

    def _continue_multiline(self, source: str, line_no: int, raw: bytes, state: list[Any]) -> None:
        start, parts, depth = state
        if parts[0] == b"{" and raw.startswith(b'{"') and raw.rstrip().endswith(b"}"):
            # Inside a pretty-printed object every line is a key or a closing brace: a complete
            # object at column 0 means the `{` above was a stray. Count it, read this line normally.
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            if type(obj) is dict:
                del self._multi[source]
                self.skipped.add(BAD_MULTILINE, source, start, count=len(parts))
                self._feed_dict(obj, source, line_no, None)
                return
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
    def _plan_for(self, obj: dict[str, Any]) -> Plan:
        keys = tuple(obj)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._make_plan(obj)
            self._plans[keys] = plan
            if plan.fast and plan.group is not None:
                self._fast[keys] = plan.group
        return plan

    def _flat_plan_for(self, flat: dict[str, Any]) -> Plan:
        """The plan of a flattened object: objects nested deeper than the flatten limit stay values
        (one attribute holding the deep remainder), so the event is kept. Never a fast lane: a raw
        line with these keys may still hold objects to flatten."""
        keys = tuple(flat)
        plan = self._flat_plans.get(keys)
        if plan is None:
            plan = self._make_plan(flat, flattened=True)
            self._flat_plans[keys] = plan
        return plan

    def _make_plan(self, obj: dict[str, Any], flattened: bool = False) -> Plan:
        if otel.is_otlp_traces(obj) or otel.is_otlp_logs(obj) or otel.is_console_span(obj):
            return Plan("other", {}, {}, (), (), "otel", special="otel")
        if "log" in obj and "stream" in obj and isinstance(obj.get("log"), str):
            return Plan("other", {}, {}, (), (), "docker-json-file", special="docker")
        dict_keys = tuple(
            k for k, v in obj.items() if isinstance(v, dict) and k not in _CONTAINERS and not flattened
        )
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
            c: u for c, (_, _, u) in best.items() if c in ("latency_ms", "inference_ms")
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
        plan = Plan(kind, keys, units, attr_keys, dict_keys, _style_of(set(obj)))
        if not dict_keys:
            if kind == "request" and "requests" in self.keep:
                want = self.fields
                fields = tuple(f for f in REQUEST_FIELDS if f in keys and (want is None or f in want))
                attrs = attr_keys if want is None else tuple(k for k in attr_keys if k in want)
                plan.group = Group(plan, fields + attrs, tuple(keys[f] for f in fields) + attrs)
            elif kind == "milestone" and "milestones" in self.keep:
                fields = tuple(f for f in MILESTONE_FIELDS if f in keys)
                plan.group = Group(plan, fields, tuple(keys[f] for f in fields))
            if plan.group is not None:
                self._groups.append(plan.group)
        return plan

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
            plan = self._flat_plan_for(obj)
        if not counted:
            self.stats.formats[plan.style] += 1
        self.stats.events[plan.kind] += 1
        if plan.group is not None:
            plan.group.add(obj, source, line_no, outer_ts)
        elif plan.kind == "stage" and "spans" in self.keep:
            self._add_stage(obj, plan, source, line_no, outer_ts)
        elif plan.kind == "other" and plan.keys:
            self.stats.note_mapping(plan)

    def _add_stage(self, obj: dict[str, Any], plan: Plan, source: str, line_no: int, outer_ts: Any) -> None:
        keys = plan.keys
        g = obj.get
        value, guess, reason = _one_duration(g(keys["latency_ms"]), plan.units.get("latency_ms"))
        if reason is not None:
            self.stats.events["stage"] -= 1
            self.skipped.add(reason, source, line_no)
            return
        ms = value * 1000.0 if guess else value  # unitless stage durations: seconds
        attrs = {k: obj[k] for k in plan.attr_keys if type(obj[k]) in _SCALARS}
        status = g(keys["status"]) if "status" in keys else None
        error = (type(status) is int and status >= 500) or bool(g(keys.get("error", "\0")))
        self._append_span(
            trace_id=_text(g(keys.get("trace_id", "\0"))),
            span_id=_text(g(keys.get("span_id", "\0"))),
            parent=_text(g(keys.get("parent_span_id", "\0"))),
            request_id=_text(g(keys.get("request_id", "\0"))),
            name=str(g(keys["stage"])),
            kind="stage",
            start=None,
            end=g(keys["ts"]) if "ts" in keys else outer_ts,
            duration_ms=ms,
            error=error,
            model_version=_text(g(keys.get("model_version", "\0"))),
            attrs=attrs,
            source=source,
            line_no=line_no,
        )

    def _append_span(self, **kw: Any) -> None:
        cols = self._spans
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
            if "spans" not in self.keep:
                continue
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


def _text(value: Any) -> str | None:
    if value is None or value == "" or type(value) is bool:
        return None
    if type(value) is str:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _first_attr(attrs: dict[str, Any], canon: str) -> str | None:
    best: tuple[int, Any] | None = None
    for key, value in attrs.items():
        hit = canonical_for_key(key)
        if hit is not None and hit[0] == canon and value not in (None, ""):
            if best is None or hit[1] < best[0]:
                best = (hit[1], value)
    if best is None:
        return None
    return _text(best[1])


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
