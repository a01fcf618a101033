"""Timelines: milestone stages, span self time, Jaeger critical path, vectorized stage durations,
and one request's waterfall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.critical_path import Section, SpanNode, critical_path
from mlobs_cli.analysis.lookup import find_request
from mlobs_cli.analysis.timeline import (
    milestone_stages,
    percentile_rank,
    span_self_ms,
    stage_durations,
    stage_medians,
    stage_name,
)
from mlobs_cli.analysis.waterfall import timeline_for
from mlobs_cli.errors import NotFoundError
from tests._frames import (
    at,
    empty_milestones,
    empty_requests,
    empty_spans,
    milestones_frame,
    requests_frame,
    spans_frame,
)

MS = 1_000_000


def node(sid: str, parent: str | None, start: float, end: float, kind: str = "") -> SpanNode:
    return SpanNode(sid, parent, int(start * MS), int(end * MS), kind)


def sections(*spans: SpanNode) -> list[tuple[str, float, float]]:
    return [(s.span_id, s.start / MS, s.end / MS) for s in critical_path(spans)]


# --- stage names ------------------------------------------------------------------------------


def test_documented_pairs_and_unknown_pairs() -> None:
    assert stage_name("request_received", "features_fetched") == "feature fetch"
    assert stage_name("features_fetched", "inference_done") == "inference"
    assert stage_name("features_fetched", "inference_failed") == "inference"
    assert stage_name("inference_done", "response_sent") == "response"
    assert stage_name("cache_hit", "response_sent") == "cache_hit -> response_sent"


# --- milestone stages -------------------------------------------------------------------------


def _milestones(rid: str, version: str, times: dict[str, float], **kw: object) -> list[dict]:
    return [
        {"ts": at(t), "request_id": rid, "event": ev, "model_version": version, **kw}
        for ev, t in times.items()
    ]


def test_milestone_stages_out_of_order_lines_and_several_requests() -> None:
    rows = _milestones("r1", "v1", {"request_received": 0, "features_fetched": 2.5,
                                    "inference_done": 12.5, "response_sent": 13.0})  # fmt: skip
    rows += _milestones("r2", "v2", {"request_received": 1, "features_fetched": 64.1,
                                     "inference_failed": 70.0})  # fmt: skip
    rows.reverse()  # lines arrive in any order; time decides
    st_ = milestone_stages(milestones_frame(rows))
    r1 = st_[st_["request_id"] == "r1"]
    assert r1["stage"].tolist() == ["feature fetch", "inference", "response"]
    assert r1["duration_ms"].tolist() == pytest.approx([2.5, 10.0, 0.5])
    assert r1["error"].tolist() == [False, False, False]
    r2 = st_[st_["request_id"] == "r2"]
    assert r2["stage"].tolist() == ["feature fetch", "inference"]
    assert r2["duration_ms"].tolist() == pytest.approx([63.1, 5.9])
    assert r2["error"].tolist() == [False, True]
    assert set(r2["model_version"].astype(str)) == {"v2"}


def test_milestone_version_taken_from_any_line_of_the_request() -> None:
    rows = _milestones("r1", "unknown", {"request_received": 0, "features_fetched": 1})
    rows.append({"ts": at(3), "request_id": "r1", "event": "inference_done", "model_version": "v9"})
    st_ = milestone_stages(milestones_frame(rows))
    assert set(st_["model_version"].astype(str)) == {"v9"}


def test_single_milestone_and_empty_frames_give_no_stages() -> None:
    one = milestones_frame(_milestones("r1", "v1", {"request_received": 0}))
    assert milestone_stages(one).empty
    assert milestone_stages(empty_milestones()).empty
    out = stage_durations(empty_milestones(), empty_spans())
    assert out.empty
    assert {"request_id", "model_version", "stage", "duration_ms", "self_ms"} <= set(out.columns)


# --- self time --------------------------------------------------------------------------------


def _span(sid: str, parent: str | None, start: float, end: float, **kw: object) -> dict:
    return {"trace_id": kw.pop("trace_id", "t1"), "span_id": sid, "parent_span_id": parent,
            "name": kw.pop("name", sid), "start": at(start), "end": at(end), **kw}  # fmt: skip


def test_self_time_counts_parallel_children_once_and_clamps_overflow() -> None:
    spans = spans_frame(
        [
            _span("root", None, 0, 100),
            _span("a", "root", 10, 50),
            _span("b", "root", 20, 60),  # parallel with a: union 10..60
            _span("c", "root", 70, 80),
            _span("d", "root", 90, 130),  # overflows the root: counts 90..100
            _span("a1", "a", 15, 25),
            _span("x", None, 0, 5, trace_id="t2"),  # another trace, same span ids ignored
            _span("a", "x", 1, 2, trace_id="t2"),
        ]
    )
    keys = spans["span_id"] + "@" + spans["trace_id"]
    self_ms = dict(zip(keys, span_self_ms(spans), strict=True))
    assert self_ms["root@t1"] == pytest.approx(100 - 50 - 10 - 10)
    assert self_ms["a@t1"] == pytest.approx(40 - 10)
    assert self_ms["b@t1"] == pytest.approx(40)
    assert self_ms["x@t2"] == pytest.approx(4)
    assert self_ms["a@t2"] == pytest.approx(1)


def test_self_time_never_negative_when_children_cover_everything() -> None:
    spans = spans_frame([_span("p", None, 0, 10), _span("c1", "p", -5, 8), _span("c2", "p", 2, 30)])
    assert span_self_ms(spans)[0] == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), min_size=1, max_size=8))
def test_self_time_matches_a_brute_force_union(intervals: list[tuple[int, int]]) -> None:
    rows = [_span("p", None, 0, 100)]
    rows += [_span(f"c{i}", "p", min(a, b), max(a, b)) for i, (a, b) in enumerate(intervals)]
    covered = np.zeros(100, dtype=bool)  # 1 ms cells of the parent
    for a, b in intervals:
        lo, hi = max(0, min(a, b)), min(100, max(a, b))
        covered[lo:hi] = True
    assert span_self_ms(spans_frame(rows))[0] == pytest.approx(100 - covered.sum())


# --- critical path (hand-checked trees) -------------------------------------------------------


def test_critical_path_walks_back_from_the_last_finishing_child() -> None:
    got = sections(node("root", None, 0, 100), node("a", "root", 10, 40),
                   node("b", "root", 20, 70), node("c", "root", 60, 90))  # fmt: skip
    # root's LFC is c; back from c's start (60) the last child to finish before it is a (40): b,
    # which overlaps c, is not on the path.
    assert got == [("root", 90, 100), ("c", 60, 90), ("root", 40, 60), ("a", 10, 40),
                   ("root", 0, 10)]  # fmt: skip


def test_critical_path_nested_and_sibling_overlap() -> None:
    got = sections(node("root", None, 0, 100), node("a", "root", 0, 80),
                   node("a1", "a", 10, 30), node("a2", "a", 20, 70),
                   node("b", "root", 85, 95))  # fmt: skip
    assert got == [("root", 95, 100), ("b", 85, 95), ("root", 80, 85), ("a", 70, 80),
                   ("a2", 20, 70), ("a", 0, 20)]  # fmt: skip
    assert "a1" not in {s for s, _, _ in got}


def test_critical_path_clamps_overflow_drops_outside_and_non_blocking() -> None:
    got = sections(node("root", None, 0, 100), node("x", "root", 50, 120),
                   node("late", "root", 110, 130), node("early", "root", -20, -5),
                   node("q", "root", 0, 99, kind="producer"), node("q1", "q", 1, 98))  # fmt: skip
    assert got == [("x", 50, 100), ("root", 0, 50)]


def test_critical_path_covers_the_root_exactly_once() -> None:
    spans = [node("root", None, 0, 50), node("a", "root", 5, 20), node("b", "root", 5, 20),
             node("c", "root", 25, 45), node("c1", "c", 30, 44)]  # fmt: skip
    got = critical_path(spans)
    assert sum(s.end - s.start for s in got) == 50 * MS
    assert all(isinstance(s, Section) for s in got)
    # ties on end time: the child that started first (in start order) wins, as in Jaeger
    assert [s.span_id for s in got].count("a") == 1 and "b" not in {s.span_id for s in got}


def test_critical_path_skips_a_child_ending_exactly_when_the_next_starts() -> None:
    # Jaeger looks back for a child that ended strictly before the returning child started.
    got = sections(node("root", None, 0, 30), node("f", "root", 1, 21), node("g", "root", 2, 10),
                   node("i", "root", 21, 29))  # fmt: skip
    assert got == [("root", 29, 30), ("i", 21, 29), ("root", 10, 21), ("g", 2, 10),
                   ("root", 0, 2)]  # fmt: skip


# --- stage_durations over all requests --------------------------------------------------------


def test_stage_durations_mixes_milestone_and_span_requests_without_double_counting() -> None:
    ms = milestones_frame(
        _milestones("r1", "v1", {"request_received": 0, "features_fetched": 2, "inference_done": 9})
    )
    spans = spans_frame(
        [
            _span("s0", None, 0, 30, trace_id="t2", name="POST /predict", request_id="r2"),
            _span("s1", "s0", 1, 21, trace_id="t2", name="feature fetch"),
            _span("s2", "s0", 21, 29, trace_id="t2", name="inference"),
            _span("z0", None, 0, 5, trace_id="t1", name="POST /predict"),  # r1 has milestones
        ]
    )
    reqs = requests_frame(
        [
            {
                "ts": at(9),
                "request_id": "r1",
                "trace_id": "t1",
                "model_version": "v1",
                "latency_ms": 9.0,
            },
            {
                "ts": at(30),
                "request_id": "r2",
                "trace_id": "t2",
                "model_version": "v2",
                "latency_ms": 30.0,
            },
        ]  # fmt: skip
    )
    out = stage_durations(ms, spans, reqs)
    by = {(r.request_id, r.stage): r for r in out.itertuples()}
    assert set(by) == {("r1", "feature fetch"), ("r1", "inference"), ("r2", "POST /predict"),
                       ("r2", "feature fetch"), ("r2", "inference")}  # fmt: skip
    assert by[("r2", "POST /predict")].duration_ms == pytest.approx(30)
    assert by[("r2", "POST /predict")].self_ms == pytest.approx(2)
    assert by[("r2", "inference")].model_version == "v2"  # from the request summary
    per_request = out.groupby("request_id")["self_ms"].sum()
    assert per_request["r1"] == pytest.approx(9) and per_request["r2"] == pytest.approx(30)


def test_stage_medians_are_numpy_medians_per_version() -> None:
    rng = np.random.default_rng(3)
    fetch = rng.gamma(2.0, 2.0, 41)
    rows = []
    for i, f in enumerate(fetch):
        rows += _milestones(f"r{i}", "v1" if i % 2 else "v2",
                            {"request_received": 0, "features_fetched": float(f)})  # fmt: skip
    med = stage_medians(stage_durations(milestones_frame(rows), empty_spans()))
    got = med.set_index(["model_version", "stage"])["median_ms"]
    expect_v1 = np.median(np.round(fetch[1::2] * 1000) / 1000)
    assert got[("v1", "feature fetch")] == pytest.approx(expect_v1, abs=1e-9)
    assert len(got) == 2


def test_percentile_rank_is_share_at_or_below() -> None:
    values = np.array([10.0, 20.0, 20.0, 30.0, np.nan])
    assert percentile_rank(values, 20.0) == pytest.approx(75.0)
    assert percentile_rank(values, 5.0) == 0.0
    assert np.isnan(percentile_rank(np.array([]), 1.0))


# --- one request ------------------------------------------------------------------------------


def test_timeline_for_spans_orders_by_start_and_marks_critical_path() -> None:
    spans = spans_frame(
        [
            _span("s2", "s0", 21.5, 29, name="inference", error=True),
            _span(
                "s0",
                None,
                0,
                30,
                name="POST /predict",
                request_id="r2",
                kind="server",
                model_version="v2",
            ),  # fmt: skip
            _span("s1", "s0", 1, 21, name="feature fetch"),
            _span("s3", "s0", 2, 10, name="cache lookup"),
        ]
    )
    tl = timeline_for(empty_requests(), empty_milestones(), spans, "r2", "t1")
    assert [s.name for s in tl.stages] == ["POST /predict", "feature fetch", "cache lookup",
                                           "inference"]  # fmt: skip
    assert [s.depth for s in tl.stages] == [0, 1, 1, 1]
    crit = {s.name: s.on_critical_path for s in tl.stages}
    assert crit == {"POST /predict": True, "feature fetch": True, "cache lookup": False,
                    "inference": True}  # fmt: skip
    assert tl.model_version == "v2" and tl.latency_ms == pytest.approx(30)
    assert tl.dominant.name == "feature fetch"
    assert tl.offset_ms(tl.stages[-1].start_ns) == pytest.approx(21.5)
    assert tl.error is True  # no summary: an error span marks the request


def test_find_request_exact_prefix_trace_and_ambiguous() -> None:
    reqs = requests_frame(
        [
            {"ts": at(1), "request_id": "abc-1", "trace_id": "4bf92f35", "latency_ms": 1.0},
            {"ts": at(2), "request_id": "abc-2", "trace_id": "00f067aa", "latency_ms": 2.0},
            {"ts": at(3), "request_id": "abc", "trace_id": "11111111", "latency_ms": 3.0},
        ]
    )
    ms, sp = empty_milestones(), empty_spans()
    assert find_request(reqs, ms, sp, "abc") == ("abc", "11111111")  # exact beats prefix
    assert find_request(reqs, ms, sp, "abc-2") == ("abc-2", "00f067aa")
    assert find_request(reqs, ms, sp, "0x4BF9") == ("abc-1", "4bf92f35")
    with pytest.raises(NotFoundError, match=r"ambiguous: 2 requests match: abc-1, abc-2"):
        find_request(reqs, ms, sp, "abc-")
    with pytest.raises(NotFoundError, match=r"in 3 events searched") as info:
        find_request(reqs, ms, sp, "zzz")
    assert info.value.exit_code == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 500, allow_nan=False), min_size=2, max_size=7), st.randoms())
def test_milestone_stages_stay_ordered_and_add_up(times: list[float], rnd) -> None:
    events = [f"e{i}" for i in range(len(times))]
    ordered = sorted(times)
    rows = [{"ts": at(t), "request_id": "r", "event": e, "model_version": "v"}
            for t, e in zip(ordered, events, strict=True)]  # fmt: skip
    rnd.shuffle(rows)  # the order of lines does not matter, only time (then line) does
    out = milestone_stages(milestones_frame(rows))
    assert (out["start"].diff().dropna() >= pd.Timedelta(0)).all()
    assert out["duration_ms"].min() >= 0
    first, last = at(ordered[0]), at(ordered[-1])
    assert out["duration_ms"].sum() == pytest.approx((last - first) / pd.Timedelta(milliseconds=1))
    assert len(out) == len(times) - 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(-20, 140), st.integers(0, 60)),
                min_size=0, max_size=12))  # fmt: skip
def test_critical_path_tiles_the_root_exactly(children: list[tuple[int, int, int]]) -> None:
    # random trees: child i hangs under an earlier span; intervals may overflow their parent
    spans = [node("root", None, 0, 100)]
    for i, (parent, start, length) in enumerate(children):
        parent_id = "root" if parent % (i + 1) == 0 else f"c{parent % i}"
        spans.append(node(f"c{i}", parent_id, start, start + length))
    got = critical_path(spans)
    pieces = sorted((s.start, s.end) for s in got)
    assert all(a.end - a.start > 0 for a in got)
    assert pieces[0][0] == 0 and pieces[-1][1] == 100 * MS
    assert all(prev[1] == nxt[0] for prev, nxt in zip(pieces, pieces[1:], strict=False))
