"""SeriesDetector: no alert on stationary noise, alerts on steps, low traffic does not page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import rate_false_alarms
from operators.scout.detect.config import DetectionConfig, load_detection
from operators.scout.detect.events import AnomalyCleared, Detection
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly
from tests.scout.helpers import cuj, items, metric, span

CFG = DetectionConfig()


def _latency(rng: np.random.Generator, count: int, p50: float) -> dict[str, Any]:
    if count == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    lat = rng.lognormal(np.log(p50), 0.35, size=count)
    return {
        "p50_ms": float(np.quantile(lat, 0.5)),
        "p95_ms": float(np.quantile(lat, 0.95)),
        "p99_ms": float(np.quantile(lat, 0.99)),
        "max_ms": float(lat.max()),
    }


def _run(det: SeriesDetector, signals: list) -> list[Detection]:
    out: list[Detection] = []
    for sig in signals:
        out += det.on_signal(sig)
    return out


# Derandomized: a detector's false-alarm rate is small, not zero, so a random search finds an
# alarm now and then (seed=106, traffic=30, error_rate=0, p50=21: one p95 window at 61.5 vs 35.3
# ms). The examples are fixed so CI judges the same ones every run.
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    traffic=st.sampled_from([3.0, 8.0, 30.0, 150.0, 800.0]),
    error_rate=st.sampled_from([0.0, 0.001, 0.01, 0.05]),
    p50=st.floats(2.0, 500.0),
)
def test_no_alert_on_stationary_span_noise(
    seed: int, traffic: float, error_rate: float, p50: float
) -> None:
    rng = np.random.default_rng(seed)
    det = SeriesDetector(CFG)
    sigs = []
    for i in range(300):
        count = int(rng.poisson(traffic))
        errors = int(rng.binomial(count, error_rate)) if count else 0
        sigs.append(span(i, count, errors, **_latency(rng, count, p50)))
    assert items(_run(det, sigs), Anomaly) == []


@settings(max_examples=3, deadline=None, database=None, derandomize=True)
@given(base=st.integers(0, 2**31))
def test_error_rate_false_alarms_at_low_traffic_stay_rare(base: int) -> None:
    """Stationary series of 8 requests a window at 1% and 5% errors: 3.35% of them alarmed (a
    baseline rate learnt only from error-free windows); none of 2000 now (`bench.rate_false_alarms`).
    At most 1 of 150 (the old rate gives 5 on average, so this fails then)."""
    result = rate_false_alarms.measure(150, 300, 8.0, [0.01, 0.05], seed=base)
    assert result["alarmed"] <= 1, result["first_alarms"]


# Derandomized for the same reason (seed=572924513, level=1, noise=0.0625, every=1 raises one
# forecast alarm at 1.083 vs 1.024).
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.floats(0.1, 1e6),
    noise=st.floats(0.001, 0.1),
    every=st.sampled_from([1, 3, 6]),
)
def test_no_alert_on_stationary_metric_noise(
    seed: int, level: float, noise: float, every: int
) -> None:
    rng = np.random.default_rng(seed)
    det = SeriesDetector(CFG)
    sigs = [
        metric(i, "messaging.kafka.consumer.lag", float(level * (1 + rng.normal(0, noise))))
        for i in range(0, 300 * every, every)
    ]
    assert items(_run(det, sigs), Anomaly) == []


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    traffic=st.sampled_from([50.0, 200.0, 1000.0]),
    bad_rate=st.floats(0.1, 0.6),
)
def test_error_rate_step_alerts_within_three_windows(
    seed: int, traffic: float, bad_rate: float
) -> None:
    rng = np.random.default_rng(seed)
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    for i in range(80):
        rate = 0.001 if i < 60 else bad_rate
        count = int(rng.poisson(traffic))
        out += det.on_signal(span(i, count, int(rng.binomial(count, rate))))
    fired = [a for a in items(out, Anomaly) if a.signal == "error_rate"]
    assert fired, "the step was not detected"
    first = fired[0]
    assert first.detector == "significance"
    # window 60 is the first bad one; k=2 of n=3 fires at window 61, allow one unlucky window
    assert first.onset >= span(60, 1).window_start
    assert next(d.at for d in out if d.item is first) <= span(62, 1).window_end
    assert first.observed > first.expected


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    every=st.sampled_from([1, 3, 6]),
    step=st.floats(0.6, 3.0),
)
def test_gauge_step_alerts_within_k_observations_at_any_interval(
    seed: int, every: int, step: float
) -> None:
    rng = np.random.default_rng(seed)
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    obs = 0
    for i in range(0, 60 * every, every):
        level = 100.0 if i < 40 * every else 100.0 * (1 + step)
        out += det.on_signal(metric(i, "messaging.kafka.consumer.lag", level + rng.normal(0, 2)))
        obs += 1
        if items(out, Anomaly):
            break
    fired = items(out, Anomaly)
    assert fired and fired[0].signal == "value"
    assert obs <= 40 + 2  # the second abnormal observation fires, whatever the sampling interval


def test_low_traffic_does_not_page() -> None:
    rng = np.random.default_rng(7)
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    for i in range(400):
        count = int(rng.poisson(4))
        errors = 0
        if i % 5 == 0 and count:
            errors = 1  # a single failing request now and then: 20-100% of a tiny window
        if i == 200:
            count, errors = 3, 2  # a burst at three requests
        out += det.on_signal(span(i, count, errors))
    assert items(out, Anomaly) == []


def test_a_short_tight_history_does_not_make_poisson_dips_page() -> None:
    # 18 windows that happen to sit within 17-19 requests (MAD 1): windows of 6-8 requests are
    # 7 MAD-sigmas down but under 3.5 Poisson sigmas; a stop (0 requests, 7.3 sigmas) pages.
    history = [18, 17, 19, 18, 18, 17, 19, 18, 19, 17, 18, 18, 17, 19, 18, 18, 19, 17]
    for poisson, dips, pages in ((True, [8, 6, 8], False), (False, [8, 6, 8], True)):
        rules = (
            None if poisson else [{"kind": "span", "field": "count", "min_abs": 10, "min_rel": 0.5}]
        )
        det = SeriesDetector(load_detection({"detection": {"overrides": rules or []}}))
        out: list[Detection] = []
        for i, n in enumerate(history + dips):
            out += det.on_signal(span(i, n))
        assert bool(items(out, Anomaly)) is pages, poisson
    det = SeriesDetector(CFG)
    out = []
    for i, n in enumerate(history * 2 + [0, 0, 0]):
        out += det.on_signal(span(i, n))
    assert [a.signal for a in items(out, Anomaly)] == ["count"]


def test_sporadic_single_errors_at_moderate_traffic_do_not_page() -> None:
    rng = np.random.default_rng(3)
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    for i in range(400):
        count = int(rng.poisson(20))
        out += det.on_signal(span(i, count, 1 if i % 7 == 0 else 0))
    assert items(out, Anomaly) == []


def test_conversion_drop_is_significant_and_clears_after_recovery() -> None:
    rng = np.random.default_rng(11)
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    for i in range(120):
        conv = 0.5 if 60 <= i < 80 else 0.9
        started = int(rng.poisson(20))
        out += det.on_signal(cuj(i, started, int(rng.binomial(started, conv))))
    fired = [a for a in items(out, Anomaly) if a.signal == "conversion"]
    assert len(fired) == 1
    assert fired[0].cuj == "checkout" and fired[0].service is None
    assert fired[0].observed < fired[0].expected
    fire_at = next(d.at for d in out if d.item is fired[0])
    assert fire_at <= cuj(62, 1, 1).window_end
    clears = [c for c in items(out, AnomalyCleared) if c.id == fired[0].id]
    assert len(clears) == 1 and clears[0].at <= cuj(86, 1, 1).window_end


def test_lasting_new_level_is_relearned() -> None:
    cfg = load_detection({"detection": {"baseline": {"history": 40, "relearn_after": 30}}})
    rng = np.random.default_rng(5)
    det = SeriesDetector(cfg)
    out: list[Detection] = []
    for i in range(200):
        level = 100.0 if i < 50 else 300.0
        out += det.on_signal(metric(i, "messaging.kafka.consumer.lag", level + rng.normal(0, 2)))
    assert len(items(out, Anomaly)) == 1
    assert len(items(out, AnomalyCleared)) == 1


@pytest.mark.parametrize(
    ("name", "temporality", "cfg"),
    [
        # the data says cumulative, whatever the name
        ("orders.placed", "cumulative", CFG),
        # a gauge carrying a count: only the config can say it
        ("orders.placed", None, DetectionConfig(cumulative=("orders.*",))),
    ],
)
def test_cumulative_counter_is_judged_on_its_rate(
    name: str, temporality: str | None, cfg: DetectionConfig
) -> None:
    det = SeriesDetector(cfg)
    out: list[Detection] = []
    total = 0.0
    rng = np.random.default_rng(2)
    for i in range(120):
        total += 0.0 if i >= 100 else float(rng.poisson(50))
        out += det.on_signal(metric(i, name, total, temporality=temporality))
    fired = items(out, Anomaly)
    assert [a.signal for a in fired] == ["rate"]
    assert fired[0].observed == 0.0 and fired[0].expected > 4.0


def test_a_gauge_of_the_same_counts_is_judged_on_its_value() -> None:
    # Without temporality or a config entry the value itself is the series (no rate).
    det = SeriesDetector(CFG)
    for i in range(60):
        det.on_signal(metric(i, "orders.placed", 50.0 * i))
    model = det.fields["value"].model
    assert model is not None and model.n == 60  # the value is the judged series, every point
    assert det.prev_value is None  # no rate is ever computed


def test_pipeline_blindness_is_an_anomaly() -> None:
    det = SeriesDetector(CFG)
    out: list[Detection] = []
    for i in range(40):
        sig = metric(i, "watermark_delay_s", 2.0 if i < 30 else 120.0)
        out += det.on_signal(
            sig.__class__.from_dict({**sig.to_dict(), "kind": "pipeline", "service": None})
        )
    fired = items(out, Anomaly)
    assert len(fired) == 1 and fired[0].detector == "threshold" and fired[0].kind == "pipeline"


def test_anomaly_fields_and_deterministic_id() -> None:
    def run() -> list[Anomaly]:
        rng = np.random.default_rng(1)
        det = SeriesDetector(CFG)
        out: list[Detection] = []
        for i in range(60):
            count = int(rng.poisson(100))
            errs = int(rng.binomial(count, 0.3 if i >= 40 else 0.001))
            out += det.on_signal(
                span(i, count, errs, failing_trace_ids=[f"t{i}"], slowest_trace_ids=[f"s{i}"])
            )
        return items(out, Anomaly)

    first, again = run(), run()
    assert first == again
    a = first[0]
    assert a.id.startswith("an-") and a.service == "svc" and a.operation == "GET /"
    assert a.onset == span(40, 1).window_start
    assert a.windows == [span(40, 1).window_start, span(41, 1).window_start]
    assert a.exemplar_trace_ids[:2] == ["t40", "s40"]
    assert a.to_dict()["onset"].endswith("Z")


def test_hour_of_day_baseline_uses_the_hours_own_history() -> None:
    from operators.scout.detect.baseline import RobustBaseline
    from operators.scout.detect.config import BaselineConfig, SeriesRule

    b = RobustBaseline(BaselineConfig(hour_of_day=True, min_history=5, history=50))
    rule = SeriesRule(field="value", direction="up", min_rel=0.5)
    for k in range(20):
        b.learn(100.0 + k % 3, hour=3)  # nights are busy here
        b.learn(10.0 + k % 3, hour=14)
    night, day = b.judge(101.0, rule, hour=3), b.judge(101.0, rule, hour=14)
    assert night is not None and not night.abnormal
    assert day is not None and day.abnormal
