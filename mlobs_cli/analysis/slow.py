"""The slowest requests, and what is different about them (vectorized, pure).

`slow_report(requests, stages, ...)` picks a slow set (over a latency, or above a percentile),
lists the slowest requests with their percentile rank within their model version and their
dominant stage, then compares the slow set with the rest: per stage (medians, and the share of the
excess mean latency each stage explains) and per attribute value (BubbleUp-style lift over
low-cardinality fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlobs_cli.analysis.timeline import is_outlier, per_request_stages, request_key, stage_medians

DEFAULT_ABOVE = 99.0  # the slow set when neither --over nor --above is given
MAX_DISTINCT = 20  # a field with more distinct values than this is not compared by value
SAMPLE_ROWS = 5_000  # look at this many rows first before counting a column's distinct values
# Columns that identify, time or measure a request: never compared as attributes.
NOT_ATTRIBUTES = frozenset({"ts", "request_id", "trace_id", "latency_ms", "inference_ms", "source",
                            "line", "_key", "_slow"})  # fmt: skip


@dataclass
class SlowReport:
    """The slowest requests, the stage comparison, attribute lift, how the slow set was chosen."""

    rows: pd.DataFrame
    stages: pd.DataFrame
    attributes: pd.DataFrame
    rule: str
    threshold_ms: float | dict[str, float] | None
    requests: int
    slow_requests: int
    notes: list[str] = field(default_factory=list)

    @property
    def rest_requests(self) -> int:
        return self.requests - self.slow_requests


def rank_within_version(requests: pd.DataFrame) -> pd.Series:
    """Percent of the request's model version whose latency is at or below it (0-100)."""
    grouped = requests.groupby("model_version", observed=True, sort=False)["latency_ms"]
    return grouped.rank(method="max", pct=True) * 100.0


def slow_mask(
    requests: pd.DataFrame,
    *,
    over_ms: float | None = None,
    above: float | None = None,
    by_version: bool = False,
) -> tuple[pd.Series, str, float | dict[str, float] | None]:
    """The slow set: latency > `over_ms`, or > the `above` percentile (per version: `by_version`).

    Percentiles are numpy's linear interpolation. Returns the mask, the rule in words and the
    threshold.
    """
    lat = requests["latency_ms"]
    if over_ms is not None:
        return lat > over_ms, f"over {over_ms:g} ms", float(over_ms)
    q = DEFAULT_ABOVE if above is None else above
    label = f"above p{q:g}" + (" of its version" if by_version else "")
    if requests.empty:
        return pd.Series(False, index=requests.index), label, None
    if by_version:
        grouped = requests.groupby("model_version", observed=True, sort=False)["latency_ms"]
        limit = grouped.transform("quantile", q / 100.0)
        per_version = grouped.quantile(q / 100.0)
        thresholds = {str(k): float(v) for k, v in per_version.items()}
        return lat > limit, label, thresholds
    limit = float(np.percentile(lat.to_numpy(dtype=float), q))
    return lat > limit, label, limit


def dominant_stages(
    stages: pd.DataFrame, keys: pd.Series | None = None, *, per_request: pd.DataFrame | None = None
) -> pd.Series:
    """Per request key: the stage that made it slow, as `mlobs explain` picks it (without the
    critical path, which needs the span tree): the outlier stage (self time at least 1.5x its
    version's median self time) with the most time over that median, else the stage with the most
    self time. Medians come from all of `stages`; a repeated stage's times are summed.
    `per_request`: `per_request_stages(stages)`, when already computed."""
    if stages.empty:
        return pd.Series([], dtype=object)
    per = per_request if per_request is not None else per_request_stages(stages)
    medians = stage_medians(stages, per_request=per)[["model_version", "stage", "self_median_ms"]]
    if keys is not None:
        per = per[per["request_id"].isin(pd.unique(keys.to_numpy(dtype=object)))]
    if per.empty:
        return pd.Series([], dtype=object)
    per = per.merge(medians, on=["model_version", "stage"], how="left")
    self_ms, median = per["self_ms"].to_numpy(), per["self_median_ms"].to_numpy()
    outlier = is_outlier(self_ms, median) & ~np.isnan(median)
    # outliers first (by excess over the median), then the rest (by self time)
    per["_rank"] = np.where(outlier, 1.0, 0.0)
    per["_score"] = np.where(outlier, self_ms - np.nan_to_num(median), self_ms)
    per = per.sort_values(["_rank", "_score"], ascending=False, kind="stable")
    per = per.drop_duplicates("request_id")
    return per.set_index("request_id")["stage"]


