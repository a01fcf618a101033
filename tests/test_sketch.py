"""The latency sketch: relative-error bound against numpy's percentiles, exact merge."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlobs_cli.analysis.sketch import LatencySketch

QS = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]
positive = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)
values = st.one_of(
    st.lists(positive, min_size=1, max_size=300),
    st.lists(st.sampled_from([0.0, 1e-9, 0.5, 3.0, 3.0, 250.0, 1e9]), min_size=1, max_size=300),
    st.builds(
        lambda seed, n, sigma: list(np.random.default_rng(seed).lognormal(3.0, sigma, n)),
        st.integers(0, 2**32 - 1),
        st.integers(1, 2000),
        st.floats(0.01, 4.0),
    ),
)
accuracies = st.sampled_from([0.001, 0.01, 0.05, 0.2])


def _sketch(data: np.ndarray, accuracy: float) -> LatencySketch:
    sketch = LatencySketch(accuracy)
    sketch.add_many(data)
    return sketch


@settings(max_examples=300, deadline=None)
@given(values, accuracies)
def test_quantiles_within_relative_error_of_numpy(data, accuracy):
    x = np.asarray(data, dtype=np.float64)
    got = _sketch(x, accuracy).quantiles(QS)
    pct = [q * 100 for q in QS]
    exact = np.percentile(x, pct)
    lower = np.percentile(x, pct, method="lower")
    higher = np.percentile(x, pct, method="higher")
    slack = accuracy * (1 + 1e-9)
    # within a of numpy's linear interpolation itself ...
    assert np.all(np.abs(got - exact) <= slack * exact + 1e-300)
    # ... and so within a of some value between the order statistics it interpolates between
    assert np.all(got >= lower * (1 - slack)) and np.all(got <= higher * (1 + slack))
    assert got[0] == x.min() and got[-1] == x.max()
    assert np.all(np.diff(got) >= 0)


@settings(max_examples=200, deadline=None)
@given(values, values, accuracies)
def test_merge_is_the_sketch_of_the_union(a, b, accuracy):
    xa, xb = np.asarray(a), np.asarray(b)
    merged = _sketch(xa, accuracy)
    merged.merge(_sketch(xb, accuracy))
    union = _sketch(np.concatenate([xa, xb]), accuracy)
    lo = min(merged.offset, union.offset)
    hi = max(merged.offset + len(merged.counts), union.offset + len(union.counts))

    def dense(s: LatencySketch) -> np.ndarray:
        out = np.zeros(hi - lo, dtype=np.int64)
        out[s.offset - lo : s.offset - lo + len(s.counts)] = s.counts
        return out

    assert np.array_equal(dense(merged), dense(union))
    assert (merged.zeros, merged.count, merged.min, merged.max) == (
        union.zeros,
        union.count,
        union.min,
        union.max,
    )
    assert np.array_equal(merged.quantiles(QS), union.quantiles(QS))


def test_nan_is_not_added_and_negative_is_refused():
    sketch = LatencySketch()
    sketch.add_many(np.array([np.nan, 1.0, 2.0]))
    assert sketch.count == 2 and sketch.mean == 1.5
    try:
        sketch.add_many(np.array([-1.0]))
    except ValueError:
        pass
    else:
        raise AssertionError("a negative latency was accepted")
    assert np.isnan(LatencySketch().quantiles([0.5])).all()


def test_memory_is_buckets_not_values():
    x = np.random.default_rng(1).lognormal(3.0, 1.0, 200_000)
    sketch = _sketch(x, 0.01)
    assert sketch.count == 200_000
    assert len(sketch.counts) < 1_000  # about log(max/min) / log(gamma)
