"""Evaluate check rules on a Dataset: one `CheckResult` per rule and group (model version).

Statistics come from `latency_table` (exact, numpy-linear percentiles). A result's `outcome` is
`pass`, `fail` or `no_data`; its `status` (PASS/FAIL/WARN/NO DATA) and whether it fails the run
follow from the rule's severity and `allow_missing`. Pure: no printing, no exits.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlobs_cli.analysis.rules import POOLED_SCOPE, Rule

if TYPE_CHECKING:
    import pandas as pd

ALL_VERSIONS = "all versions"
UNKNOWN_VERSION = "unknown"  # the frame's model_version for requests that did not log one
WHOLE_INPUT = "all lines"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass
class CheckResult:
    """The verdict of one rule on one group."""

    rule: Rule
    group: str  # a model version, "all versions" or "all lines"
    model_version: str | None  # the version this number belongs to (None when pooled)
    outcome: str  # "pass" | "fail" | "no_data"
    observed: float | None = None  # in the threshold's canonical unit
    observed_text: str = ""  # for people: "312.4 ms", "1.23%", or why there is no data
    samples: int | None = None  # how many requests (or lines) the number is computed from
    baseline: dict[str, Any] | None = None  # regression rules: what was compared against
    allow_missing: bool = False

    @property
    def failed(self) -> bool:
        """True when this result makes the run fail (exit 1)."""
        if self.rule.severity != "error":
            return False
        return self.outcome == "fail" or (self.outcome == "no_data" and not self.allow_missing)

    @property
    def status(self) -> str:
        if self.outcome == "no_data":
            return "NO DATA"
        if self.outcome == "fail":
            return "FAIL" if self.rule.severity == "error" else "WARN"
        return "PASS"

    @property
    def threshold_text(self) -> str:
        return threshold_text(self.rule)

    @property
    def label(self) -> str:
        """`p99 < 250ms [v2.1]`: how CI reports name this result."""
        return f"{self.rule.display} [{self.group}]"


def threshold_text(rule: Rule) -> str:
    q = rule.threshold
    if q is None:
        return ""
    if rule.kind == "regression":
        return f"<= +{q.text} vs baseline"
    return f"{rule.op} {q.text}"  # as the user wrote it: exact


def _num(v: float) -> str:
    return f"{v:,.3f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v):,}"


def format_value(value: float | None, unit: str) -> str:
    """A number in a rule's unit, for people: `250 ms`, `1.5%`, `5/s`, `1,200`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "ms":
        return f"{_num(round(value, 1))} ms"
    if unit == "fraction":
        pct = round(value * 100, 2)
        return f"{_num(pct) if pct or not value else f'{value * 100:.2g}'}%"
    if unit == "per_s":
        return f"{_num(round(value, 2))}/s"
    return _num(round(value, 3))


@dataclass
class CheckReport:
    results: list[CheckResult]
    allow_missing: bool
    #: requests without a model version, left out of per-version results (pooled rules keep them)
    unversioned: int = 0

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {"results": len(self.results), "pass": 0, "fail": 0, "warn": 0, "no_data": 0}
        key = {"PASS": "pass", "FAIL": "fail", "WARN": "warn", "NO DATA": "no_data"}
        for r in self.results:
            out[key[r.status]] += 1
        out["failing"] = sum(r.failed for r in self.results)
        return out


class _Stats:
    """latency_table results, computed once per (field, pooled) and shared by the rules."""

    def __init__(self, requests: pd.DataFrame) -> None:
        self.requests = requests
        self._cache: dict[tuple[str, bool], dict[str | None, dict[str, Any]]] = {}
        self.percentiles: dict[str, set[float]] = {}

    def want(self, rule: Rule) -> None:
        fld = rule.field or "latency_ms"
        qs = self.percentiles.setdefault(fld, set())
        if rule.percentile is not None:
            qs.add(rule.percentile)

    def rows(self, fld: str, pooled: bool) -> dict[str | None, dict[str, Any]]:
        """latency_table rows by version (None: the pooled row); `samples` counts values of `fld`."""
        key = (fld, pooled)
        if key not in self._cache:
            from mlobs_cli.analysis.latency import latency_table

            qs = sorted(self.percentiles.get(fld) or {50.0})
            by = [] if pooled else ["model_version"]
            tab = latency_table(self.requests, by=by, percentiles=qs, metric=fld)
            records = tab[tab["requests"] > 0].to_dict("records")
            self._cache[key] = {(None if pooled else str(r["model_version"])): r for r in records}
        return self._cache[key]

    def row(self, fld: str, version: str | None) -> dict[str, Any] | None:
        """The group's row, or None when the group has no value of `fld`."""
        row = self.rows(fld, version is None).get(version)
        if row is None or int(row["samples"]) == 0:
            return None
        return row


