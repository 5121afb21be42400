"""Saturation trending to a limit: a robust line through recent utilization, projected forward.

Fires before the limit is hit (before the OOM kill), with the estimated time to exhaustion. A
sudden drop (a restart freed the memory) starts the fit over, so a saw-tooth does not blur it.
A deploy of the service anchors the fit at the deploy (`anchor`): only points since then count,
so a leak that a new version brings shows its slope within a few points instead of being
flattened by the minutes before it.

`FreshInstances` looks at containers one by one: those that start while the series is watched (a
rollout's new pods, a restarted container) are fitted on their own points, with one slope
common to all of them and the noise learned from every container's point-to-point changes.
The service's worst-instance series mixes old and new pods and jumps at a rollout (a new pod's
base memory is its own); per container there is no such jump, so a leak shows a point or two
sooner.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from operators.scout.detect.config import SaturationConfig
from operators.scout.detect.stats import MAD_TO_SIGMA, median_mad, theil_sen


@dataclass(frozen=True, slots=True)
class TrendVerdict:
    """The projection at one point: abnormal when exhaustion is within the horizon."""

    abnormal: bool
    level: float
    slope_per_s: float
    time_to_exhaustion_s: float | None
    rising_share: float
    anchored: bool = False  # fitted on the points since a deploy (or a container start) only
    instances: int = 0  # containers fitted one by one (`FreshInstances`), 0 for the series fit
    z: float | None = None  # the common slope over its standard error (`FreshInstances`)


def diff_noise(diffs: Sequence[float]) -> float:
    """The sigma of a series' noise from its successive differences (robust: MAD)."""
    _, mad = median_mad(diffs)
    # Differences of independent noise have sqrt(2) times its sigma.
    return MAD_TO_SIGMA * mad / 2**0.5


def quantum_noise(diffs: Sequence[float]) -> float:
    """The least noise a quantized gauge has: q / sqrt(12), the rounding error's sigma (Sheppard
    1898), q its smallest non-zero step. A pool of 20 connections moves by 0.05: most of its
    differences are 0, so their MAD is 0 and one step would look like a steep, certain slope."""
    steps = [abs(d) for d in diffs if d != 0.0]
    return min(steps) / 12**0.5 if steps else 0.0


@dataclass(frozen=True, slots=True)
class CommonSlope:
    """One least-squares slope shared by several point sets, each keeping its own level."""

    slope: float
    sxx: float  # sum of squared time deviations: the slope's standard error is sigma / sqrt(sxx)
    level: float  # the highest set's level at the time asked for, on the common slope
    rising: int  # sets that rise on their own


def common_slope(sets: Sequence[Sequence[tuple[float, float]]], t_s: float) -> CommonSlope:
    """Fit one slope through `sets` of (time, value) points with an intercept per set."""
    sxx = sxy = 0.0
    centers: list[tuple[float, float]] = []
    rising = 0
    for pts in sets:
        t_mean = sum(t for t, _ in pts) / len(pts)
        u_mean = sum(u for _, u in pts) / len(pts)
        own_sxx = sum((t - t_mean) ** 2 for t, _ in pts)
        own_sxy = sum((t - t_mean) * (u - u_mean) for t, u in pts)
        sxx += own_sxx
        sxy += own_sxy
        rising += int(own_sxy > 0)
        centers.append((t_mean, u_mean))
    slope = sxy / sxx if sxx > 0 else 0.0
    level = max(u + slope * (t_s - t) for t, u in centers)
    return CommonSlope(slope, sxx, level, rising)


def time_to_exhaustion(level: float, slope_per_s: float, limit: float) -> float | None:
    """Seconds until a line at `level` rising by `slope_per_s` reaches `limit` (None: never)."""
    if level >= limit:
        return 0.0
    if slope_per_s <= 0:
        return None
    return (limit - level) / slope_per_s


