"""`Forecaster`: an online robust forecaster with calibrated residuals, for one metric series.

Method, and why this one:

- Forecast: damped-trend additive exponential smoothing in error-correction form (ETS(A,Ad,A),
  Hyndman et al. 2008), made robust as in Gelper, Fried & Croux (2010, "Robust forecasting with
  exponential and Holt-Winters smoothing"): every residual is Huber-clipped at `huber_k` scales
  before it updates the level, trend, season or scale, so a spike or a heavy tail cannot drag
  the state. It is O(1) per point and a few dozen floats per series, which a 50k-series window
  needs (a windowed median or an STL refit per point is not), and it is event-time exact: the
  gains are per typical sampling step, so irregular sampling and gaps are handled.
- Seasonality: a daily and a weekly additive profile (time-of-day / time-of-week bins on the
  event clock, without trend) are smoothed beside the plain model; the one with the smallest running error is
  used once the history covers two of its periods and it beats the plain model clearly
  (prequential model selection: a series without a season keeps the plain model).
- Level shifts: residuals on one side beyond `relearn_z` scales for `relearn_run` points in a
  row re-level every model at once (a lasting change is learned, not alerted for hours).
- Calibration: a score is the robust residual z, judged against the distribution of the series'
  own past scores (conformal-style; Laxhammar & Falkman 2010, as in KNN-CAD, Ishimtsev et al.
  2017): a decayed log-binned histogram gives the `quantile` of past |z|, and a point is
  abnormal beyond `margin` times that and at least `z_min`. A series with routine spikes thus
  learns that spikes are normal; a quiet one is judged tightly.
- Seasonal calibration: the calibration is also kept per time of day (Mondrian conformal
  prediction, Vovk et al. 2005: calibrate within categories of the input), as the largest |z|
  of past days in each hour, decayed; a point must exceed `peak_margin` times the largest near
  its hour. A nightly job's spike, which a profile of means cannot learn, stops alerting after
  the first day; the same spike at another hour still fires. The pooled tests below are
  calibrated the same way: their statistic (over its bar) when past its bar is kept per hour,
  and a variance change or shift that its test also saw near this time on past days (a daily
  ramp's noise, a nightly batch) must beat `peak_margin` times that.
- Range context: a series no season explains has its values as context. The extremes of
  `range_blocks` blocks of the last `memory` points are kept (a ring, O(blocks)); a point
  inside the range they span needs `range_margin` times the bar, a new extreme does not. A
  bursty or on/off series (idle, then at its ceiling) swings to levels it reaches routinely,
  which is weaker news than a level never seen: the inverse of the spatial test in Numenta's
  NAB detector (Ahmad et al. 2017), where a value outside the seen range is anomalous outright.
  With a season the range is no context (a normal value at the wrong hour is the anomaly).
- Refractory period: after a new anomaly starts, another does not start for `refractory`
  points (an active one still holds): a disturbance that flickers past `clear_after` is one
  alert, not a train of them (cuts false positives on NAB; a longer period hides the next
  real anomaly).
- Variance change: the short-run scale (gain `scale_gain`) beyond `var_ratio` times the
  long-run spread (gain `spread_gain`) is a change of noise level, which the point test misses
  when each point stays under the bar (a variance ratio, as the F-test of a recent against a
  reference window, made recursive: both are exponentially weighted mean absolute residuals).
  It fires once, conclusively, and re-arms when the ratio falls below half of `var_ratio`.
- Lasting shift too small for any one point: the short mean of Huber-clipped z (an EWMA of
  gain `shift_gain`, 0.2 ~ the 10-point mean of Numenta's anomaly likelihood, Ahmad et al. 2017)
  is judged, like the point score, against its own calibrated quantile of past values (a
  one-sided CUSUM's idea, Page 1954, with a threshold learnt from the series: residuals that
  wander together on a poorly fitted series raise their own bar). Beyond `shift_margin` x that
  it fires once and re-levels the models. Any alert latches it and the variance test until
  both fall back below half their bars: one disturbance, one alert (NAB, like an on-call
  engineer, rewards the earliest alert of an episode and charges every repeat).
- Counts: while every value is a non-negative integer the score is also capped by the
  Anscombe-scale distance (Poisson noise is N(0, 1) there), so sparse counts do not fire on
  Poisson noise however tight their history.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from operators.scout.detect.calibration import Calibration
from sre_space.settings import FrozenModel

DAY_S = 86400.0
WEEK_S = 7 * DAY_S
_MAX_Z = 1e6  # scores stay finite (JSON carries no infinity)


class ForecastConfig(FrozenModel):
    """The `detection.metrics:` section: the forecaster that judges metric series."""

    enabled: bool = True
    # Metric fields (of robust rules) judged by the forecaster instead of the median/MAD baseline.
    fields: tuple[str, ...] = ("value", "rate")
    level_gain: float = Field(0.05, gt=0, le=1)  # alpha, per typical sampling step
    trend_gain: float = Field(0.005, ge=0, le=1)  # beta
    damping: float = Field(0.98, gt=0, le=1)  # phi: a trend fades rather than runs away
    season_gain: float = Field(0.2, ge=0, le=1)  # gamma, per visit of a season bin
    scale_gain: float = Field(0.05, gt=0, le=1)  # of the mean absolute clipped residual
    spread_gain: float = Field(0.005, gt=0, le=1)  # of the long-run spread (the scale's floor)
    spread_floor: float = Field(0.75, ge=0)  # the scale is at least this share of the spread
    spread_clip: float = Field(20.0, gt=0)  # residuals enter the spread clipped at this many
    huber_k: float = Field(3.0, gt=0)
    daily_bins: int = Field(48, ge=2)
    weekly_bins: int = Field(168, ge=0)  # 0 disables the weekly profile
    season_win: float = Field(0.8, gt=0, le=1)  # a season's error must be below this share
    memory: int = Field(2000, ge=10)  # points the calibration remembers
    quantile: float = Field(0.99, gt=0, lt=1)
    margin: float = Field(1.65, ge=1)
    z_min: float = Field(5.0, gt=0)
    # Beyond single x the bar one point fires alone (1: every abnormal point; the calibrated
    # bar is the guard against noise, and a spike is often the whole anomaly).
    single: float = Field(1.0, ge=1)
    # Normal points in a row that end an anomaly: one episode, one alert, even when a
    # disturbance flickers around the bar for a while.
    clear_after: int = Field(12, ge=1)
    warmup: int = Field(18, ge=3)  # points before judging
    relearn_z: float = Field(2.0, gt=0)
    relearn_run: int = Field(8, ge=2)
    # Refractory period: points after a new anomaly during which another does not start (0: off).
    refractory: int = Field(20, ge=0)
    # Short-run scale over long-run spread that is a variance change (0: off).
    var_ratio: float = Field(1.75, ge=0)
    # Level-shift test: gain of the short mean of clipped z (0: off; 0.2 ~ a 10-point mean) ...
    shift_gain: float = Field(0.2, ge=0, le=1)
    # ... beyond this many times its own calibrated `quantile` is a lasting shift.
    shift_margin: float = Field(1.5, ge=1)
    # Seasonal calibration: time-of-day bins (0: off) of the largest recent |z| ...
    peak_bins: int = Field(24, ge=0)
    # ... a point must exceed this many times the largest near its time of day ...
    peak_margin: float = Field(1.5, gt=0)
    # ... a memory that halves every this many days.
    peak_halflife: float = Field(3.0, gt=0)
    # Range context (a series without a season): blocks of the last `memory` points whose
    # extremes are kept (0: off) ...
    range_blocks: int = Field(16, ge=0)
    # ... a point inside the range they span needs this x the bar (a new extreme does not).
    range_margin: float = Field(2.0, ge=1)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One judged point: the signed z (rule direction applied), the bar, the forecast."""

    z: float
    bar: float
    expected: float
    abnormal: bool
    conclusive: bool


