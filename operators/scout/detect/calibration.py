"""`Calibration`: the upper quantiles of a series' own past scores, from a decayed log-binned
histogram (bounded state, O(bins) per query; the forecaster's conformal-style bars)."""

from __future__ import annotations

import math
from array import array
from typing import Any

_HIST_BINS = 64
_HIST_LO = 0.5  # values below this all land in the first bin
_HIST_RATIO = 1.25
_LOG_RATIO = math.log(_HIST_RATIO)
_RENORM = 1e200
# Upper edge of each bin, the same floats `_HIST_LO * _HIST_RATIO**i` gives per query.
_EDGES = tuple(_HIST_LO * _HIST_RATIO**i for i in range(_HIST_BINS))


class Calibration:
    """A decayed log-binned histogram of past values: their upper quantiles, in O(bins)."""

    __slots__ = ("hist", "top", "total", "weight")

    def __init__(self) -> None:
        self.hist = array("d", [0.0] * _HIST_BINS)
        self.weight = 1.0  # the next increment (grows instead of decaying all bins)
        self.total = 0.0
        # No bin above this one was ever filled: a quantile's scan starts here, not at the
        # last bin (scores rarely pass 5, so most of the 64 bins stay empty; not in snapshots).
        self.top = 0

    def learn(self, v: float, memory: int) -> None:
        i = (
            0
            if v <= _HIST_LO
            else min(int(math.log(v / _HIST_LO) / _LOG_RATIO) + 1, _HIST_BINS - 1)
        )
        self.hist[i] += self.weight
        if i > self.top:
            self.top = i
        self.total += self.weight
        self.weight /= 1.0 - 1.0 / memory
        if self.weight > _RENORM:
            for j in range(_HIST_BINS):
                self.hist[j] /= self.weight
            self.total /= self.weight
            self.weight = 1.0

    def snapshot(self) -> list[Any]:
        return [list(self.hist), self.total, self.weight]

    @classmethod
    def from_snapshot(cls, data: list[Any]) -> Calibration:
        out = cls()
        out.hist = array("d", [float(v) for v in data[0]])
        out.total, out.weight = float(data[1]), float(data[2])
        out.top = min(max((i for i, v in enumerate(out.hist) if v), default=0), _HIST_BINS - 1)
        return out

    def quantile(self, q: float) -> float:
        """The upper edge of the bin holding the q quantile (0 with no history)."""
        tail = (1.0 - q) * self.total
        acc = 0.0
        hist = self.hist
        # The empty bins above `top` add nothing to acc, so starting there changes no result.
        for i in range(self.top, -1, -1):
            acc += hist[i]
            if acc > tail:
                return _EDGES[i]
        return 0.0
