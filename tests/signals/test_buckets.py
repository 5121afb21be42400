"""The compiled merge and ranks of a packed sketch's buckets give exactly the numpy forms' answers,
on any buckets, and refuse (None) what they cannot take in order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import sketch
from operators.sketch import _MAX_PACKED_COUNT, ZERO_BUCKET, QuantileSketch, _merged


@contextmanager
def _numpy_only() -> Iterator[None]:
    saved, sketch._buckets = sketch._buckets, None
    try:
        yield
    finally:
        sketch._buckets = saved


def test_the_compiled_buckets_are_built() -> None:
    # Never skipped: without the build, merging and ranking would be numpy's alone (setup.py).
    assert sketch._buckets is not None, "run `make install` (pip install -e .) to build it"


def _arrays(items: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(sorted(items), dtype=np.int32)
    counts = np.array([items[i] for i in sorted(items)], dtype=np.uint32)
    return idx, counts


_INDEX = st.one_of(st.integers(-3000, 3000), st.just(ZERO_BUCKET), st.just(2**31 - 1))
_BUCKETS = st.dictionaries(_INDEX, st.integers(1, 2**32 - 1), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_BUCKETS, _BUCKETS)
def test_merge_is_numpy_s(a: dict[int, int], b: dict[int, int]) -> None:
    compiled = _merged(_arrays(a), _arrays(b))
    with _numpy_only():
        plain = _merged(_arrays(a), _arrays(b))
    assert compiled == plain
    if compiled is not None:
        idx, counts = compiled
        total = {i: a.get(i, 0) + b.get(i, 0) for i in {*a, *b}}
        assert np.frombuffer(idx, dtype=np.int32).tolist() == sorted(total)
        assert np.frombuffer(counts, dtype=np.uint32).tolist() == [total[i] for i in sorted(total)]


def test_a_merged_count_over_32_bits_is_refused_and_out_of_order_indexes_left_to_numpy() -> None:
    assert sketch._buckets is not None
    big = np.array([_MAX_PACKED_COUNT], dtype=np.uint32)
    one = np.array([7], dtype=np.int32)
    assert sketch._buckets.merge(one, big, one, np.array([1], dtype=np.uint32), 2**32 - 1) is False
    assert _merged((one, big), (one, np.array([1], dtype=np.uint32))) is None
    unsorted = np.array([5, 2], dtype=np.int32)
    counts = np.array([1, 1], dtype=np.uint32)
    assert sketch._buckets.merge(unsorted, counts, one, big, 2**32 - 1) is None
    assert sketch._buckets.at_ranks(unsorted, counts, [0]) is None
    with pytest.raises(ValueError, match="not 4 each"):
        sketch._buckets.merge(b"\0" * 4, b"\0" * 8, b"", b"", 1)


def _searched(idx: np.ndarray, counts: np.ndarray, ranks: list[int]) -> list[int | None]:
    """numpy's form: the first bucket whose running count is over the rank."""
    found = np.searchsorted(np.cumsum(counts, dtype=np.int64), ranks, side="right").tolist()
    return [int(idx[f]) if f < len(idx) else None for f in found]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_INDEX, st.integers(0, 50), max_size=60),
    st.lists(st.integers(-5, 3000), max_size=8),
)
def test_the_bucket_at_each_rank_is_numpy_s_in_any_rank_order(
    items: dict[int, int], ranks: list[int]
) -> None:
    assert sketch._buckets is not None
    idx, counts = _arrays(items)
    assert sketch._buckets.at_ranks(idx, counts, ranks) == _searched(idx, counts, ranks)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5),
)
def test_a_packed_sketch_s_quantiles_are_the_same_compiled_or_not(
    values: list[float], qs: list[float]
) -> None:
    whole = QuantileSketch.from_values(values)
    idx, counts = _arrays(whole.buckets)
    packed = QuantileSketch.of_packed(idx, counts, whole.count, whole.min, whole.max, 0.005)
    compiled = packed.quantiles(qs)
    with _numpy_only():
        assert packed.quantiles(qs) == compiled == whole.quantiles(qs)
