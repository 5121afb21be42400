"""The chaos suite's gaps, reduced to units: funnel steps, level rules, deploy-anchored trends,
and services the call graph cannot place."""

from __future__ import annotations

import numpy as np

from operators.scout.detect.config import DetectionConfig, SaturationConfig, SeriesRule, SlosConfig
from operators.scout.detect.events import ChangeEvent, Detection, signal_class
from operators.scout.detect.saturation import TrendToLimit
from operators.scout.detect.series import SeriesDetector
from operators.scout.incidents.config import IncidentsConfig
from operators.scout.incidents.correlator import Correlator
from operators.scout.judge import Scout
from sre_space.records import Anomaly, Incident
from tests.scout.helpers import anomaly, funnel, items, metric, span
from tests.scout.synth import EDGES, JOURNEYS, window_bounds


def _funnel_run(last_step_pass: float, seed: int, n: int = 120, onset: int = 80) -> list[Anomaly]:
    """~25 journeys a window: 70% reach checkout, 96.5% of those pay (then `last_step_pass`)."""
    rng = np.random.default_rng(seed)
    det = SeriesDetector(DetectionConfig())
    out: list[Anomaly] = []
    for i in range(n):
        started = int(rng.poisson(25))
        checkout = int(rng.binomial(started, 0.7))
        paid = int(rng.binomial(checkout, 0.965 if i < onset else last_step_pass))
        out += items(det.on_signal(funnel(i, [started, checkout, paid])), Anomaly)
    return out


def test_a_drop_in_one_funnel_step_is_seen_where_the_end_to_end_rate_hides_it() -> None:
    # 15% of payments declined on top of the usual 3.5%: end-to-end 0.68 -> 0.58
    found = 0
    for seed in range(5):
        anomalies = _funnel_run(0.82, seed)
        steps = [a for a in anomalies if a.signal == "step_conversion.2"]
        found += bool(steps)
        assert all(signal_class(a) == "conversion" for a in steps)
        assert all("funnel step 3 of 3" in a.detail for a in steps)
    assert found == 5


def test_no_funnel_step_alert_on_stationary_traffic() -> None:
    for seed in range(5):
        assert _funnel_run(0.965, seed, n=360) == []


def test_a_level_rule_ignores_shifts_below_the_level() -> None:
    det = SeriesDetector(DetectionConfig())
    out = []
    for i in range(60):
        util = 0.38 if i < 30 else 0.46  # a deploy steps memory up, far from the limit
        out += det.on_signal(metric(i, "memory", util * 512, utilization=util, limit=512))
    assert items(out, Anomaly) == []
    for i in range(60, 64):
        out += det.on_signal(metric(i, "memory", 0.9 * 512, utilization=0.9, limit=512))
    assert [a.signal for a in items(out, Anomaly)] == ["utilization"]


def test_min_level_is_for_robust_rules_only() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="min_level"):
        SeriesRule(field="error_rate", test="binomial", min_level=0.5)


def _anchored(values: list[float], before: int = 30) -> list[bool]:
    """Trend verdicts after a deploy at point `before` (noise 0.003 before it)."""
    rng = np.random.default_rng(1)
    trend = TrendToLimit(SaturationConfig())
    flags = []
    for k in range(before):
        trend.on_point(k * 10.0, 0.38 + rng.normal(0, 0.003))
    trend.anchor((before - 1) * 10.0)
    for j, v in enumerate(values):
        verdict = trend.on_point((before + j) * 10.0, v)
        flags.append(bool(verdict and verdict.abnormal))
    return flags


def test_a_leak_after_a_deploy_is_predicted_within_a_few_points() -> None:
    # 0.002/s from 0.38: exhaustion in about five minutes; the first verdict needs 5 points
    # (the anchor's pre-deploy point and four since)
    flags = _anchored([0.38 + 0.02 * (j + 1) for j in range(6)])
    assert flags[:3] == [False, False, False] and all(flags[3:])


def test_a_step_up_after_a_deploy_is_no_leak() -> None:
    assert not any(_anchored([0.45, 0.462, 0.455, 0.458, 0.451, 0.46, 0.457, 0.452]))