def _stat_value(rule: Rule, row: dict[str, Any]) -> float:
    from mlobs_cli.analysis.latency import percentile_key

    if rule.percentile is not None:
        return float(row[percentile_key(rule.percentile)])
    return float(row["mean_ms" if rule.metric == "mean" else "max_ms"])


def _verdict(rule: Rule, observed: float) -> str:
    assert rule.threshold is not None
    return "pass" if _OPS[rule.op](observed, rule.threshold.value) else "fail"


def _versions(requests: pd.DataFrame) -> list[str]:
    col = requests["model_version"]
    present = col.astype(str).unique().tolist() if len(col) else []
    return sorted(present)


def per_version_groups(versions: Sequence[str]) -> list[str]:
    """The versions that per-version rules report on: `unknown` only when it is all there is."""
    known = [v for v in versions if v != UNKNOWN_VERSION]
    return known or list(versions)


def _groups(rule: Rule, versions: Sequence[str]) -> list[str | None]:
    """The versions a rule yields results for; None means all versions pooled."""
    if rule.scope == POOLED_SCOPE:
        return [None]
    if rule.scope is not None:
        return [rule.scope]
    return per_version_groups(versions) or [None]


def _group_name(version: str | None) -> str:
    return ALL_VERSIONS if version is None else version


def evaluate(
    rules: Sequence[Rule],
    requests: pd.DataFrame,
    *,
    lines: int = 0,
    skipped: int = 0,
    allow_missing: bool = False,
    baseline_version: str | None = None,
    baseline_requests: pd.DataFrame | None = None,
) -> CheckReport:
    """Evaluate every rule on a `requests` frame (and the input's line/skip counts).

    Results come in rule order, then version order (sorted). `baseline_requests` is the frame of a
    baseline log file; without it, regression rules compare with `baseline_version` in `requests`.
    """
    versions = _versions(requests)
    stats = _Stats(requests)
    base_stats = _Stats(baseline_requests) if baseline_requests is not None else None
    for rule in rules:
        if rule.kind in ("stat", "regression"):
            stats.want(rule)
            if base_stats is not None:
                base_stats.want(rule)
    results: list[CheckResult] = []

    def add(rule: Rule, version: str | None, outcome: str, **kw: Any) -> None:
        results.append(
            CheckResult(
                rule,
                kw.pop("group", _group_name(version)),
                version,
                outcome,
                allow_missing=allow_missing,
                **kw,
            )
        )

    for rule in rules:
        if rule.kind == "input":
            _eval_skipped(rule, lines, skipped, add)
        elif rule.kind == "require":
            _eval_require(rule, requests, add)
        elif rule.kind == "regression":
            _eval_regression(rule, stats, versions, add, baseline_version, base_stats)
        elif rule.kind == "forecast":
            _eval_forecast(rule, requests, versions, add)
        else:
            for version in _groups(rule, versions):
                _eval_metric(rule, stats, requests, versions, version, add)
    unversioned = 0
    if UNKNOWN_VERSION in versions and per_version_groups(versions) != versions:
        unversioned = int((requests["model_version"].astype(str) == UNKNOWN_VERSION).sum())
    return CheckReport(results, allow_missing, unversioned)


