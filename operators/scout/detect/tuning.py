"""`Tuning`: the forecaster's per-point constants, read from its config once per config.

A pydantic field read costs about three times a slot read, and the bars derived from the
config (the variance ratio's limit, the drift's null spread) cost a square root each: with
50,000 series judged per window they were a measurable share of every point.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operators.scout.detect.forecast import ForecastConfig

_CV_ABS = math.sqrt(math.pi / 2.0 - 1.0)  # sd / mean of |N(0, 1)|: the scale's unit noise


class Tuning:
    """Plain slots copy of a `ForecastConfig`, plus the constants derived from it."""

    __slots__ = (
        "cusum_cap",
        "cusum_clip",
        "cusum_h",
        "cusum_k",
        "damping",
        "huber_k",
        "level_gain",
        "margin",
        "memory",
        "peak_halflife",
        "peak_margin",
        "pooled_after",
        "quantile",
        "range_margin",
        "range_size",
        "refractory",
        "relearn_run",
        "relearn_z",
        "scale_gain",
        "season_gain",
        "season_win",
        "shift_gain",
        "shift_half",
        "shift_margin",
        "shift_sd",
        "single",
        "spread_clip",
        "spread_floor",
        "spread_gain",
        "trend_gain",
        "var_bar",
        "var_sigmas",
        "warmup",
        "z_min",
    )

    def __init__(self, cfg: ForecastConfig) -> None:
        self.damping = cfg.damping
        self.level_gain = cfg.level_gain
        self.trend_gain = cfg.trend_gain
        self.season_gain = cfg.season_gain
        self.scale_gain = cfg.scale_gain
        self.spread_gain = cfg.spread_gain
        self.spread_floor = cfg.spread_floor
        self.spread_clip = cfg.spread_clip
        self.huber_k = cfg.huber_k
        self.season_win = cfg.season_win
        self.memory = cfg.memory
        self.quantile = cfg.quantile
        self.margin = cfg.margin
        self.z_min = cfg.z_min
        self.single = cfg.single
        self.warmup = cfg.warmup
        self.relearn_z = cfg.relearn_z
        self.relearn_run = cfg.relearn_run
        self.refractory = cfg.refractory
        self.var_sigmas = cfg.var_sigmas
        self.shift_gain = cfg.shift_gain
        self.shift_margin = cfg.shift_margin
        self.cusum_h = cfg.cusum_h
        self.cusum_k = cfg.cusum_k
        self.cusum_clip = cfg.cusum_clip
        self.peak_margin = cfg.peak_margin
        self.peak_halflife = cfg.peak_halflife
        self.range_margin = cfg.range_margin
        # Each derived value is the expression the forecaster evaluated per point before.
        self.cusum_cap = 2 * cfg.cusum_h  # the CUSUM statistic stays below this
        # The pooled tests wait until the long-run spread has seen this many points.
        self.pooled_after = 1.0 / cfg.spread_gain
        g = cfg.scale_gain
        # The variance ratio's control limit: 1 + var_sigmas x its null standard deviation.
        self.var_bar = 1.0 + cfg.var_sigmas * _CV_ABS * math.sqrt(g / (2.0 - g))
        # The standard deviation of the short mean of z on white noise (0 with the test off).
        sg = cfg.shift_gain
        self.shift_sd = math.sqrt(sg / (2.0 - sg)) if sg > 0 else 0.0
        self.shift_half = cfg.shift_margin / 2  # the level-shift test re-arms below this
        # Points per block of the range ring (0 with the ring off).
        self.range_size = max(cfg.memory // cfg.range_blocks, 1) if cfg.range_blocks else 0


@lru_cache(maxsize=32)
def tuning(cfg: ForecastConfig) -> Tuning:
    """The shared `Tuning` of a config (configs are frozen and hashable; a reload is a new one)."""
    return Tuning(cfg)
