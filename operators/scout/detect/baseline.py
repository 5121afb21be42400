"""Baselines learned from a series' own trailing history.

- `RobustBaseline`: median and MAD of recent values (optionally per hour of day); a value is
  abnormal when it is far in MAD units *and* far in absolute and relative terms (a latency quantile
  on the log scale too). A count follows traffic, which ramps every morning and evening: its
  median moves along the history's trend.
- `RateBaseline`: the pooled rate of recent windows; a window's rate is abnormal when it is
  unlikely under that rate given its traffic and how well the rate is known (exact
  beta-binomial tail of the posterior predictive), and the change is big enough.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from operators.scout.detect.config import BaselineConfig, RatesConfig, SeriesRule
from operators.scout.detect.stats import MAD_TO_SIGMA, betabinom_cdf, betabinom_sf, median_mad

# Scores are capped so that JSON never carries infinity.
MAX_SCORE = 1e6
# Windows a rate remembers with their end times (the pool since a change may start among them).
SEEN_WINDOWS = 12


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judged observation: abnormal or not, the expected value, and how far off it is."""

    abnormal: bool
    expected: float
    score: float


def _directed(diff: float, direction: str) -> float:
    if direction == "up":
        return diff
    if direction == "down":
        return -diff
    return abs(diff)


def _anscombe(count: float) -> float:
    """2 sqrt(x + 3/8): Poisson counts become about normal with unit variance."""
    return 2.0 * math.sqrt(max(count, 0.0) + 0.375)


