"""The forecaster's scale CUSUM: a lasting rise of the noise too small for the variance ratio."""

from __future__ import annotations

import numpy as np

from operators.scout.detect.cusum import ScaleCusum
from operators.scout.detect.forecast import DAY_S, ForecastConfig, Forecaster, Judgement
from tests.scout.helpers import daily_noise_burst

STEP = 300.0
CFG = ForecastConfig()
# The CUSUM as the only pooled test: the variance ratio and the short mean are off, so what
# fires beyond single points is the CUSUM's.
CUSUM = ForecastConfig(var_sigmas=0.0, shift_gain=0.0)


def _flags(cfg: ForecastConfig, values: np.ndarray) -> list[int]:
    f = Forecaster(cfg)
    out: list[Judgement | None] = [f.judge(i * STEP, float(v)) for i, v in enumerate(values)]
    return [i for i, j in enumerate(out) if j is not None and j.abnormal]


def test_a_lasting_noise_rise_under_the_variance_bar_fires_once() -> None:
    # The noise grows 1.8x for good: the variance ratio (limit 1.75) and every single point stay
    # under their bars, while the CUSUM adds up the evidence and fires once, within 100 points.
    rng = np.random.default_rng(0)
    e = rng.normal(0, 1.0, 2000)
    e[1200:] *= 1.8
    x = 50.0 + e
    assert _flags(ForecastConfig(cusum_h=0.0), x) == []
    flags = _flags(CFG, x)
    assert len(flags) == 1 and 1200 < flags[0] < 1300


def test_white_noise_never_fires_the_scale_cusum() -> None:
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        f = Forecaster(CUSUM)
        top = 0.0
        for i, v in enumerate(50.0 + rng.normal(0, 1.0, 5000)):
            j = f.judge(i * STEP, float(v))
            assert j is None or not j.abnormal
            top = max(top, f.cusum.s)
        assert top < 0.75 * CUSUM.cusum_h


def test_a_daily_noise_rise_is_learnt_as_the_hour_s_routine() -> None:
    # Every morning the noise triples for four hours (a batch job). Each hour's usual excess on
    # past days is the CUSUM's reference there, so the routine alerts on its first days at most;
    # without the time-of-day memory it alerts on most days.
    per = int(DAY_S / STEP)
    e = daily_noise_burst(per, 96, 144, seed=1)
    assert {i // per for i in _flags(CUSUM, 50.0 + e)} <= {0, 1}
    no_memory = ForecastConfig(var_sigmas=0.0, shift_gain=0.0, peak_bins=0)
    assert len({i // per for i in _flags(no_memory, 50.0 + e)}) >= 5


def test_a_sampling_gap_and_one_burst_add_little() -> None:
    c = ScaleCusum(24)
    c.learn(1e6, 1.0, 0, True, 0.35, 2.0, 40.0)  # after a gap: the level's move, not noise
    assert c.s == 0.0
    for _ in range(3):
        c.learn(1e6, 1.0, 0, False, 0.35, 2.0, 40.0)
    # Two points after the gap still add nothing; then each burst point adds at most clip - k.
    assert abs(c.s - (2.0 - 0.35)) < 1e-9
    assert not c.test(20.0)


def test_the_cusum_fires_once_until_it_falls_back_to_zero() -> None:
    c = ScaleCusum(24)
    for _ in range(20):
        c.learn(10.0, 1.0, 0, False, 0.35, 2.0, 40.0)
    assert c.test(20.0) and not c.test(20.0)
    for _ in range(200):
        c.learn(0.5, 1.0, 0, False, 0.35, 2.0, 40.0)  # back to normal: the statistic drains
        c.test(20.0)
    assert c.s == 0.0 and not c.fired
    restored = ScaleCusum.from_snapshot(c.snapshot(), 24)
    assert restored.snapshot() == c.snapshot()
