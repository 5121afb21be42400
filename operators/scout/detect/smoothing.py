"""`SmoothingModel`: one robust damped-trend exponential smoother, optionally with an additive
seasonal profile (the forecaster's building block; see `forecast` for the method)."""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.scout.detect.forecast import ForecastConfig


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
        cfg: ForecastConfig,
        g: float,
        gs: float,
        young: bool,
    ) -> float:
        """Learn x at t (h typical steps after the last point; g, gs: the scale's and spread's
        gains; young: still warming up); returns the raw residual."""
        phi = cfg.damping**h
        b = self.bin(t) if self.bins else 0
        s = self.season[b] if self.bins else 0.0
        fresh = self.bins > 0 and math.isnan(s)
        pred = self.level + phi * self.trend * h + (0.0 if fresh else s)
        r = x - pred
        scale = self.sigma(cfg)
        lim = cfg.huber_k * scale
        # No clipping while young: the scale is still being learned from these residuals.
        rc = r if young else max(-lim, min(lim, r))
        a = 1.0 - (1.0 - cfg.level_gain) ** min(h, 10.0)
        if fresh:
            # First visit of this bin: its deviation from the level starts its profile.
            self.season[b] = rc
            self.level += phi * self.trend * h
        else:
            self.level += phi * self.trend * h + a * rc
            if not self.bins:
                # A seasonal model carries no trend (ETS(A,N,A)): within a period the profile's
                # rise and a trend are one to the smoother, and they then run against each
                # other (the level drifts off while the profile makes up for it).
                self.trend = phi * self.trend + cfg.trend_gain * rc
            if self.bins:
                self.season[b] = s + cfg.season_gain * (1.0 - a) * rc
        self.scale += g * (abs(rc) * 1.2533 - self.scale)  # E|N(0,s)| = s * sqrt(2/pi)
        # The spread takes residuals far beyond the Huber bound, so sparse bursts between
        # stretches of one repeated value keep it up (a burst 20x the spread moves it still).
        wide = cfg.spread_clip * max(self.spread, scale)
        self.spread += gs * (min(abs(r), wide) * 1.2533 - self.spread)
        # Model selection compares long-run errors: a day's disturbance does not flip it.
        self.err += gs * (min(abs(r), wide) - self.err) if not fresh else 0.0
        self.ring.append(r)
        if len(self.ring) > cfg.relearn_run:
            del self.ring[0]
        return r

    def sigma(self, cfg: ForecastConfig) -> float:
        """The scale, floored. A series that mostly repeats one value (idle, zero between
        bursts) has no short-term scale: its long-run spread bounds it from below. A constant
        series has no spread either: a millionth of its level is the least news. A quiet
        stretch of a bursty series does not tighten the scale far below its long-run spread."""
        return max(self.scale, cfg.spread_floor * self.spread, 1e-6 * abs(self.level), 1e-9)

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
