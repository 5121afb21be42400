"""The compiled group-bys give exactly the numpy forms' arrays, on any input, and the numpy forms
give what a plain Python loop gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.signals import groups
from operators.sketch import ZERO_BUCKET

W = 10 * 10**9


def _both(call, *args):  # type: ignore[no-untyped-def]
    compiled = call(*args)
    saved, groups._groups = groups._groups, None
    try:
        plain = call(*args)
    finally:
        groups._groups = saved
    return compiled, plain


def _same(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        else:
            assert x == y


def test_the_compiled_group_bys_are_built() -> None:
    # Never skipped: without the build, the aggregation would be numpy's alone (setup.py).
    assert groups._groups is not None, "run `make install` (pip install -e .) to build it"


_spans = st.integers(1, 300).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5), min_size=n, max_size=n),
        # around the epoch too: a negative end's window is the floor, as numpy's //
        st.lists(st.integers(-3 * W, 40 * W), min_size=n, max_size=n),
        st.lists(st.integers(0, 10**10), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(_spans, st.sampled_from([W, 7, 1]))
def test_groups_and_their_stats_match_numpy(spans: tuple, window_ns: int) -> None:  # type: ignore[type-arg]
    pair, end, dur, err = (np.array(c) for c in spans)
    pair, end = pair.astype(np.int64), end.astype(np.int64)
    compiled, plain = _both(groups.group_spans, pair, end, window_ns, 6)
    _same(compiled, plain)
    ginv, ng = plain.ginv, len(plain.gids)
    dur_ms = dur.astype(np.int64) / 1e6
    _same(*_both(groups.group_stats, ginv, ng, end, dur_ms, err.astype(bool)))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 9), min_size=n, max_size=n),
            st.lists(
                st.one_of(st.integers(-1400, 1400), st.just(ZERO_BUCKET)), min_size=n, max_size=n
            ),
        )
    ),
    st.booleans(),
)
def test_value_counts_match_numpy_and_a_loop(columns: tuple, sentinel: bool) -> None:  # type: ignore[type-arg]
    ginv, values = (np.array(c, dtype=np.int64) for c in columns)
    ng = int(ginv.max()) + 1
    lowest = ZERO_BUCKET if sentinel else None
    compiled, plain = _both(groups.value_counts, ginv, ng, values, lowest)
    _same(compiled, plain)
    for g in range(ng):
        rows = slice(plain.rows[g], plain.rows[g + 1])
        mine = values[ginv == g].tolist()
        expect = sorted(set(mine))
        assert plain.values[rows].tolist() == expect
        assert plain.counts[rows].tolist() == [mine.count(v) for v in expect]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 200).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 7), min_size=n, max_size=n),
            # few distinct ends: ties, whose last span in arrival order is the newest
            st.lists(st.integers(-3, 3), min_size=n, max_size=n),
            st.lists(st.integers(0, 3), min_size=n, max_size=n),
        )
    )
)
def test_each_group_s_newest_span_of_a_kind_matches_numpy_and_a_loop(columns: tuple) -> None:  # type: ignore[type-arg]
    ginv, end, kind = (np.array(c, dtype=np.int64) for c in columns)
    kind = kind.astype(np.int8)
    ng = int(ginv.max()) + 1 if len(ginv) else 0
    compiled, plain = _both(groups.newest, ginv, ng, end, kind, 2)
    assert compiled.dtype == plain.dtype and compiled.tolist() == plain.tolist()
    for g in range(ng):
        mine = [i for i in range(len(ginv)) if ginv[i] == g and kind[i] == 2]
        expect = max(mine, key=lambda i: (end[i], i)) if mine else -1
        assert plain[g] == expect


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nan_durations_win_as_in_numpy() -> None:
    ginv = np.array([0, 0, 1, 1], dtype=np.int64)
    dur = np.array([1.0, np.nan, 2.0, 3.0])
    end = np.arange(4, dtype=np.int64)
    compiled, plain = _both(groups.group_stats, ginv, 2, end, dur, np.zeros(4, dtype=bool))
    _same(compiled, plain)
    assert np.isnan(compiled.lo[0]) and compiled.hi[1] == 3.0


def test_keys_too_sparse_to_count_fall_back_to_sorting() -> None:
    # windows a year apart: the dense range would be millions of slots for three spans
    end = np.array([0, 365 * 86_400 * 10**9, 2 * 365 * 86_400 * 10**9], dtype=np.int64)
    pair = np.zeros(3, dtype=np.int64)
    assert groups._groups is not None
    assert groups._groups.groups(pair, end, W, 1) is None
    compiled, plain = _both(groups.group_spans, pair, end, W, 1)
    _same(compiled, plain)
    assert compiled.ginv.tolist() == [0, 1, 2]
    values = np.array([0, 10**12, 5], dtype=np.int64)
    assert groups._groups.value_counts(np.zeros(3, dtype=np.int64), 1, values, -(2**63)) is None
    _same(*_both(groups.value_counts, np.zeros(3, dtype=np.int64), 1, values))


def test_bad_input_is_an_error_not_a_crash() -> None:
    assert groups._groups is not None
    with pytest.raises(ValueError, match="pair code"):
        groups._groups.groups(np.array([3], dtype=np.int64), np.zeros(1, dtype=np.int64), W, 2)
    with pytest.raises(ValueError, match="group index"):
        groups._groups.group_stats(
            np.array([5], dtype=np.int64),
            2,
            np.zeros(1, dtype=np.int64),
            np.zeros(1),
            np.zeros(1, dtype=bool),
        )
    with pytest.raises(ValueError, match="items"):
        groups._groups.value_counts(np.zeros(2, dtype=np.int64), 1, np.zeros(3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="group index"):
        groups._groups.newest(
            np.array([2], dtype=np.int64), 2, np.zeros(1, dtype=np.int64), np.ones(1, np.int8), 1
        )