class _Model:
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
        return _bin_of(t, self.period, self.bins) if self.bins else 0

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
    def from_snapshot(cls, data: list[Any]) -> _Model:
        period, bins, level, trend, season, scale, spread, err, ring, t0 = data
        out = cls(float(period), int(bins), float(level), float(t0))
        out.trend = float(trend)
        out.season = array("d", [math.nan if v is None else float(v) for v in season])
        out.scale, out.spread, out.err = float(scale), float(spread), float(err)
        out.ring = [float(v) for v in ring]
        return out


def _anscombe(x: float) -> float:
    """2 sqrt(x + 3/8): Poisson counts become about normal with unit variance."""
    return 2.0 * math.sqrt(max(x, 0.0) + 0.375)


class Forecaster:
    """Online robust forecaster and calibrated score of one series (bounded, snapshot-able)."""

    def __init__(self, config: ForecastConfig) -> None:
        self.config = config
        self.models: list[_Model] = []
        self.active = 0  # index of the model used for judging
        self.n = 0
        self.last_t: float | None = None
        self.step = 0.0  # typical sampling interval, seconds
        self.counts = True  # every value so far a non-negative integer
        self.run = 0  # signed count of residuals in a row beyond relearn_z
        self.calib = Calibration()  # past |z|
        self.skipped = 0  # points refused: not finite, duplicate or out of order
        self.refr = 0  # points left in the refractory period
        self.widened = False  # the variance test fired and has not re-armed
        self.drift = 0.0  # short mean of clipped signed z
        self.dhist = Calibration()  # past |drift|
        self.shifted = False  # the level-shift test fired and has not re-armed
        # Largest |z| per time of day: of past days (decayed), and of today (joins at midnight).
        self.peaks = array("d", [0.0] * config.peak_bins)
        self.today = array("d", [0.0] * config.peak_bins)
        self.day = -1.0  # the day (event time, UTC) of `today`; -1: none yet
        # The same for the pooled tests' statistic (over its bar), per time of day.
        self.ppeaks = array("d", [0.0] * config.peak_bins)
        self.ptoday = array("d", [0.0] * config.peak_bins)
        # Largest and smallest value of each block of recent points (a ring; `filled` in use).
        self.rmax = array("d", [0.0] * config.range_blocks)
        self.rmin = array("d", [0.0] * config.range_blocks)
        self.filled = 0

    # ------------------------------------------------------------------ judging

    def judge(
        self, t: float, x: float, direction: str = "both", holding: bool = False, hold: float = 0.5
    ) -> Judgement | None:
        """Judge then learn the point x at event time t (seconds); None while warming up or
        when the point is refused (not finite, duplicate or out of order: `skipped` counts)."""
        if not math.isfinite(x) or not math.isfinite(t):
            self.skipped += 1
            return None
        if self.last_t is not None and t <= self.last_t:
            self.skipped += 1
            return None
        cfg = self.config
        if self.counts and (x < 0 or x != math.floor(x)):
            self.counts = False
        if not self.models:
            self._start(t, x)
            return None
        assert self.last_t is not None
        dt = t - self.last_t
        if self.step <= 0:
            self.step = dt
        h = dt / self.step
        self.step += 0.1 * (min(max(dt, self.step / 4), self.step * 4) - self.step)
        self.last_t = t
        self._select(t)
        m = self.models[self.active]
        expected = m.forecast(t, h, cfg.damping**h)
        scale = m.sigma(cfg)
        z = (
            (x - expected) / scale
            if scale > 0
            else (0.0 if x == expected else math.copysign(1e6, x - expected))
        )
        z = max(-_MAX_Z, min(_MAX_Z, z))
        if self.counts:
            za = _anscombe(x) - _anscombe(expected)
            if abs(za) < abs(z):
                z = za
        out: Judgement | None = None
        if self.n >= cfg.warmup:
            bar = max(self._bar(), self._peak_bar(t)) * (hold if holding else 1.0)
            d = z if direction != "down" else -z
            if direction == "both":
                d = abs(z)
            if d >= bar and self.active == 0 and self._in_range(x):
                # No season explains the series: the values it visits are its context, so a
                # swing to a level it often reaches (a bursty or on/off series) is weaker news
                # than a new extreme.
                bar *= cfg.range_margin
            abnormal = d >= bar
            # Any alert latches both pooled tests until their statistics fall back below half
            # their bars: a disturbance that widens the noise also moves the short mean, and a
            # burst a point already reported leaves both high. One episode, one alert.
            pstat = self._pooled_stat(m)
            pooled = self._widened(m) | self._shifted()
            # Mondrian, as for points: a variance change or shift that its test also saw near
            # this time of day on past days is the series' routine (a daily ramp, a nightly job).
            pooled = pooled and pstat > cfg.peak_margin * _near(self.ppeaks, self._peak_bin(t))
            if pooled or abnormal:
                self.widened = self.shifted = True
            abnormal = abnormal or pooled
            if not holding and abnormal:
                # A new anomaly (an active one is `holding`): after one starts, the next waits
                # out the refractory period, as a neuron's does (and as alert grouping does).
                abnormal = self.refr <= 0
                self.refr = cfg.refractory if abnormal else self.refr
            # The variance test pools many points: it is conclusive alone, as one spike is.
            conclusive = abnormal and (pooled or d >= cfg.single * bar)
            out = Judgement(z, bar, expected, abnormal, conclusive)
        self.refr = max(self.refr - 1, 0)
        if self.n >= cfg.warmup:
            self.calib.learn(abs(z), cfg.memory)
            self._learn_peak(t, abs(z), pstat)
        # A running mean while young (the first points define the scale), then exponential.
        g = max(cfg.scale_gain, 1.0 / (self.n + 1))
        gs = max(cfg.spread_gain, 1.0 / (self.n + 1))
        self._learn_drift(z)
        young = self.n < cfg.warmup
        self._learn_range(x)
        resids = [mm.update(t, x, h, cfg, g, gs, young) for mm in self.models]
        self._relearn(z, resids)
        self.n += 1
        return out

    def _widened(self, m: _Model) -> bool:
        """True when the short-run scale has just risen past `var_ratio` x the long-run spread."""
        cfg = self.config
        if cfg.var_ratio <= 0 or m.spread <= 0:
            return False
        ratio = m.scale / m.spread
        if self.widened:
            self.widened = ratio >= cfg.var_ratio / 2
            return False
        self.widened = ratio > cfg.var_ratio
        return self.widened

    def _learn_drift(self, z: float) -> None:
        cfg = self.config
        k = cfg.huber_k
        if cfg.shift_gain <= 0:
            return
        self.drift += cfg.shift_gain * (max(-k, min(k, z)) - self.drift)
        if self.n >= cfg.warmup:
            self.dhist.learn(self._drift_z(), cfg.memory)

    def _drift_z(self) -> float:
        """|drift| in units of its standard deviation were z white noise."""
        g = self.config.shift_gain
        return abs(self.drift) / math.sqrt(g / (2.0 - g))

    def _shifted(self) -> bool:
        """True when the short mean of z has just left its own long-run range: a lasting shift
        too small for any one point (a CUSUM-like test, calibrated on the series' own drift,
        so residuals that wander together on a poorly fitted series raise their own bar)."""
        cfg = self.config
        if cfg.shift_gain <= 0 or self.n < 1.0 / cfg.spread_gain:
            return False
        ratio = self._drift_z() / max(self.dhist.quantile(cfg.quantile), 1e-9)
        if self.shifted:
            self.shifted = ratio >= cfg.shift_margin / 2
            return False
        self.shifted = ratio > cfg.shift_margin
        if self.shifted:
            for mm in self.models:
                mm.relevel()
        return self.shifted

    def _start(self, t: float, x: float) -> None:
        cfg = self.config
        self.models = [_Model(0.0, 0, x, t), _Model(DAY_S, cfg.daily_bins, x, t)]
        if cfg.weekly_bins:
            self.models.append(_Model(WEEK_S, cfg.weekly_bins, x, t))
        self.last_t = t
        self.n = 1

    def _select(self, t: float) -> None:
        """The plain model, unless a season covering two periods has clearly smaller errors."""
        best, best_err = 0, self.models[0].err
        for i, m in enumerate(self.models[1:], 1):
            if t - m.t0 >= 2 * m.period and m.err < self.config.season_win * best_err:
                best, best_err = i, m.err
        if best != self.active:
            # Scores of another model say nothing of this one's: calibrate afresh (the peaks
            # stay: they say at what time of day the series misbehaves, whatever the model).
            self.calib = Calibration()
        self.active = best

    def _relearn(self, z: float, resids: list[float]) -> None:
        cfg = self.config
        if z > cfg.relearn_z:
            self.run = self.run + 1 if self.run > 0 else 1
        elif z < -cfg.relearn_z:
            self.run = self.run - 1 if self.run < 0 else -1
        else:
            self.run = 0
        if abs(self.run) >= cfg.relearn_run:
            for m in self.models:
                m.relevel()
            self.run = 0

    # ------------------------------------------------------------------ calibration

    def _peak_bin(self, t: float) -> int:
        return _bin_of(t, DAY_S, len(self.peaks))

    def _peak_bar(self, t: float) -> float:
        """peak_margin x the largest recent |z| near this time of day (its bin, the neighbours)."""
        if not self.peaks:
            return 0.0
        return self.config.peak_margin * _near(self.peaks, self._peak_bin(t))

    def _pooled_stat(self, m: _Model) -> float:
        """The pooled tests' statistic over its bar (>= 1: past a bar): the larger of the
        variance ratio's and the short mean's."""
        cfg = self.config
        v = m.scale / m.spread / cfg.var_ratio if cfg.var_ratio > 0 and m.spread > 0 else 0.0
        if cfg.shift_gain > 0 and self.n >= 1.0 / cfg.spread_gain:
            q = max(self.dhist.quantile(cfg.quantile), 1e-9)
            v = max(v, self._drift_z() / q / cfg.shift_margin)
        return v

    def _learn_peak(self, t: float, az: float, pstat: float) -> None:
        if not self.peaks:
            return
        day = t // DAY_S
        if day > self.day:
            # Once a day, not per point (O(bins) a day whatever the sampling): the past decays
            # and today joins it. Only past days count, so a repeat within the day still fires.
            f = 0.5 ** ((day - self.day) / self.config.peak_halflife)
            for i in range(len(self.peaks)):
                self.peaks[i] = max(self.peaks[i] * f, self.today[i])
                self.ppeaks[i] = max(self.ppeaks[i] * f, self.ptoday[i])
                self.today[i] = self.ptoday[i] = 0.0
            self.day = day
        b = self._peak_bin(t)
        self.today[b] = max(self.today[b], az)
        self.ptoday[b] = max(self.ptoday[b], pstat if pstat >= 1.0 else 0.0)

    def _in_range(self, x: float) -> bool:
        """x lies within the values of the recent blocks (Numenta's spatial test, inverted)."""
        k = self.filled
        return k > 0 and min(self.rmin[:k]) <= x <= max(self.rmax[:k])

    def _learn_range(self, x: float) -> None:
        nb = len(self.rmax)
        if not nb:
            return
        size = max(self.config.memory // nb, 1)
        j = self.n - 1  # points learned before this one (the first only set the state)
        i = (j // size) % nb
        if j % size == 0:  # a new block replaces the oldest
            self.rmax[i] = self.rmin[i] = x
            self.filled = min(self.filled + 1, nb)
        else:
            self.rmax[i] = max(self.rmax[i], x)
            self.rmin[i] = min(self.rmin[i], x)

    def _bar(self) -> float:
        """margin x the calibrated quantile of past |z|, at least z_min."""
        cfg = self.config
        return max(cfg.z_min, cfg.margin * self.calib.quantile(cfg.quantile))

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state (the config is not part of it)."""
        return {
            "models": [m.snapshot() for m in self.models],
            "active": self.active,
            "n": self.n,
            "last_t": self.last_t,
            "step": self.step,
            "counts": self.counts,
            "run": self.run,
            "calib": self.calib.snapshot(),
            "drift": self.drift,
            "dhist": self.dhist.snapshot(),
            "shifted": self.shifted,
            "skipped": self.skipped,
            "refr": self.refr,
            "widened": self.widened,
            "peaks": list(self.peaks),
            "today": list(self.today),
            "ppeaks": list(self.ppeaks),
            "rmax": list(self.rmax),
            "rmin": list(self.rmin),
            "filled": self.filled,
            "ptoday": list(self.ptoday),
            "day": self.day,
        }

    @classmethod
    def from_snapshot(cls, config: ForecastConfig, data: dict[str, Any]) -> Forecaster:
        """Rebuild from `snapshot()`."""
        out = cls(config)
        out.models = [_Model.from_snapshot(m) for m in data["models"]]
        out.active = int(data["active"])
        out.n = int(data["n"])
        out.last_t = data["last_t"]
        out.step = float(data["step"])
        out.counts = bool(data["counts"])
        out.run = int(data["run"])
        # A snapshot from before the level-shift test keeps its score calibration.
        out.calib = Calibration.from_snapshot(
            data.get("calib") or [data["hist"], data["total"], data["weight"]]
        )
        if "dhist" in data:
            out.drift = float(data["drift"])
            out.dhist = Calibration.from_snapshot(data["dhist"])
            out.shifted = bool(data["shifted"])
        out.skipped = int(data["skipped"])
        out.refr = int(data.get("refr", 0))
        out.widened = bool(data.get("widened", False))
        if len(data.get("peaks", ())) == config.peak_bins:
            out.peaks = array("d", [float(v) for v in data["peaks"]])
            out.today = array("d", [float(v) for v in data["today"]])
            out.day = float(data["day"])
            if len(data.get("ppeaks", ())) == config.peak_bins:
                out.ppeaks = array("d", [float(v) for v in data["ppeaks"]])
                out.ptoday = array("d", [float(v) for v in data["ptoday"]])
        if len(data.get("rmax", ())) == config.range_blocks:
            out.rmax = array("d", [float(v) for v in data["rmax"]])
            out.rmin = array("d", [float(v) for v in data["rmin"]])
            out.filled = int(data["filled"])
        return out


def _near(peaks: array[float], b: int) -> float:
    """The largest of bin b and its neighbours (0 with no bins)."""
    nb = len(peaks)
    return max(peaks[(b - 1) % nb], peaks[b], peaks[(b + 1) % nb]) if nb else 0.0


def _bin_of(t: float, period: float, n: int) -> int:
    """The bin of `t` among `n` per period; a tiny negative t whose remainder rounds up to the
    period itself is the last bin, as it is just before the period starts."""
    return min(int((t % period) / period * n), n - 1)