class TrendToLimit:
    """Utilization points of one series over the lookback, and the projection to its limit."""

    def __init__(self, config: SaturationConfig) -> None:
        self.config = config
        self.points: deque[tuple[float, float]] = deque()
        # Set by a deploy: the fit's start (event seconds) and the noise sigma before it.
        self.anchor_s: float | None = None
        self.noise: float = 0.0

    def anchor(self, t_s: float) -> None:
        """Start the fit over at `t_s` (a deploy): points before it no longer count.

        The noise of the series is measured on the points being dropped (the robust spread of
        their successive differences), so the anchored fit can ask for a rise well above it.
        """
        before = [u for t, u in self.points if t < t_s]
        if len(before) >= 3:
            self.noise = diff_noise([b - a for a, b in itertools.pairwise(before)])
        else:
            self.noise = 0.0
        while self.points and self.points[0][0] < t_s:
            self.points.popleft()
        self.anchor_s = t_s

    def on_point(self, t_s: float, utilization: float) -> TrendVerdict | None:
        """Add a point and judge the trend; None while there are too few points to fit."""
        cfg = self.config
        if self.points and utilization < self.points[-1][1] - cfg.reset_drop:
            self.points.clear()
            self.anchor_s = None  # a restart: back to the ordinary fit
        self.points.append((t_s, utilization))
        while self.points and self.points[0][0] < t_s - cfg.lookback:
            self.points.popleft()
        if self.anchor_s is not None and t_s - self.anchor_s > cfg.lookback:
            self.anchor_s = None  # the lookback holds only post-deploy points by now
        anchored = self.anchor_s is not None
        if len(self.points) < (cfg.anchored_min_points if anchored else cfg.min_points):
            return None
        t0 = self.points[0][0]
        # Fit on times relative to the first point: epoch seconds would cost float precision.
        slope, intercept, rising = theil_sen(
            [p[0] - t0 for p in self.points], [p[1] for p in self.points]
        )
        level = intercept + slope * (t_s - t0)
        tte = time_to_exhaustion(level, slope, cfg.exhaustion_level)
        exhausted = level >= cfg.exhaustion_level
        if anchored:
            rise = slope * (t_s - t0)
            trending = (
                slope > 0
                and rising >= cfg.anchored_min_monotonic
                and rise >= cfg.anchored_noise_z * self.noise
                and self._still_rising(slope)
            )
            high_enough = True
        else:
            trending = slope > 0 and rising >= cfg.min_monotonic
            high_enough = level >= cfg.min_utilization
        abnormal = (
            tte is not None and tte <= cfg.horizon and high_enough and (exhausted or trending)
        )
        return TrendVerdict(abnormal, level, slope, tte, rising, anchored)

    def _still_rising(self, slope: float) -> bool:
        """The newest half of the points still climbs at `anchored_recent_ratio` of the slope.

        A leak climbs at one rate; a new version warming up (caches, heaps) climbs for a while,
        then levels off. Off when the ratio is 0.
        """
        ratio = self.config.anchored_recent_ratio
        if ratio <= 0:
            return True
        recent = list(self.points)[-max(3, len(self.points) // 2) :]
        t0 = recent[0][0]
        recent_slope, _, _ = theil_sen([p[0] - t0 for p in recent], [p[1] for p in recent])
        return recent_slope >= ratio * slope

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "points": [list(p) for p in self.points],
            "anchor_s": self.anchor_s,
            "noise": self.noise,
        }

    @classmethod
    def from_snapshot(cls, config: SaturationConfig, data: dict[str, Any]) -> TrendToLimit:
        """Rebuild from `snapshot()`."""
        out = cls(config)
        out.points.extend((float(t), float(u)) for t, u in data["points"])
        out.anchor_s = data.get("anchor_s")
        out.noise = float(data.get("noise", 0.0))
        return out


# Successive differences kept for the noise estimate, and how many it takes to trust it.
_NOISE_DIFFS = 120
_MIN_NOISE_DIFFS = 8
# The noise never counts as less than this share of the limit: a flat synthetic gauge has none.
_NOISE_FLOOR = 0.001


class FreshInstances:
    """Per-container utilization of the containers started while watched, and their common slope.

    A container counts as fresh when it first reports after the first window seen, or when its
    utilization drops by `reset_drop` (a restart). Its points are fitted for `lookback` after
    its start, but for the first `instance_skip_points`: a point taken seconds after the start
    catches the working set still filling as traffic arrives. Then it is an old container, left
    to the series fit. The verdict pools every fresh container that reported within
    `instance_stale`: one slope for all (each keeps its own level), judged against the noise of
    point-to-point changes (MAD over all containers).
    """

    def __init__(self, config: SaturationConfig) -> None:
        self.config = config
        self.since_s: float | None = None
        self.last: dict[str, tuple[float, float]] = {}
        self.fresh: dict[str, list[tuple[float, float]]] = {}
        self.diffs: deque[float] = deque(maxlen=_NOISE_DIFFS)

    def on_window(self, t_s: float, utilization: dict[str, float]) -> TrendVerdict | None:
        """Add one window's per-instance points; the verdict once fresh containers can be fitted."""
        cfg = self.config
        if self.since_s is None:
            self.since_s = t_s
        for inst, u in utilization.items():
            prev = self.last.get(inst)
            if prev is None:
                if t_s > self.since_s:
                    self.fresh[inst] = []  # started while watched
            elif u < prev[1] - cfg.reset_drop:
                self.fresh[inst] = []  # restarted: a container starting over
            else:
                self.diffs.append(u - prev[1])
            self.last[inst] = (t_s, u)
            if inst in self.fresh:
                self.fresh[inst].append((t_s, u))
        for inst in [i for i, (t, _) in self.last.items() if t < t_s - cfg.lookback]:
            del self.last[inst]  # gone (rolled out, scaled in)
        for inst in [i for i, pts in self.fresh.items() if pts and pts[0][0] < t_s - cfg.lookback]:
            del self.fresh[inst]  # old enough for the series fit
        skip = cfg.instance_skip_points
        pool = [
            pts[skip:]
            for pts in self.fresh.values()
            if len(pts) >= skip + cfg.instance_min_points and pts[-1][0] >= t_s - cfg.instance_stale
        ]
        if not pool or len(self.diffs) < _MIN_NOISE_DIFFS:
            return None
        return self._judge(t_s, pool)

    def _judge(self, t_s: float, pool: list[list[tuple[float, float]]]) -> TrendVerdict:
        cfg = self.config
        fit = common_slope(pool, t_s)
        sigma = max(
            diff_noise(self.diffs),
            quantum_noise(self.diffs),
            _NOISE_FLOOR * cfg.exhaustion_level,
        )
        z = fit.slope * fit.sxx**0.5 / sigma
        tte = time_to_exhaustion(fit.level, fit.slope, cfg.exhaustion_level)
        abnormal = (
            tte is not None
            and tte <= cfg.horizon
            and (fit.level >= cfg.exhaustion_level or z >= cfg.instance_z)
        )
        return TrendVerdict(
            abnormal,
            fit.level,
            fit.slope,
            tte,
            fit.rising / len(pool),
            True,
            instances=len(pool),
            z=z,
        )

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "since_s": self.since_s,
            "last": {i: list(p) for i, p in self.last.items()},
            "fresh": {i: [list(p) for p in pts] for i, pts in self.fresh.items()},
            "diffs": list(self.diffs),
        }

    @classmethod
    def from_snapshot(cls, config: SaturationConfig, data: dict[str, Any]) -> FreshInstances:
        """Rebuild from `snapshot()`."""
        out = cls(config)
        out.since_s = data["since_s"]
        out.last = {i: (float(t), float(u)) for i, (t, u) in data["last"].items()}
        out.fresh = {i: [(float(t), float(u)) for t, u in pts] for i, pts in data["fresh"].items()}
        out.diffs.extend(float(d) for d in data["diffs"])
        return out
