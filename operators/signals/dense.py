"""Grouping integer keys by counting instead of sorting, when the keys span a small range.

The aggregator groups every span of a poll several times (by group, by sketch bucket, by version,
by kind). `np.unique` sorts, O(n log n) per call; when the keys fall in a range not much larger
than their number, one `bincount` and one gather give the same answer in O(n).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Counting allocates one slot per value in the range: allow this much beyond one slot per key.
_MIN_RANGE = 1 << 16
_RANGE_PER_KEY = 4

Ints = npt.NDArray[np.int64]


def _dense(keys: Ints) -> tuple[int, int] | None:
    """(lowest key, range) when counting is cheaper than sorting, else None."""
    if len(keys) == 0:
        return None
    lo, hi = int(keys.min()), int(keys.max())
    span = hi - lo + 1
    return (lo, span) if span <= max(_RANGE_PER_KEY * len(keys), _MIN_RANGE) else None


def unique_inverse(keys: Ints) -> tuple[Ints, Ints]:
    """`np.unique(keys, return_inverse=True)`: the sorted distinct keys and each key's index."""
    dense = _dense(keys)
    if dense is None:
        uniq, inverse = np.unique(keys, return_inverse=True)
        return uniq.astype(np.int64), inverse.astype(np.int64)
    lo, span = dense
    shifted = keys - lo
    present = np.flatnonzero(np.bincount(shifted, minlength=span))
    code = np.zeros(span, dtype=np.int64)
    code[present] = np.arange(len(present), dtype=np.int64)
    return present + lo, code[shifted]


def unique_counts(keys: Ints) -> tuple[Ints, Ints]:
    """`np.unique(keys, return_counts=True)`: the sorted distinct keys and how often each occurs."""
    dense = _dense(keys)
    if dense is None:
        uniq, counts = np.unique(keys, return_counts=True)
        return uniq.astype(np.int64), counts.astype(np.int64)
    lo, span = dense
    tally = np.bincount(keys - lo, minlength=span)
    present = np.flatnonzero(tally)
    return present + lo, tally[present].astype(np.int64)
