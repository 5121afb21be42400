"""SLO burn rates: hand-computed multi-window cases, time scale, latency estimate, routing."""

from __future__ import annotations

import math

import pytest

from operators.scout.detect.budget import share_over_threshold
from operators.scout.detect.config import SlosConfig, load_slos
from operators.scout.detect.events import AnomalyCleared, Detection
from operators.scout.detect.slo import SloEvaluator, burn_rate, slo_instances
from sre_space.records import Anomaly
from tests.scout.helpers import cuj, items, span
from tests.scout.synth import window_bounds


def _cfg(**over: object) -> SlosConfig:
    data: dict[str, object] = {
        "min_events": 0,
        "alerts": [
            {"severity": "page", "long": "60s", "short": "20s", "burn_rate": 5},
            {"severity": "ticket", "long": "120s", "short": "30s", "burn_rate": 2},
        ],
        "objectives": {"avail": {"type": "availability", "objective": 0.99}},
    }
    data.update(over)
    return load_slos({"slos": data})


def _feed(ev: SloEvaluator, errors_by_window: dict[int, int], n: int) -> list[Detection]:
    out: list[Detection] = []
    for i in range(n):
        out += ev.on_signal(span(i, 100, errors_by_window.get(i, 0), service="checkout"))
        out += ev.flush(window_bounds(i)[1])
    return out


def test_burn_rate_formula() -> None:
    assert burn_rate(990, 10, 0.999) == pytest.approx(10.0)
    assert burn_rate(0, 0, 0.999) == 0.0
    assert burn_rate(95, 5, 0.95) == pytest.approx(1.0)


def test_multiwindow_fires_only_when_both_windows_burn_and_clears() -> None:
    ev = SloEvaluator(_cfg(), "avail/checkout")
    # Windows of 100 requests; 20 errors in windows 10 and 11.
    # After window 10: short (windows 9-10) 20/200 -> 10x; long (5-10) 20/600 -> 3.33x: no page,
    # but the ticket rule (long 120 s: 20/1200 = 1.67x) does not fire either.
    out = _feed(ev, {10: 20}, 11)
    assert items(out, Anomaly) == []
    assert ev.burn_rates(window_bounds(10)[1]) == pytest.approx(
        {20.0: 10.0, 30.0: 20 / 300 / 0.01, 60.0: 20 / 600 / 0.01, 120.0: 20 / 1100 / 0.01}
    )
    # Window 11: short 40/200 -> 20x, long 40/600 -> 6.67x >= 5: page.
    out = ev.on_signal(span(11, 100, 20, service="checkout")) + ev.flush(window_bounds(11)[1])
    (a,) = items(out, Anomaly)
    assert a.severity == "page" and a.detector == "slo_burn" and a.signal == "slo:availability"
    assert a.observed == pytest.approx(40 / 600 / 0.01, rel=1e-6)
    assert a.expected == 5 and a.service == "checkout"
    assert a.onset == window_bounds(11)[0]
    # No more errors. The ticket rule (short 30 s = 3 windows) still fires after windows 12 and
    # 13 (20/300 = 6.7x, long 40/1200 = 3.3x >= 2); 14, 15, 16 fire nothing -> clear after 3.
    rest: list[Detection] = []
    for i in range(12, 20):
        rest += ev.on_signal(span(i, 100, 0, service="checkout")) + ev.flush(window_bounds(i)[1])
    cleared = items(rest, AnomalyCleared)
    assert [c.id for c in cleared] == [a.id]
    assert cleared[0].at == window_bounds(16)[1]


def test_ticket_escalates_to_page_with_the_same_id() -> None:
    ev = SloEvaluator(_cfg(), "avail/checkout")
    # 4 errors per window: burn 4x everywhere once the windows fill: ticket (2x), not page (5x).
    out = _feed(ev, dict.fromkeys(range(0, 30), 4), 30)
    (ticket,) = items(out, Anomaly)
    assert ticket.severity == "ticket"
    more = []
    for i in range(30, 40):
        more += ev.on_signal(span(i, 100, 30, service="checkout")) + ev.flush(window_bounds(i)[1])
    (page,) = items(more, Anomaly)
    assert page.severity == "page" and page.id == ticket.id and page.onset == ticket.onset


