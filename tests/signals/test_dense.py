"""Grouping by counting gives what np.unique gives, over dense and sparse keys."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.signals.dense import unique_counts, unique_inverse

# Small ranges take the counting path, wide ones (and huge offsets) the sorting fallback.
keys = st.one_of(
    st.lists(st.integers(-50, 50), max_size=200),
    st.lists(st.integers(10**15, 10**15 + 3), min_size=1, max_size=50),
    st.lists(st.integers(-(2**62), 2**62), max_size=50),
)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_unique_inverse_and_counts_equal_numpy_s(values: list[int]) -> None:
    arr = np.asarray(values, dtype=np.int64)
    uniq, inverse = unique_inverse(arr)
    want_uniq, want_inverse = np.unique(arr, return_inverse=True)
    assert uniq.tolist() == want_uniq.tolist()
    assert inverse.tolist() == want_inverse.tolist()
    uniq, counts = unique_counts(arr)
    want_uniq, want_counts = np.unique(arr, return_counts=True)
    assert uniq.tolist() == want_uniq.tolist()
    assert counts.tolist() == want_counts.tolist()
