"""Small, exact statistics for the detectors, with math and numpy only (no scipy here).

- robust location and scale (median, MAD),
- exact binomial and beta-binomial tail probabilities (summed from the tail inward, so cost is
  bounded by a few standard deviations, not by n; the beta-binomial's sum compiled when built),
- the Theil–Sen slope (median of pairwise slopes), which a few outliers cannot tilt.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# The beta-binomial tail sum compiled (setup.py), the same floats as `_sum_betabinom_terms`;
# not built (or SRE_PURE_PYTHON=1): Python sums it.
_tails: Any = None
if os.environ.get("SRE_PURE_PYTHON") != "1":
    with contextlib.suppress(ImportError):
        _tails = importlib.import_module("operators.scout.detect._tails")

# MAD * 1.4826 estimates the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826


# Up to this many values, sorting in Python beats numpy's per-call overhead (a history holds 18
# to 360 values: ~2 us against ~25 us at 18); numpy takes longer ones.
_PY_MEDIAN_MAX = 400
# Up to this many, sorting every deviation is quicker than bisecting for the middle ones.
_SORT_DEVIATIONS_MAX = 48


def _middle(ordered: list[float]) -> float:
    """numpy's median of sorted values: the middle one, or the mean of the middle two."""
    n = len(ordered)
    half = n // 2
    return ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2


def _kth_deviation(ordered: list[float], med: float, k: int) -> float:
    """The k-th smallest (from 0) of |v - med| over sorted values around their median.

    The deviations of the values below the middle grow leftwards, those of the rest rightwards:
    two sorted runs, so the k-th is found by bisecting how many of the k + 1 smallest come from
    the left run, without computing and sorting all n deviations.
    """
    p = len(ordered) // 2  # ordered[:p] <= med <= ordered[p:]
    lo, hi = max(0, k + 1 - (len(ordered) - p)), min(k + 1, p)
    while lo < hi:
        i = (lo + hi) // 2
        # taking i from the left: its next one is smaller than the right's last one taken
        if abs(ordered[p - 1 - i] - med) < abs(ordered[p + k - i] - med):
            lo = i + 1
        else:
            hi = i
    left = abs(ordered[p - lo] - med) if lo > 0 else -math.inf
    right = abs(ordered[p + k - lo] - med) if k + 1 - lo > 0 else -math.inf
    return max(left, right)


def median_mad(values: Sequence[float]) -> tuple[float, float]:
    """Median and median absolute deviation (unscaled) of a non-empty sequence."""
    if 0 < len(values) <= _PY_MEDIAN_MAX:
        ordered = sorted(map(float, values))
        med = _middle(ordered)
        # The same floats as numpy, but where numpy's choice cannot be told from the values:
        # a NaN (a sum is NaN then), an infinite median (its deviations are NaN), and a zero
        # median among signed zeros (which zero numpy's partition lands on is its own).
        total = sum(ordered)
        if (
            total == total
            and math.isfinite(med)
            and not (med == 0.0 and any(v == 0.0 and math.copysign(1.0, v) < 0 for v in ordered))
        ):
            n, half = len(ordered), len(ordered) // 2
            if n <= _SORT_DEVIATIONS_MAX:
                deviations = [abs(v - med) for v in ordered]
                deviations.sort()
                return med, _middle(deviations)
            mad = _kth_deviation(ordered, med, half)
            if n % 2 == 0:
                mad = (_kth_deviation(ordered, med, half - 1) + mad) / 2
            return med, mad
    arr = np.asarray(values, dtype=float)
    med = float(np.median(arr))
    mad = float(np.median(np.abs(arr - med)))
    return med, mad


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def _sum_up(x: int, n: int, p: float) -> float:
    """P(X >= x) for x above the mean: terms shrink as k grows."""
    term = math.exp(_log_pmf(x, n, p))
    total = term
    ratio_p = p / (1.0 - p)
    k = x
    while k < n:
        term *= (n - k) / (k + 1) * ratio_p
        k += 1
        total += term
        if term <= total * 1e-15:
            break
    return min(total, 1.0)


