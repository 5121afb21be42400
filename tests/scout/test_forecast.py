"""The metric forecaster: warm-up, spikes, level shifts, seasons, counts, bad input, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.forecast import DAY_S, ForecastConfig, Forecaster, Judgement
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly
from tests.scout.helpers import daily_noise_burst, metric

CFG = ForecastConfig()
STEP = 300.0  # five-minute samples, as many cloud metrics


def _feed(f: Forecaster, values: np.ndarray, t0: float = 0.0) -> list[Judgement | None]:
    return [f.judge(t0 + i * STEP, float(v)) for i, v in enumerate(values)]


def _flags(out: list[Judgement | None]) -> list[int]:
    return [i for i, j in enumerate(out) if j is not None and j.abnormal]


def test_warm_up_judges_nothing() -> None:
    f = Forecaster(CFG)
    out = _feed(f, np.full(CFG.warmup + 5, 10.0))
    assert all(j is None for j in out[: CFG.warmup])
    assert all(j is not None for j in out[CFG.warmup :])


def test_spike_on_noise_fires_and_noise_does_not() -> None:
    rng = np.random.default_rng(1)
    x = 50.0 + rng.normal(0, 2.0, 1500)
    x[1200] = 90.0
    out = _feed(Forecaster(CFG), x)
    assert _flags(out) == [1200]
    j = out[1200]
    assert j is not None and j.z > j.bar and abs(j.expected - 50.0) < 1.0


def test_refractory_period_holds_back_a_second_anomaly() -> None:
    rng = np.random.default_rng(1)
    x = 50.0 + rng.normal(0, 2.0, 1500)
    x[[1200, 1205, 1200 + CFG.refractory + 5]] = 90.0
    # Without the period every spike is an anomaly; with it the one 5 points later is not.
    assert _flags(_feed(Forecaster(ForecastConfig(refractory=0)), x)) == [1200, 1205, 1225]
    assert _flags(_feed(Forecaster(CFG), x)) == [1200, 1225]


def test_variance_change_fires_once_where_no_point_stands_out() -> None:
    rng = np.random.default_rng(3)
    e = rng.normal(0, 1.0, 1500)
    e[1200:] *= 3.0  # the noise triples; no single point is beyond the bar
    x = 50.0 + e
    # No pooled test (variance, short mean, scale CUSUM): no single point is news.
    off = ForecastConfig(var_sigmas=0.0, shift_gain=0.0, cusum_h=0.0)
    assert _flags(_feed(Forecaster(off), x)) == []
    flags = _flags(_feed(Forecaster(CFG), x))
    assert len(flags) == 1 and 1200 < flags[0] < 1250


@pytest.mark.parametrize("gain", [0.0375, 0.05, 0.0625])
def test_variance_bar_follows_the_scale_gain(gain: float) -> None:
    # The ratio's control limit is in units of its own null spread, which shrinks with a
    # slower scale: 25% either side of the default gain still finds the change, and stays
    # quiet on unchanged noise.
    cfg = ForecastConfig(scale_gain=gain, shift_gain=0.0)
    rng = np.random.default_rng(4)
    assert _flags(_feed(Forecaster(cfg), 50.0 + rng.normal(0, 1.0, 5000))) == []
    e = rng.normal(0, 1.0, 1500)
    e[1200:] *= 2.5
    flags = _flags(_feed(Forecaster(cfg), 50.0 + e))
    assert len(flags) == 1 and 1200 < flags[0] < 1250


def test_lasting_level_shift_fires_then_is_learned() -> None:
    rng = np.random.default_rng(2)
    x = 20.0 + rng.normal(0, 1.0, 1600)
    x[1000:] += 15.0
    flags = _flags(_feed(Forecaster(CFG), x))
    assert flags and flags[0] == 1000
    # Re-levelled after relearn_run points on one side: the new level is normal again.
    assert max(flags) < 1000 + 2 * CFG.relearn_run


def test_small_lasting_shift_fires_once_on_the_short_mean() -> None:
    rng = np.random.default_rng(6)
    x = 20.0 + rng.normal(0, 1.0, 2000)
    x[1500:] += 4.0  # under z_min: the scale grows and the level follows, no point is news
    # The point test alone never fires; the variance test sees it late (the scale has grown).
    assert _flags(_feed(Forecaster(ForecastConfig(shift_gain=0.0, var_sigmas=0.0)), x)) == []
    assert _flags(_feed(Forecaster(ForecastConfig(shift_gain=0.0)), x)) == [1512]
    assert _flags(_feed(Forecaster(CFG), x)) == [1507]


def test_a_reported_burst_does_not_alert_again_as_a_shift() -> None:
    rng = np.random.default_rng(1)
    x = 5.0 + rng.normal(0, 1.0, 2000)
    x[1500:1530] += 40.0 + rng.normal(0, 10.0, 30)  # a burst: its first point is the alert
    # The short mean stays high past the refractory period; the burst's alert latched it.
    assert _flags(_feed(Forecaster(CFG), x)) == [1500]


def test_daily_season_is_learned_and_a_missing_peak_fires() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(int(8 * DAY_S / STEP)) * STEP
    busy = ((t % DAY_S) >= 9 * 3600) & ((t % DAY_S) < 17 * 3600)
    x = 20.0 + 60.0 * busy + rng.normal(0, 2.0, t.size)
    day7 = (t >= 7 * DAY_S) & busy
    x[day7] = 20.0 + rng.normal(0, 2.0, int(day7.sum()))  # the busy hours never come on day 7
    f = Forecaster(CFG)
    before = int(np.argmax(t >= 7 * DAY_S))
    out = _feed(f, x[:before])
    assert f.active != 0  # a seasonal model, not the plain one
    out += _feed(f, x[before:], t0=before * STEP)
    flags = _flags(out)
    first_missing = int(np.argmax(day7))
    assert first_missing in flags
    assert all(i >= first_missing for i in flags if t[i] >= 3 * DAY_S)


def test_a_daily_routine_spike_is_learned_and_a_spike_at_another_hour_fires() -> None:
    rng = np.random.default_rng(11)
    t = np.arange(int(8 * DAY_S / STEP)) * STEP
    x = 30.0 + rng.normal(0, 1.0, t.size)
    daily = np.flatnonzero((t % DAY_S) == 3 * 3600)  # a nightly job at 03:00
    x[daily] += 40.0
    odd = int(np.argmax(t >= 6 * DAY_S + 15 * 3600))
    x[odd] += 40.0  # the same spike at 15:00: not the routine
    flags = _flags(_feed(Forecaster(CFG), x))
    assert odd in flags
    # Each routine spike fires only until a past day holds one at that hour.
    assert [i for i in flags if i in daily] == [i for i in daily if t[i] < DAY_S]
    off = _flags(_feed(Forecaster(ForecastConfig(peak_bins=0)), x))
    assert set(daily[t[daily] >= 2 * DAY_S]) <= set(off)  # without the seasonal calibration


def test_a_daily_noise_widening_alerts_on_its_first_days_only() -> None:
    # Every morning the noise triples for two hours (a batch job): the variance test fires on
    # the first days, then its time-of-day calibration knows the routine.
    per = int(DAY_S / STEP)
    e = daily_noise_burst(per, 108, 132, seed=3)
    days = {i // per for i in _flags(_feed(Forecaster(CFG), 50.0 + e))}
    assert days and days <= {0, 1}


def _on_off(seed: int, n: int = 4000) -> tuple[np.ndarray, list[int]]:
    """Idle near 5, with bursts of 10-30 points to 60-100 every 300-900 points."""
    rng = np.random.default_rng(seed)
    x = 5.0 + np.abs(rng.normal(0, 1.0, n))
    starts: list[int] = []
    i = 30
    while (i := i + int(rng.integers(300, 900))) < n - 200:
        k = int(rng.integers(10, 30))
        x[i : i + k] = rng.uniform(60, 100) + rng.normal(0, 2, k)
        starts.append(i)
        i += k
    return x, starts


def test_an_on_off_series_alerts_on_a_new_extreme_not_on_its_routine_bursts() -> None:
    x, starts = _on_off(1)
    x[3900:3904] = 300.0

    def alerted(cfg: ForecastConfig) -> tuple[int, bool]:
        fl = _flags(_feed(Forecaster(cfg), x))
        routine = sum(1 for s in starts if s > 1000 and any(s <= k < s + 6 for k in fl))
        return routine, 3900 in fl

    assert alerted(CFG) == (0, True)
    # Without the range context the bursts' own calibration lets some through.
    routine, extreme = alerted(ForecastConfig(range_blocks=0))
    assert routine >= 2 and extreme


def test_residuals_are_clipped_after_warm_up_whatever_the_scale_gain() -> None:
    rng = np.random.default_rng(2)
    x = 50.0 + rng.normal(0, 1.0, 300)
    x[200] = 1000.0
    f = Forecaster(ForecastConfig(scale_gain=0.1))  # above 1/warmup
    _feed(f, x[:201])
    assert abs(f.models[0].level - 50.0) < 2.0  # a Huber-clipped step, not 5% of the spike


def test_no_season_keeps_the_plain_model() -> None:
    rng = np.random.default_rng(4)
    f = Forecaster(CFG)
    _feed(f, 5.0 + rng.normal(0, 1.0, int(16 * DAY_S / STEP)))
    assert f.active == 0


def test_sparse_counts_do_not_fire_on_poisson_noise() -> None:
    rng = np.random.default_rng(5)
    x = rng.poisson(0.3, 4000).astype(float)
    out = _feed(Forecaster(CFG), x)
    assert _flags(out) == []
    y = x.copy()
    y[3000] = 25.0  # a burst no Poisson(0.3) produces
    assert 3000 in _flags(_feed(Forecaster(CFG), y))


def test_heavy_tails_learn_their_own_spikes() -> None:
    rng = np.random.default_rng(6)
    x = 10.0 + rng.standard_t(2, 3000)  # Student t with 2 degrees of freedom: infinite variance
    out = _feed(Forecaster(CFG), x)
    far = sum(1 for j in out if j is not None and abs(j.z) >= CFG.z_min)
    fired = len(_flags(out))
    # 50 points lie z_min robust scales out; judged against the series' own 99th percentile
    # of scores, a fifth of them fire (t2's tail: P(|T| > 1.5 q99) is about 0.4%).
    assert far >= 40
    assert fired <= 0.005 * len(x) and fired <= far // 4


def test_trend_is_followed() -> None:
    rng = np.random.default_rng(7)
    x = np.linspace(100.0, 400.0, 2000) + rng.normal(0, 2.0, 2000)
    assert _flags(_feed(Forecaster(CFG), x)) == []


def test_irregular_sampling_and_a_gap() -> None:
    rng = np.random.default_rng(8)
    times = np.cumsum(rng.uniform(0.3, 3.0, 1200)) * STEP
    times[800:] += 30 * DAY_S  # a month of silence
    f = Forecaster(CFG)
    out = [f.judge(float(t), 30.0 + float(rng.normal(0, 1.0))) for t in times]
    assert _flags(out) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values_are_refused(bad: float) -> None:
    f = Forecaster(CFG)
    _feed(f, np.full(30, 3.0))
    before = f.snapshot()
    assert f.judge(1e6, bad) is None
    assert f.skipped == 1
    after = f.snapshot()
    assert {**after, "skipped": 0} == {**before, "skipped": 0}


def test_duplicate_and_out_of_order_points_are_refused() -> None:
    f = Forecaster(CFG)
    _feed(f, np.full(30, 3.0))
    last = 29 * STEP
    assert f.judge(last, 100.0) is None  # duplicate time
    assert f.judge(last - STEP, 100.0) is None  # older than the last point
    assert f.skipped == 2
    j = f.judge(last + STEP, 3.0)
    assert j is not None and not j.abnormal


def test_snapshot_restore_continues_identically() -> None:
    rng = np.random.default_rng(9)
    x = 40.0 + 10.0 * np.sin(np.arange(3000) / 40.0) + rng.normal(0, 1.0, 3000)
    x[2500] += 30.0
    a = Forecaster(CFG)
    _feed(a, x[:2000])
    b = Forecaster.from_snapshot(CFG, a.snapshot())
    ta = _feed(a, x[2000:], t0=2000 * STEP)
    tb = _feed(b, x[2000:], t0=2000 * STEP)
    assert ta == tb
    assert 500 in _flags(ta)


def test_a_snapshot_from_before_the_shift_test_restores_its_calibration() -> None:
    rng = np.random.default_rng(9)
    a = Forecaster(CFG)
    _feed(a, 40.0 + rng.normal(0, 1.0, 600))
    old = a.snapshot()
    hist, total, weight = old.pop("calib")
    for key in ("drift", "dhist", "shifted"):
        del old[key]
    old.update(hist=hist, total=total, weight=weight)
    b = Forecaster.from_snapshot(CFG, old)
    assert b.calib.snapshot() == a.calib.snapshot() and b.drift == 0.0


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
point = st.tuples(
    st.floats(-10.0, 1000.0),  # seconds since the previous point: duplicates, reordering
    st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(point, min_size=1, max_size=120))
# a tiny negative time whose remainder rounds up to the period (found by this test)
@example([(-3.2230013409936393e-301, 0.0), (2.225073858507203e-309, 0.0)])
@example([(-3.2230013409936393e-301, 0.0)] + [(2.225073858507203e-309, 0.0)] * 3)
def test_any_input_never_crashes_and_scores_stay_finite(points: list[tuple[float, float]]) -> None:
    f = Forecaster(ForecastConfig(warmup=3))
    t = 0.0
    for dt, v in points:
        t += dt
        j = f.judge(t, v)
        if j is not None:
            assert math.isfinite(j.z) and math.isfinite(j.bar) and j.bar >= f.config.z_min
    g = Forecaster.from_snapshot(f.config, f.snapshot())
    assert g.snapshot() == f.snapshot()


# ---------------------------------------------------------------- through the series detector


def _run(values: list[float], name: str = "app.queue.depth", **cfg: object) -> list[Anomaly]:
    det = SeriesDetector(DetectionConfig(**cfg))  # type: ignore[arg-type]
    out = []
    for i, v in enumerate(values):
        out += [d.item for d in det.on_signal(metric(i, name, v)) if isinstance(d.item, Anomaly)]
    return out


def test_metric_values_are_judged_by_the_forecaster() -> None:
    rng = np.random.default_rng(10)
    x = list(100.0 + rng.normal(0, 3.0, 400))
    x[300] = 160.0
    fired = _run(x)
    assert [(a.detector, a.signal) for a in fired] == [("forecast", "value")]
    assert fired[0].observed == 160.0


def test_a_change_no_point_shows_is_info_until_a_point_passes_the_bar() -> None:
    rng = np.random.default_rng(6)
    x = 20.0 + rng.normal(0, 1.0, 2000)
    x[1500:] += 4.0  # a small lasting shift: only the short mean sees it
    fired = _run(list(x))
    assert [(a.severity, a.score < 5.0) for a in fired] == [("info", True)]
    x[1510] += 30.0  # then, while it is active, one point far past the bar
    fired = _run(list(x))
    # The same anomaly (id, onset) re-emitted as a warning: now it may open an incident.
    assert [a.severity for a in fired] == ["info", "warning"]
    assert fired[0].id == fired[1].id and fired[0].onset == fired[1].onset
    assert fired[1].observed == x[1510]


def test_disabled_forecaster_falls_back_to_the_robust_baseline() -> None:
    rng = np.random.default_rng(10)
    x = list(100.0 + rng.normal(0, 3.0, 400))
    x[300:310] = [200.0] * 10
    fired = _run(x, metrics=ForecastConfig(enabled=False))
    assert [a.detector for a in fired] == ["baseline"]


def test_bad_metric_values_and_counter_resets_never_crash() -> None:
    rng = np.random.default_rng(11)
    values = list(np.cumsum(rng.poisson(5.0, 200)).astype(float))
    values[50] = math.nan
    values[60] = math.inf
    values[70] = -5.0  # a negative counter
    values[100:] = [v - values[99] for v in values[100:]]  # a counter reset
    fired = _run(values, name="app.orders.placed")  # cumulative: judged on its rate
    assert all(math.isfinite(a.score) for a in fired)
