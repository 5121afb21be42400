"""`SmoothingModel`: one robust damped-trend exponential smoother, optionally with an additive
seasonal profile (the forecaster's building block; see `forecast` for the method)."""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.scout.detect.tuning import Tuning


class SmoothingModel:
    """One robust damped-trend smoother, optionally with an additive seasonal profile."""

    __slots__ = (
        "bins",
        "err",
        "level",
        "period",
        "ring",
        "scale",
        "season",
        "spread",
        "t0",
        "trend",
    )

    def __init__(self, period: float, bins: int, x: float, t: float) -> None:
        self.period = period
        self.bins = bins
        self.level = x
        self.trend = 0.0
        # A packed array: 8 bytes a bin, not a Python float object each (50k series).
        self.season = array("d", [math.nan] * bins)
        self.scale = 0.0
        self.spread = 0.0  # long-run mean absolute clipped residual: the scale's floor
        self.err = 0.0  # running mean |residual|, for model selection
        self.ring: list[float] = []  # last residuals, to re-level on a lasting shift
        self.t0 = t

    def bin(self, t: float) -> int:
        return bin_of(t, self.period, self.bins) if self.bins else 0

    def forecast(self, t: float, h: float, phi: float) -> float:
        s = self.season[self.bin(t)] if self.bins else 0.0
        return self.level + phi * self.trend * h + (0.0 if math.isnan(s) else s)

    def update(
        self,
        t: float,
        x: float,
        h: float,
        phi: float,
        a: float,
        tn: Tuning,
        g: float,
        gs: float,
        young: bool,
    ) -> None:
        """Learn x at t: h typical steps after the last point; phi, a: the damping and the level
        gain over those h steps (the same for every model, so worked out once per point); g, gs:
        the scale's and spread's gains; young: still warming up."""
        # The hot path of every series: fields are read into locals once, and the expressions
        # keep the association order they had as separate steps (the same floats to the bit).
        bins = self.bins
        level = self.level
        trend = self.trend
        season = self.season
        fresh = False
        b = 0
        s = 0.0
        if bins:
            period = self.period
            b = int((t % period) / period * bins)  # bin_of(), inline
            if bins - 1 < b:
                b = bins - 1
            s = season[b]
            fresh = math.isnan(s)
        pred = level + phi * trend * h + (0.0 if fresh else s)
        r = x - pred
        # min() and max() are spelt out as comparisons (in the order the builtins compare, so
        # the same value wins a tie): a dozen calls per point were a tenth of its time.
        spread = self.spread
        own = self.scale
        scale = own  # sigma(): max(own, floor x spread, 1e-6 x |level|, 1e-9)
        floor = tn.spread_floor * spread
        if floor > scale:
            scale = floor
        floor = 1e-6 * abs(level)
        if floor > scale:
            scale = floor
        if scale < 1e-9:
            scale = 1e-9
        # No clipping while young: the scale is still being learned from these residuals.
        rc = r
        if not young:
            lim = tn.huber_k * scale
            rc = r if r < lim else lim  # max(-lim, min(lim, r))
            rc = rc if rc > -lim else -lim
        if fresh:
            # First visit of this bin: its deviation from the level starts its profile.
            season[b] = rc
            self.level = level + phi * trend * h
        else:
            self.level = level + (phi * trend * h + a * rc)
            if not bins:
                # A seasonal model carries no trend (ETS(A,N,A)): within a period the profile's
                # rise and a trend are one to the smoother, and they then run against each
                # other (the level drifts off while the profile makes up for it).
                self.trend = phi * trend + tn.trend_gain * rc
            else:
                season[b] = s + tn.season_gain * (1.0 - a) * rc
        self.scale = own + g * (abs(rc) * 1.2533 - own)  # E|N(0,s)| = s * sqrt(2/pi)
        # The spread takes residuals far beyond the Huber bound, so sparse bursts between
        # stretches of one repeated value keep it up (a burst 20x the spread moves it still).
        wide = tn.spread_clip * (scale if scale > spread else spread)
        clipped = abs(r)
        if wide < clipped:
            clipped = wide
        self.spread = spread + gs * (clipped * 1.2533 - spread)
        if not fresh:
            # Model selection compares long-run errors: a day's disturbance does not flip it.
            self.err += gs * (clipped - self.err)
        ring = self.ring
        ring.append(r)
        if len(ring) > tn.relearn_run:
            del ring[0]

    def sigma(self, spread_floor: float) -> float:
        """The scale, floored. A series that mostly repeats one value (idle, zero between
        bursts) has no short-term scale: its long-run spread bounds it from below. A constant
        series has no spread either: a millionth of its level is the least news. A quiet
        stretch of a bursty series does not tighten the scale far below its long-run spread."""
        return max(self.scale, spread_floor * self.spread, 1e-6 * abs(self.level), 1e-9)

    def relevel(self) -> None:
        """A lasting shift: move the level by the median of the recent residuals."""
        if self.ring:
            self.level += sorted(self.ring)[len(self.ring) // 2]
        self.trend = 0.0
        self.ring.clear()

    def snapshot(self) -> list[Any]:
        return [
            self.period,
            self.bins,
            self.level,
            self.trend,
            [None if math.isnan(v) else v for v in self.season],
            self.scale,
            self.spread,
            self.err,
            list(self.ring),
            self.t0,
        ]

    @classmethod
    def from_snapshot(cls, data: list[Any]) -> SmoothingModel:
        period, bins, level, trend, season, scale, spread, err, ring, t0 = data
        out = cls(float(period), int(bins), float(level), float(t0))
        out.trend = float(trend)
        out.season = array("d", [math.nan if v is None else float(v) for v in season])
        out.scale, out.spread, out.err = float(scale), float(spread), float(err)
        out.ring = [float(v) for v in ring]
        return out


def bin_of(t: float, period: float, n: int) -> int:
    """The bin of `t` among `n` per period; a tiny negative t whose remainder rounds up to the
    period itself is the last bin, as it is just before the period starts."""
    return min(int((t % period) / period * n), n - 1)