def _sum_down(y: int, n: int, p: float) -> float:
    """P(X <= y) for y below the mean: terms shrink as k falls."""
    term = math.exp(_log_pmf(y, n, p))
    total = term
    ratio_q = (1.0 - p) / p
    k = y
    while k > 0:
        term *= k / (n - k + 1) * ratio_q
        k -= 1
        total += term
        if term <= total * 1e-15:
            break
    return min(total, 1.0)


def binom_sf(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), exact."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if x > n * p:
        return _sum_up(x, n, p)
    return max(0.0, 1.0 - _sum_down(x - 1, n, p))


def binom_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p), exact."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if x < n * p:
        return _sum_down(x, n, p)
    return max(0.0, 1.0 - _sum_up(x + 1, n, p))


def _betabinom_log_pmf(k: int, n: int, a: float, b: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + math.lgamma(k + a)
        + math.lgamma(n - k + b)
        - math.lgamma(n + a + b)
        + math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
    )


def _betabinom_tail(x: int, n: int, a: float, b: float, up: bool) -> float:
    """P(X >= x) (up) or P(X <= x), summed outward from x; stops once terms shrink to nothing."""
    term = math.exp(_betabinom_log_pmf(x, n, a, b))
    if _tails is not None and abs(n) < 2**53:  # ints a double holds exactly
        return float(_tails.betabinom_tail(term, x, n, float(a), float(b), up))
    return _sum_betabinom_terms(term, x, n, a, b, up)


def _sum_betabinom_terms(term: float, x: int, n: int, a: float, b: float, up: bool) -> float:
    """`_betabinom_tail`'s sum from the pmf `term` at x, in Python."""
    total, prev, k = term, term, x
    while (k < n) if up else (k > 0):
        if up:
            term *= (n - k) / (k + 1) * (k + a) / (n - k - 1 + b)
            k += 1
        else:
            term *= k / (n - k + 1) * (n - k + b) / (k - 1 + a)
            k -= 1
        total += term
        if term <= prev and term <= total * 1e-15:
            break
        prev = term
    return min(total, 1.0)


def betabinom_sf(x: int, n: int, a: float, b: float) -> float:
    """P(X >= x) for X ~ BetaBinomial(n, a, b): a count of n trials whose rate is uncertain,
    Beta(a, b) (the posterior predictive of a rate learnt from a - 1/2 of a + b - 1 trials)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if x > n * a / (a + b):
        return _betabinom_tail(x, n, a, b, up=True)
    return max(0.0, 1.0 - _betabinom_tail(x - 1, n, a, b, up=False))


def betabinom_cdf(x: int, n: int, a: float, b: float) -> float:
    """P(X <= x) for X ~ BetaBinomial(n, a, b)."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    if x < n * a / (a + b):
        return _betabinom_tail(x, n, a, b, up=False)
    return max(0.0, 1.0 - _betabinom_tail(x + 1, n, a, b, up=True))


def theil_sen(t: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float, float]:
    """Robust line through (t, y): (slope, intercept, share of rising pairs).

    The share of rising pairs (Mann–Kendall's idea) tells a trend from noise around a level.
    """
    ts = np.asarray(t, dtype=float)
    ys = np.asarray(y, dtype=float)
    i, j = np.triu_indices(ts.shape[0], k=1)
    dt = ts[j] - ts[i]
    ok = dt > 0
    if not np.any(ok):
        return 0.0, float(np.median(ys)), 0.0
    dy = ys[j][ok] - ys[i][ok]
    slopes = dy / dt[ok]
    slope = float(np.median(slopes))
    intercept = float(np.median(ys - slope * ts))
    rising = float(np.mean(dy > 0))
    return slope, intercept, rising
