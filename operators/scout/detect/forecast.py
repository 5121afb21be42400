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
- Variance change: the short-run scale (gain `scale_gain`) over the long-run spread (gain
  `spread_gain`) is a variance ratio (the F-test of a recent against a reference window, made
  recursive: both are exponentially weighted mean absolute residuals), which sees a change of
  noise level that the point test misses when each point stays under the bar. Its bar is an
  EWMA control limit (Roberts 1959; Lucas & Saccucci 1990): `var_sigmas` standard deviations
  of the ratio on unchanged Gaussian noise, sqrt(pi/2 - 1) sqrt(g / (2 - g)) for gain g, over 1.
  The bar thus follows the smoothing: a slower scale is a steadier one and is judged tighter,
  a faster one looser (a fixed ratio judged both alike, and lost windows to a slower gain).
  It fires once, conclusively, and re-arms when the ratio falls below half its bar.
- Lasting shift too small for any one point: the short mean of Huber-clipped z (an EWMA of
  gain `shift_gain`, 0.2 ~ the 10-point mean of Numenta's anomaly likelihood, Ahmad et al. 2017)
  is judged, like the point score, against its own calibrated quantile of past values (a
  one-sided CUSUM's idea, Page 1954, with a threshold learnt from the series: residuals that
  wander together on a poorly fitted series raise their own bar). Beyond `shift_margin` x that
  it fires once and re-levels the models. Any alert latches it and the variance test until
  both fall back below half their bars: one disturbance, one alert (NAB, like an on-call
  engineer, rewards the earliest alert of an episode and charges every repeat).
- Scale CUSUM: beside the variance ratio, Page's (1954) one-sided CUSUM of log(|residual| /
  long-run spread), centred by E log|Z| = -0.635 on white noise, less `cusum_k` per point, fires
  beyond `cusum_h`. Why: the EWMA ratio forgets, so a rise of the noise that lasts hours but
  stays near its limit is caught or lost by chance (most of NAB's fragile windows); a CUSUM
  accumulates the evidence for as long as the change lasts and is the optimal detector of a
  lasting change (Moustakides 1986). The log makes it a scale test, as Hawkins' (1981) CUSUM on
  sqrt|x| is: a shift of log |r| is the log of the scale ratio, whatever the scale. Increments
  are clipped at `cusum_clip` (one burst is the point test's news, not a change of noise). On
  white noise the statistic never passed 20 in 2e6 simulated points (12: once in ~1e5), so
  `cusum_h` 20 is a floor for Gaussian residuals with room for the serial correlation of real
  ones. Mondrian again: each time-of-day bin's mean increment on past days (decayed as the
  peaks), when positive, is subtracted there, so a daily burst of wider noise is the hour's
  routine. Not on counts (their log |residual| is lumpy), not for a few points after a
  sampling gap (the residual is the level's move over it). It fires once and re-arms when it is
  back at 0. NAB dev (standard): 69.4 -> 71.9; 70.9 / 70.6 at cusum_h 15 / 25.
- Counts: while every value is a non-negative integer the score is also capped by the
  Anscombe-scale distance (Poisson noise is N(0, 1) there), so sparse counts do not fire on
  Poisson noise however tight their history.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, NamedTuple

from pydantic import Field

from operators.scout.detect.calibration import Calibration
from operators.scout.detect.cusum import ScaleCusum
from operators.scout.detect.smoothing import SmoothingModel, bin_of
from operators.scout.detect.tuning import tuning
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
    # Short-run scale over long-run spread beyond 1 + this many of its null standard
    # deviations is a variance change (0: off; 6.2 is a ratio of 1.75 at scale_gain 0.05).
    var_sigmas: float = Field(6.2, ge=0)
    # Level-shift test: gain of the short mean of clipped z (0: off; 0.2 ~ a 10-point mean) ...
    shift_gain: float = Field(0.2, ge=0, le=1)
    # ... beyond this many times its own calibrated `quantile` is a lasting shift.
    shift_margin: float = Field(1.5, ge=1)
    # Scale CUSUM on log(|residual| / long-run spread): its bar (0: off) ...
    cusum_h: float = Field(20.0, ge=0)
    # ... its reference value per point (0.35 ~ half the log of a doubled scale) ...
    cusum_k: float = Field(0.35, ge=0)
    # ... and the clip of each increment (a burst point adds at most this).
    cusum_clip: float = Field(2.0, gt=0)
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


class Judgement(NamedTuple):
    """One judged point: the signed z (rule direction applied), the bar, the forecast; `point`:
    the point alone is past its full bar (not only a pooled test, not only the hold bar)."""

    # A named tuple, not a frozen dataclass: as immutable, and built in a third of the time
    # (one per series and window).
    z: float
    bar: float
    expected: float
    abnormal: bool
    conclusive: bool
    point: bool = False


def _anscombe(x: float) -> float:
    """2 sqrt(x + 3/8): Poisson counts become about normal with unit variance."""
    return 2.0 * math.sqrt(max(x, 0.0) + 0.375)


class Forecaster:
    """Online robust forecaster and calibrated score of one series (bounded, snapshot-able)."""

    # Slots: 50,000 of these live at once, and their fields are read on every point.
    __slots__ = (
        "active",
        "calib",
        "config",
        "counts",
        "cusum",
        "day",
        "dhist",
        "drift",
        "filled",
        "last_t",
        "models",
        "n",
        "peaks",
        "ppeaks",
        "ptoday",
        "refr",
        "rmax",
        "rmin",
        "run",
        "shifted",
        "skipped",
        "step",
        "today",
        "tuning",
        "widened",
    )

    def __init__(self, config: ForecastConfig) -> None:
        self.config = config
        self.tuning = tuning(config)  # the config's values as the hot path reads them
        self.models: list[SmoothingModel] = []
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
        self.cusum = ScaleCusum(config.peak_bins)
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
        last_t = self.last_t
        if last_t is not None and t <= last_t:
            self.skipped += 1
            return None
        # Every series runs this per window: config values come from `tuning` (slots), and
        # what is used twice is worked out once (the time-of-day bin, the damping, |z|).
        tn = self.tuning
        if self.counts and (x < 0 or x != math.floor(x)):
            self.counts = False
        models = self.models
        if not models:
            self._start(t, x)
            return None
        assert last_t is not None
        dt = t - last_t
        step = self.step
        if step <= 0:
            step = dt
        h = dt / step
        self.step = step + 0.1 * (min(max(dt, step / 4), step * 4) - step)
        self.last_t = t
        self._select(t)
        m = models[self.active]
        phi = tn.damping**h
        expected = m.forecast(t, h, phi)
        scale = m.sigma(tn.spread_floor)
        z = (
            (x - expected) / scale
            if scale > 0
            else (0.0 if x == expected else math.copysign(1e6, x - expected))
        )
        z = z if z < _MAX_Z else _MAX_Z  # max(-_MAX_Z, min(_MAX_Z, z))
        z = z if z > -_MAX_Z else -_MAX_Z
        if self.counts:
            za = _anscombe(x) - _anscombe(expected)
            if abs(za) < abs(z):
                z = za
        az = abs(z)
        n = self.n
        peaks = self.peaks
        b = bin_of(t, DAY_S, len(peaks)) if peaks else 0  # the time-of-day bin, for every memory
        warm = n >= tn.warmup
        out: Judgement | None = None
        pstat = 0.0
        if warm:
            bar = max(tn.z_min, tn.margin * self.calib.quantile(tn.quantile))
            peak_bar = tn.peak_margin * _near(peaks, b) if peaks else 0.0
            full = max(bar, peak_bar)
            bar = full * (hold if holding else 1.0)
            d = z if direction != "down" else -z
            if direction == "both":
                d = az
            if d >= bar and self.active == 0 and self._in_range(x):
                # No season explains the series: the values it visits are its context, so a
                # swing to a level it often reaches (a bursty or on/off series) is weaker news
                # than a new extreme.
                bar *= tn.range_margin
                full *= tn.range_margin
            abnormal = d >= bar
            point = d >= full
            if tn.cusum_h > 0 and not self.counts:
                # Counts have Poisson noise, whose log |residual| is lumpy at low rates.
                self.cusum.learn(
                    x - expected, m.spread, b, h > 1.5, tn.cusum_k, tn.cusum_clip, tn.cusum_cap
                )
            pstat, pooled = self._pooled(m, b)
            if pooled or abnormal:
                # Any alert latches the pooled tests until their statistics fall back below
                # half their bars (the CUSUM: to 0): a disturbance that widens the noise also
                # moves the short mean, and a burst a point already reported leaves both high.
                # One episode, one alert.
                self.widened = self.shifted = self.cusum.fired = True
            abnormal = abnormal or pooled
            if not holding and abnormal:
                # A new anomaly (an active one is `holding`): after one starts, the next waits
                # out the refractory period, as a neuron's does (and as alert grouping does).
                abnormal = self.refr <= 0
                self.refr = tn.refractory if abnormal else self.refr
            # The variance test pools many points: it is conclusive alone, as one spike is.
            conclusive = abnormal and (pooled or d >= tn.single * bar)
            out = Judgement(z, bar, expected, abnormal, conclusive, point)
        self.refr = self.refr - 1 if self.refr > 1 else 0
        if warm:
            self.calib.learn(az, tn.memory)
            if peaks:
                self._learn_peak(t, b, az, pstat)
        # A running mean while young (the first points define the scale), then exponential.
        mean = 1.0 / (n + 1)
        g = mean if mean > tn.scale_gain else tn.scale_gain
        gs = mean if mean > tn.spread_gain else tn.spread_gain
        if tn.shift_gain > 0:
            k = tn.huber_k
            self.drift += tn.shift_gain * (max(-k, min(k, z)) - self.drift)
            if warm:
                self.dhist.learn(abs(self.drift) / tn.shift_sd, tn.memory)
        if tn.range_size:
            self._learn_range(x)
        a = 1.0 - (1.0 - tn.level_gain) ** min(h, 10.0)  # the level's gain over h steps
        young = not warm
        for mm in models:
            mm.update(t, x, h, phi, a, tn, g, gs, young)
        self._relearn(z)
        self.n = n + 1
        return out

    def _pooled(self, m: SmoothingModel, b: int) -> tuple[float, bool]:
        """The pooled tests on model m at time-of-day bin b: their statistic over its bar
        (>= 1: past a bar; the larger of the variance ratio's and the short mean's), and
        whether one of them has just fired."""
        tn = self.tuning
        spread = m.spread
        # Variance change: the short-run scale over the long-run spread, over its bar.
        tested = not (tn.var_sigmas <= 0 or spread <= 0)
        ratio = m.scale / spread / tn.var_bar if tested else 0.0
        widened = False
        if tested:
            if self.widened:
                self.widened = ratio >= 0.5
            else:
                self.widened = widened = ratio > 1.0
        pstat = ratio if spread > 0 else 0.0  # (a NaN spread is tested but gives no statistic)
        # Lasting shift: |drift| in units of its white-noise spread, over its own calibrated
        # quantile (a CUSUM-like test calibrated on the series' own drift, so residuals that
        # wander together on a poorly fitted series raise their own bar).
        ready = self.n >= tn.pooled_after  # the long-run spread is learnt
        shifted = False
        if tn.shift_gain > 0 and ready:
            q = max(self.dhist.quantile(tn.quantile), 1e-9)
            sratio = abs(self.drift) / tn.shift_sd / q
            pstat = max(pstat, sratio / tn.shift_margin)
            if self.shifted:
                self.shifted = sratio >= tn.shift_half
            else:
                self.shifted = shifted = sratio > tn.shift_margin
                if shifted:
                    for mm in self.models:
                        mm.relevel()
        # Mondrian, as for points: a variance change or shift that its test also saw near
        # this time of day on past days is the series' routine (a daily ramp, a nightly job).
        pooled = (widened or shifted) and pstat > tn.peak_margin * _near(self.ppeaks, b)
        # The scale CUSUM has its own time-of-day reference (its increments'), and fires once
        # and re-arms at 0.
        scaled = tn.cusum_h > 0 and ready and self.cusum.test(tn.cusum_h)
        return pstat, scaled or pooled

    def _start(self, t: float, x: float) -> None:
        cfg = self.config
        self.models = [SmoothingModel(0.0, 0, x, t), SmoothingModel(DAY_S, cfg.daily_bins, x, t)]
        if cfg.weekly_bins:
            self.models.append(SmoothingModel(WEEK_S, cfg.weekly_bins, x, t))
        self.last_t = t
        self.n = 1

    def _select(self, t: float) -> None:
        """The plain model, unless a season covering two periods has clearly smaller errors."""
        models = self.models
        best, best_err = 0, models[0].err
        win = self.tuning.season_win
        for i in range(1, len(models)):
            m = models[i]
            if t - m.t0 >= 2 * m.period and m.err < win * best_err:
                best, best_err = i, m.err
        if best != self.active:
            # Scores of another model say nothing of this one's: calibrate afresh (the peaks
            # stay: they say at what time of day the series misbehaves, whatever the model).
            self.calib = Calibration()
        self.active = best

    def _relearn(self, z: float) -> None:
        """Residuals beyond relearn_z on one side for relearn_run points re-level every model."""
        tn = self.tuning
        if z > tn.relearn_z:
            self.run = self.run + 1 if self.run > 0 else 1
        elif z < -tn.relearn_z:
            self.run = self.run - 1 if self.run < 0 else -1
        else:
            self.run = 0
        if abs(self.run) >= tn.relearn_run:
            for m in self.models:
                m.relevel()
            self.run = 0

    # ------------------------------------------------------------------ calibration

    def _learn_peak(self, t: float, b: int, az: float, pstat: float) -> None:
        day = t // DAY_S
        if day > self.day:
            # Once a day, not per point (O(bins) a day whatever the sampling): the past decays
            # and today joins it. Only past days count, so a repeat within the day still fires.
            f = 0.5 ** ((day - self.day) / self.tuning.peak_halflife)
            for i in range(len(self.peaks)):
                self.peaks[i] = max(self.peaks[i] * f, self.today[i])
                self.ppeaks[i] = max(self.ppeaks[i] * f, self.ptoday[i])
                self.today[i] = self.ptoday[i] = 0.0
            self.cusum.roll(1.0 - f)
            self.day = day
        self.today[b] = max(self.today[b], az)
        self.ptoday[b] = max(self.ptoday[b], pstat if pstat >= 1.0 else 0.0)

    def _in_range(self, x: float) -> bool:
        """x lies within the values of the recent blocks (Numenta's spatial test, inverted)."""
        k = self.filled
        return k > 0 and min(self.rmin[:k]) <= x <= max(self.rmax[:k])

    def _learn_range(self, x: float) -> None:
        nb = len(self.rmax)
        size = self.tuning.range_size
        j = self.n - 1  # points learned before this one (the first only set the state)
        i = (j // size) % nb
        if j % size == 0:  # a new block replaces the oldest
            self.rmax[i] = self.rmin[i] = x
            self.filled = min(self.filled + 1, nb)
        else:
            self.rmax[i] = max(self.rmax[i], x)
            self.rmin[i] = min(self.rmin[i], x)

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
            "cusum": self.cusum.snapshot(),
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
        out.models = [SmoothingModel.from_snapshot(m) for m in data["models"]]
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
        if "cusum" in data:
            out.cusum = ScaleCusum.from_snapshot(data["cusum"], config.peak_bins)
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