def _eval_metric(
    rule: Rule,
    stats: _Stats,
    requests: pd.DataFrame,
    versions: Sequence[str],
    version: str | None,
    add: Callable[..., None],
) -> None:
    if requests.empty:
        add(rule, version, "no_data", observed_text="no request summaries in the logs")
        return
    if version is not None and version not in versions:
        seen = ", ".join(versions[:8]) + (", ..." if len(versions) > 8 else "")
        add(rule, version, "no_data", observed_text=f"version not in the logs (seen: {seen})")
        return
    fld = rule.field or "latency_ms"
    if rule.kind == "stat" and (fld not in requests.columns or not requests[fld].notna().any()):
        add(rule, version, "no_data", observed_text=f"field {fld} is not in the logs")
        return
    if rule.kind == "stat" and fld != "latency_ms" and not _is_numeric(requests[fld]):
        add(rule, version, "no_data", observed_text=f"field {fld} is not numeric")
        return
    from mlobs_cli.analysis.latency import min_samples

    row = stats.row(fld if rule.kind == "stat" else "latency_ms", version)
    if row is None:
        add(rule, version, "no_data", observed_text=f"{fld} not logged for this version")
        return
    n = int(row["samples"] if rule.kind == "stat" else row["requests"])
    if rule.kind == "stat":
        observed = _stat_value(rule, row)
    elif rule.metric == "error_rate":
        observed = float(row["error_rate"])
    elif rule.metric == "requests":
        observed = float(n)
    else:
        observed = float(row["rate_per_s"])
    if math.isnan(observed):
        why = "needs two or more timestamped requests" if rule.metric == "rate" else "no value"
        add(rule, version, "no_data", observed_text=why, samples=n)
        return
    assert rule.threshold is not None
    text = format_value(observed, rule.threshold.unit)
    if rule.percentile is not None and n < min_samples(rule.percentile):
        text += f" (only {n:,} samples: near the max)"
    add(rule, version, _verdict(rule, observed), observed=observed, observed_text=text, samples=n)


FORECAST_EVERY = "5m"  # the bucket width `mlobs forecast` fits by default


def _eval_forecast(
    rule: Rule, requests: pd.DataFrame, versions: Sequence[str], add: Callable[..., None]
) -> None:
    """`forecast(p99, 6h) < 250ms`: the Theil-Sen projection of `mlobs forecast`, per version."""
    from mlobs_cli.analysis.forecast import forecast_metric

    assert rule.horizon is not None and rule.threshold is not None
    groups = _groups(rule, versions)
    if requests.empty:
        for version in groups:
            add(rule, version, "no_data", observed_text="no request summaries in the logs")
        return
    frame = requests
    if groups == [None]:  # pooled: forecast all versions as one series
        frame = requests.assign(model_version=ALL_VERSIONS)
    forecasts = {
        fc.model_version: fc
        for fc in forecast_metric(
            frame, metric=rule.metric, horizon_s=rule.horizon.value / 1000.0, every=FORECAST_EVERY
        )
    }
    for version in groups:
        fc = forecasts.get(_group_name(version))
        if fc is None:
            add(rule, version, "no_data", observed_text="version not in the logs")
        elif fc.refused or fc.projected is None:
            add(rule, version, "no_data", observed_text=f"no forecast: {fc.refused or 'no trend'}")
        else:
            text = (
                f"{format_value(fc.projected, rule.threshold.unit)} in {rule.horizon.text} "
                f"(90% band {format_value(fc.low, rule.threshold.unit)}"
                f"–{format_value(fc.high, rule.threshold.unit)})"
            )
            add(rule, version, _verdict(rule, fc.projected), observed=fc.projected, observed_text=text)


def _is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col)) and not pd.api.types.is_bool_dtype(col)


def _eval_skipped(rule: Rule, lines: int, skipped: int, add: Callable[..., None]) -> None:
    assert rule.threshold is not None
    if lines == 0:
        add(rule, None, "no_data", group=WHOLE_INPUT, observed_text="no lines read")
        return
    if rule.threshold.unit == "fraction":
        observed = skipped / lines
        text = f"{format_value(observed, 'fraction')} ({skipped:,} of {lines:,} lines)"
    else:
        observed = float(skipped)
        text = f"{skipped:,} of {lines:,} lines"
    add(
        rule,
        None,
        _verdict(rule, observed),
        group=WHOLE_INPUT,
        observed=observed,
        observed_text=text,
        samples=lines,
    )


