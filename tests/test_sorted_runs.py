"""analysis/sorted_runs.py: order statistics of sorted runs equal numpy's on the union, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis import sorted_runs
from mlobs_cli.analysis.sorted_runs import quantiles_of_runs, run_sample, values_at_ranks

QS = [0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]


@pytest.fixture
def tiny_sample(monkeypatch):
    """Sample every 2nd value and select even for small unions, so the bracketing path runs."""
    monkeypatch.setattr(sorted_runs, "STEP", 2)
    monkeypatch.setattr(sorted_runs, "SORT_BELOW", 0)


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.one_of(st.integers(0, 5).map(float), st.floats(0, 1e6, allow_nan=False)), max_size=40),
        min_size=1,
        max_size=12,
    )
)
def test_quantiles_of_runs_are_numpys_percentiles_of_the_union(runs):
    arrays = [np.sort(np.asarray(r, dtype=np.float64)) for r in runs]
    union = np.concatenate(arrays)
    with pytest.MonkeyPatch.context() as mp:  # the bracketing path, even for these small unions
        mp.setattr(sorted_runs, "STEP", 2)
        mp.setattr(sorted_runs, "SORT_BELOW", 0)
        quant, top = quantiles_of_runs(arrays, QS)
    if not len(union):
        assert np.isnan(quant).all() and np.isnan(top)
        return
    assert _same_bits(quant, np.percentile(union, QS))
    assert _same_bits(top, union.max())


def test_ranks_of_many_large_runs_with_ties(tiny_sample):
    rng = np.random.default_rng(7)
    runs = [np.sort(rng.integers(0, 50, size=n).astype(float)) for n in (3000, 1, 0, 2500, 4000)]
    runs += [np.sort(rng.gamma(2, 30, size=5000))]
    union = np.sort(np.concatenate(runs))
    sample = run_sample(runs)
    assert sample is not None
    for first in (0, 1, 17, 5000, len(union) // 2, len(union) - 3):
        last = min(len(union) - 1, first + 2)
        assert _same_bits(values_at_ranks(runs, first, last, sample), union[first : last + 1])
    quant, top = quantiles_of_runs(runs, QS, scratch=np.empty(len(union)))
    assert _same_bits(quant, np.percentile(union, QS)) and top == union.max()


def test_default_thresholds_on_a_window_sized_union():
    rng = np.random.default_rng(3)
    runs = [np.sort(rng.gamma(2, 30, size=40_000)) for _ in range(6)]
    runs.append(np.full(30_000, 42.0))  # a run of one repeated value
    union = np.concatenate(runs)
    quant, top = quantiles_of_runs(runs, QS)
    assert _same_bits(quant, np.percentile(union, QS)) and top == union.max()
