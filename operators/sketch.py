"""A mergeable quantile sketch with bounded relative error (DDSketch-style log buckets).

A value v > 0 falls into bucket ceil(log_gamma(v)) with gamma = (1 + a) / (1 - a); the bucket's
representative 2 gamma^i / (gamma + 1) is within a relative error `a` of every value in it. Bucket
counts add exactly, so merging is associative and commutative and every merge order gives the same
sketch: windows merged across workers match a single worker's bit for bit.

Quantiles interpolate linearly between the two neighbouring ranks, like numpy's default method, so
the answer is within `a` of `numpy.percentile` on the same data.

A packed sketch's buckets merge and rank compiled (`_buckets.c`, one pass where numpy sorted and
summed) when built and SRE_PURE_PYTHON is not 1; else with numpy. Both give the same buckets.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_ACCURACY = 0.005
# Values at or below this are counted in the zero bucket (latencies in ms: below 1 ns).
MIN_VALUE = 1e-6
ZERO_BUCKET = -(2**31)
_MAX_PACKED_COUNT = 2**32 - 1

_buckets: Any = None
if os.environ.get("SRE_PURE_PYTHON") != "1":
    with contextlib.suppress(ImportError):
        _buckets = importlib.import_module("operators._buckets")


class LogMapping:
    """Value <-> bucket index mapping for a relative accuracy."""

    __slots__ = ("accuracy", "gamma", "inv_log_gamma")

    def __init__(self, accuracy: float = DEFAULT_ACCURACY) -> None:
        if not 0.0 < accuracy < 1.0:
            raise ValueError(f"sketch accuracy must be in (0, 1), got {accuracy}")
        self.accuracy = accuracy
        self.gamma = (1.0 + accuracy) / (1.0 - accuracy)
        self.inv_log_gamma = 1.0 / math.log(self.gamma)

    def index(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Bucket index per value (vectorised); non-positive values go to the zero bucket."""
        safe = np.maximum(values, MIN_VALUE)
        idx = np.ceil(np.log(safe) * self.inv_log_gamma).astype(np.int64)
        return np.where(values > MIN_VALUE, idx, ZERO_BUCKET)

    def value(self, index: int) -> float:
        """The representative value of a bucket."""
        if index == ZERO_BUCKET:
            return 0.0
        return 2.0 * self.gamma**index / (self.gamma + 1.0)


_MAPPINGS: dict[float, LogMapping] = {}


def mapping_for(accuracy: float = DEFAULT_ACCURACY) -> LogMapping:
    """A shared mapping per accuracy (they are immutable)."""
    m = _MAPPINGS.get(accuracy)
    if m is None:
        m = _MAPPINGS[accuracy] = LogMapping(accuracy)
    return m


def _merged(
    a: tuple[npt.NDArray[np.int32], npt.NDArray[np.uint32]],
    b: tuple[npt.NDArray[np.int32], npt.NDArray[np.uint32]],
) -> tuple[bytes, bytes] | None:
    """Two packed sketches' buckets added, packed (indexes ascending); None when a count then
    needs more than 32 bits."""
    if _buckets is not None:
        merged = _buckets.merge(a[0], a[1], b[0], b[1], _MAX_PACKED_COUNT)
        if merged is not None:  # None: indexes out of order, which numpy sorts
            return merged or None  # False: a count over 32 bits
    idx = np.concatenate([a[0], b[0]])
    counts = np.concatenate([a[1], b[1]]).astype(np.int64)
    if not len(idx):
        return idx.tobytes(), counts.astype(np.uint32).tobytes()
    order = np.argsort(idx, kind="stable")
    idx, counts = idx[order], counts[order]
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    sums = np.add.reduceat(counts, starts)
    if int(sums.max()) > _MAX_PACKED_COUNT:
        return None
    return idx[starts].tobytes(), sums.astype(np.uint32).tobytes()


