"""User traffic: daily and weekly cycles with slow noise, in requests per second at the frontend.

The shape is an online shop's as seen in its customers' local time: a quiet night (a fifth of the
mean at 4 am), a morning ramp, a lunch plateau and an evening peak on weekdays; later, flatter
mornings and less traffic at weekends. The configured rate is the mean over a week.
"""

from __future__ import annotations

import math

from chaos.rand import Rand

DAY_S = 86_400.0
WEEK_DAYS = 7
# Relative load at the start of each local hour (interpolated smoothly between hours).
WEEKDAY = (
    *(0.42, 0.28, 0.20, 0.16, 0.15, 0.18, 0.30, 0.50, 0.72, 0.86, 0.92, 0.96),
    *(1.00, 0.97, 0.93, 0.92, 0.95, 1.00, 1.08, 1.15, 1.18, 1.08, 0.86, 0.62),
)
WEEKEND = (
    *(0.50, 0.36, 0.26, 0.20, 0.17, 0.17, 0.20, 0.28, 0.42, 0.60, 0.76, 0.86),
    *(0.92, 0.94, 0.94, 0.93, 0.94, 0.97, 1.00, 1.04, 1.05, 0.98, 0.82, 0.64),
)
WEEKEND_LEVEL = 0.85  # a weekend day's traffic relative to a weekday's, hour for hour
# The customers' time zone. At -1 h a recording started at the shop's default epoch (Monday
# 00:00 UTC) begins at 23:00 on a Sunday, at about 0.8 of the mean rate, as the scenario
# recordings ran before the weekly shape.
UTC_OFFSET_H = -1.0
# 1970-01-01 was a Thursday: day number + 3 is the weekday with Monday 0.
_EPOCH_WEEKDAY = 3


def _day_profile(weekday: int) -> tuple[float, ...]:
    if weekday >= 5:
        return tuple(WEEKEND_LEVEL * x for x in WEEKEND)
    return WEEKDAY


# The mean of the weekly shape over its 168 hourly knots, so `rate_rps` is the week's mean.
_WEEK_MEAN = sum(sum(_day_profile(d)) for d in range(WEEK_DAYS)) / (24 * WEEK_DAYS)


def shape(now_ns: int, utc_offset_h: float = UTC_OFFSET_H) -> float:
    """The weekly shape at event time `now_ns`: 1.0 is the week's mean rate."""
    local_s = now_ns / 1e9 + utc_offset_h * 3600.0
    day = math.floor(local_s / DAY_S)
    hour = (local_s - day * DAY_S) / 3600.0
    h = int(hour)
    weekday = (day + _EPOCH_WEEKDAY) % WEEK_DAYS
    here = _day_profile(weekday)[h]
    nxt = _day_profile((weekday + 1) % WEEK_DAYS)[0] if h == 23 else _day_profile(weekday)[h + 1]
    # Cosine easing between hourly knots: no kinks, the hour's value at each full hour.
    w = 0.5 - 0.5 * math.cos(math.pi * (hour - h))
    return (here + (nxt - here) * w) / _WEEK_MEAN


class Traffic:
    """Request rate over event time: mean `rate_rps`, weekly shape, autocorrelated noise."""

    def __init__(self, rand: Rand, rate_rps: float, utc_offset_h: float = UTC_OFFSET_H) -> None:
        self.rand = rand
        self.rate_rps = rate_rps
        self.utc_offset_h = utc_offset_h
        self._noise = 0.0

    def rate(self, now_ns: int, dt_s: float) -> float:
        """The request rate for the tick starting at `now_ns` (advances the noise by one tick)."""
        # AR(1) noise on the log rate: a few percent, drifting over minutes, not jumping every second
        keep = math.exp(-dt_s / 120.0)
        self._noise = keep * self._noise + math.sqrt(1 - keep * keep) * 0.05 * self.rand.normal()
        return self.expected(now_ns) * math.exp(self._noise)

    def expected(self, now_ns: int) -> float:
        """The rate the weekly shape gives at `now_ns`, without noise."""
        return self.rate_rps * shape(now_ns, self.utc_offset_h)
