"""A request count through the daily ramp: its baseline follows the traffic's trend, so a morning
ramp is no anomaly, while a surge on top of it still is."""

from __future__ import annotations

import math

import numpy as np

from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly
from tests.scout.helpers import items, span

WINDOWS_PER_HOUR = 360


def _ramp(seed: int, surge_at: int | None = None) -> list[Anomaly]:
    """Two flat hours at 20 requests a window, then the mean rises 2.5x over two hours (a
    weekday morning: fastest mid-ramp, +70% an hour), then flat; Poisson counts."""
    rng = np.random.default_rng(seed)
    det = SeriesDetector(DetectionConfig())
    found: list[Anomaly] = []
    for i in range(6 * WINDOWS_PER_HOUR):
        h = i / WINDOWS_PER_HOUR
        w = min(max(h - 2.0, 0.0), 2.0) / 2.0
        mean = 20.0 * (1.0 + 1.5 * (0.5 - 0.5 * math.cos(math.pi * w)))
        if surge_at is not None and surge_at <= i < surge_at + 30:
            mean *= 2.5
        found += items(det.on_signal(span(i, int(rng.poisson(mean)))), Anomaly)
    return found


def test_a_morning_ramp_is_no_anomaly() -> None:
    for seed in range(4):
        assert _ramp(seed) == [], seed


def test_a_surge_on_the_ramp_is_still_found() -> None:
    at = 3 * WINDOWS_PER_HOUR  # mid-ramp
    for seed in range(4):
        found = [a for a in _ramp(seed, surge_at=at) if a.signal == "count"]
        assert found and found[0].onset <= span(at + 2, 0).window_start, seed
