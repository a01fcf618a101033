"""What mlobs understood of a Dataset: formats, field mapping with units and coverage, event kinds."""

from __future__ import annotations

from typing import Any

from mlobs_cli.frame import UNKNOWN_VERSION, Dataset
from mlobs_cli.records import REQUEST_FIELDS
from mlobs_cli.schema import CANONICAL_FIELDS

# Fields measured on request summaries (REQUEST_FIELDS); the rest (event, stage, span ids) on all events.


def event_counts(data: Dataset) -> dict[str, int]:
    """Events by kind: request summaries, stage events, spans (incl. stage-with-duration), other."""
    return {
        "request_summary": len(data.requests) if data.requests_from == "summaries" else 0,
        "stage_event": len(data.milestones),
        "span": len(data.spans),
        "other": int(data.stats.events.get("other", 0)),
    }


def _request_coverage(data: Dataset, canon: str) -> float | None:
    req = data.requests
    if req.empty or canon not in req.columns:
        return None
    col = req[canon]
    if canon == "model_version":
        present = (col.astype(object) != UNKNOWN_VERSION).sum()
    elif canon == "error":
        present = sum(data.stats.mapping.get("error", {}).values())
    else:
        present = col.notna().sum()
    return round(float(present) / len(req), 6)


def schema_report(data: Dataset) -> dict[str, Any]:
    """The `mlobs schema --format json` document."""
    events = event_counts(data)
    total_events = sum(events.values()) or 1
    fields: dict[str, dict[str, Any]] = {}
    for canon in CANONICAL_FIELDS:
        uses = data.stats.mapping.get(canon)
        if not uses:
            continue
        (key, unit), used = uses.most_common(1)[0]
        entry: dict[str, Any] = {"source": key, "unit": unit}
        if canon == "ts":
            entry["unit"] = (
                "iso8601"
                if data.ts_kinds.get("iso8601", 0) >= data.ts_kinds.get("epoch", 0)
                else "epoch (s/ms/us/ns by magnitude)"
            )
        guess = data.unit_guesses.get(canon)
        if guess is not None and guess["key"] == key:
            entry["unit"] = guess["unit"]
            entry["unit_guessed"] = guess["reason"]
        if canon in REQUEST_FIELDS and data.requests_from == "summaries":
            entry["coverage"] = _request_coverage(data, canon)
        else:
            entry["coverage"] = round(sum(uses.values()) / total_events, 6)
        others = [k for (k, _), _n in uses.most_common()[1:]]
        if others:
            entry["also_from"] = others
        fields[canon] = entry
    if data.requests_from != "summaries" and not data.requests.empty:
        fields.setdefault("latency_ms", {"source": f"({data.requests_from})", "unit": "ms", "coverage": 1.0})
    attrs = {}
    req = data.requests
    known = set(CANONICAL_FIELDS) | {"source", "line", "level"}
    for col in req.columns:
        if col not in known and len(req):
            attrs[col] = round(float(req[col].notna().sum()) / len(req), 6)
    for key in data.list_keys:
        attrs.setdefault(key, "lists or objects: not kept as a column")
    skipped = data.skipped.as_dict()
    skipped["examples"] = data.skipped.example_lines()
    if data.skipped.notes:
        skipped["notes"] = dict(data.skipped.notes)
    return {
        "formats": data.formats,
        "lines": data.lines,
        "requests_from": data.requests_from,
        "fields": fields,
        "attributes": attrs,
        "events": events,
        "skipped": skipped,
    }
