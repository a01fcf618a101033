"""Exact order statistics of the union of sorted runs, without sorting the union.

A rolling window holds its latencies as one sorted run per batch. Its percentiles need only a few
ranks of the union: each is bracketed by a sample of every run (every `STEP`-th value), the bracket
is checked with exact counts (`searchsorted`), and only the values inside it are sorted. The
quantiles are then numpy's linear method bit for bit (`numpy_linear_quantiles` reads just those
ranks). Cost per rank: a few `searchsorted` calls per run, instead of a sort of the whole window.
"""

from __future__ import annotations

import numpy as np

from mlobs_cli.analysis.latency import numpy_linear_quantiles

STEP = 64  # one sampled value per this many of a run
SORT_BELOW = 1 << 16  # fewer values than this in all: sorting them is cheaper than selecting


def values_at_ranks(runs: list[np.ndarray], first: int, last: int, sample: np.ndarray | None) -> np.ndarray:
    """Values of 0-based ranks first..last of the sorted union of `runs` (each sorted, no NaN).

    `sample` is `run_sample(runs)` (None: bracket nothing, sort all values of the union).
    """
    lo, hi = -np.inf, np.inf
    if sample is not None:
        m = len(runs)
        j_lo = (first - m * (STEP - 1)) // STEP - 1  # at most `first` values lie below sample[j_lo]
        j_hi = last // STEP + 1  # more than `last` values lie at or below sample[j_hi]
        lo = sample[j_lo] if j_lo >= 0 else -np.inf
        hi = sample[j_hi] if j_hi < len(sample) else np.inf
    starts = [int(np.searchsorted(r, lo, side="left")) for r in runs]
    ends = [int(np.searchsorted(r, hi, side="right")) for r in runs]
    below = sum(starts)
    if not (below <= first and sum(ends) > last):  # the sample misjudged (ties): take every value
        starts, ends, below = [0] * len(runs), [len(r) for r in runs], 0
    inside = np.concatenate([r[a:b] for r, a, b in zip(runs, starts, ends, strict=True)])
    inside.sort()
    return inside[first - below : last - below + 1]


def run_sample(runs: list[np.ndarray]) -> np.ndarray | None:
    """Every STEP-th value of each run, sorted; None when the runs are small enough to sort whole."""
    if sum(map(len, runs)) < SORT_BELOW or len(runs) < 2:
        return None
    return np.sort(np.concatenate([r[STEP - 1 :: STEP] for r in runs]))


def quantiles_of_runs(
    runs: list[np.ndarray], qs: list[float], scratch: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(`np.percentile(union, qs)`, max) of the union of sorted runs, bit for bit; NaN when empty.

    `scratch` (optional) is a float array at least as long as the union, used as its sparse
    stand-in: only the ranks the quantiles read are written there.
    """
    n = sum(map(len, runs))
    if n == 0:
        return np.full(len(qs), np.nan), float("nan")
    if len(runs) == 1:
        ordered = runs[0]
    else:
        ordered = scratch[:n] if scratch is not None and len(scratch) >= n else np.empty(n)
        # The ranks numpy_linear_quantiles reads: floor((n-1)q) and the next one (a margin of one
        # either side costs nothing and keeps this exact whatever the float rounding).
        virtual = np.float64(n - 1) * np.true_divide(np.asarray([*qs, 100.0], dtype=np.float64), 100)
        base = np.floor(virtual).astype(np.int64)
        sample = run_sample(runs)
        for first in sorted(set(base.tolist())):
            lo, hi = max(0, first - 1), min(n - 1, first + 2)
            ordered[lo : hi + 1] = values_at_ranks(runs, lo, hi, sample)
    one = np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64)
    quant = numpy_linear_quantiles(ordered, *one, qs)[0]
    top = numpy_linear_quantiles(ordered, *one, [100.0])[0, 0]
    return quant, float(top)
