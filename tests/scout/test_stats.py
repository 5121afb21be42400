"""Exact statistics: binomial tails against brute force, Theil–Sen against outliers."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.scout.detect import stats
from operators.scout.detect.stats import (
    betabinom_cdf,
    betabinom_sf,
    binom_cdf,
    binom_sf,
    median_mad,
    theil_sen,
)


def _brute_sf(x: int, n: int, p: float) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(max(x, 0), n + 1))


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    n=st.integers(1, 300),
    p=st.floats(0.001, 0.999),
    frac=st.floats(0.0, 1.0),
)
def test_binomial_tails_match_brute_force(n: int, p: float, frac: float) -> None:
    x = round(frac * n)
    expected = _brute_sf(x, n, p)
    assert math.isclose(binom_sf(x, n, p), expected, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(
        binom_cdf(x, n, p), 1.0 - _brute_sf(x + 1, n, p), rel_tol=1e-6, abs_tol=1e-9
    )


def test_binomial_edges_and_large_n_is_fast() -> None:
    assert binom_sf(0, 10, 0.3) == 1.0
    assert binom_sf(11, 10, 0.3) == 0.0
    assert binom_cdf(10, 10, 0.3) == 1.0
    # 10 errors among 100 requests at a 1% baseline: C(100,10)·0.01^10·0.99^90 ≈ 7.0e-8 plus the
    # smaller terms beyond it, 7.6e-8 in all.
    assert 7.5e-8 < binom_sf(10, 100, 0.01) < 7.7e-8
    # a million trials: the tail sum stops after a few standard deviations
    assert binom_sf(11_000, 1_000_000, 0.01) < 1e-20


def _brute_betabinom(lo: int, hi: int, n: int, a: float, b: float) -> float:
    """P(lo <= X <= hi), the pmf summed term by term."""
    return math.fsum(math.exp(stats._betabinom_log_pmf(k, n, a, b)) for k in range(lo, hi + 1))


@settings(max_examples=150, deadline=None, database=None)
@given(
    n=st.integers(1, 400),
    a=st.floats(0.5, 200.0),
    b=st.floats(0.5, 5000.0),
    frac=st.floats(0.0, 1.0),
)
def test_beta_binomial_tails_match_brute_force(n: int, a: float, b: float, frac: float) -> None:
    x = round(frac * n)
    sf, cdf = _brute_betabinom(max(x, 1), n, n, a, b), _brute_betabinom(0, x, n, a, b)
    # the far side of a tail is 1 minus the near side: as exact as the pmf's sum (1 within 1e-11)
    assert math.isclose(betabinom_sf(x, n, a, b), sf if x else 1.0, rel_tol=1e-9, abs_tol=1e-11)
    assert math.isclose(betabinom_cdf(x, n, a, b), cdf, rel_tol=1e-9, abs_tol=1e-11)


@settings(max_examples=300, deadline=None, database=None)
@given(
    n=st.integers(1, 2_000_000),
    a=st.floats(0.5, 1e5),
    b=st.floats(0.5, 1e6),
    frac=st.floats(0.0, 1.0),
    up=st.booleans(),
)
def test_the_compiled_beta_binomial_tail_gives_pythons_float(
    n: int, a: float, b: float, frac: float, up: bool
) -> None:
    # Never skipped: without the build, the detectors would be Python's alone (setup.py).
    assert stats._tails is not None, "run `.venv/bin/python setup.py build_ext --inplace`"
    x = round(frac * n)
    term = math.exp(stats._betabinom_log_pmf(x, n, a, b))
    compiled = stats._tails.betabinom_tail(term, x, n, a, b, up)
    python = stats._sum_betabinom_terms(term, x, n, a, b, up)
    assert compiled == python or (math.isnan(compiled) and math.isnan(python))


def test_median_mad() -> None:
    assert median_mad([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, 1.0)


def test_theil_sen_ignores_outliers() -> None:
    t = np.arange(30.0)
    y = 0.5 + 0.01 * t
    y[[3, 17, 25]] += [0.4, -0.3, 0.5]
    slope, intercept, rising = theil_sen(t, y)
    assert abs(slope - 0.01) < 1e-3
    assert abs(intercept - 0.5) < 0.02
    assert rising > 0.8


def _numpy_median_mad(values: list[float]) -> tuple[float, float]:
    # What median_mad computed before its pure-Python path.
    arr = np.asarray(values, dtype=float)
    med = float(np.median(arr))
    return med, float(np.median(np.abs(arr - med)))


def _bits(pair: tuple[float, float]) -> tuple[bytes, bytes]:
    return tuple(np.float64(x).tobytes() for x in pair)  # type: ignore[return-value]


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, -0.0, 1.0, 2.5, 3.0]),
            st.integers(-5, 5),
        ),
        min_size=1,
        max_size=450,
    )
)
def test_median_mad_is_numpy_s_to_the_bit(values: list[float]) -> None:
    # Sorting in Python (and bisecting for the MAD) must give numpy's floats, NaN and signed
    # zeros included: a baseline's expected value is written into anomaly records.
    with np.errstate(all="ignore"):
        assert _bits(median_mad(values)) == _bits(_numpy_median_mad(values))
