"""The quantile sketch: merge is exact and order-free; quantiles are within 1% of numpy's."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.sketch import QuantileSketch, mapping_for

positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(positive, min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(samples, samples, samples)
def test_merge_is_associative_and_commutative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    def s(x: list[float]) -> QuantileSketch:
        return QuantileSketch.from_values(x)

    left = s(a).merge(s(b)).merge(s(c))
    right = s(a).merge(s(b).merge(s(c)))
    swapped = s(c).merge(s(a)).merge(s(b))
    whole = s(a + b + c)
    assert left == right == swapped == whole


@settings(max_examples=150, deadline=None)
@given(samples, st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantiles_within_one_percent_of_numpy(values: list[float], q: float) -> None:
    got = QuantileSketch.from_values(values).quantile(q)
    want = float(np.percentile(values, q * 100))
    assert got is not None
    assert abs(got - want) <= 0.01 * want


def test_long_tailed_latencies_within_bound_at_p50_p95_p99() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=3.0, sigma=1.2, size=50_000)
    sketch = QuantileSketch.from_values(values)
    for q in (0.5, 0.95, 0.99):
        want = float(np.percentile(values, q * 100))
        assert abs(sketch.quantile(q) - want) <= 0.01 * want  # type: ignore[operator]


def test_empty_and_zero_values() -> None:
    assert QuantileSketch().quantile(0.5) is None
    sketch = QuantileSketch.from_values([0.0, 0.0, 5.0])
    assert sketch.quantile(0.0) == 0.0
    assert sketch.quantile(1.0) == 5.0


def test_pickle_round_trip_keeps_state() -> None:
    sketch = QuantileSketch.from_values([1.0, 2.0, 3.0])
    assert pickle.loads(pickle.dumps(sketch)) == sketch


def _walk(sketch: QuantileSketch, q: float) -> float | None:
    """The quantile as it was computed before: the sorted buckets walked anew for each rank."""

    def at(rank: int) -> float:
        if rank <= 0:
            return sketch.min
        if rank >= sketch.count - 1:
            return sketch.max
        seen = 0
        for i in sorted(sketch.buckets):
            seen += sketch.buckets[i]
            if seen > rank:
                return min(max(mapping_for(sketch.accuracy).value(i), sketch.min), sketch.max)
        return sketch.max

    if sketch.count == 0:
        return None
    rank = q * (sketch.count - 1)
    lo = at(int(rank))
    frac = rank - int(rank)
    return lo if frac == 0.0 else lo + frac * (at(int(rank) + 1) - lo)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(positive, st.sampled_from([0.0, 1.0, 7.5])), max_size=300),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
)
def test_quantiles_at_once_are_the_walk_s_per_rank(values: list[float], qs: list[float]) -> None:
    sketch = QuantileSketch.from_values(values)
    want = [_walk(sketch, q) for q in qs]
    assert sketch.quantiles(qs) == want
    assert [sketch.quantile(q) for q in qs] == want


def _packed(values: list[float]) -> QuantileSketch:
    """The sketch of `values` as the aggregator makes it: from arrays, kept packed."""
    whole = QuantileSketch.from_values(values)
    idx = np.array(list(whole.buckets), dtype=np.int64)
    counts = np.array(list(whole.buckets.values()), dtype=np.int64)
    return QuantileSketch.of_packed(idx, counts, whole.count, whole.min, whole.max, whole.accuracy)


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_a_packed_sketch_crosses_pickle_and_merges_as_its_dict_would(
    a: list[float], b: list[float]
) -> None:
    packed = pickle.loads(pickle.dumps(_packed(a)))
    assert packed._buckets is None  # still packed: no dict was built to cross
    assert packed == QuantileSketch.from_values(a)
    # merged into (the window's accumulator), or merged from (a partial folded in)
    assert _packed(a).merge(_packed(b)) == QuantileSketch.from_values(a + b)
    both = _packed(a).merge(_packed(b))
    assert both._buckets is None  # two packed sketches merge as arrays, still packed
    assert both.quantiles((0.5, 0.95, 0.99)) == QuantileSketch.from_values(a + b).quantiles(
        (0.5, 0.95, 0.99)
    )
    crossed = pickle.loads(pickle.dumps(_packed(b)))
    assert QuantileSketch.from_values(a).merge(crossed) == QuantileSketch.from_values(a + b)
    qs = (0.5, 0.95, 0.99)
    assert _packed(a).quantiles(qs) == QuantileSketch.from_values(a).quantiles(qs)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(positive, st.sampled_from([0.0, 1.0, 7.5])), min_size=1, max_size=300),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_a_packed_sketchs_quantiles_are_its_dicts_in_any_bucket_order(
    values: list[float], qs: list[float], rng: Any
) -> None:
    whole = QuantileSketch.from_values(values)
    items = list(whole.buckets.items())
    rng.shuffle(items)  # packed as they came: not necessarily by index
    idx = np.array([i for i, _ in items], dtype=np.int64)
    counts = np.array([c for _, c in items], dtype=np.int64)
    packed = QuantileSketch.of_packed(idx, counts, whole.count, whole.min, whole.max, 0.005)
    assert packed.quantiles(qs) == whole.quantiles(qs)
    assert packed._buckets is None  # read from the arrays, no dict built


def test_state_pickled_before_sketches_were_packed_still_loads() -> None:
    # the state tuple of earlier versions, as a recovery snapshot holds it
    old = QuantileSketch.__new__(QuantileSketch)
    old.__setstate__((0.01, {3: 2, 5: 1}, 3, 1.0, 2.0))
    assert old.buckets == {3: 2, 5: 1} and old.count == 3
    assert pickle.loads(pickle.dumps(old)) == old


def test_a_count_over_32_bits_is_kept_as_a_dict() -> None:
    idx, counts = np.array([1, 2]), np.array([1, 2**33])
    sketch = QuantileSketch.of_packed(idx, counts, 2**33 + 1, 1.0, 2.0, 0.01)
    assert sketch._buckets == {1: 1, 2: 2**33}


def test_packed_sketches_whose_sum_needs_over_32_bits_merge_into_a_dict() -> None:
    big = 2**32 - 1
    a = QuantileSketch.of_packed(np.array([1, 2]), np.array([big, 1]), big + 1, 1.0, 2.0, 0.01)
    b = QuantileSketch.of_packed(np.array([2, 1]), np.array([3, 5]), 8, 0.5, 2.0, 0.01)
    merged = a.merge(b)
    assert merged.buckets == {1: big + 5, 2: 4}
    assert (merged.count, merged.min, merged.max) == (big + 9, 0.5, 2.0)
