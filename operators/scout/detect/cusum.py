"""`ScaleCusum`: Page's one-sided CUSUM on log(|residual| / long-run spread), with each hour's
usual excess on past days as its reference there (the forecaster's scale test; see `forecast`)."""

from __future__ import annotations

import math
from array import array
from typing import Any

# E[log |Z|] for Z ~ N(0, 1), -(Euler's gamma + log 2) / 2: the statistic's centre on white noise.
_LOG_ABS_MEAN = -0.6352
_GAP_STEPS = 3  # points after a sampling gap whose residuals say nothing of the noise


class ScaleCusum:
    """One-sided scale CUSUM with a time-of-day mean of its increments (bounded state)."""

    __slots__ = ("cool", "fired", "mu", "n", "s", "sums")

    def __init__(self, bins: int) -> None:
        self.s = 0.0  # the CUSUM statistic, in log-scale units
        self.fired = False  # it passed its bar and has not fallen back to zero since
        self.cool = 0  # points left that add nothing (after a sampling gap)
        self.mu = array("d", [0.0] * bins)  # mean increment per time-of-day bin (past days)
        self.sums = array("d", [0.0] * bins)  # today's increments per bin (join mu at midnight)
        self.n = array("d", [0.0] * bins)  # today's increments counted per bin

    def learn(
        self, r: float, spread: float, b: int, gap: bool, k: float, clip: float, cap: float
    ) -> None:
        """Add residual r's log scale over the long-run spread (clipped to +-clip), less k and
        less its usual excess in time-of-day bin b on past days; the statistic stays below cap."""
        if gap:
            self.cool = _GAP_STEPS
        if self.cool > 0 or spread <= 0:
            # A gap's residual is the level's move over it, not noise: it would count as a burst.
            self.cool = max(self.cool - 1, 0)
            return
        a = abs(r) / spread
        u = math.log(a) - _LOG_ABS_MEAN if a > 1e-12 else -clip
        if u > clip:
            u = clip
        elif u < -clip:
            u = -clip
        mu = self.mu
        if mu:
            # Only a wider usual noise excuses: a quiet hour's negative mean would sensitise the
            # test to the noise of its own estimate (and idle hours of real series are many).
            usual = mu[b]
            self.s += u - k - (usual if usual > 0.0 else 0.0)
            self.sums[b] += u
            self.n[b] += 1.0
        else:
            self.s += u - k
        if self.s < 0.0:
            self.s = 0.0
        elif self.s > cap:
            self.s = cap

    def test(self, bar: float) -> bool:
        """True when the statistic has just passed `bar`; then not again until it is back at 0."""
        if self.fired:
            self.fired = self.s > 0.0
            return False
        self.fired = self.s > bar
        return self.fired

    def roll(self, g: float) -> None:
        """A new day: each bin's mean moves by g towards the day's mean (bins it saw)."""
        for i in range(len(self.mu)):
            if self.n[i] > 0:
                self.mu[i] += g * (self.sums[i] / self.n[i] - self.mu[i])
            self.sums[i] = self.n[i] = 0.0

    def snapshot(self) -> list[Any]:
        """Plain picklable state."""
        return [self.s, self.fired, self.cool, list(self.mu), list(self.sums), list(self.n)]

    @classmethod
    def from_snapshot(cls, data: list[Any], bins: int) -> ScaleCusum:
        """Rebuild from `snapshot()` (a different bin count starts the daily means afresh)."""
        out = cls(bins)
        out.s, out.fired, out.cool = float(data[0]), bool(data[1]), int(data[2])
        if len(data[3]) == bins:
            out.mu = array("d", [float(v) for v in data[3]])
            out.sums = array("d", [float(v) for v in data[4]])
            out.n = array("d", [float(v) for v in data[5]])
        return out
