"""The forecast path's shortcuts give what the plain computation gave: the quantile scan that
starts at the highest filled bin, and field states made only once a field has a value."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.scout.detect.calibration import _HIST_BINS, _HIST_LO, _HIST_RATIO, Calibration
from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.series import SeriesDetector
from tests.scout.helpers import metric


def _full_scan(c: Calibration, q: float) -> float:
    """The quantile as it was computed before: every bin, from the last one down."""
    tail = (1.0 - q) * c.total
    acc = 0.0
    for i in range(_HIST_BINS - 1, -1, -1):
        acc += c.hist[i]
        if acc > tail:
            return _HIST_LO * _HIST_RATIO**i
    return 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e9, allow_nan=False), max_size=300),
    st.sampled_from([10, 50, 2000]),
    st.sampled_from([0.5, 0.9, 0.99, 0.999]),
)
def test_quantile_from_the_top_bin_equals_the_full_scan(
    values: list[float], memory: int, q: float
) -> None:
    c = Calibration()
    for i, v in enumerate(values):
        c.learn(v, memory)
        assert c.quantile(q) == _full_scan(c, q)
        if i == len(values) // 2:
            c = Calibration.from_snapshot(pickle.loads(pickle.dumps(c.snapshot())))
    assert c.quantile(q) == _full_scan(c, q)


def test_quantile_survives_renormalisation() -> None:
    c = Calibration()
    rng = np.random.default_rng(3)
    for v in np.abs(rng.standard_cauchy(20_000)):  # weight passes 1e200 at memory 10
        c.learn(float(v), 10)
        assert c.quantile(0.99) == _full_scan(c, 0.99)


def test_a_field_gets_state_with_its_first_value_and_old_snapshots_restore() -> None:
    cfg = DetectionConfig()
    det = SeriesDetector(cfg)
    for i in range(30):
        det.on_signal(metric(i, "queue.depth", 10.0 + i % 3))
    assert set(det.fields) == {"value"}  # no utilization in the signals: no state for it
    snap = det.snapshot()
    # A snapshot taken before kept an empty state for the utilization rule: it restores.
    old = SeriesDetector(cfg)
    old.on_signal(metric(0, "queue.depth", 1.0, utilization=0.5))
    snap["fields"]["utilization"] = old.snapshot()["fields"]["utilization"]
    back = SeriesDetector.from_snapshot(cfg, pickle.loads(pickle.dumps(snap)))
    assert set(back.fields) == {"value", "utilization"}
    out = back.on_signal(metric(30, "queue.depth", 11.0, utilization=0.4))
    assert out == det.on_signal(metric(30, "queue.depth", 11.0, utilization=0.4))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 500.0), min_size=20, max_size=120),
    st.sampled_from(["p95_ms", "count", "p50_ms"]),
)
def test_judge_both_is_two_judges(values: list[float], field: str) -> None:
    # A series asks for the strict and the lax verdict at once; it must be what two calls
    # (in that order) gave, verdicts and the baseline's state after them alike.
    from operators.scout.detect.baseline import RobustBaseline

    cfg = DetectionConfig()
    rule = cfg.rule_for("span", "svc", "GET /", field)
    assert rule is not None
    both, two = RobustBaseline(cfg.baseline), RobustBaseline(cfg.baseline)
    for i, x in enumerate(values):
        t = 1_767_571_200.0 + 10.0 * i
        strict, lax = both.judge_both(x, rule, 3, t)
        assert (strict, lax) == (two.judge(x, rule, 3, t=t), two.judge(x, rule, 3, True, t))
        both.learn(x, 3, t)
        two.learn(x, 3, t)
    assert both.snapshot() == two.snapshot()
