"""User traffic: a daily shape with slow noise, in requests per second at the frontend."""

from __future__ import annotations

import math

from chaos.rand import Rand

DAY_S = 86_400.0
PEAK_HOUR_UTC = 15.0  # busiest hour of the day
DAILY_SWING = 0.35  # peak is 1 + swing times the mean, trough 1 - swing


class Traffic:
    """Request rate over event time: mean `rate_rps`, daily shape, autocorrelated noise."""

    def __init__(self, rand: Rand, rate_rps: float) -> None:
        self.rand = rand
        self.rate_rps = rate_rps
        self._noise = 0.0

    def rate(self, now_ns: int, dt_s: float) -> float:
        """The request rate for the tick starting at `now_ns` (advances the noise by one tick)."""
        # AR(1) noise on the log rate: a few percent, drifting over minutes, not jumping every second
        keep = math.exp(-dt_s / 120.0)
        self._noise = keep * self._noise + math.sqrt(1 - keep * keep) * 0.05 * self.rand.normal()
        return self.expected(now_ns) * math.exp(self._noise)

    def expected(self, now_ns: int) -> float:
        """The rate the daily shape gives at `now_ns`, without noise."""
        hour = (now_ns / 1e9 % DAY_S) / 3600.0
        return self.rate_rps * (
            1.0 + DAILY_SWING * math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24.0)
        )