def test_cold_start_waits_for_min_events_and_the_short_window() -> None:
    cfg = _cfg(min_events=100)
    ev = SloEvaluator(cfg, "avail/checkout")
    out: list[Detection] = []
    for i in range(3):
        out += ev.on_signal(span(i, 30, 3, service="checkout")) + ev.flush(window_bounds(i)[1])
    assert items(out, Anomaly) == []  # 10x burn, but only 90 events and 30 s observed


def test_time_scale_shrinks_windows_but_never_below_one_window() -> None:
    cfg = load_slos(
        {
            "slos": {
                "time_scale": 60,
                "objectives": {"avail": {"type": "availability", "objective": 0.999}},
            }
        }
    )
    ev = SloEvaluator(cfg, "avail/checkout")
    ev.on_signal(span(0, 100, 0, service="checkout"))
    ev.flush(window_bounds(0)[1])
    # 1h/5m, 6h/30m, 1d/2h, 3d/6h divided by 60; 5 s is clamped to the 10 s window.
    assert sorted(ev.burn_rates(window_bounds(0)[1])) == [
        10.0,
        30.0,
        60.0,
        120.0,
        360.0,
        1440.0,
        4320.0,
    ]


def test_late_signal_is_counted_without_rejudging() -> None:
    ev = SloEvaluator(_cfg(), "avail/checkout")
    _feed(ev, {}, 10)
    ev.on_signal(span(10, 100, 0, service="checkout"))
    assert ev.on_signal(span(8, 100, 50, service="checkout")) == []
    ev.flush(window_bounds(10)[1])
    # window 8 now holds 200 events, 50 bad: 50 / 700 in the last 60 s
    assert ev.burn_rates(window_bounds(10)[1])[60.0] == pytest.approx(50 / 700 / 0.01)


def test_share_over_threshold_interpolates_in_log_latency() -> None:
    assert share_over_threshold(100, 200, 400, 800, 200) == pytest.approx(0.05)
    frac = math.log(1.5) / math.log(2)
    expected = 1 - (0.95 + frac * 0.04)
    assert share_over_threshold(100, 200, 400, 800, 300) == pytest.approx(expected)
    assert share_over_threshold(100, 200, 400, 800, 900) == 0.0
    assert share_over_threshold(100, 200, 400, 800, 50) == 0.5
    assert share_over_threshold(None, None, None, None, 50) == 0.0


def test_latency_and_conversion_slos_count_bad_events() -> None:
    cfg = load_slos(
        {
            "slos": {
                "min_events": 0,
                "alerts": [{"severity": "page", "long": "30s", "short": "10s", "burn_rate": 2}],
                "objectives": {
                    "lat": {"type": "latency", "objective": 0.95, "threshold_ms": 200},
                    "conv": {"type": "conversion", "cuj": "checkout", "objective": 0.9},
                },
            }
        }
    )
    lat = SloEvaluator(cfg, "lat/svc")
    out: list[Detection] = []
    for i in range(5):
        sig = span(i, 100, 0, p50_ms=150.0, p95_ms=400.0, p99_ms=500.0, max_ms=600.0)
        out += lat.on_signal(sig) + lat.flush(sig.window_end)
    (a,) = items(out, Anomaly)
    assert a.signal == "slo:latency" and a.observed > 2
    conv = SloEvaluator(cfg, "conv/checkout")
    out = []
    for i in range(5):
        out += conv.on_signal(cuj(i, 100, 60)) + conv.flush(window_bounds(i)[1])
    (c,) = items(out, Anomaly)
    assert c.cuj == "checkout" and c.kind == "cuj" and c.observed == pytest.approx(4.0)


def test_routing_to_slo_instances() -> None:
    cfg = load_slos(
        {
            "slos": {
                "objectives": {
                    "availability": {"type": "availability", "objective": 0.999},
                    "latency": {"type": "latency", "objective": 0.95, "threshold_ms": 500},
                    "conv": {"type": "conversion", "cuj": "checkout", "objective": 0.8},
                }
            }
        }
    )
    assert slo_instances(span(0, 1, service="checkout"), cfg) == [
        "availability/checkout",
        "latency/checkout",
    ]
    assert slo_instances(span(0, 1, service="checkout", span_kind="client"), cfg) == []
    assert slo_instances(span(0, 1, service="checkout", span_kind="SPAN_KIND_SERVER"), cfg) != []
    assert slo_instances(cuj(0, 1, 1), cfg) == ["conv/checkout"]
    with pytest.raises(ValueError, match="unknown SLO"):
        SloEvaluator(cfg, "nope/checkout")
