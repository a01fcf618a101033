"""The critical path of a span tree, computed the way the Jaeger UI computes it.

Non-blocking children (producer/consumer) are dropped with their subtrees; children that overflow
their parent are clamped to it (or dropped when wholly outside); then, from each root: take the
child that finished last, recurse into it, and on return continue from the parent with the child
that finished last before that child started. The parent owns the gaps between chosen children.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

NON_BLOCKING_KINDS = frozenset({"producer", "consumer"})


@dataclass(frozen=True)
class SpanNode:
    """A span reduced to what the critical path needs; times in integer nanoseconds."""

    span_id: str
    parent_id: str | None
    start: int
    end: int
    kind: str = ""


@dataclass(frozen=True)
class Section:
    """A stretch of time [start, end) during which `span_id` was on the critical path."""

    span_id: str
    start: int
    end: int


def _children(nodes: dict[str, SpanNode]) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {sid: [] for sid in nodes}
    for node in nodes.values():
        if node.parent_id is not None and node.parent_id in nodes:
            kids[node.parent_id].append(node.span_id)
    for ids in kids.values():  # Jaeger orders children by start time
        ids.sort(key=lambda c: nodes[c].start)
    return kids


def _roots(nodes: dict[str, SpanNode]) -> list[str]:
    roots = [n.span_id for n in nodes.values() if n.parent_id is None or n.parent_id not in nodes]
    return sorted(roots, key=lambda sid: nodes[sid].start)


def _prune(nodes: dict[str, SpanNode]) -> dict[str, SpanNode]:
    """Drop non-blocking subtrees, clamp overflowing children, drop children outside the parent."""
    kids = _children(nodes)
    kept: dict[str, SpanNode] = {}
    stack = list(reversed(_roots(nodes)))
    while stack:
        sid = stack.pop()
        node = nodes[sid]
        parent = kept.get(node.parent_id) if node.parent_id is not None else None
        if parent is not None:
            if node.kind.lower() in NON_BLOCKING_KINDS:
                continue
            if node.start >= parent.start:
                if node.start >= parent.end:
                    continue
                if node.end > parent.end:
                    node = replace(node, end=parent.end)
            elif node.end <= parent.start:
                continue
            else:
                node = replace(node, start=parent.start, end=min(node.end, parent.end))
        kept[sid] = node
        stack.extend(reversed(kids[sid]))
    return kept


def _last_finishing(kids: list[str], nodes: dict[str, SpanNode], before: int | None) -> str | None:
    best, best_end = None, -1
    for cid in kids:
        end = nodes[cid].end
        if (before is None or end < before) and end > best_end:
            best, best_end = cid, end
    return best


def critical_path(spans: Iterable[SpanNode]) -> list[Section]:
    """Critical-path sections of every root's tree, in Jaeger's order (latest first)."""
    nodes = _prune({s.span_id: s for s in spans})
    kids = _children(nodes)
    sections: list[Section] = []
    for root in _roots(nodes):
        current: str | None = root
        returning: int | None = None
        while current is not None:
            node = nodes[current]
            until = returning if returning is not None else node.end
            lfc = _last_finishing(kids[current], nodes, returning)
            if lfc is not None:
                if nodes[lfc].end != until:
                    sections.append(Section(current, nodes[lfc].end, until))
                current, returning = lfc, None
            else:
                if node.start != until:
                    sections.append(Section(current, node.start, until))
                parent = node.parent_id if node.parent_id in nodes else None
                current, returning = parent, node.start
    return sections


def critical_ms_by_span(sections: Iterable[Section]) -> dict[str, float]:
    """Milliseconds each span spends on the critical path."""
    out: dict[str, float] = {}
    for s in sections:
        out[s.span_id] = out.get(s.span_id, 0.0) + (s.end - s.start) / 1_000_000
    return out
