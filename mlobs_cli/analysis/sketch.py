"""A DDSketch-style quantile sketch of non-negative latencies: bounded memory, relative-error bound.

Masson, Rim and Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with Relative-Error
Guarantees" (VLDB 2019): with `gamma = (1 + a) / (1 - a)`, a value `x > 0` goes to bucket
`i = ceil(log_gamma(x))`, i.e. `gamma**(i-1) < x <= gamma**i`, and the bucket is represented by
`2 * gamma**i / (gamma + 1)`, which is within relative error `a` of every value in the bucket. Memory
is one counter per occupied bucket (about `log(max/min) / log(gamma)`), not one per value; sketches
merge exactly by adding counts. Zeros are counted apart; NaN is not added.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_ACCURACY = 0.01


class LatencySketch:
    """Log-bucket counts of non-negative values, plus the exact count, sum, min and max.

    `quantile(q)` interpolates linearly, as numpy's default `method="linear"`, between the bucket
    representatives of the two order statistics numpy interpolates between; since each representative
    is within relative error `a` of its order statistic, the result is within relative error `a` of
    `np.percentile(values, 100 * q)` itself (and so of a value between those two order statistics).
    q = 0 and q = 1 give the exact min and max.
    """

    def __init__(self, relative_accuracy: float = DEFAULT_ACCURACY) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError("relative accuracy must be in (0, 1)")
        self.relative_accuracy = float(relative_accuracy)
        self.gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log(self.gamma)
        self.counts = np.zeros(0, dtype=np.int64)  # counts[k] is bucket offset + k
        self.offset = 0
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def bucket_of(self, values: np.ndarray) -> np.ndarray:
        """Bucket indexes of positive values: `ceil(log(x) / log(gamma))`."""
        return np.ceil(np.log(values) / self._log_gamma).astype(np.int64)

    def representative(self, index: np.ndarray | int) -> np.ndarray | float:
        """The value standing for bucket `index`: `2 * gamma**i / (gamma + 1)`."""
        return 2.0 * np.exp(np.asarray(index, dtype=np.float64) * self._log_gamma) / (self.gamma + 1.0)

    def add_many(self, values: np.ndarray) -> None:
        """Add every non-NaN value; negative or infinite values raise ValueError."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        arr = arr[~np.isnan(arr)]
        if not len(arr):
            return
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError("a latency sketch takes finite non-negative values only")
        positive = arr[arr > 0]
        self.zeros += len(arr) - len(positive)
        self.count += len(arr)
        self.total += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))
        if len(positive):
            idx = self.bucket_of(positive)
            lo = int(idx.min())
            self._add_counts(lo, np.bincount(idx - lo))

    def _add_counts(self, lo: int, counts: np.ndarray) -> None:
        """Add `counts[k]` to bucket `lo + k`, widening the store when needed."""
        if not len(counts):
            return
        if not len(self.counts):
            self.offset, self.counts = lo, counts.astype(np.int64).copy()
            return
        new_lo = min(self.offset, lo)
        new_hi = max(self.offset + len(self.counts), lo + len(counts))
        if new_lo != self.offset or new_hi != self.offset + len(self.counts):
            grown = np.zeros(new_hi - new_lo, dtype=np.int64)
            grown[self.offset - new_lo : self.offset - new_lo + len(self.counts)] = self.counts
            self.counts, self.offset = grown, new_lo
        self.counts[lo - self.offset : lo - self.offset + len(counts)] += counts

    def merge(self, other: LatencySketch) -> None:
        """Add `other`'s counts into this sketch (same accuracy): the sketch of both inputs."""
        if other.gamma != self.gamma:
            raise ValueError("sketches of different accuracy cannot merge")
        self._add_counts(other.offset, other.counts)
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def _value_at_rank(self, rank: np.ndarray, cumulative: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        """Bucket representative of the 0-based order statistic `rank` (0 for the zeros)."""
        if not len(indexes):  # zeros only
            return np.zeros(len(rank))
        pos = np.searchsorted(cumulative, rank, side="right")  # first bucket holding more than rank
        value = np.asarray(self.representative(indexes[np.minimum(pos, len(indexes) - 1)]))
        return np.where(rank < self.zeros, 0.0, value)

    def quantiles(self, qs: list[float]) -> np.ndarray:
        """Approximate quantiles for `qs` in [0, 1] (NaN when empty); see the class docstring."""
        q = np.asarray(qs, dtype=np.float64)
        if self.count == 0:
            return np.full(len(q), np.nan)
        occupied = np.flatnonzero(self.counts)
        indexes = occupied + self.offset
        cumulative = self.zeros + np.cumsum(self.counts[occupied])
        virtual = (self.count - 1) * q
        lower = np.floor(virtual)
        frac = virtual - lower
        upper = np.minimum(lower + 1, self.count - 1)
        a = self._value_at_rank(lower, cumulative, indexes)
        b = self._value_at_rank(upper, cumulative, indexes)
        out = np.clip(a + (b - a) * frac, self.min, self.max)
        out[q <= 0] = self.min
        out[q >= 1] = self.max
        return out
