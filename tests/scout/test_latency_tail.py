"""Latency quantiles of tens of requests: a heavy tail's draws do not page, a real slowdown does."""

from __future__ import annotations

import numpy as np

from operators.scout.detect.config import DetectionConfig, load_detection
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly
from tests.scout.helpers import items, span

# The default latency rules without `log_scale`: judged on the linear scale only.
LINEAR = [
    {"kind": "span", "field": f, "direction": "up", "min_abs": a, "min_rel": r}
    for f, a, r in (("p50_ms", 20, 1.0), ("p95_ms", 20, 0.5), ("p99_ms", 50, 0.5))
]


def _fired(
    config: DetectionConfig, seed: int, windows: int, shift_at: int = -1, factor: float = 1.0
) -> list[int]:
    """Windows where anomalies open: ~30 requests a window of a 12 ms RPC, lognormal sigma 0.6."""
    rng = np.random.default_rng(seed)
    det = SeriesDetector(config)
    fired = []
    for i in range(windows):
        count = int(rng.poisson(30))
        median = 12.0 * (factor if 0 <= shift_at <= i else 1.0)
        lat = rng.lognormal(np.log(median), 0.6, size=count)
        quantiles = {f"p{q}_ms": float(np.quantile(lat, q / 100)) for q in (50, 95, 99)}
        out = det.on_signal(span(i, count, max_ms=float(lat.max()), **quantiles))
        fired += [i for _ in items(out, Anomaly)]
    return fired


def test_six_hours_of_a_heavy_tail_page_on_the_linear_scale_only() -> None:
    # Two of ~30 requests set the p95: one window pair in six hours sits 5 MADs up on the linear
    # scale (seed 2, window 1865), as the shop's GetQuote did on a clean Tuesday morning.
    linear = load_detection({"detection": {"overrides": LINEAR}})
    assert _fired(linear, 2, 2160)
    for seed in range(4):
        assert _fired(DetectionConfig(), seed, 2160) == [], seed


def test_a_slowdown_still_fires() -> None:
    # tripled latency at once; doubled within three minutes (linear: 2 windows, log: 14)
    assert _fired(DetectionConfig(), 1, 380, 360, 3.0)[0] <= 362
    assert _fired(DetectionConfig(), 1, 400, 360, 2.0)[0] <= 360 + 18