class QuantileSketch:
    """Bucket counts plus exact count, min and max; picklable for Bytewax state and exchange.

    A sketch the aggregator made from arrays keeps them packed (`of_packed`) until its buckets
    are read: a partial crosses between workers as two byte strings, which unpickle at once,
    where a dict of ~300 buckets took 14 us to rebuild.
    """

    __slots__ = ("_buckets", "_packed", "accuracy", "count", "max", "min")

    def __init__(self, accuracy: float = DEFAULT_ACCURACY) -> None:
        self.accuracy = accuracy
        self._buckets: dict[int, int] | None = {}
        self._packed: tuple[bytes, bytes] | None = None  # int32 indexes, uint32 counts
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def buckets(self) -> dict[int, int]:
        """Bucket index -> count."""
        if self._buckets is None:
            idx, counts = self._items()
            self._buckets = dict(zip(idx, counts, strict=True))
            self._packed = None
        return self._buckets

    def _arrays(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint32]]:
        """A packed sketch's bucket indexes and counts, as arrays over its bytes."""
        assert self._packed is not None
        idx, counts = self._packed
        return np.frombuffer(idx, dtype=np.int32), np.frombuffer(counts, dtype=np.uint32)

    def _items(self) -> tuple[list[int], list[int]]:
        idx, counts = self._arrays()
        return idx.tolist(), counts.tolist()

    def __getstate__(self) -> tuple[float, dict[int, int] | tuple[bytes, bytes], int, float, float]:
        held = self._buckets if self._buckets is not None else self._packed
        assert held is not None
        return (self.accuracy, held, self.count, self.min, self.max)

    def __setstate__(
        self, state: tuple[float, dict[int, int] | tuple[bytes, bytes], int, float, float]
    ) -> None:
        self.accuracy, held, self.count, self.min, self.max = state
        # a dict: state written before sketches were packed, or a sketch that merged others
        self._buckets, self._packed = (held, None) if isinstance(held, dict) else (None, held)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        mine = (self.accuracy, self.buckets, self.count, self.min, self.max)
        return mine == (other.accuracy, other.buckets, other.count, other.min, other.max)

    @classmethod
    def from_values(
        cls, values: Iterable[float] | npt.NDArray[np.float64], accuracy: float = DEFAULT_ACCURACY
    ) -> QuantileSketch:
        """A sketch of the given values."""
        sketch = cls(accuracy)
        sketch.add_array(
            np.asarray(
                list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64
            )
        )
        return sketch

    def add_array(self, values: npt.NDArray[np.float64]) -> None:
        """Add many values at once (vectorised)."""
        if values.size == 0:
            return
        idx, counts = np.unique(mapping_for(self.accuracy).index(values), return_counts=True)
        self.add_buckets(
            dict(zip(idx.tolist(), counts.tolist(), strict=True)),
            int(values.size),
            float(values.min()),
            float(values.max()),
        )

    @classmethod
    def of_buckets(
        cls, buckets: dict[int, int], count: int, lo: float, hi: float, accuracy: float
    ) -> QuantileSketch:
        """A sketch owning pre-bucketed counts (the aggregator buckets a whole batch at once)."""
        sketch = cls(accuracy)
        sketch._buckets, sketch.count, sketch.min, sketch.max = buckets, count, lo, hi
        return sketch

    @classmethod
    def of_packed(
        cls,
        idx: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        count: int,
        lo: float,
        hi: float,
        accuracy: float,
    ) -> QuantileSketch:
        """`of_buckets` from the buckets' indexes and counts, kept packed until read (as a dict
        when a count needs more than 32 bits; every index fits, ZERO_BUCKET included)."""
        if len(counts) and int(counts.max()) > _MAX_PACKED_COUNT:
            buckets = dict(zip(idx.tolist(), counts.tolist(), strict=True))
            return cls.of_buckets(buckets, count, lo, hi, accuracy)
        sketch = cls(accuracy)
        sketch._buckets = None
        sketch._packed = (idx.astype(np.int32).tobytes(), counts.astype(np.uint32).tobytes())
        sketch.count, sketch.min, sketch.max = count, lo, hi
        return sketch

    def add_buckets(self, buckets: Mapping[int, int], count: int, lo: float, hi: float) -> None:
        """Add pre-bucketed counts into this sketch."""
        self._add(buckets.items(), count, lo, hi)

    def _add(self, items: Iterable[tuple[int, int]], count: int, lo: float, hi: float) -> None:
        mine = self.buckets
        get = mine.get  # bound once: windows fold a partial's ~150 buckets per poll and key
        for i, c in items:
            mine[i] = get(i, 0) + c
        self.count += count
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Add another sketch's counts into this one (in place) and return self."""
        if other.accuracy != self.accuracy:
            raise ValueError(
                f"cannot merge sketches of accuracy {self.accuracy} and {other.accuracy}"
            )
        if self._packed is not None and other._packed is not None:
            # Two packed sketches (a window's partials from two polls) merge as arrays: the dict
            # of one and a Python step per bucket of the other were most of folding a window.
            packed = _merged(self._arrays(), other._arrays())
            if packed is not None:
                self._packed = packed
                self.count += other.count
                self.min = min(self.min, other.min)
                self.max = max(self.max, other.max)
                return self
        # a packed sketch is merged from its arrays: no dict for one that is then dropped
        held = other._buckets
        items = zip(*other._items(), strict=True) if held is None else held.items()
        self._add(items, other.count, other.min, other.max)
        return self

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1), linearly interpolated between ranks; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles at once, from one sort of the buckets."""
        qs = list(qs)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.count == 0:
            return [None] * len(qs)
        # (lower rank, fraction towards the next) per quantile, as numpy's linear method
        plan: list[tuple[int, float]] = []
        ranks: set[int] = set()
        for q in qs:
            rank = q * (self.count - 1)
            lo_rank = math.floor(rank)
            frac = rank - lo_rank
            plan.append((lo_rank, frac))
            ranks.add(lo_rank)
            if frac != 0.0:
                ranks.add(lo_rank + 1)
        at = self._values_at_ranks(sorted(ranks))
        out: list[float | None] = []
        for lo_rank, frac in plan:
            lo = at[lo_rank]
            out.append(lo if frac == 0.0 else lo + frac * (at[lo_rank + 1] - lo))
        return out

    def _values_at_ranks(self, ranks: list[int]) -> dict[int, float]:
        """The value at each rank: that of the first bucket whose running count passes it."""
        # One sort of the buckets for all ranks: finalizing a span window sorted them up to six
        # times (p50, p95, p99, two ranks each), and that was most of finalizing it.
        out: dict[int, float] = {}
        last = self.count - 1
        inner: list[int] = []
        for rank in ranks:
            # The extremes are known exactly; clamp representatives into [min, max].
            if rank <= 0:
                out[rank] = self.min
            elif rank >= last:
                out[rank] = self.max
            else:
                inner.append(rank)
        if not inner:
            return out
        m = mapping_for(self.accuracy)
        for rank, bucket in zip(inner, self._buckets_at(inner), strict=True):
            out[rank] = (
                self.max if bucket is None else min(max(m.value(bucket), self.min), self.max)
            )
        return out

    def _buckets_at(self, ranks: list[int]) -> list[int | None]:
        """The index of the first bucket whose running count passes each rank (None: none)."""
        if self._packed is not None and _buckets is not None:
            # Compiled: numpy's sort, sums and search of ~300 buckets were half of finalizing.
            found_at: list[int | None] | None = _buckets.at_ranks(*self._packed, ranks)
            if found_at is not None:  # None: indexes out of order, which numpy sorts
                return found_at
        # Running counts built in C (no Python step per bucket), bisected per rank.
        order: Sequence[int] | npt.NDArray[np.int32]
        if self._packed is not None:
            # From the packed arrays: the dict of them took two fifths of finalizing a window,
            # and lists of them (to bisect) most of the rest.
            idx, counted = self._arrays()
            by_index = np.argsort(idx, kind="stable")
            order = idx[by_index]
            running = np.cumsum(counted[by_index], dtype=np.int64)
            found = np.searchsorted(running, ranks, side="right").tolist()
        else:
            buckets = self.buckets
            order = sorted(buckets)
            counts = itemgetter(*order)(buckets) if len(order) > 1 else (buckets[order[0]],)
            sums = list(accumulate(counts))
            found = [bisect_right(sums, rank) for rank in ranks]
        return [None if at == len(order) else int(order[at]) for at in found]
