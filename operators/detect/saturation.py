"""Saturation trending to a limit: a robust line through recent utilization, projected forward.

Fires before the limit is hit (before the OOM kill), with the estimated time to exhaustion. A
sudden drop (a restart freed the memory) starts the fit over, so a saw-tooth does not blur it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from operators.detect.config import SaturationConfig
from operators.detect.stats import theil_sen


@dataclass(frozen=True, slots=True)
class TrendVerdict:
    """The projection at one point: abnormal when exhaustion is within the horizon."""

    abnormal: bool
    level: float
    slope_per_s: float
    time_to_exhaustion_s: float | None
    rising_share: float


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

    def on_point(self, t_s: float, utilization: float) -> TrendVerdict | None:
        """Add a point and judge the trend; None while there are too few points to fit."""
        cfg = self.config
        if self.points and utilization < self.points[-1][1] - cfg.reset_drop:
            self.points.clear()
        self.points.append((t_s, utilization))
        while self.points and self.points[0][0] < t_s - cfg.lookback:
            self.points.popleft()
        if len(self.points) < cfg.min_points:
            return None
        t0 = self.points[0][0]
        # Fit on times relative to the first point: epoch seconds would cost float precision.
        slope, intercept, rising = theil_sen(
            [p[0] - t0 for p in self.points], [p[1] for p in self.points]
        )
        level = intercept + slope * (t_s - t0)
        tte = time_to_exhaustion(level, slope, cfg.exhaustion_level)
        exhausted = level >= cfg.exhaustion_level
        trending = slope > 0 and rising >= cfg.min_monotonic
        abnormal = (
            tte is not None
            and tte <= cfg.horizon
            and level >= cfg.min_utilization
            and (exhausted or trending)
        )
        return TrendVerdict(abnormal, level, slope, tte, rising)

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {"points": [list(p) for p in self.points]}

    @classmethod
    def from_snapshot(cls, config: SaturationConfig, data: dict[str, Any]) -> TrendToLimit:
        """Rebuild from `snapshot()`."""
        out = cls(config)
        out.points.extend((float(t), float(u)) for t, u in data["points"])
        return out
