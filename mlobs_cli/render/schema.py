"""`mlobs schema` for people: formats, field mapping, events and skips as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.text import Text

from mlobs_cli.render.console import cell, fmt_count, fmt_pct, simple_table

_EVENT_LABELS = {
    "request_summary": "request summaries",
    "stage_event": "stage events",
    "span": "spans",
    "other": "other events",
}


def render_schema(report: dict[str, Any], console: Console) -> None:
    """Print the schema report as a heading, a field table, an events table and the skips."""
    formats = ", ".join(report["formats"]) or "none detected"
    head = Text()
    head.append("Formats: ", style="bold")
    head.append(formats)
    head.append(f"   ({fmt_count(report['lines'])} lines read)", style="dim")
    if report["requests_from"] != "summaries":
        head.append(f"\nRequests rebuilt from {report['requests_from']} (no request summaries)")
    rows = []
    for canon, entry in report["fields"].items():
        unit = entry.get("unit") or ""
        if entry.get("unit_guessed"):
            unit = f"{unit} (guessed: {entry['unit_guessed']})"
        source = entry["source"]
        if entry.get("also_from"):
            source += " (also " + ", ".join(entry["also_from"]) + ")"
        cov = entry.get("coverage")
        rows.append([canon, cell(source), unit, fmt_pct(cov, 1) if cov is not None else "—"])
    fields = simple_table("Fields", ["field", "from key", "unit", "coverage"], rows, numeric=(3,))
    attr_rows = [
        [cell(k), fmt_pct(v, 1) if isinstance(v, float) else cell(v)] for k, v in report["attributes"].items()
    ]
    attrs = simple_table("Attributes of request summaries", ["key", "coverage"], attr_rows, numeric=(1,))
    ev_rows = [[_EVENT_LABELS.get(k, k), fmt_count(v)] for k, v in report["events"].items()]
    events = simple_table("Events", ["kind", "count"], ev_rows, numeric=(1,))
    parts: list[Any] = [head, fields]
    if attr_rows:
        parts.append(attrs)
    parts.append(events)
    skipped = report["skipped"]
    if skipped["total"]:
        sk_rows = [[r, fmt_count(n)] for r, n in skipped["by_reason"].items()]
        parts.append(
            simple_table(
                f"Skipped ({fmt_count(skipped['total'])} lines)",
                ["reason", "lines"],
                sk_rows,
                numeric=(1,),
            )
        )
        ex = Text("First skipped: ", style="bold")
        ex.append("\n".join(cell(e).plain for e in skipped["examples"]))
        parts.append(ex)
    else:
        parts.append(Text("Skipped: nothing", style="green"))
    if skipped.get("notes"):
        parts.append(Text("Repaired: " + ", ".join(f"{k} {v}" for k, v in skipped["notes"].items())))
    parts.extend(_oddities(report))
    console.print(Group(*parts))


def _oddities(report: dict[str, Any]) -> list[Text]:
    """Lines on duplicates and clock oddities, when there are any."""
    out: list[Text] = []
    dups = report.get("duplicates") or {}
    if dups.get("true_duplicates") or dups.get("reused_request_ids") or dups.get("duplicate_stage_events"):
        line = Text("Duplicates: ", style="bold")
        line.append(
            f"{fmt_count(dups['true_duplicates'])} summaries repeat an earlier line (counted once), "
            f"{fmt_count(dups['duplicate_stage_events'])} stage events/spans repeat, "
            f"{fmt_count(dups['reused_request_ids'])} request ids on different summaries"
        )
        examples = dups["examples"]["reused_request_ids"] or dups["examples"]["true_duplicates"]
        if examples:
            line.append(" (e.g. ")
            line.append(cell(", ".join(examples[:3])))
            line.append(")")
        out.append(line)
    clock = report.get("clock") or {}
    if clock.get("out_of_order") or clock.get("in_the_future"):
        line = Text("Clock: ", style="bold")
        line.append(
            f"{fmt_count(clock['out_of_order'])} summaries earlier than the line before, "
            f"{fmt_count(clock['clock_jumps'])} jumps back > 1 s "
            f"(largest {clock['largest_step_back_s']:,.3f} s), "
            f"{fmt_count(clock['in_the_future'])} in the future"
        )
        out.append(line)
    return out