def coverage(requests: pd.DataFrame, fld: str) -> int:
    """How many request summaries carry `fld` (model_version "unknown" counts as missing)."""
    if fld not in requests.columns:
        return 0
    col = requests[fld]
    if fld == "model_version":
        return int((col.astype(str) != "unknown").sum())
    present = col.notna()
    if col.dtype == object:
        present &= col.astype(str).str.strip() != ""
    return int(present.sum())


def _eval_require(rule: Rule, requests: pd.DataFrame, add: Callable[..., None]) -> None:
    total = len(requests)
    fld = rule.field or rule.metric
    if total == 0:
        add(rule, None, "no_data", group=ALL_VERSIONS, observed_text="no request summaries")
        return
    have = coverage(requests, fld)
    share = have / total
    text = f"{format_value(share, 'fraction')} ({have:,} of {total:,} requests)"
    if fld not in requests.columns:
        text += f"; {fld} never appears"
    add(
        rule,
        None,
        _verdict(rule, share),
        group=ALL_VERSIONS,
        observed=share,
        observed_text=text,
        samples=total,
    )


def _eval_regression(
    rule: Rule,
    stats: _Stats,
    versions: Sequence[str],
    add: Callable[..., None],
    baseline_version: str | None,
    base_stats: _Stats | None,
) -> None:
    """Relative change of a stat, per version, against the baseline version or file.

    Same logs (`--baseline V`): every other version vs V. Baseline file: each version vs the same
    version in the file when the file has it, else vs the file's versions pooled (or vs V in the
    file when `--baseline V` is also given).
    """
    fld = rule.field or "latency_ms"
    assert rule.threshold is not None
    if stats.requests.empty:
        add(rule, None, "no_data", observed_text="no request summaries in the logs")
        return
    if fld not in stats.requests.columns:
        add(rule, None, "no_data", observed_text=f"field {fld} is not in the logs")
        return
    if base_stats is None:
        targets = [v for v in per_version_groups(versions) if v != baseline_version]
        if baseline_version not in versions:
            add(
                rule,
                baseline_version,
                "no_data",
                observed_text=f"baseline version {baseline_version} is not in the logs",
            )
            return
        if not targets:
            add(
                rule,
                baseline_version,
                "no_data",
                observed_text=f"no version besides baseline {baseline_version} to compare",
            )
            return
    else:
        targets = per_version_groups(versions)
        if fld not in base_stats.requests.columns or base_stats.requests.empty:
            add(rule, None, "no_data", observed_text=f"baseline file has no {fld}")
            return
    base_versions = set(_versions(base_stats.requests)) if base_stats is not None else set()
    for version in targets:
        if base_stats is None:
            ref_version, source, ref_stats = baseline_version, "version", stats
        elif baseline_version is not None:
            ref_version, source, ref_stats = baseline_version, "file", base_stats
        elif version in base_versions:
            ref_version, source, ref_stats = version, "file", base_stats
        else:
            ref_version, source, ref_stats = None, "file", base_stats
        cur_row = stats.row(fld, version)
        ref_row = ref_stats.row(fld, ref_version)
        ref_name = "all versions" if ref_version is None else ref_version
        baseline = {"source": source, "model_version": ref_version}
        where = f"{ref_name} in the baseline file" if source == "file" else ref_name
        if cur_row is None or ref_row is None:
            missing = f"{fld} for {version}" if cur_row is None else f"baseline {where}"
            add(rule, version, "no_data", observed_text=f"no data: {missing}", baseline=baseline)
            continue
        cur, ref = _stat_value(rule, cur_row), _stat_value(rule, ref_row)
        baseline["value"] = ref
        if not ref > 0 or math.isnan(cur):
            add(
                rule,
                version,
                "no_data",
                observed_text=f"baseline {rule.metric} is {ref}",
                baseline=baseline,
            )
            continue
        change = cur / ref - 1.0
        unit = " ms" if fld.endswith("_ms") else ""
        text = f"{change * 100:+.1f}% ({_num(round(cur, 1))} vs {_num(round(ref, 1))}{unit} on {where})"
        add(
            rule,
            version,
            "pass" if change <= rule.threshold.value else "fail",
            observed=change,
            observed_text=text,
            samples=int(cur_row["samples"]),
            baseline=baseline,
        )
