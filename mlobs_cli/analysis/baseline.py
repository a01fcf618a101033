"""Compare every model version with a baseline version, row by row, on a latency table.

Latency columns change relatively (+0.20 = 20% slower), the error rate by its difference in
percentage points; a regression is a change worse than the threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlobs_cli.analysis.latency import BUCKET, percentile_key
from mlobs_cli.errors import UsageError


def compare_to_baseline(
    table: pd.DataFrame,
    baseline: str,
    *,
    percentiles: list[float],
    regression: float = 0.10,
    key: str = "model_version",
) -> pd.DataFrame:
    """Add, for every row, its change against the baseline version's row with the same other keys.

    Adds `<col>_change` for `mean_ms`, each `pNN_ms` and `max_ms` as a relative change (0.12 = 12%
    slower), `error_rate_change` as an absolute difference of fractions (0.003 = +0.3 points), and
    `regressions`: the columns that got worse by more than `regression` (relative; an error rate
    rising from zero counts as a regression). Baseline rows get changes of 0 and no regressions;
    rows with no baseline counterpart (another bucket) get nulls. Raises UsageError when `key` is
    not grouped by; the caller checks that the baseline version exists.
    """
    if key not in table.columns:
        raise UsageError(f"--baseline compares {key} values, but the rows are not grouped by it")
    others = [c for c in table.columns if c in (BUCKET,) or c in _group_columns(table, key)]
    is_base = table[key].astype(str).to_numpy() == str(baseline)
    base = table[is_base]
    cols = ["mean_ms", *[percentile_key(q) for q in percentiles], "max_ms"]
    if others:
        joined = table[others].merge(
            base[[*others, *cols, "error_rate"]], on=others, how="left", suffixes=("", "_base")
        )
        base_vals = {c: joined[c].to_numpy(dtype=np.float64) for c in [*cols, "error_rate"]}
    else:
        base_vals = {
            c: np.full(len(table), base[c].iloc[0] if len(base) else np.nan, dtype=np.float64)
            for c in [*cols, "error_rate"]
        }
    out = table.copy()
    worse: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in cols:
            cur = table[c].to_numpy(dtype=np.float64)
            ref = base_vals[c]
            change = np.where(ref > 0, (cur - ref) / ref, np.where(cur == ref, 0.0, np.nan))
            out[f"{c}_change"] = change
            worse.append(np.where(np.isnan(change), False, change > regression))
        cur = table["error_rate"].to_numpy(dtype=np.float64)
        ref = base_vals["error_rate"]
        out["error_rate_change"] = cur - ref
        rel = np.where(ref > 0, (cur - ref) / ref, np.where(cur > 0, np.inf, 0.0))
        worse.append(np.where(np.isnan(cur - ref), False, rel > regression))
    names = [*cols, "error_rate"]
    flags = np.stack(worse, axis=1) if len(table) else np.zeros((0, len(names)), dtype=bool)
    out["regressions"] = [[n for n, f in zip(names, row, strict=True) if f] for row in flags]
    out.attrs.update(table.attrs)
    out.attrs["baseline"] = str(baseline)
    return out


def _group_columns(table: pd.DataFrame, key: str) -> list[str]:
    """The group-key columns of a latency table other than `key` (and the bucket)."""
    keys = []
    for c in table.columns:
        if c == "requests":
            break
        if c not in (key, BUCKET):
            keys.append(c)
    return keys