def stage_comparison(
    stages: pd.DataFrame,
    keys: pd.Series,
    slow: pd.Series,
    latency: pd.Series,
    *,
    per_request: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per stage: requests having it, median self time slow vs rest, and the excess it explains.

    `excess_ms` = mean self time per slow request minus per other request (a request without the
    stage counts 0); `excess_share` = excess_ms / (mean latency of slow - mean latency of the rest).
    Means are used for the share because they add up: when stages cover whole requests, the shares
    sum to 1. `per_request`: `per_request_stages(stages)`, when already computed.
    """
    cols = ["stage", "slow_requests", "rest_requests", "slow_median_ms", "rest_median_ms",
            "ratio", "slow_mean_ms", "rest_mean_ms", "excess_ms", "excess_share"]  # fmt: skip
    n_slow, n_rest = int(slow.sum()), int((~slow).sum())
    if stages.empty or n_slow == 0:
        return pd.DataFrame(columns=cols)
    if per_request is None:
        per_request = per_request_stages(stages)
    # request -> its position among `keys` (the last of duplicates wins) -> slow or not
    reversed_keys = pd.Index(keys.to_numpy(dtype=object)[::-1])
    first = ~reversed_keys.duplicated(keep="first")
    index, slow_of = reversed_keys[first], slow.to_numpy(dtype=bool)[::-1][first]
    req_code = index.get_indexer(per_request["request_id"].to_numpy(dtype=object))
    keep = req_code >= 0
    if not keep.any():
        return pd.DataFrame(columns=cols)
    per = pd.DataFrame(
        {
            "stage": per_request["stage"].to_numpy(dtype=object)[keep],
            "slow": slow_of[req_code[keep]],
            "self_ms": per_request["self_ms"].to_numpy()[keep],
        }
    )
    grouped = per.groupby(["stage", "slow"])["self_ms"]
    med = grouped.median().unstack()
    cnt = grouped.size().unstack(fill_value=0)
    total = grouped.sum().unstack(fill_value=0.0)
    out = pd.DataFrame(index=med.index)
    out["slow_requests"] = cnt.get(True, 0)
    out["rest_requests"] = cnt.get(False, 0)
    out["slow_median_ms"] = med.get(True, np.nan)
    out["rest_median_ms"] = med.get(False, np.nan)
    out["ratio"] = out["slow_median_ms"] / out["rest_median_ms"].where(out["rest_median_ms"] > 0)
    out["slow_mean_ms"] = total.get(True, 0.0) / n_slow
    out["rest_mean_ms"] = total.get(False, 0.0) / n_rest if n_rest else np.nan
    out["excess_ms"] = out["slow_mean_ms"] - out["rest_mean_ms"]
    lat_excess = latency[slow].mean() - latency[~slow].mean() if n_rest else np.nan
    out["excess_share"] = out["excess_ms"] / lat_excess if lat_excess and lat_excess > 0 else np.nan
    out = out.reset_index().sort_values(["excess_ms", "stage"], ascending=[False, True])
    out[["slow_requests", "rest_requests"]] = out[["slow_requests", "rest_requests"]].astype(int)
    return out[cols].reset_index(drop=True)


def attribute_fields(requests: pd.DataFrame, max_distinct: int = MAX_DISTINCT) -> list[str]:
    """Fields compared by value: columns with 2..max_distinct distinct values (missing counts)."""
    out = []
    for col in requests.columns:
        if col in NOT_ATTRIBUTES:
            continue
        try:
            head = requests[col].iloc[:SAMPLE_ROWS]
            if head.nunique(dropna=False) > max_distinct:  # cheap early no for ids and the like
                continue
            distinct = requests[col].nunique(dropna=False)
        except TypeError:  # dicts or lists: not comparable by value
            continue
        if 2 <= distinct <= max_distinct:
            out.append(col)
    return out


def attribute_lift(
    requests: pd.DataFrame, slow: pd.Series, *, max_distinct: int = MAX_DISTINCT,
    min_count: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Values over-represented among slow requests, ranked by lift (BubbleUp-style).

    For value v of field f: `slow_pct` = share of slow requests with f=v, `rest_pct` the same among
    the others, `slow_rate` = share of requests with f=v that are slow, and
    `lift` = slow_pct / (share of all requests with f=v) = slow_rate / overall slow rate.
    Only values with lift > 1 seen in at least `min_count` slow requests (default 2, or 1 when fewer
    than 10 requests are slow) are kept.
    """
    cols = ["field", "value", "slow_count", "rest_count", "slow_pct", "rest_pct", "slow_rate",
            "lift"]  # fmt: skip
    n = len(requests)
    n_slow = int(slow.sum())
    if n == 0 or n_slow == 0 or n_slow == n:
        return pd.DataFrame(columns=cols)
    if min_count is None:
        min_count = 2 if n_slow >= 10 else 1
    parts = []
    slow_arr = slow.to_numpy(dtype=bool)
    for name in attribute_fields(requests, max_distinct):
        values = requests[name].astype(object)
        values = values.where(values.notna(), None)
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        total = np.bincount(codes, minlength=len(uniques))
        slow_c = np.bincount(codes, weights=slow_arr, minlength=len(uniques)).astype(int)
        part = pd.DataFrame({"slow_count": slow_c, "rest_count": total - slow_c})
        part["field"] = name
        part["value"] = pd.Series([None if _missing(v) else v for v in uniques], dtype=object)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out["slow_pct"] = out["slow_count"] / n_slow
    out["rest_pct"] = out["rest_count"] / (n - n_slow)
    out["slow_rate"] = out["slow_count"] / (out["slow_count"] + out["rest_count"])
    out["lift"] = out["slow_rate"] / (n_slow / n)
    out = out[(out["lift"] > 1) & (out["slow_count"] >= min_count)]
    out = out.sort_values(["lift", "slow_count", "field"], ascending=[False, False, True],
                          kind="stable")  # fmt: skip
    out[["slow_count", "rest_count"]] = out[["slow_count", "rest_count"]].astype(int)
    return out[cols].reset_index(drop=True)


def with_span_attributes(requests: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """`requests` plus the attributes of each request's root span (joined on trace id) as extra
    columns, for requests that came from traces; keys the requests already have are left alone."""
    if spans.empty or "trace_id" not in requests or requests["trace_id"].isna().all():
        return requests
    roots = spans[spans["parent_span_id"].isna() & spans["trace_id"].notna()]
    roots = roots[roots["trace_id"].isin(pd.unique(requests["trace_id"].dropna().to_numpy(dtype=object)))]
    roots = roots.drop_duplicates("trace_id")
    if roots.empty:
        return requests
    records = [a if isinstance(a, dict) else {} for a in roots["attrs"]]
    attrs = pd.DataFrame.from_records(records, index=roots["trace_id"].to_numpy(dtype=object))
    new = [c for c in attrs.columns if c not in requests.columns and c not in NOT_ATTRIBUTES]
    if not new:
        return requests
    aligned = attrs[new].reindex(requests["trace_id"].to_numpy(dtype=object))
    aligned.index = requests.index
    return pd.concat([requests, aligned], axis=1)


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def slow_report(
    requests: pd.DataFrame,
    stages: pd.DataFrame,
    *,
    top: int = 20,
    over_ms: float | None = None,
    above: float | None = None,
    by_version: bool = False,
) -> SlowReport:
    """The slowest requests (top per version with `by_version`) and the slow-vs-rest comparison.

    Rows come from the slow set when `over_ms` or `above` is given, else from all requests; the
    comparison always uses the slow set (default: above the 99th percentile).
    """
    req = requests.reset_index(drop=True)
    req = req.assign(_key=request_key(req))
    mask, rule, threshold = slow_mask(req, over_ms=over_ms, above=above, by_version=by_version)
    req["percentile_rank"] = rank_within_version(req) if not req.empty else pd.Series(dtype=float)
    pool = req[mask] if (over_ms is not None or above is not None) else req
    pool = pool.sort_values(["latency_ms", "ts"], ascending=[False, True], kind="stable")
    if by_version:
        pool = pool.groupby("model_version", observed=True, sort=False).head(top)
        pool = pool.sort_values(["model_version", "latency_ms"], ascending=[True, False],
                                kind="stable")  # fmt: skip
    else:
        pool = pool.head(top)
    per = per_request_stages(stages) if not stages.empty else None
    dominant = dominant_stages(stages, pool["_key"], per_request=per)
    rows = pool[["ts", "request_id", "trace_id", "model_version", "latency_ms", "percentile_rank",
                 "status", "error", "_key"]].copy()  # fmt: skip
    rows["dominant_stage"] = rows["_key"].map(dominant)
    rows = rows.rename(columns={"_key": "id"}).reset_index(drop=True)
    notes = []
    n_slow = int(mask.sum())
    if n_slow == 0:
        notes.append(f"no request is {rule}: nothing to compare")
    elif n_slow == len(req):
        notes.append(f"every request is {rule}: nothing to compare with")
    stage_table = stage_comparison(stages, req["_key"], mask, req["latency_ms"], per_request=per)
    attrs = attribute_lift(req.drop(columns=["percentile_rank"]), mask)
    return SlowReport(rows, stage_table, attrs, rule, threshold, len(req), n_slow, notes)


def report_dict(report: SlowReport, sources: list[str]) -> dict[str, Any]:
    """The `--format json` document: rows (each with a ready-to-paste explain command), stages,
    attributes, and how the slow set was chosen."""
    import shlex

    rows = []
    for rec in report.rows.to_dict("records"):
        ident = rec.pop("id")
        rec["explain"] = shlex.join(["mlobs", "explain", str(ident), *sources]) if ident else None
        rows.append(rec)
    return {
        "rows": rows,
        "stages": report.stages.to_dict("records"),
        "attributes": report.attributes.to_dict("records"),
        "slow_set": {
            "rule": report.rule,
            "threshold_ms": report.threshold_ms,
            "requests": report.requests,
            "slow_requests": report.slow_requests,
            "rest_requests": report.rest_requests,
        },
    }