def test_the_scout_anchors_a_services_memory_trend_at_its_deploy() -> None:
    scout = Scout(DetectionConfig(), SlosConfig(), IncidentsConfig(), JOURNEYS)
    rng = np.random.default_rng(3)
    anomalies: list[Anomaly] = []
    for i in range(60):
        version = "1.0.0" if i < 40 else "1.1.0"
        util = 0.38 + rng.normal(0, 0.003) + (0.02 * (i - 39) if i >= 40 else 0.0)
        sigs = [
            span(i, 50, service="checkout", versions={version: 50}),
            metric(i, "memory", util * 512, service="checkout", utilization=util, limit=512),
        ]
        out = scout.on_window(window_bounds(i)[1], sigs, EDGES)
        anomalies += items(out.detections, Anomaly)
        if i == 40:
            assert [c.change for c in items(out.detections, ChangeEvent)] == ["deploy"]
    trend = [a for a in anomalies if a.detector == "saturation_trend"]
    assert trend, anomalies
    # the deploy is seen at the end of window 40; 4 points and 2 verdicts later it fires
    assert trend[0].windows[-1] <= window_bounds(44)[0]
    assert trend[0].service == "checkout"


def _correlate(script: dict[int, list[Detection]], n: int) -> list[Incident]:
    c = Correlator(IncidentsConfig(), JOURNEYS)
    out: list[Incident] = []
    for i in range(n):
        out += c.process(window_bounds(i)[1], script.get(i, []), EDGES)
    return out


def _db_saturation(i: int, service: str = "postgres") -> Detection:
    return anomaly(i, service, "utilization", detector="baseline", kind="metric", metric_name="cpu")


def test_an_unplaced_service_joins_the_incident_of_its_time() -> None:
    # postgres has no spans: the call graph cannot place it, time does
    out = _correlate({1: [anomaly(1, "checkout", "error_rate")], 3: [_db_saturation(3)]}, 6)
    assert [e.event for e in out] == ["opened", "updated"]
    assert out[-1].services == ["checkout", "postgres"]


def test_an_incident_of_unplaced_services_takes_in_what_comes_soon_after() -> None:
    out = _correlate({1: [_db_saturation(1)], 2: [anomaly(2, "payment", "p95_ms")]}, 5)
    assert [e.event for e in out] == ["opened", "updated"]
    assert out[-1].services == ["payment", "postgres"]


def test_time_alone_links_only_within_the_window() -> None:
    # 31 windows of 10 s: beyond the 5-minute unplaced window
    out = _correlate({1: [anomaly(1, "checkout", "error_rate")], 32: [_db_saturation(32)]}, 34)
    assert [e.event for e in out] == ["opened", "opened"]
    # placed services are still linked by the graph only
    out = _correlate(
        {1: [anomaly(1, "payment", "error_rate")], 2: [anomaly(2, "recommendation", "p95_ms")]}, 4
    )
    assert [e.event for e in out] == ["opened", "opened"]


def _small_segment(pass_after: float, seed: int, n: int = 240, onset: int = 200) -> list[Anomaly]:
    """A journey of a small segment: 2-3 starts a window, below min_trials every time."""
    rng = np.random.default_rng(seed)
    det = SeriesDetector(DetectionConfig())
    out: list[Anomaly] = []
    for i in range(n):
        started = int(rng.integers(2, 4))
        done = int(rng.binomial(started, 0.965 if i < onset else pass_after))
        out += items(det.on_signal(funnel(i, [started, done])), Anomaly)
    return out


def test_windows_below_min_trials_are_judged_through_their_pools() -> None:
    for seed in range(3):
        found = _small_segment(0.1, seed)
        assert [a.signal for a in found][:1] == ["conversion"], seed
        # nearly every payment of the segment declined: a few windows suffice
        assert found[0].onset <= window_bounds(203)[0]


def test_no_alert_on_a_stationary_small_segment() -> None:
    for seed in range(5):
        assert _small_segment(0.965, seed, n=480, onset=480) == []