class RobustBaseline:
    """Median/MAD over the last `history` accepted values of one series field."""

    def __init__(self, config: BaselineConfig) -> None:
        self.config = config
        self.values: deque[float] = deque(maxlen=config.history)
        self.times: deque[float] = deque(maxlen=config.history)  # event seconds of `values`
        self.by_hour: dict[int, deque[float]] = {}
        # (median, MAD, learns since) per history. A full history of 360 moves little per point,
        # so the statistics are refreshed every len/36 learns rather than on every point.
        self._stats: dict[int | None, list[float]] = {}
        self._trend: tuple[float, float] = (0.0, 0.0)  # (slope per second, time of the median)
        # (median, MAD) of the history's logs per history, for log_scale rules; None: not all > 0
        self._log_stats: dict[int | None, tuple[float, float] | None] = {}

    def _history(self, hour: int | None) -> tuple[int | None, deque[float]]:
        if hour is not None and self.config.hour_of_day:
            own = self.by_hour.get(hour)
            # The hour's own history once it is long enough; before that, all hours together.
            if own is not None and len(own) >= self.config.min_history:
                return hour, own
        return None, self.values

    def judge(
        self,
        x: float,
        rule: SeriesRule,
        hour: int | None = None,
        holding: bool = False,
        t: float | None = None,
    ) -> Verdict | None:
        """Judge `x` (at event second `t`) against the history; None while it is too short.

        `holding` (an anomaly is active) lowers the bar by `hold_factor`: hysteresis.
        """
        return self._judge(x, rule, hour, t, (holding,))[0]

    def judge_both(
        self, x: float, rule: SeriesRule, hour: int | None = None, t: float | None = None
    ) -> tuple[Verdict | None, Verdict | None]:
        """The strict and the holding verdict of `judge`, sharing the work up to the bar."""
        strict, lax = self._judge(x, rule, hour, t, (False, True))
        return strict, lax

    def _judge(
        self,
        x: float,
        rule: SeriesRule,
        hour: int | None,
        t: float | None,
        holdings: tuple[bool, ...],
    ) -> list[Verdict | None]:
        """One verdict per `holding` flag: they differ in the bar alone, so the history's
        statistics, the distance and its z are worked out once (a series judges both)."""
        which, hist = self._history(hour)
        if len(hist) < self.config.min_history:
            return [None] * len(holdings)
        stats = self._stats.get(which)
        if stats is None or stats[2] >= max(1, len(hist) // 36):
            stats = self._stats[which] = [*median_mad(hist), 0]
            self._log_stats.pop(which, None)
            # Only a count's median follows the trend (below): a series' rule never changes,
            # and fitting it for every latency quantile was a fifth of the Scout's time.
            if which is None and rule.poisson:
                self._trend = self._fit_trend()
        med, mad = stats[0], stats[1]
        if rule.poisson and which is None and t is not None:
            # A count's median lags a traffic ramp by half the history (+40% on a morning ramp,
            # and its lax verdict then stops the learning): the median moved along the trend.
            med = max(0.0, med + self._trend[0] * (t - self._trend[1]))
        d = _directed(x - med, rule.direction)
        scale = MAD_TO_SIGMA * mad
        if d <= 0:
            return [Verdict(False, med, 0.0) for _ in holdings]
        z = d / scale if scale > 0 else MAX_SCORE
        if rule.poisson:
            # A count is at least Poisson-noisy, however tight a short history's MAD: it must
            # also stand out on the variance-stabilised (Anscombe) scale, where noise is N(0, 1).
            z = min(z, _directed(_anscombe(x) - _anscombe(med), rule.direction))
        if rule.log_scale:
            z = min(z, self._log_z(which, hist, x, rule.direction))
        out: list[Verdict | None] = []
        for holding in holdings:
            f = self.config.hold_factor if holding else 1.0
            big_enough = d >= f * rule.min_abs and d >= f * rule.min_rel * abs(med)
            if rule.min_level is not None:
                # A level rule (utilization near its limit): a shift below the level hurts nobody.
                big_enough = big_enough and _directed(x - rule.min_level, rule.direction) >= 0
            out.append(
                Verdict(big_enough and z >= f * self.config.threshold, med, min(z, MAX_SCORE))
            )
        return out

    def _log_z(self, which: int | None, hist: deque[float], x: float, direction: str) -> float:
        """Robust z of `x` on the log scale; unbounded where the logs are not all defined."""
        if which not in self._log_stats:
            positive = all(v > 0 for v in hist)
            self._log_stats[which] = median_mad([math.log(v) for v in hist]) if positive else None
        log_stats = self._log_stats[which]
        if log_stats is None or x <= 0:
            return MAX_SCORE
        d = _directed(math.log(x) - log_stats[0], direction)
        scale = MAD_TO_SIGMA * log_stats[1]
        if d <= 0:
            return 0.0
        return d / scale if scale > 0 else MAX_SCORE

    def _fit_trend(self) -> tuple[float, float]:
        """(slope, time of the median): the medians of the history's halves, joined."""
        n = len(self.values)
        if len(self.times) != n or n < 2 * self.config.min_history:
            return 0.0, 0.0
        vals, times = list(self.values), list(self.times)
        half = n // 2
        early, late = median_mad(vals[:half])[0], median_mad(vals[half:])[0]
        t_early, t_late = times[half // 2], times[half + (n - half) // 2]
        if t_late <= t_early:
            return 0.0, 0.0
        slope = (late - early) / (t_late - t_early)
        return slope, (t_early + t_late) / 2.0

    def learn(self, x: float, hour: int | None = None, t: float | None = None) -> None:
        """Add an accepted value (at event second `t`) to the history."""
        for stats in self._stats.values():
            stats[2] += 1
        self.values.append(x)
        if t is not None:
            self.times.append(t)
        if hour is not None and self.config.hour_of_day:
            self.by_hour.setdefault(hour, deque(maxlen=self.config.history)).append(x)

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "values": list(self.values),
            "times": list(self.times),
            "by_hour": {h: list(v) for h, v in self.by_hour.items()},
            "stats": [[k, *v] for k, v in self._stats.items()],
        }

    @classmethod
    def from_snapshot(cls, config: BaselineConfig, data: dict[str, Any]) -> RobustBaseline:
        """Rebuild from `snapshot()`."""
        out = cls(config)
        out.values.extend(data["values"])
        out.times.extend(data.get("times", []))
        for h, vals in data["by_hour"].items():
            out.by_hour[int(h)] = deque(vals, maxlen=config.history)
        out._stats = {k: [med, mad, n] for k, med, mad, n in data["stats"]}
        return out


class RateBaseline:
    """Pooled successes/trials over the last `history` accepted windows of one series."""

    def __init__(self, config: BaselineConfig, rates: RatesConfig) -> None:
        self.config = config
        self.rates = rates
        self.windows: deque[tuple[int, int]] = deque(maxlen=config.history)
        self.successes = 0
        self.trials = 0
        # The series' own last windows (learned or not), for the pooled test.
        longest = max(rates.pool_windows, rates.long_pool_windows)
        self.recent: deque[tuple[int, int]] = deque(maxlen=max(longest - 1, 0))
        # (end, successes, trials) of the last windows judged, for the pool since a change.
        self.seen: deque[tuple[int, int, int]] = deque(maxlen=SEEN_WINDOWS)
        # Normal windows still inside a pool: learned when they leave it (`learn_later`).
        self.pending: deque[tuple[int, int]] = deque()
        self.lag = max(longest - 1, 0)
        # the last tail probability `_test` summed, and its (x, n, a, b, down)
        self._tail_key: tuple[int, int, float, float, bool] | None = None
        self._tail = 0.0

    def rate(self) -> float:
        """The baseline rate with a half-count prior, so a clean history never says exactly 0."""
        return (self.successes + 0.5) / (self.trials + 1.0)

    def judge(
        self, successes: int, trials: int, rule: SeriesRule, holding: bool = False
    ) -> Verdict | None:
        """Judge one window's rate; None when the traffic or the history is too small.

        `holding` (an anomaly is active) judges with `alpha_hold` and smaller minimum effects.
        A window below `min_trials` is judged through its pools only (a journey of a small
        segment may see two or three starts a window, and still be watched).
        """
        if trials <= 0 or (
            len(self.windows) < self.config.min_history
            or self.trials < self.rates.min_history_trials
        ):
            return None
        p0 = min(max(self.rate(), 1e-9), 1.0 - 1e-9)
        x = min(successes, trials)
        f = self.config.hold_factor if holding else 1.0
        small = trials < self.rates.min_trials
        if holding:
            if small:
                if self._pooled_trials(trials, self.rates.pool_windows) < self.rates.min_trials:
                    return None
                abnormal, score = self._pooled(
                    x, trials, self.rates.pool_windows, p0, rule, f, self.rates.alpha_hold
                )
            else:
                abnormal, score = self._test(x, trials, p0, rule, f, self.rates.alpha_hold)
            return Verdict(abnormal, p0, score)
        pools = [
            (w, a)
            for w, a in self._pools()
            if self._pooled_trials(trials, w) >= self.rates.min_trials
        ]
        if small and not pools:
            return None
        abnormal, score = (
            (False, 0.0) if small else self._test(x, trials, p0, rule, f, self.rates.alpha)
        )
        if not abnormal:
            same_way = (x / trials < p0) if rule.direction == "down" else (x / trials > p0)
            for windows, pool_alpha in pools:
                pooled, pooled_score = self._pooled(x, trials, windows, p0, rule, f, pool_alpha)
                if pooled and same_way:
                    abnormal, score = True, pooled_score
                    break
        return Verdict(abnormal, p0, score)

    def judge_pool(self, successes: int, trials: int, rule: SeriesRule) -> Verdict | None:
        """A pool of windows (e.g. every window since a change) at `alpha_change`; abnormal only
        in the rule's direction. None while the history is too short to trust the rate."""
        if trials < self.rates.min_trials or (
            len(self.windows) < self.config.min_history
            or self.trials < self.rates.min_history_trials
        ):
            return None
        p0 = min(max(self.rate(), 1e-9), 1.0 - 1e-9)
        x = min(successes, trials)
        same_way = (x / trials < p0) if rule.direction == "down" else (x / trials > p0)
        abnormal, score = self._test(x, trials, p0, rule, 1.0, self.rates.alpha_change)
        return Verdict(abnormal and same_way, p0, score)

    def _pooled_trials(self, trials: int, windows: int) -> int:
        recent = list(self.recent)[-(windows - 1) :] if windows > 1 else []
        return trials + sum(w[1] for w in recent)

    def _pools(self) -> list[tuple[int, float]]:
        pools = [(self.rates.pool_windows, self.rates.alpha_pooled)]
        if self.rates.long_pool_windows > 1:
            pools.append((self.rates.long_pool_windows, self.rates.alpha_long_pooled))
        return [(w, a) for w, a in pools if w > 1]

    def _pooled(
        self, x: int, n: int, windows: int, p0: float, rule: SeriesRule, f: float, alpha: float
    ) -> tuple[bool, float]:
        """The window pooled with up to `windows - 1` predecessors, tested at `alpha`."""
        recent = list(self.recent)[-(windows - 1) :]
        if not recent:
            return False, 0.0
        xs = x + sum(w[0] for w in recent)
        ns = n + sum(w[1] for w in recent)
        return self._test(xs, ns, p0, rule, f, alpha)

    def _test(
        self, x: int, n: int, p0: float, rule: SeriesRule, f: float, alpha: float
    ) -> tuple[bool, float]:
        """`x` of `n` against the baseline: p-value from the posterior predictive, the
        beta-binomial of the rate's Jeffreys posterior, so a rate learnt from few events is as
        uncertain as it is (a plug-in binomial takes 1 error in 200 trials for an exact 0.5%
        and alarms on noise); `p0` (its mean) sets the minimum effects."""
        a = self.successes + 0.5
        b = self.trials - self.successes + 0.5
        observed = x / n
        down = rule.direction == "down"
        # The strict and the lax verdict of a window test the same counts at different bars:
        # the tail sum (the dear part) is kept for the second.
        key = (x, n, a, b, down)
        if key == self._tail_key:
            p_value = self._tail
        else:
            p_value = betabinom_cdf(x, n, a, b) if down else betabinom_sf(x, n, a, b)
            self._tail_key, self._tail = key, p_value
        if down:
            d = p0 - observed
            big_enough = d >= f * rule.min_abs and observed <= p0 * (1.0 - f * rule.min_rel)
        else:
            d = observed - p0
            big_enough = d >= f * rule.min_abs and observed >= p0 * (1.0 + f * rule.min_rel)
        score = min(-math.log10(max(p_value, 1e-300)), MAX_SCORE)
        return big_enough and p_value < alpha, score

    def observe(self, successes: int, trials: int, end_ns: int | None = None) -> None:
        """Remember a judged window (ending at `end_ns`) for the pooled tests, learned or not."""
        if self.recent.maxlen:
            self.recent.append((min(successes, trials), trials))
        if end_ns is not None:
            self.seen.append((end_ns, min(successes, trials), trials))

    def since(self, at_ns: int) -> list[int]:
        """[successes, trials, windows] of the windows judged that ended at or after `at_ns`: the
        window a change appeared in holds its first requests, and later windows may have been
        judged before the change was seen (their spans arrived late)."""
        after = [w for w in self.seen if w[0] >= at_ns]
        return [sum(w[1] for w in after), sum(w[2] for w in after), len(after)]

    def learn_later(self, successes: int, trials: int) -> None:
        """Learn a normal window once it has left every pool, so that a fault's first, not yet
        significant windows cannot drag the rate they are tested against."""
        self.pending.append((successes, trials))
        while len(self.pending) > self.lag:
            self.learn(*self.pending.popleft())

    def forget_pending(self) -> None:
        """Drop the windows not learned yet (an anomaly fired: they led up to it)."""
        self.pending.clear()

    def learn(self, successes: int, trials: int) -> None:
        """Add an accepted window to the history."""
        if len(self.windows) == self.windows.maxlen:
            old_s, old_n = self.windows[0]
            self.successes -= old_s
            self.trials -= old_n
        s = min(successes, trials)
        self.windows.append((s, trials))
        self.successes += s
        self.trials += trials

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "windows": [list(w) for w in self.windows],
            "recent": [list(w) for w in self.recent],
            "seen": [list(w) for w in self.seen],
            "pending": [list(w) for w in self.pending],
        }

    @classmethod
    def from_snapshot(
        cls, config: BaselineConfig, rates: RatesConfig, data: dict[str, Any]
    ) -> RateBaseline:
        """Rebuild from `snapshot()`."""
        out = cls(config, rates)
        for s, n in data["windows"]:
            out.learn(int(s), int(n))
        for s, n in data["recent"]:
            out.observe(int(s), int(n))
        out.pending.extend((int(s), int(n)) for s, n in data.get("pending", []))
        out.seen.extend((int(e), int(s), int(n)) for e, s, n in data.get("seen", []))
        return out
